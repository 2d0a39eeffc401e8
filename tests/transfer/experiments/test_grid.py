"""``python -m transfer grid``: every cell on one split, resumable, failures recorded, shared features, summary.

Real (tiny, one-epoch) trainings on real PNGs: compact networks with ``--weights
none`` and a pretrained architecture (VGG16) with a weights file, so
that its cells have a frozen stage whose features the grid shares.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from tests._transfer_data import make_blob_dataset, run_transfer_cli  # noqa: E402
from tests.transfer.weights.test_weights import offline_env  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.experiments.grid import FEATURE_CACHE, parse_axis, run_grid  # noqa: E402
from transfer.models.backbones import get_backbone  # noqa: E402

pytestmark = pytest.mark.slow
FAST = ["--weights", "none", "--epochs", "1", "--patience", "0", "--batch-size", "32"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_grid")


@pytest.fixture(scope="module")
def images(work) -> Path:
    return make_blob_dataset(work / "images", classes=("a", "b"), per_class=15, size=8)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_grid_trains_every_cell_on_one_split_resumes_and_summarises(work, images, caplog, capsys):
    out = work / "grid"
    args = ["grid", "--data", str(images), "--backbones", "smallcnn,mlp", "--optimizers", "adam,rmsprop",
            "--fine-tune", "frozen,partial", *FAST, "--out", str(out)]
    # a first invocation trains a subset; then a grid killed during a run leaves only its staging folder
    assert main(args + ["--cells", "smallcnn-*"]) == 0
    first = pd.read_csv(out / "grid_summary.csv")
    assert (first["status"] == "done").sum() == 4 and (first["status"] == "not run").sum() == 4
    done_before = {run: (out / run / "metrics.json").stat().st_mtime_ns
                   for run in ("smallcnn-adam-scratch", "smallcnn-rmsprop-scratch")}
    leftover = out / ".mlp-adam-scratch.partial-killed"
    leftover.mkdir()
    (leftover / "history.csv").write_text("epoch\n1\n")

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="transfer.experiments.grid"):
        assert main(args) == 0
    # resumed: the finished runs were not trained again, the killed one's leftovers were cleared
    assert {run: (out / run / "metrics.json").stat().st_mtime_ns for run in done_before} == done_before
    assert "2 run(s) already complete, skipped: smallcnn-adam-scratch, smallcnn-rmsprop-scratch" in caplog.text
    assert "[1/2] mlp-adam-scratch: started" in caplog.text and "[2/2] mlp-rmsprop-scratch: done" in caplog.text
    assert not leftover.exists()

    table = pd.read_csv(out / "grid_summary.csv")
    assert len(table) == 8 and set(table["status"]) == {"done"}
    assert set(table["cell"]) == {f"{b}-{o}-{f}" for b in ("smallcnn", "mlp") for o in ("adam", "rmsprop")
                                  for f in ("frozen", "partial")}
    # compact networks train from scratch in one stage: their regimes are one run, said so in the summary
    assert set(table["run"]) == {f"{b}-{o}-scratch" for b in ("smallcnn", "mlp") for o in ("adam", "rmsprop")}
    assert (table.groupby("run")["fine_tune"].apply(set) == {"frozen", "partial"}).all()
    assert set(table["regime"]) == {"scratch"} and set(table["training"]) == {"from scratch"}

    runs = sorted(out / run for run in set(table["run"]))
    splits = [(run / "split.csv").read_text() for run in runs]
    assert all(split == splits[0] for split in splits) and "test" in splits[0]  # one split for every cell
    assert (out / "grid_split.csv").read_text() == splits[0]
    for row in table.to_dict("records"):  # the summary's numbers are the run folders' numbers
        m = _metrics(out / row["run"])
        assert row["test_accuracy"] == m["test"]["accuracy"] and row["test_auc"] == m["test"]["roc_auc"]
        assert [row["test_auc_low"], row["test_auc_high"]] == m["test"]["intervals"]["roc_auc"]
        assert row["validation_accuracy"] == m["validation"]["accuracy"]
        assert row["baseline_test_auc"] == m["baseline"]["test"]["roc_auc"]
        assert row["parameters"] == m["parameters"]
        assert row["wall_s"] == m["timing"]["total_s"] and bool(row["collapsed"]) == m["health"]["collapsed"]
        assert m["optimizer"] == row["optimizer"] and m["backbone"] == row["backbone"]

    model = keras.saving.load_model(out / "mlp-adam-scratch" / "model.keras", compile=False)
    assert table.set_index("cell").loc["mlp-adam-frozen", "parameters"] == model.count_params()
    report = (out / "grid_summary.md").read_text()
    assert "identical by construction" in report and "Best cell" in report and "Baseline" in report
    from PIL import Image
    with Image.open(out / "grid_summary.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 500
    printed = capsys.readouterr().out
    assert "best cell (by validation):" in printed and "0 failed" in printed
    assert not (out / FEATURE_CACHE).exists()  # every cell done: the shared features are removed

    # the same folder with another training option would mix incomparable cells: refused, nothing trained
    assert main([*args[:-2], "--epochs", "2", "--out", str(out)]) == 2
    assert "holds a grid trained with other options (epochs: 1 then, 2 now)" in capsys.readouterr().err
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="transfer.experiments.grid"):  # the grid's own file reruns it: nothing left to train
        assert main(["grid", "--config", str(out / "grid.yaml")]) == 0
    assert "4 run(s) already complete" in caplog.text and "training 0 now" in caplog.text


def test_a_failing_cell_is_recorded_and_frozen_features_are_shared(work, images, caplog):
    weights = work / "vgg16.weights.h5"
    get_backbone("vgg16").builder((32, 32, 3), None).save_weights(weights)
    out = work / "grid-weights"
    with caplog.at_level(logging.INFO):
        # smallcnn cannot load VGG16's weights: its runs fail (with weights, compact networks fine-tune in two
        # stages, so each regime is a run of its own), the VGG16 cells go on
        result = run_grid(data=str(images), backbones="vgg16,smallcnn", optimizers=["adam"],
                          fine_tune=["frozen", "partial"], out=out, weights=str(weights), image_size=32, epochs=1,
                          fine_tune_epochs=1, patience=0, baseline="none", progress=False)
    assert list(result.failures) == ["smallcnn-adam-frozen", "smallcnn-adam-partial"]
    table = result.table.set_index("cell")
    assert table.loc["smallcnn-adam-frozen", "status"] == table.loc["smallcnn-adam-partial", "status"] == "failed"
    assert table.loc["vgg16-adam-frozen", "run"] == "vgg16-adam-frozen"
    assert set(table.loc[["vgg16-adam-frozen", "vgg16-adam-partial"], "status"]) == {"done"}
    message = table.loc["smallcnn-adam-frozen", "error"]
    assert message and message == result.failures["smallcnn-adam-frozen"]
    assert message in (out / "grid_summary.md").read_text()
    assert "FAILED after" in caplog.text
    # two-stage cells of one backbone: the second reads the first one's frozen-stage features
    shared = [r for r in caplog.records if "features read from the shared cache" in r.getMessage()]
    assert len(shared) == 2 and {"train", "validation"} == {r.args[1] for r in shared}
    assert len(list((out / FEATURE_CACHE).glob("*.npy"))) == 2  # kept: the grid is not complete yet
    frozen, partial = (_metrics(out / f"vgg16-adam-{mode}") for mode in ("frozen", "partial"))
    assert frozen["training"] == partial["training"] == "two-stage transfer"
    assert partial["opened_layers"] and not frozen["opened_layers"]


def test_missing_imagenet_weights_stop_the_grid_before_training(work, images, tmp_path):
    args = ["grid", "--data", images, "--backbones", "vgg16,mlp", "--optimizers", "adam", "--fine-tune",
            "frozen,full", "--epochs", "1", "--image-size", "32", "--out", tmp_path / "grid"]
    done = run_transfer_cli(args, env=offline_env(tmp_path / "keras"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "\nerror: ImageNet weights for backbone 'vgg16' are not available" in done.stderr  # as a single run
    assert not list((tmp_path / "grid").glob("*-*"))
    # with --on-missing-weights random every vgg16 cell trains from scratch, and says so (trained: mlp only)
    done = run_transfer_cli([*args, "--on-missing-weights", "random", "--cells", "mlp-*", "--patience", "0",
                             "--baseline", "none"],
                            env=offline_env(tmp_path / "keras"))
    assert done.returncode in (0, 3), done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "grid" / "grid_summary.csv").set_index("cell")
    assert set(table.loc[["vgg16-adam-frozen", "vgg16-adam-full"], "run"]) == {"vgg16-adam-scratch"}
    assert "vgg16 cells train from random initialisation, not transfer learning" in done.stderr


def test_axes_are_checked_before_anything_runs():
    assert parse_axis("fine_tune", "frozen, full") == ("frozen", "full")
    with pytest.raises(TransferError, match="--backbones vgg19,vgg91: unknown vgg91; choose from"):
        parse_axis("backbones", "vgg19,vgg91")
    with pytest.raises(TransferError, match="given twice"):
        parse_axis("optimizers", ["adam", "adam"])
    with pytest.raises(TransferError, match="--train-fraction is not for a grid"):
        run_grid(data="nowhere", backbones="smallcnn", train_fraction="0.5,1")


def test_feature_store_keys_hold_what_decides_the_features(images, tmp_path):
    import os

    import numpy as np

    from transfer.config import TrainConfig
    from transfer.data import open_data
    from transfer.training.features import feature_key, shared_features, sharing_features
    from transfer.weights import ResolvedWeights

    spec, weights = get_backbone("vgg16"), ResolvedWeights(keras_arg=None, used="none")
    with open_data(TrainConfig(data=str(images), backbone="vgg16", weights="none")) as source:
        view = source.view()
        key = feature_key(spec, weights, (32, 32), view, "train")
        assert key == feature_key(spec, weights, (32, 32), view, "train")
        assert key != feature_key(spec, weights, (48, 48), view, "train")
        assert key != feature_key(spec, weights, (32, 32), view, "validation")
        assert key != feature_key(get_backbone("vgg19"), weights, (32, 32), view, "train")
        image = images / view.ids("train")[0]
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the image was rewritten
        assert key != feature_key(spec, weights, (32, 32), view, "train")

    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(3, 2)

    assert shared_features(key, compute).shape == (3, 2) and len(calls) == 1  # no store: computed, not kept
    with sharing_features(tmp_path / "cache") as store:
        first, second = shared_features(key, compute), shared_features(key, compute)
    assert len(calls) == 2 and (store.hits, store.misses) == (1, 1) and np.array_equal(first, second)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_a_cell_line_counts_warnings_as_whole_numbers():
    """Issue 24: the grid printed "1.0 warning(s)" (a count read back from grid_summary.csv as a float)."""
    from transfer.experiments.grid_report import figures_text

    figures = {"collapsed": False, "warnings": 1.0, "test_accuracy": 0.8, "test_auc": 0.9}
    assert figures_text(figures).endswith("healthy, 1 warning(s)")
