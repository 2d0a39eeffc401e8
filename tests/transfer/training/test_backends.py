"""Keras backends, devices and processes: the same runs under TensorFlow and JAX, on one device and on two,
in one process and in two, with 16-bit compute; models that move between backends.

Keras fixes its backend when it is first imported, so everything that runs under another backend than this test
process (or with simulated devices) runs in a process of its own; one process per kind of check keeps the
start-up cost down. Tests marked ``jax`` are the JAX subset (the GPU check runs them on a GPU).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imgen.arrays import synth as arrays_synth
from tests._transfer_data import make_blob_dataset
from tests.conftest import REPO_ROOT

pytest.importorskip("jax")
pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
#: Scores of one model under two backends agree to this (float32 arithmetic in another order).
CROSS_BACKEND_TOLERANCE = 1e-5
#: Trained weights of one device and of two (or of one process and of two) agree to this: SGD steps on the same
#: global batch, the sums over the batch taken in another order (float32 rounding, measured at 5e-7).
PARALLEL_TOLERANCE = 1e-5
#: The environment of the processes the tests start: this checkout first, then what this process was given
#: (the GPU check installs keras into a folder on PYTHONPATH).
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
         "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}


def run_python(args, env=None, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **QUIET, **(env or {})}, cwd=REPO_ROOT, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="module")
def images(work) -> Path:
    """3 classes x 20 grey 16x16 PNGs with a manifest: 36 training events, three batches of 12."""
    return make_blob_dataset(work / "images", per_class=20, size=16)


def tensorflow_here() -> bool:
    """Whether this test process runs Keras on TensorFlow (the GPU check runs the JAX subset without it)."""
    keras = pytest.importorskip("keras")
    return keras.backend.backend() == "tensorflow"


@pytest.fixture(scope="module")
def tf_model(work, images) -> Path | None:
    """A run trained under TensorFlow in this process, or None where this process runs another backend."""
    if not tensorflow_here():
        return None
    from transfer import TrainConfig, run_experiment

    run = run_experiment(TrainConfig(data=str(images), backbone="resnet15", epochs=1, batch_size=12, verbose=0,
                                     baseline="none", out=str(work / "tf-run")))
    return run.model_path


@pytest.fixture(scope="module")
def jax_session(work, images, tf_model) -> dict:
    arrays = arrays_synth.write_electron_photon_combined(work / "egamma.h5", 60, seed=3)
    import h5py

    with h5py.File(arrays, "a") as handle:   # per-event weights, some negative: the JAX arrays run is weighted
        handle["w"] = np.where(np.arange(len(handle["y"])) % 7 == 0, -0.5, 1.0 + (handle["y"][...] == 1))
    run_python([HERE / "jax_session.py", work, images, arrays, tf_model or "-"])
    return json.loads((work / "session.json").read_text())


@pytest.mark.jax
def test_jax_trains_from_scratch_fine_tunes_in_two_stages_and_grids(jax_session, work):
    assert jax_session["keras_backend"] == "jax"
    scratch, two_stage = jax_session["scratch"], jax_session["two_stage"]
    assert scratch["backend"] == "jax" and scratch["training"] == "from scratch"
    assert "backend: jax" in (work / "scratch" / "config.yaml").read_text()
    assert two_stage["training"] == "two-stage transfer" and two_stage["feature_cache"]
    assert set(pd.read_csv(work / "two-stage" / "history.csv")["stage"]) == {"head", "fine-tune"}
    for metrics in (scratch, two_stage):
        assert np.isfinite(metrics["test"]["loss"]) and not metrics["health"]["collapsed"]
    assert jax_session["grid"]["failures"] == {} and len(jax_session["grid"]["trained"]) == 2
    assert (work / "grid" / "grid_summary.md").is_file()
    assert jax_session["arrays"]["data_kind"] == "arrays" and jax_session["lr_find"]["steps"] >= 6
    weighted = jax_session["arrays"]   # --event-weight w under JAX: recorded, and in every figure
    assert weighted["event_weights"]["choice"] == "w" and weighted["event_weights"]["negative_fraction"]["test"] > 0
    assert weighted["test"]["weighted"] and np.isfinite(weighted["test"]["loss"])


@pytest.mark.jax
def test_a_model_saved_under_one_backend_scores_the_same_under_the_other(jax_session, work, images, tf_model):
    if tf_model is None:
        pytest.skip("compares JAX with TensorFlow: this process runs Keras without TensorFlow")
    from transfer import predict

    for model, under_jax in ((work / "scratch" / "model.keras", "scratch_under_jax.csv"),
                             (tf_model, "tf_model_under_jax.csv"),
                             (work / "arrays" / "model.keras", "arrays_under_jax.csv")):
        inputs = dict(inputs=[str(work / "egamma.h5")], x_key="X") if "arrays" in under_jax else \
            dict(inputs=[str(images)])
        here = predict(model, **inputs)  # this process: TensorFlow
        there = pd.read_csv(work / under_jax)
        scores = [c for c in here.columns if c.startswith("score_")]
        assert list(here["path"]) == list(there["path"])
        assert np.abs(here[scores].to_numpy() - there[scores].to_numpy()).max() < CROSS_BACKEND_TOLERANCE


@pytest.fixture(scope="module")
def parallel_jax(work, images) -> dict:
    run_python([HERE / "parallel_session.py", "jax", work, images])
    return json.loads((work / "parallel-jax.json").read_text())


@pytest.mark.jax
def test_jax_data_parallel_on_two_devices_trains_what_one_device_trains(parallel_jax):
    assert parallel_jax["mirrored"]["distribution"] == "mirrored: 2 devices"
    assert parallel_jax["none"]["distribution"] == "one device"
    assert parallel_jax["max_weight_difference"] < PARALLEL_TOLERANCE
    # every validation and test event is scored, although 2 devices need batches that split evenly
    assert parallel_jax["mirrored"]["test"]["n_events"] == parallel_jax["none"]["test"]["n_events"] == 12


def test_tensorflow_mirrored_on_two_cpus_trains_what_one_device_trains(work, images):
    pytest.importorskip("tensorflow")
    run_python([HERE / "parallel_session.py", "tensorflow", work, images])
    parallel = json.loads((work / "parallel-tensorflow.json").read_text())
    assert parallel["mirrored"]["distribution"] == "mirrored: 2 devices"
    # BatchNorm is synchronised over the replicas: unsynchronised, the weights differ by 1e-3
    assert parallel["max_weight_difference"] < PARALLEL_TOLERANCE


def job_command(out, *extra):
    return [sys.executable, "-m", "transfer", "--data", "IMAGES", "--backbone", "resnet15", "--optimizer", "sgd",
            "--lr-schedule", "plateau", "--patience", "0", "--batch-size", "12", "--verbose", "0",
            "--baseline", "none", "--backend", "jax", "--distribute", "multiworker", "--out", str(out), *extra]


def start_job(images, out, port, processes=(0, 1), extra=(), env=None):
    """The processes of a job on 127.0.0.1, as a user starts them (one command each, Keras' variables)."""
    started = {}
    for index in processes:
        command = [str(images) if arg == "IMAGES" else arg for arg in job_command(out, *extra)]
        started[index] = subprocess.Popen(  # a session of its own: a "node" that can die with all its processes
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, start_new_session=True,
            env={**os.environ, **QUIET, "JAX_PLATFORMS": "cpu", "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
                 **(env or {})})
    return started


def free_port() -> int:
    import socket

    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


@pytest.mark.jax
def test_two_processes_train_one_model_and_process_0_writes_it(work, images, parallel_jax):
    out = work / "job"
    job = start_job(images, out, free_port(), extra=("--epochs", "1"))
    ends = {index: process.communicate(timeout=600) for index, process in job.items()}
    for index, process in job.items():
        assert process.returncode == 0, ends[index][1][-3000:]
    assert "process 0 writes" in ends[1][0]
    metrics = json.loads((out / "metrics.json").read_text())
    single = parallel_jax["none"]
    assert metrics["distribution"] == "multiworker: 2 devices in 2 processes"
    for key in ("accuracy", "loss"):
        assert abs(metrics["test"][key] - single["test"][key]) < 1e-4
    # one run folder, written once: nothing of process 1 beside it
    assert sorted(p.name for p in work.iterdir() if p.name.startswith((".job", "job"))) == ["job"]


@pytest.mark.jax
def test_a_missing_coordinator_or_a_dead_peer_ends_in_one_line(work, images):
    quick = {"HEPVISION_CLUSTER_TIMEOUT": "4", "HEPVISION_HEARTBEAT_TIMEOUT": "4"}
    # process 1 alone: nobody listens at the coordinator's address
    started = time.monotonic()
    lone = start_job(images, work / "never", free_port(), processes=(1,), env=quick)[1]
    _, err = lone.communicate(timeout=120)
    assert lone.returncode == 2 and "the coordinator" in err and "did not answer within 4 s" in err
    assert time.monotonic() - started < 60

    # both start, process 1 dies in training: process 0 stops within the heartbeat timeout, in one line
    job = start_job(images, work / "dead", free_port(), extra=("--epochs", "500"), env=quick)
    deadline = time.monotonic() + 300
    while not list(work.glob(".dead.partial-*")) and time.monotonic() < deadline and job[0].poll() is None:
        time.sleep(0.5)  # process 0 stages its run folder once the job has started and the data are read
    time.sleep(5)
    os.killpg(job[1].pid, signal.SIGKILL)  # process 1's node dies: the command and the process that trains
    killed = time.monotonic()
    _, err = job[0].communicate(timeout=120)
    assert job[0].returncode == 2 and time.monotonic() - killed < 60, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("error: --distribute multiworker: process 0 was stopped")
    assert not (work / "dead").exists()


def test_refusals_name_the_route_that_works():
    from transfer.config import TrainConfig
    from transfer.errors import OptionError

    with pytest.raises(OptionError, match="MultiWorkerMirroredStrategy.*--backend jax"):
        TrainConfig(data="x", backbone="cnn", backend="tensorflow", distribute="multiworker")
    with pytest.raises(OptionError, match="--backend"):
        TrainConfig(data="x", backbone="cnn", backend="theano")
    from transfer.training.devices import cluster_from_environment

    with pytest.raises(OptionError, match="KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        cluster_from_environment({})
    with pytest.raises(OptionError, match="KERAS_DISTRIBUTION_PROCESS_ID not set"):
        cluster_from_environment({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"})
    assert cluster_from_environment({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}).coordinator is None


def test_sixteen_bit_training_saves_a_float32_model_that_exports(work, images):
    keras = pytest.importorskip("keras")
    from transfer import TrainConfig, run_experiment
    from transfer.models.precision import needs_copy

    run = run_experiment(TrainConfig(data=str(images), backbone="smallcnn", epochs=1, batch_size=12, verbose=0,
                                     baseline="none", mixed_precision="bf16", out=str(work / "bf16")))
    assert run.metrics["dtype_policy"] == "mixed_bfloat16"
    import transfer.models.layers  # noqa: F401

    saved = keras.saving.load_model(run.model_path)
    assert not needs_copy(saved)
    policies = {layer.dtype_policy.name for layer in saved.layers}
    assert policies == {"float32"}, policies
    pytest.importorskip("onnxruntime")
    from transfer.deploy.export import export_model_files

    check = export_model_files(run.model_path, "onnx", work / "bf16-export")
    assert check["formats"]["onnx"]["max_abs_diff"] < 1e-4


def test_feature_scaling_of_a_nearly_constant_backbone_stays_finite_in_16_bits():
    keras = pytest.importorskip("keras")
    from transfer.models.layers import FeatureScaling

    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = FeatureScaling()
        features = 1.0 + 1e-6 * np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        layer.build(features.shape)
        layer.set_statistics(features)  # 1 / spread is about 1e6, beyond float16's 65504
        out = np.asarray(layer(features))
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(out).all() and 0.5 < out.std() < 2
