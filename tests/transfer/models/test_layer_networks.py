"""cnn3d and rcnn end to end: trained from scratch on a small three-layer shower file with the usual recipe,
saved, loaded, predicting what training reported, exported to ONNX within the export tolerance; firmware
refused with the reason; a layer count or grid they cannot use refused before training.

Real runs (``python -m transfer``) on real HDF5 files from :func:`imgen.arrays.synth.write_calo_showers`.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from imgen.arrays import synth  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.run_folder import load_model  # noqa: E402
from tests.conftest import installed  # noqa: E402

pytestmark = pytest.mark.slow
NETWORKS = ("cnn3d", "rcnn")


@pytest.fixture(scope="module")
def showers(tmp_path_factory):
    files = synth.write_calo_showers(tmp_path_factory.mktemp("showers"), 150, seed=4)
    return [f"{name}={path}" for name, path in files.items()]


@pytest.fixture(scope="module")
def runs(showers, tmp_path_factory):
    root = tmp_path_factory.mktemp("layer-runs")
    out = {}
    for name in NETWORKS:
        out[name] = root / name
        assert main(["--data", *showers, "--x-key", "layer_0,layer_1,layer_2", "--backbone", name, "--epochs", "8",
                     "--patience", "0", "--baseline", "none", "--verbose", "0", "--out", str(out[name])]) == 0
    return out


@pytest.mark.parametrize("name", NETWORKS)
def test_trains_above_chance_and_predicts_what_it_reported_after_loading(runs, name):
    metrics = json.loads((runs[name] / "metrics.json").read_text())
    assert metrics["backbone"] == name and metrics["training"] == "from scratch"
    assert metrics["input_normalization"]  # standardised inside the model, like every network from scratch
    assert not metrics["health"]["collapsed"]
    # three classes: chance is 1/3; pions are easy, e+ and gamma overlap
    assert metrics["test"]["accuracy"] > 0.5
    assert metrics["test"]["roc_auc"]["macro"] > 0.7

    from transfer.deploy.export import read_test_events

    events = read_test_events(runs[name] / "model.keras")
    scores = load_model(runs[name] / "model.keras").predict(events.inputs, verbose=0)
    table = pd.read_csv(runs[name] / "predictions.csv")
    reported = table[[c for c in table.columns if c.startswith("score_")]].to_numpy()
    assert np.abs(scores - reported).max() < 1e-5


@pytest.mark.skipif(not installed("onnx", "onnxruntime", "tf2onnx"), reason="the export extra is not installed")
@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_export_reproduces_keras(runs, name, tmp_path):
    from transfer.deploy.export import FLOAT_TOLERANCE, export_model_files

    check = export_model_files(runs[name] / "model.keras", "onnx,tflite", tmp_path / "deploy")
    for fmt in ("onnx", "tflite"):
        assert check["formats"][fmt]["max_abs_diff"] <= FLOAT_TOLERANCE
    assert (tmp_path / "deploy" / "model.onnx").is_file()


@pytest.mark.parametrize("name, layer", [("cnn3d", "Conv3D"), ("rcnn", "TimeDistributed")])
def test_firmware_is_refused_with_the_reason(runs, name, layer, tmp_path, capsys):
    assert main(["export", "--model", str(runs[name] / "model.keras"), "--format", "hls4ml",
                 "--out", str(tmp_path / "fw")]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and message.startswith("error:")
    assert f"({layer})" in message and "cannot become firmware" in message and "onnx" in message
    assert not (tmp_path / "fw").exists()


def test_too_many_layers_or_too_small_a_grid_is_refused_before_training(tmp_path, capsys):
    import h5py

    from transfer.models.backbones import MAX_LAYERS

    wide = tmp_path / "wide.h5"
    with h5py.File(wide, "w") as handle:  # 65 "layers": a spectrum, not a calorimeter
        handle["X"] = np.random.default_rng(0).random((40, 6, 6, MAX_LAYERS + 1), dtype=np.float32)
        handle["y"] = np.arange(40) % 2
    assert main(["--data", str(wide), "--x-key", "X", "--y-key", "y", "--classes", "a,b", "--backbone", "cnn3d",
                 "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and f"at most {MAX_LAYERS} calorimeter layers" in message
    flat = tmp_path / "flat.h5"
    with h5py.File(flat, "w") as handle:  # 2x8 cells: a 3x3 convolution would see padding
        handle["X"] = np.random.default_rng(0).random((40, 2, 8, 3), dtype=np.float32)
        handle["y"] = np.arange(40) % 2
    assert main(["--data", str(flat), "--x-key", "X", "--y-key", "y", "--classes", "a,b", "--backbone", "rcnn",
                 "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err.strip()
    assert "below the minimum of backbone 'rcnn'" in message
    assert not (tmp_path / "run").exists()
