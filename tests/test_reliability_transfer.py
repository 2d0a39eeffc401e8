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


# --- issue 24: imgen's own HDF5 output, read by transfer ----------------------------------------------

@pytest.fixture(scope="module")
def rendered(work) -> Path:
    """imgen's output of the same 450 toy events as PNGs and as images.h5 (--format both)."""
    from imgen.pipeline import render_files
    from imgen.synth import generate

    generate(work / "json", events=150, seed=3)
    render_files([work / "json"], work / "rendered", size=16, format="both", workers=1)
    return work / "rendered"


def test_a_classes_order_that_contradicts_imgen_hdf5_is_refused(rendered, work, capsys):
    out = work / "h5-swapped"
    assert main(["--data", str(rendered / "images.h5"), "--x-key", "X", "--y-key", "y", "--classes",
                 "Wjets,TTjets,DYjets", "--backbone", "mlp", *FAST, "--out", str(out)]) == 2
    err = _error(capsys)
    assert "images.h5 records its class names as DYjets,TTjets,Wjets" in err and "--classes Wjets,TTjets,DYjets" in err
    assert not out.exists()


def test_imgen_hdf5_keeps_its_class_names_and_each_event_the_split_of_every_route(rendered, work):
    """The same events through images.h5 and through the PNG folder: same class, same split, every one."""
    h5_run, png_run = work / "h5-run", work / "png-run"
    assert main(["--data", str(rendered / "images.h5"), "--x-key", "X", "--backbone", "mlp", *FAST,
                 "--out", str(h5_run)]) == 0                   # --y-key and --classes from the file
    assert main(["--data", str(rendered), "--backbone", "mlp", *FAST, "--out", str(png_run)]) == 0
    with h5py.File(rendered / "images.h5", "r") as handle:
        names = [c.decode() if isinstance(c, bytes) else str(c) for c in handle.attrs["classes"]]
        labels, events = handle["y"][:], [e.decode() for e in handle["event"][:]]
        recorded = [s.decode() for s in handle["split"][:]]
    h5_rows = {}
    with (h5_run / "split.csv").open() as table:
        for row in csv.DictReader(table):
            index = int(row["path"].rsplit("#", 1)[1])
            assert row["class"] == names[labels[index]] and row["split"] == recorded[index]
            h5_rows[(row["class"], events[index])] = row["split"]
    png_rows = {}
    with (png_run / "split.csv").open() as table:
        for row in csv.DictReader(table):
            png_rows[(row["class"], row["path"].rsplit("_", 1)[1][:-len(".png")])] = row["split"]
    assert len(h5_rows) == 450 and h5_rows == png_rows
    metrics = json.loads((h5_run / "metrics.json").read_text())
    assert metrics["classes"] == names and "recorded by imgen" in metrics["split_source"]


# --- issue 24: smaller tracebacks and misleading messages ---------------------------------------------

def test_predict_into_a_missing_folder_is_refused_before_scoring(arrays_run, per_class, work, capsys, caplog):
    scores = work / "missing" / "dir" / "s.csv"
    with caplog.at_level(logging.INFO):
        assert main(["predict", "--model", str(arrays_run), str(per_class["photon"]), "--out", str(scores)]) == 2
    err = _error(capsys)
    assert f"--out {scores}" in err and "does not exist" in err and not (work / "missing").exists()
    assert not any("model" in r.name for r in caplog.records)          # refused before the model was loaded


def test_predict_on_another_grid_names_the_option_not_the_api(arrays_run, per_class, work, capsys):
    grid = json.loads((arrays_run / "arrays.json").read_text())["arrays"]["grid"]
    cropped = _regridded(per_class["photon"], work / "cropped-24.h5", grid[0] - 2, grid[1] - 2)
    assert main(["predict", "--model", str(arrays_run), str(cropped)]) == 2
    err = _error(capsys)
    assert "--resample" in err and "resample=True" not in err


def test_export_takes_a_run_folder_and_refuses_a_collapsed_run(arrays_run, work, capsys):
    pytest.importorskip("tensorflow")
    out = work / "deploy-folder"
    assert main(["export", "--model", str(arrays_run), "--format", "tflite", "--out", str(out)]) == 0
    assert (out / "model.tflite").is_file() and "no such file" not in capsys.readouterr().err
    collapsed = work / "collapsed-run"
    shutil.copytree(arrays_run, collapsed)
    metrics = json.loads((collapsed / "metrics.json").read_text())
    metrics["health"] = {"collapsed": True, "warnings": [
        "COLLAPSED: the network learned nothing (the predictions are the same for every event); its numbers are "
        "not a result"]}
    (collapsed / "metrics.json").write_text(json.dumps(metrics))       # what a collapsed training records
    refused = work / "deploy-collapsed"
    assert main(["export", "--model", str(collapsed), "--format", "tflite", "--out", str(refused)]) == 2
    err = _error(capsys)
    assert "COLLAPSED: the network learned nothing" in err and "same for every event" in err
    assert "--allow-collapsed" in err and str(collapsed / "metrics.json") in err
    assert not refused.exists()
    assert main(["export", "--model", str(collapsed), "--format", "tflite", "--out", str(refused),
                 "--allow-collapsed"]) == 0


def test_an_ensemble_of_one_run_with_itself_is_refused(arrays_run, work, capsys):
    copy = work / "run-copy"
    shutil.copytree(arrays_run, copy, dirs_exist_ok=True)
    for runs in ([arrays_run, Path(str(arrays_run) + "/")], [arrays_run, copy]):
        out = work / "ens-self"
        assert main(["ensemble", *map(str, runs), "--out", str(out)]) == 2
        err = _error(capsys)
        assert "an ensemble of a run with itself is that run" in err and not out.exists()
