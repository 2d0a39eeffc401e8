"""Several trainings from one command: --folds, --train-fraction, lr-find, ensemble (images and arrays).

Real files, real (tiny, one-epoch) trainings of compact networks.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from imgen.arrays import synth  # noqa: E402
from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.config import TrainConfig  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.experiments.crossval import run_folds  # noqa: E402
from transfer.experiments.lr_find import smooth_losses, suggest_learning_rates  # noqa: E402

pytestmark = pytest.mark.slow
N = 45  # events per class
FAST = ["--epochs", "1", "--batch-size", "32", "--patience", "0", "--verbose", "0", "--weights", "none"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_experiments")


@pytest.fixture(scope="module")
def arrays(work) -> list[str]:
    files = synth.write_electron_photon_per_class(work / "egamma", N, seed=5)
    return [f"{name}={path}" for name, path in files.items()]


def _test_ids(run: Path) -> list[str]:
    return pd.read_csv(run / "predictions.csv")["path"].tolist()


# --- cross-validation -----------------------------------------------------------------------------

def test_folds_on_arrays_test_every_event_once_and_summarise(work, arrays):
    out = work / "cv"
    assert main(["--data", *arrays, "--x-key", "X", "--backbone", "mlp", "--scale", "log", "--folds", "3",
                 *FAST, "--out", str(out)]) == 0
    folds = [out / f"fold-{i}" for i in (1, 2, 3)]
    assert all((fold / "report.md").is_file() and (fold / "metrics.json").is_file() for fold in folds)
    tests = [set(_test_ids(fold)) for fold in folds]
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])  # disjoint
    every = set(pd.read_csv(folds[0] / "split.csv")["path"])
    assert set.union(*tests) == every and len(every) == 2 * N  # and together they cover the data
    for fold in folds:  # no test event in the fold's training or validation part
        split = pd.read_csv(fold / "split.csv").set_index("path")["split"]
        assert set(split[split == "test"].index) == set(_test_ids(fold))
    summary = json.loads((out / "folds_summary.json").read_text())
    assert summary["folds"] == 3 and summary["runs"] == ["fold-1", "fold-2", "fold-3"]
    accuracies = [json.loads((fold / "metrics.json").read_text())["test"]["accuracy"] for fold in folds]
    entry = summary["summary"]["test.accuracy"]
    assert entry["mean"] == pytest.approx(np.mean(accuracies)) and entry["n"] == 3
    assert entry["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert {"test.roc_auc", "test.rejection.photon.0.5", "validation.loss"} <= set(summary["summary"])
    table = (out / "folds_summary.md").read_text()
    assert "| metric | mean | std | n |" in table and "| test.accuracy |" in table
    assert json.loads((folds[1] / "metrics.json").read_text())["fold"] == 2
    # The fold made the split, not the data: metrics.json must say so.
    assert "fold 2" in json.loads((folds[1] / "metrics.json").read_text())["split_source"]


def test_folds_on_images_report_counts_per_split(work):
    images = make_blob_dataset(work / "images", classes=("a", "b"), per_class=12, size=16, manifest=False)
    result = run_folds(TrainConfig(data=str(images), backbone="smallcnn", weights="none", folds=3, epochs=1,
                                   batch_size=16, patience=0, verbose=0, out=str(work / "cv-images")))
    assert len(result.runs) == 3
    tests = [set(_test_ids(run.out_dir)) for run in result.runs]
    assert sum(map(len, tests)) == 24 and len(set.union(*tests)) == 24
    counts = result.runs[0].metrics["events_per_class"]
    assert counts["test"] == {"a": 4, "b": 4}
    assert sum(counts["train"].values()) + sum(counts["validation"].values()) == 16
    report = (result.runs[0].out_dir / "report.md").read_text()
    assert "| test | 4 | 4 | 8 |" in report and "images | 16x16x1 px" in report
    assert result.summary["test.accuracy"]["n"] == 3


def test_folds_refuse_augmented_folders_and_too_few_events(work, tmp_path):
    from imgen.output.manifest import AUGMENTED_FROM, COLUMNS, read_manifest, write_manifest

    images = make_blob_dataset(tmp_path / "aug", classes=("a", "b"), per_class=6, size=16)
    rows = read_manifest(images)
    rows[0][AUGMENTED_FROM] = rows[1]["path"]
    write_manifest(images, rows, columns=[*COLUMNS, AUGMENTED_FROM])
    with pytest.raises(TransferError, match="augmented copies"):
        run_folds(TrainConfig(data=str(images), backbone="mlp", weights="none", folds=3,
                              out=str(tmp_path / "never")))
    clean = make_blob_dataset(tmp_path / "clean", classes=("a", "b"), per_class=6, size=16)
    with pytest.raises(TransferError, match="--folds 9: the smallest class has 6 events"):
        run_folds(TrainConfig(data=str(clean), backbone="mlp", weights="none", folds=9,
                              out=str(tmp_path / "never")))
    assert not (tmp_path / "never").exists()


# --- training-set-size scan -----------------------------------------------------------------------

def test_train_fraction_scan(work, arrays):
    out = work / "scan"
    assert main(["--data", *arrays, "--x-key", "X", "--backbone", "mlp", "--scale", "log",
                 "--train-fraction", "1.0,0.25", *FAST, "--plot-style", "cms", "--plot-energy", "7", "--out",
                 str(out)]) == 0
    table = pd.read_csv(out / "train_fraction_scan.csv")
    assert table["fraction"].tolist() == [0.25, 1.0]
    runs = [out / name for name in table["run"]]
    n_full = int((pd.read_csv(runs[1] / "split.csv")["split"] == "train").sum())  # about 72 of 90
    assert table["n_train"].tolist() == [int(0.25 * n_full), n_full] and n_full > 60
    assert {"validation_auc", "validation_accuracy", "test_auc", "test_accuracy"} <= set(table.columns)
    assert (out / "train_fraction_scan.png").stat().st_size > 0
    assert _test_ids(runs[0]) == _test_ids(runs[1])  # the same test events for every fraction
    for run, n in zip(runs, table["n_train"]):
        assert sum(json.loads((run / "metrics.json").read_text())["events_per_class"]["train"].values()) == n
        assert "training subset" in json.loads((run / "metrics.json").read_text())["split_source"]
    # --plot-style reaches every figure (named in each PNG's metadata) and every config.yaml (issue 25)
    from PIL import Image

    for folder in (out, *runs):
        assert "plot_style: cms" in (folder / "config.yaml").read_text() and \
            "plot_energy: 7.0" in (folder / "config.yaml").read_text()
    for png in [out / "train_fraction_scan.png", *(run / name for run in runs for name in
                ("roc.png", "confusion_matrix.png", "discriminant.png", "training_curves.png"))]:
        with Image.open(png) as picture:
            assert picture.text.get("Description") == "hepvision figure, plot style cms", png


# --- learning-rate range test ---------------------------------------------------------------------

def test_lr_find_writes_its_files_and_suggests_a_finite_rate(work, arrays, capsys):
    out = work / "lr"
    assert main(["lr-find", "--data", *arrays, "--x-key", "X", "--backbone", "smallcnn", "--weights", "none",
                 "--scale", "log", "--batch-size", "16", "--steps", "30", "--start-lr", "1e-5", "--end-lr", "10",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "lr_find.csv")
    assert list(table.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert 6 <= len(table) <= 30 and table["lr"].is_monotonic_increasing and table["lr"].iloc[0] == 1e-5
    info = json.loads((out / "lr_find.json").read_text())
    assert math.isfinite(info["suggested_lr"]) and 1e-5 <= info["suggested_lr"] * 10 <= 10
    assert info["suggested_lr"] == pytest.approx(info["min_loss_lr"] / 10)
    assert f"{info['suggested_lr']:.3g}" in printed and (out / "lr_find.png").stat().st_size > 0


def test_lr_suggestions_on_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    loss = 1 + np.tanh(3 * (np.log10(lrs) + 3)) * -0.5 + np.where(lrs > 0.1, 50 * (lrs - 0.1), 0)
    suggestions = suggest_learning_rates(lrs, loss)
    assert suggestions["steepest_lr"] == pytest.approx(1e-3, rel=0.3)  # tanh falls fastest at 1e-3
    assert suggestions["min_loss_lr"] == pytest.approx(lrs[np.argmin(loss)])
    assert suggestions["suggested_lr"] == pytest.approx(suggestions["min_loss_lr"] / 10)
    np.testing.assert_allclose(smooth_losses([2.0, 2.0, 2.0]), [2.0, 2.0, 2.0])  # bias corrected


def test_no_rate_is_suggested_while_the_loss_still_falls_at_the_end_of_the_scan():
    """Issue 24: the lowest loss at the last step is no minimum; one decade below it is no rule."""
    from transfer.experiments.lr_find import LRFindResult

    lrs = np.logspace(-6, -2, 40)
    loss = 2.0 - 0.03 * np.arange(40)
    suggestions = suggest_learning_rates(lrs, loss)
    assert suggestions["suggested_lr"] is None and suggestions["min_loss_lr"] == pytest.approx(lrs[-1])
    assert "still falling at the end of the scan" in suggestions["no_suggestion"] and "--end-lr" in suggestions["no_suggestion"]
    result = LRFindResult(out_dir=Path("runs/lr"), table=pd.DataFrame({"lr": lrs}), stage="head", diverged=False,
                          **suggestions)
    assert result.summary_lines()[-1].startswith("no learning rate suggested: the loss was still falling")


# --- ensembles ------------------------------------------------------------------------------------

def test_ensemble_of_two_runs_and_refusals(work, arrays, capsys):
    from sklearn.metrics import roc_auc_score

    runs = []
    for backbone in ("mlp", "smallcnn"):
        runs.append(work / f"member-{backbone}")
        assert main(["--data", *arrays, "--x-key", "X", "--backbone", backbone, "--scale", "log", *FAST,
                     "--out", str(runs[-1])]) == 0
    out = work / "ensemble"
    assert main(["ensemble", *map(str, runs), "--out", str(out)]) == 0
    for name in ("metrics.json", "predictions.csv", "confusion_matrix.csv", "confusion_matrix.png", "roc.png",
                 "discriminant.png", "report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    assert metrics["test"]["roc_auc"] == pytest.approx(roc_auc_score(table["true_class"] == "photon",
                                                                     table["score_photon"]))
    members = [pd.read_csv(run / "predictions.csv").set_index("path").loc[table["path"]] for run in runs]
    np.testing.assert_allclose(table["score_photon"], (members[0]["score_photon"] + members[1]["score_photon"]) / 2,
                               rtol=1e-6)
    assert "**ensemble**" in (out / "report.md").read_text()

    capsys.readouterr()
    other = work / "other-test-set"  # the second run's files, but one test event swapped for another
    other.mkdir()
    (other / "classes.json").write_text((runs[1] / "classes.json").read_text())
    swapped = pd.read_csv(runs[1] / "predictions.csv")
    swapped.loc[0, "path"] = pd.read_csv(runs[1] / "split.csv").query("split == 'train'")["path"].iloc[0]
    swapped.to_csv(other / "predictions.csv", index=False)
    assert main(["ensemble", str(runs[0]), str(other), "--out", str(work / "never")]) == 2
    assert "tested on different events" in capsys.readouterr().err
    (other / "classes.json").write_text(json.dumps({"classes": ["photon", "electron"]}))
    assert main(["ensemble", str(runs[0]), str(other), "--out", str(work / "never")]) == 2
    assert "same classes in the same order" in capsys.readouterr().err
    assert main(["ensemble", str(runs[0]), "--out", str(work / "never")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert not (work / "never").exists()
