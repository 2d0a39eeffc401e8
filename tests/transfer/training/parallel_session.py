"""One run on one device and the same run data-parallel on two simulated CPU devices, in one process.

``python tests/transfer/training/parallel_session.py BACKEND WORK IMAGES``: JAX gets two host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``, CPU only), TensorFlow two logical CPUs; both must be
set before the backend starts, hence a process of its own. Trains ``--distribute none`` and ``mirrored`` with
the same global batch and writes WORK/parallel-BACKEND.json: the largest weight difference, and the metrics.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BACKEND = sys.argv[1]
os.environ["KERAS_BACKEND"] = BACKEND
if BACKEND == "jax":
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    import tensorflow as tf

    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402

from transfer import TrainConfig, run_experiment  # noqa: E402
from transfer.run_folder import load_model  # noqa: E402


def main(work: str, images: str) -> None:
    work = Path(work)
    # SGD, no dropout, no augmentation: every step is a function of the global batch alone (Adam would turn
    # float rounding in a near-zero gradient into a full-size step of opposite sign)
    common = dict(data=images, backbone="resnet15", optimizer="sgd", lr_schedule="plateau", patience=0, epochs=1,
                  batch_size=12, verbose=0, baseline="none", backend=BACKEND)
    runs = {mode: run_experiment(TrainConfig(distribute=mode, out=str(work / f"{BACKEND}-{mode}"), **common))
            for mode in ("none", "mirrored")}
    weights = [load_model(runs[mode].model_path).get_weights() for mode in ("none", "mirrored")]
    summary = {"max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
               **{mode: run.metrics for mode, run in runs.items()}}
    (work / f"parallel-{BACKEND}.json").write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    main(*sys.argv[2:4])
