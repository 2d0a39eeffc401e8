"""Issue 11, the transfer side: each bad case run as a user would, through ``python -m transfer``.

Every test asserts the message (naming the file and the problem), the exit status, and that
nothing was written where a refusal happened. Real HDF5 files, real PNGs, real (tiny) models.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from imgen.arrays import synth  # noqa: E402
from imgen.output.manifest import read_manifest, write_manifest  # noqa: E402
from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.cli import main  # noqa: E402

pytestmark = pytest.mark.slow
N = 30
FAST = ["--epochs", "1", "--batch-size", "32", "--patience", "0", "--verbose", "0", "--weights", "none"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability_transfer")


@pytest.fixture(scope="module")
def per_class(work) -> dict:
    return synth.write_electron_photon_per_class(work / "per", N, seed=2)


@pytest.fixture(scope="module")
def arrays_run(work, per_class) -> Path:
    out = work / "run"
    killed = work / ".run.partial-k9x1"                     # what kill -9 of an earlier run leaves
    killed.mkdir()
    (killed / "history.csv").write_text("epoch\n")
    assert main(["--data", *(f"{c}={p}" for c, p in per_class.items()), "--x-key", "X", "--backbone", "mlp",
                 *FAST, "--out", str(out)]) == 0
    return out


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def _regridded(source: Path, target: Path, rows: int, cols: int) -> Path:
    """The events of ``source`` cut to ``rows`` x ``cols`` cells (or repeated when larger)."""
    with h5py.File(source, "r") as handle:
        x, attrs = handle["X"][:], dict(handle["X"].attrs)
    reps = (1, -(-rows // x.shape[1]), -(-cols // x.shape[2])) + (1,) * (x.ndim - 3)
    x = np.tile(x, reps)[:, :rows, :cols]
    with h5py.File(target, "w") as handle:
        dset = handle.create_dataset("X", data=x)
        dset.attrs.update(attrs)
    return target


def test_the_staging_folder_of_a_killed_run_is_removed_by_the_next(arrays_run, work):
    assert (arrays_run / "model.keras").is_file()
    assert list(work.glob(".run.partial-*")) == []


# --- predict on another grid -------------------------------------------------------------------------

def test_predict_refuses_another_grid_unless_asked_to_resample(arrays_run, per_class, work, capsys):
    model = arrays_run / "model.keras"
    grid = json.loads((arrays_run / "arrays.json").read_text())["arrays"]["grid"]
    cropped = _regridded(per_class["photon"], work / "cropped.h5", grid[0] - 2, grid[1] - 2)
    scores = work / "scores.csv"
    assert main(["predict", "--model", str(model), str(cropped), "--out", str(scores)]) == 2
    err = _error(capsys)
    assert "cropped.h5" in err and f"{grid[0] - 2}x{grid[1] - 2}" in err and f"{grid[0]}x{grid[1]}" in err
    assert "--resample" in err and not scores.exists()
    upsampled = _regridded(per_class["photon"], work / "double.h5", 2 * grid[0], 2 * grid[1])
    assert main(["predict", "--model", str(model), str(upsampled)]) == 2
    assert "double.h5" in _error(capsys)
    assert main(["predict", "--model", str(model), str(cropped), "--resample", "--out", str(scores)]) == 0
    with scores.open() as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == N


def test_predict_on_the_training_grid_still_runs(arrays_run, per_class, capsys):
    assert main(["predict", "--model", str(arrays_run / "model.keras"), str(per_class["electron"])]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == N + 1


def test_predict_on_a_truncated_model_says_it_is_not_a_readable_keras_model(arrays_run, per_class, work, capsys):
    broken = work / "broken-run"
    shutil.copytree(arrays_run, broken)
    data = (broken / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(data[: len(data) // 2])
    assert main(["predict", "--model", str(broken / "model.keras"), str(per_class["photon"])]) == 2
    err = _error(capsys)
    assert "broken-run/model.keras" in err and "not a readable Keras model" in err
    assert "File not found" not in err


# --- options and inputs a network cannot use ----------------------------------------------------------

def test_config_with_a_list_where_one_value_belongs_names_file_and_key(per_class, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("backbone: [smallcnn]\nx_key: X\nepochs: 1\n")
    out = tmp_path / "out"
    assert main(["--config", str(config), "--data", *(f"{c}={p}" for c, p in per_class.items()),
                 "--out", str(out)]) == 2
    err = _error(capsys)
    assert str(config) in err and "backbone" in err and "single value" in err and "smallcnn" in err
    assert not out.exists()


def test_an_image_size_the_network_cannot_use_is_refused(per_class, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--data", *(f"{c}={p}" for c, p in per_class.items()), "--x-key", "X", "--backbone",
                 "smallcnn", "--image-size", "2", *FAST, "--out", str(out)]) == 2
    err = _error(capsys)
    assert "2x2" in err and "smallcnn" in err and "--image-size 3" in err
    assert not out.exists()


# --- image folders -----------------------------------------------------------------------------------

def test_manifest_paths_outside_the_dataset_are_refused(tmp_path, capsys):
    data = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=6, size=8)
    shutil.copy(data / "a" / "a_0000.png", tmp_path / "evil.png")
    rows = read_manifest(data)
    for bad in ("../evil.png", str(tmp_path / "evil.png")):
        rows[0]["path"] = bad
        write_manifest(data, rows)
        out = tmp_path / "out"
        assert main(["--data", str(data), "--backbone", "mlp", *FAST, "--out", str(out)]) == 2
        err = _error(capsys)
        assert "manifest.csv, line 2" in err and repr(bad) in err and "no '..'" in err
        assert not out.exists()


def test_without_data_the_images_folder_of_imgen_is_used_and_said_first(tmp_path, monkeypatch, capsys):
    data = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=6, size=8)
    rows = [r for r in read_manifest(data) if r["class"] == "a"]     # one class: refused after loading
    write_manifest(data, rows)
    monkeypatch.chdir(tmp_path)
    assert main(["--backbone", "mlp", *FAST, "--out", "out"]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("--data not given: using images/")
    assert "images" in captured.err and "two classes" in captured.err
    (data / "manifest.csv").unlink()                                  # not imgen's output: still required
    assert main(["--backbone", "mlp", *FAST, "--out", "out"]) == 2
    assert "--data is required" in _error(capsys)


def _without_test_events_of(data: Path, name: str) -> None:
    rows = read_manifest(data)
    for row in rows:
        if row["class"] == name and row["split"] == "test":
            row["split"] = "validation"
    write_manifest(data, rows)


def test_a_class_without_test_events_warns_and_reports_n_a(tmp_path, caplog, capsys):
    data = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=10, size=8)
    _without_test_events_of(data, "b")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert main(["--data", str(data), "--backbone", "mlp", *FAST, "--out", str(out)]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "no test events" in
              r.getMessage()]
    assert warned and "class(es) b" in warned[0]
    report = (out / "report.md").read_text()
    table = report[report.index("Background rejection"):].splitlines()
    rejection = [line for line in table if line.startswith("| b |")]
    assert rejection and rejection[0].count("n/a") == 3 and "inf" not in rejection[0]


def test_a_class_without_test_events_is_refused_with_strict(tmp_path, capsys):
    data = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=10, size=8)
    _without_test_events_of(data, "b")
    out = tmp_path / "out"
    assert main(["--data", str(data), "--backbone", "mlp", "--strict", *FAST, "--out", str(out)]) == 2
    err = _error(capsys)
    assert "class(es) b have no test events" in err and "--strict" in err
    assert not out.exists()
