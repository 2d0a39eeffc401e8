"""python -m transfer export: every format exported, reloaded in its own runtime, checked against Keras.

Real runs trained here (a small CNN on a small HDF5 array file, MobileNetV2 at 32x32 on PNGs, --weights none),
real exports, real runtimes: onnxruntime, tf.saved_model, the TFLite interpreter, and hls4ml's C++ emulation
built with the system g++. Tests of a format skip, saying why, where its library (the export extra) is missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from tests._transfer_data import make_blob_dataset  # noqa: E402
from tests.conftest import REPO_ROOT, installed
from transfer.cli import main  # noqa: E402
from transfer.deploy.export import FLOAT_TOLERANCE, export_model_files, parse_formats, read_test_events
from transfer.run_folder import load_model  # noqa: E402
from transfer.deploy.runtimes import INSTALL_HINT  # noqa: E402
from transfer.errors import TransferError  # noqa: E402

pytestmark = pytest.mark.slow
FAST = ["--batch-size", "32", "--patience", "0", "--verbose", "0", "--weights", "none"]
#: hls4ml (precision auto): the largest score difference from the float model we accept on the test events.
FIXED_POINT_TOLERANCE = 0.1


needs_onnx = pytest.mark.skipif(not installed("onnx", "onnxruntime", "tf2onnx"),
                                reason=f"onnx/onnxruntime/tf2onnx not installed ({INSTALL_HINT})")
needs_hls4ml = pytest.mark.skipif(not installed("hls4ml") or shutil.which("g++") is None,
                                  reason=f"hls4ml ({INSTALL_HINT}) or the system g++ is missing")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_export")


@pytest.fixture(scope="module")
def compact_run(work) -> Path:
    """smallcnn trained from scratch on 8x8 one-channel arrays (log scale): a deposit at one of two places."""
    rng = np.random.default_rng(0)
    files = []
    for label, (row, col) in enumerate([(2, 2), (5, 5)]):
        x = rng.exponential(1.0, (120, 8, 8)).astype(np.float32)
        x[:, row - 1:row + 2, col - 1:col + 2] += rng.uniform(0.3, 2.0, (120, 1, 1)).astype(np.float32)
        path = work / f"class{label}.h5"
        with h5py.File(path, "w") as handle:
            handle["X"] = x
        files.append(f"c{label}={path}")
    out = work / "compact-run"
    assert main(["--data", *files, "--x-key", "X", "--backbone", "smallcnn", "--scale", "log", "--epochs", "3",
                 "--split", "0.6,0.15,0.25", *FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mobilenet_run(work) -> Path:
    data = make_blob_dataset(work / "blobs", classes=("a", "b"), per_class=12, size=32)
    out = work / "mobilenet-run"
    # MobileNetV2 from random weights learns little from 24 images in one epoch, and may say so (exit 3,
    # COLLAPSED): the run folder and its model are written all the same, which is what the export needs
    assert main(["--data", str(data), "--backbone", "mobilenetv2", "--fine-tune", "frozen", "--epochs", "1",
                 *FAST, "--out", str(out)]) in (0, 3)
    assert (out / "model.keras").is_file()
    return out


def _keras_scores(run: Path, inputs: np.ndarray) -> np.ndarray:
    return load_model(run / "model.keras").predict(inputs, verbose=0)


def _readme_block(readme: str, heading: str) -> str:
    """The python code block under the README section whose heading starts with ``heading``."""
    section = readme.split(f"## {heading}", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


# --- float formats: ONNX, SavedModel, TFLite --------------------------------------------------------

@needs_onnx
def test_compact_network_exports_reproduce_keras_in_each_runtime(compact_run, work):
    out = work / "deploy-compact"
    check = export_model_files(compact_run / "model.keras", "onnx,savedmodel,tflite", out)
    events = read_test_events(compact_run / "model.keras")
    reference = _keras_scores(compact_run, events.inputs)
    n_test = int((pd.read_csv(compact_run / "split.csv")["split"] == "test").sum())  # about 60 of 240
    assert check["n_test_events"] == len(events.labels) == n_test > 40

    # Each file reloaded here with its runtime's own API, not through the exporter's code.
    import onnxruntime as ort
    import tensorflow as tf

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(None, {session.get_inputs()[0].name: events.inputs})[0]
    saved = tf.saved_model.load(str(out / "saved_model"))  # keep a reference: its variables live in it
    saved_scores = saved.serve(events.inputs).numpy()
    interpreter = tf.lite.Interpreter(model_path=str(out / "model.tflite"))
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], events.inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], events.inputs)
    interpreter.invoke()
    tflite_scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    for name, scores in [("onnx", onnx_scores), ("savedmodel", saved_scores), ("tflite", tflite_scores)]:
        assert np.abs(scores - reference).max() <= FLOAT_TOLERANCE, name
        result = check["formats"][name]
        assert result["max_abs_diff"] <= FLOAT_TOLERANCE
        assert result["test_auc"] == pytest.approx(check["keras_test_auc"], abs=1e-6)
    assert check["formats"]["onnx"]["opset"] >= 13

    written = json.loads((out / "export_check.json").read_text())
    assert written["formats"].keys() == {"onnx", "savedmodel", "tflite"}
    # The arrays' transform lives outside the model: preprocessing.json holds it with the training statistics,
    # and the README's own code turns raw file rows into what the ONNX model takes.
    prep = json.loads((out / "preprocessing.json").read_text())
    arrays = json.loads((compact_run / "arrays.json").read_text())
    assert prep["before_the_model"]["transform"] == arrays["transform"]
    readme = (out / "README.md").read_text()
    rows = [p.rsplit("#", 1) for p in events.ids]
    raw = np.stack([h5py.File(f, "r")["X"][int(r)] for f, r in rows])[..., None]
    namespace = {"x_raw": raw, "__name__": "readme"}
    cwd = os.getcwd()
    os.chdir(out)
    try:
        exec(_readme_block(readme, "Before the model"), namespace)
        exec(_readme_block(readme, "onnx"), namespace)
    finally:
        os.chdir(cwd)
    assert np.abs(namespace["scores"] - reference).max() <= FLOAT_TOLERANCE


@needs_onnx
def test_mobilenetv2_on_images_exports_take_raw_uint8_images(mobilenet_run, work):
    out = work / "deploy-mobilenet"
    check = export_model_files(mobilenet_run / "model.keras", ["onnx", "savedmodel", "tflite"], out,
                               allow_collapsed=True)   # the fixture's network may have collapsed (see there)
    for name in ("onnx", "savedmodel", "tflite"):
        assert check["formats"][name]["max_abs_diff"] <= FLOAT_TOLERANCE
    events = read_test_events(mobilenet_run / "model.keras")
    assert events.inputs.dtype == np.uint8 and events.inputs.shape[1:] == (32, 32, 1)

    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"  # the preprocessing is inside the exported graph
    scores = session.run(None, {session.get_inputs()[0].name: events.inputs})[0]
    assert np.abs(scores - _keras_scores(mobilenet_run, events.inputs)).max() <= FLOAT_TOLERANCE
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["before_the_model"] is None and prep["inside_the_model"]["preprocess"] == "mobilenet_v2"


# --- hls4ml ------------------------------------------------------------------------------------------

@needs_hls4ml
def test_hls4ml_emulation_of_a_tiny_network_agrees_with_keras(compact_run, work, capsys):
    """io_stream: its emulation builds in half the time of io_parallel (the default, same check by hand)."""
    out = work / "deploy-hls"
    assert main(["export", "--model", str(compact_run / "model.keras"), "--format", "hls4ml", "--out", str(out),
                 "--reuse-factor", "2", "--io-type", "io_stream"]) == 0
    printed = capsys.readouterr().out
    assert "fixed point per layer from the largest values" in printed and "vitis_hls -f build_prj.tcl" in printed
    assert printed.strip().splitlines()[-1].startswith("hls4ml fixed-point agreement on ")
    result = json.loads((out / "export_check.json").read_text())["formats"]["hls4ml"]
    assert result["max_abs_diff"] <= FIXED_POINT_TOLERANCE
    assert abs(result["fixed_point_test_auc"] - result["float_test_auc"]) <= 0.01
    assert result["agreement"]["within_margin"] is True and result["agreement"]["margin"] == 0.01
    assert result["float_test_auc"] > 0.7  # the float model learned something worth comparing
    assert result["reuse_factor"] == 2 and result["io_type"] == "io_stream"
    assert result["precision"] == "auto" and result["chosen_precision"]["image"]["result"].startswith("ap_fixed<")
    assert result["resources"]["dsp_estimate"] > 0 and result["resources"]["latency"] is None
    # The HLS project is there, ready for the vendor tools.
    for name in ("build_prj.tcl", "firmware/myproject.cpp", "firmware/parameters.h", "hls4ml_config.yml"):
        assert (out / "hls4ml" / name).is_file(), name
    assert "ReuseFactor: 2" in (out / "hls4ml" / "hls4ml_config.yml").read_text()


def test_pretrained_backbone_to_hls4ml_is_refused(mobilenet_run, work, capsys):
    out = work / "refused"
    assert main(["export", "--model", str(mobilenet_run / "model.keras"), "--format", "hls4ml",
                 "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "ImageNet backbone mobilenetv2" in message and "FPGA" in message and "compact network" in message
    assert not out.exists()


# --- errors and the install hint ---------------------------------------------------------------------

def test_a_missing_export_library_names_the_extra(compact_run, work, monkeypatch):
    for module in ("onnx", "onnxruntime", "tf2onnx"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    out = work / "no-onnx"
    with pytest.raises(TransferError, match=re.escape(INSTALL_HINT)) as info:
        export_model_files(compact_run / "model.keras", ["savedmodel", "onnx"], out)
    assert "--format onnx needs the Python package 'onnx'" in str(info.value)
    assert not out.exists()  # checked before any export


def test_bad_formats_and_missing_run_files(compact_run, work, tmp_path):
    with pytest.raises(TransferError, match="choose from onnx, savedmodel, tflite, hls4ml"):
        parse_formats("onnx,caffe")
    assert parse_formats(" ONNX,tflite,onnx") == ["onnx", "tflite"]
    lonely = tmp_path / "model.keras"
    shutil.copy(compact_run / "model.keras", lonely)
    shutil.copy(compact_run / "classes.json", tmp_path / "classes.json")
    with pytest.raises(TransferError, match="predictions.csv: not found"):
        export_model_files(lonely, ["savedmodel"], tmp_path / "out")


def test_plain_keras_load_names_the_import_and_works_after_it(compact_run):
    """Keras 3 imports only its own modules while loading, so a plain load needs ``import transfer.models.layers``."""
    code = ("import sys, keras\n"
            "try:\n    keras.models.load_model(sys.argv[1])\nexcept Exception as exc:\n"
            "    print('PLAIN FAILS', 'transfer.models.layers' in str(exc))\n"
            "import transfer.models.layers\nprint('AFTER IMPORT', keras.models.load_model(sys.argv[1]).output_shape)\n")
    done = subprocess.run([sys.executable, "-c", code, str(compact_run / "model.keras")], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "PLAIN FAILS True" in done.stdout, done.stderr[-2000:]
    assert "AFTER IMPORT (None, 2)" in done.stdout, done.stderr[-2000:]


def test_export_help_is_instant_and_names_the_formats_and_the_extra():
    code = ("import sys\nfrom transfer.cli import main\ntry:\n    main(['export', '--help'])\n"
            "except SystemExit:\n    pass\nprint('TENSORFLOW LOADED', 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT)
    assert done.stdout.startswith("usage: python -m transfer export")
    for text in ("onnx, savedmodel, tflite, hls4ml", "--precision", "ap_fixed<16,6>", "--reuse-factor", "--auc-margin",
                 "hepvision[export]", "TENSORFLOW LOADED False"):
        assert text in done.stdout, text
