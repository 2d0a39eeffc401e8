"""--event-weight: weighted figures against scikit-learn and against duplicated events, the loss weights, the
manifest and HDF5 readers with their errors (imgen's own HDF5 output rendered from NanoAOD with genWeight too),
the weighted figures drawn (roc.png, discriminant.png, confusion_matrix.png), and a weighted beside an unweighted
run on arrays whose one class comes in an easy and a hard kind (the hard kind heavily weighted: the weighted
figures must drop), and their ensemble."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score

from imgen.output.manifest import read_manifest, write_manifest
from tests._transfer_data import make_blob_dataset
from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.data.batches import Batches, InMemoryRows
from transfer.data.event_weights import loss_weights
from transfer.errors import TransferError
from transfer.evaluation.intervals import bootstrap_intervals
from transfer.evaluation.metrics import classification_metrics
from transfer.evaluation.physics import rejection_at_efficiency, weighted_auc, weighted_roc
from transfer.evaluation.plot_style import plot_style
from transfer.evaluation.plots import plot_confusion_matrix, plot_discriminant, plot_roc
from transfer.training.inputs import resolve_class_weight

CLASSES = ["background", "signal"]


def scored_sample(n: int = 200, seed: int = 0):
    """Two classes, a score that separates them imperfectly, positive integer weights."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.25, n), 0.001, 0.999)
    w = rng.integers(1, 4, n).astype(float)
    return y, np.c_[1 - s, s], w


def test_weighted_figures_are_scikit_learns_and_those_of_duplicated_events():
    y, p, w = scored_sample()
    m = classification_metrics(y, p, CLASSES, sample_weight=w)
    pred = p.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred, sample_weight=w))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1], sample_weight=w))
    assert m["loss"] == pytest.approx(log_loss(y, p, sample_weight=w))
    assert np.allclose(m["confusion_matrix"], confusion_matrix(y, pred, sample_weight=w))
    assert m["events_per_class"] == {"background": int((y == 0).sum()), "signal": int((y == 1).sum())}
    assert m["weight_per_class"]["signal"] == pytest.approx(w[y == 1].sum())
    # an event of weight k is k copies of it
    copies = np.repeat(np.arange(len(y)), w.astype(int))
    d = classification_metrics(y[copies], p[copies], CLASSES)
    for key in ("accuracy", "roc_auc", "loss"):
        assert m[key] == pytest.approx(d[key])
    assert m["rejection"]["signal"] == pytest.approx(d["rejection"]["signal"])
    assert m["unweighted"]["accuracy"] == classification_metrics(y, p, CLASSES)["accuracy"] != m["accuracy"]
    assert "weighted" not in classification_metrics(y, p, CLASSES)


def test_negative_weights_subtract_in_auc_and_rejection():
    y, p, w = scored_sample(seed=1)
    w[::7] *= -1  # NLO: some events count negatively
    assert weighted_auc(y == 1, p[:, 1], w) != pytest.approx(weighted_auc(y == 1, p[:, 1], np.abs(w)))
    # one event of weight +1 and its copy of weight -1 cancel: as if neither were there
    both = np.r_[np.arange(len(y)), 0]
    signed = np.r_[np.ones(len(y)), -1.0]
    signed[0] = 2.0
    assert weighted_auc(y[both] == 1, p[both, 1], signed) == pytest.approx(roc_auc_score(y == 1, p[:, 1]))
    assert rejection_at_efficiency(y[both], p[both, 1], (0.5, 0.8), signed) == pytest.approx(
        rejection_at_efficiency(y, p[:, 1], (0.5, 0.8)))
    assert classification_metrics(y, p, CLASSES, sample_weight=w)["roc_auc"] == pytest.approx(
        weighted_auc(y == 1, p[:, 1], w))


def test_bootstrap_carries_the_weights_of_the_resampled_events():
    y, p, _ = scored_sample(300, seed=2)
    wrong = p.argmax(axis=1) != y
    ones = bootstrap_intervals(y, p, CLASSES, n_resamples=60)
    same = bootstrap_intervals(y, p, CLASSES, n_resamples=60, sample_weight=np.ones(len(y)))
    assert same["accuracy"] == pytest.approx(ones["accuracy"]) and same["roc_auc"] == pytest.approx(ones["roc_auc"])
    heavy = bootstrap_intervals(y, p, CLASSES, n_resamples=60, sample_weight=np.where(wrong, 10.0, 1.0))
    assert heavy["accuracy"][1] < ones["accuracy"][0]  # the misclassified events weigh more: accuracy drops
    assert "weighted" in heavy["method"] and "weighted" not in ones["method"]


def test_the_chance_loss_of_weighted_events_is_the_entropy_of_their_weight_fractions():
    from transfer.evaluation.health import chance_loss

    assert chance_loss([0, 0, 1], 2, [1.0, 1.0, 2.0]) == pytest.approx(np.log(2))
    assert chance_loss([0, 0, 1], 2) == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))


def test_loss_weights_are_abs_times_class_weight_with_mean_one_and_classes_balance_on_weight_sums():
    labels = np.array([0, 0, 0, 1])
    events = np.array([1.0, -1.0, 2.0, 0.5])
    balanced = resolve_class_weight("balanced", labels, 2, events)
    assert balanced == {0: pytest.approx(4.5 / 8), 1: pytest.approx(4.5 / 1)}  # sums of |w|: 4 and 0.5
    w = loss_weights(events, labels, balanced)
    assert w.mean() == pytest.approx(1.0) and (w > 0).all()
    assert w[3] / w[0] == pytest.approx(0.5 * 4.5 / (1.0 * 4.5 / 8))
    assert resolve_class_weight("auto", labels, 2, np.array([1.0, 1, 1, 3])) is None  # equal sums: no weights
    batch = Batches(InMemoryRows(np.arange(4.0)[:, None]), labels, 4, sample_weight=w, prefetch=0)[0]
    assert len(batch) == 3 and np.allclose(batch[2], w)
    assert len(Batches(InMemoryRows(np.arange(4.0)[:, None]), labels, 4, prefetch=0)[0]) == 2


def test_manifest_weights_and_their_errors(tmp_path):
    root = make_blob_dataset(tmp_path / "img", classes=("a", "b"), per_class=6, size=8)
    config = dict(data=str(root), backbone="smallcnn", weights="none")
    with pytest.raises(TransferError) as error:  # a manifest written before imgen recorded weights
        open_data(TrainConfig(**config, event_weight="genWeight"))
    message = str(error.value)
    assert "manifest.csv" in message and "no genWeight weights" in message and "re-render" in message
    assert "\n" not in message
    rows = read_manifest(root)
    columns = list(rows[0]) + ["weight", "weight_source"]
    for i, row in enumerate(rows):
        row.update(weight=str(-0.5 if i % 3 == 0 else 1.5), weight_source="genWeight")
    write_manifest(root, rows, columns)
    with open_data(TrainConfig(**config, event_weight="genWeight")) as source:
        assert source.weights_all.tolist() == [-0.5 if i % 3 == 0 else 1.5 for i in range(len(rows))]
        view = source.view()
        assert view.weights("test").tolist() == source.weights_all[view.splits["test"]].tolist()
    with pytest.raises(TransferError, match="no xsec weights"):
        open_data(TrainConfig(**config, event_weight="xsec"))
    rows[4]["weight"] = "nan"
    write_manifest(root, rows, columns)
    with pytest.raises(TransferError, match=r"manifest.csv, line 6 \(a/a_0004.png\): --event-weight genWeight: "
                                            r"weight nan is not finite"):
        open_data(TrainConfig(**config, event_weight="genWeight"))
    for row in rows:
        row["weight"] = "0"
    write_manifest(root, rows, columns)
    with pytest.raises(TransferError, match="the weights of the train split sum to zero"):
        open_data(TrainConfig(**config, event_weight="genWeight")).view()


def test_imgen_hdf5_records_gen_weight_and_transfer_reads_it(tmp_path):
    """NanoAOD with genWeight rendered to --format hdf5: images.h5 holds weight and weight_source beside the
    images, the event's own (as the manifest's); --event-weight genWeight reads them, xsec and a file rendered
    without weights (or with one class unweighted) are refused naming the file and the row."""
    import dataclasses

    from imgen.events.nanoaod_write import events_of_json, write_nanoaod
    from imgen.pipeline import render_files
    from imgen.synth import generate_events

    gen = {"TTjets": [1.5, -0.75, 2.0] * 3, "Wjets": [0.5, 3.0, -1.0] * 3}
    for folder, weighted in (("w", ("TTjets", "Wjets")), ("half", ("TTjets",)), ("none", ())):
        (tmp_path / "in" / folder).mkdir(parents=True)
        for seed, (name, weights) in enumerate(gen.items()):
            events = list(events_of_json(generate_events(name, len(weights), seed=seed)))
            if name in weighted:
                events = [dataclasses.replace(e, weight=w, weight_source="genWeight") for e, w in zip(events, weights)]
            write_nanoaod(tmp_path / "in" / folder / f"{name}.root", events)
        render_files([tmp_path / "in" / folder], tmp_path / folder, size=16, workers=1, format="both",
                     btag_branch="Jet_btagCSVV2", btag_cut=0.679)
    h5 = tmp_path / "w" / "images.h5"
    manifest = {r["event"] + r["class"]: r for r in read_manifest(tmp_path / "w")}
    with h5py.File(h5) as handle:
        keys = [e.decode() + classes for e, classes in zip(handle["event"][...], np.array(
            handle.attrs["classes"])[handle["y"][...]])]
        assert handle["weight_source"].asstr()[...].tolist() == ["genWeight"] * len(keys)
        assert handle["weight"][...].tolist() == [float(manifest[k]["weight"]) for k in keys]
    config = dict(x_key="X", backbone="smallcnn", weights="none")
    with open_data(TrainConfig(data=str(h5), **config, event_weight="genWeight")) as source:
        assert source.weights_all.tolist() == [float(manifest[k]["weight"]) for k in keys]
        assert (source.weights_all < 0).any() and "'weight' (weight_source genWeight)" in source.event_weight_origin
    with pytest.raises(TransferError, match=r"images.h5#0, key 'weight_source': this event's weight is "
                                            r"'genWeight', not xsec \(18 of the file's 18 events"):
        open_data(TrainConfig(data=str(h5), **config, event_weight="xsec"))
    with h5py.File(tmp_path / "half" / "images.h5") as handle:
        first_unweighted = int(np.flatnonzero(handle["weight_source"].asstr()[...] == "")[0])
        assert np.isnan(handle["weight"][first_unweighted])
    with pytest.raises(TransferError, match=rf"half/images.h5#{first_unweighted}, key 'weight_source': this "
                                            r"event's weight is absent, not genWeight \(9 of the file's 18"):
        open_data(TrainConfig(data=str(tmp_path / "half" / "images.h5"), **config, event_weight="genWeight"))
    with h5py.File(tmp_path / "none" / "images.h5") as handle:
        assert "weight" not in handle and "weight_source" not in handle   # unweighted events: the layout as before
    with pytest.raises(TransferError, match=r"none/images.h5: no genWeight weights: imgen wrote this file from "
                                            r"events without weights"):
        open_data(TrainConfig(data=str(tmp_path / "none" / "images.h5"), **config, event_weight="genWeight"))


def test_the_figures_draw_the_weighted_curves_and_histograms(tmp_path):
    """roc.png's curves are metrics.json's weighted ROC (its legend's AUC is metrics.json's, negative weights
    included), the discriminant's histograms are weighted, the confusion matrix shows summed weights; each says
    so. Unweighted, they stay the unweighted ones."""
    y, p, w = scored_sample(seed=3)
    w[::5] *= -1
    auc = classification_metrics(y, p, CLASSES, sample_weight=w)["roc_auc"]
    assert auc != pytest.approx(classification_metrics(y, p, CLASSES)["roc_auc"], abs=1e-3)
    with plot_style("plain") as active:
        plot_roc(y, p, CLASSES, tmp_path / "roc.png", weights=w, weight_name="genWeight")
        plot_discriminant(y, p, CLASSES, tmp_path / "disc.png", weights=w, weight_name="genWeight")
        plot_confusion_matrix(y, p.argmax(axis=1), CLASSES, tmp_path / "cm.png", weights=w, weight_name="genWeight")
        plot_roc(y, p, CLASSES, tmp_path / "plain.png")
    (_, roc), (_, disc), (_, cm), (_, plain) = active.saved
    curves, rejection = roc.axes[:2]
    signal_line = curves.get_lines()[1]
    assert signal_line.get_label() == f"signal (AUC = {auc:.3f})"
    fpr, tpr = weighted_roc(y == 1, p[:, 1], w)
    assert np.allclose(signal_line.get_xdata(), fpr) and np.allclose(signal_line.get_ydata(), tpr)
    assert "weighted (genWeight)" in curves.get_title() and "weighted (genWeight)" in rejection.get_title()
    assert "weighted fraction" in curves.get_xlabel()
    assert np.allclose(rejection.get_lines()[0].get_ydata(), 1 / fpr[fpr > 0])
    assert plain.axes[0].get_lines()[1].get_label() == (
        f"signal (AUC = {roc_auc_score(y, p[:, 1]):.3f})") and "weighted" not in plain.axes[0].get_title()
    ax = disc.axes[0]
    steps = [patch for patch in ax.patches if patch.get_label().startswith("true signal")]
    values, edges = steps[0].get_data()[:2]
    from transfer.evaluation.physics import likelihood_ratio_discriminant

    expected, _ = np.histogram(likelihood_ratio_discriminant(p, 1)[y == 1], bins=edges, weights=w[y == 1],
                               density=True)
    assert np.allclose(values, expected) and "weighted (genWeight)" in ax.get_ylabel()
    assert f"\u03a3w = {w[y == 1].sum():.3g}" in steps[0].get_label()
    cells = [float(t.get_text()) for t in cm.axes[0].texts[:4]]
    assert cells == pytest.approx([float(f"{v:.3g}") for v in confusion_matrix(y, p.argmax(axis=1),
                                                                              sample_weight=w).ravel()])


# --- a weighted and an unweighted run -----------------------------------------------------------------

N_BACKGROUND, N_EASY, N_HARD = 100, 80, 40
HARD_WEIGHT = 20.0


def two_kind_file(path, nan_row: int | None = None):
    """Background: noise. Signal: half an easy kind (a bright corner), half a hard kind (noise like the
    background), the hard kind weighted :data:`HARD_WEIGHT` in ``w``."""
    rng = np.random.default_rng(5)
    n = N_BACKGROUND + N_EASY + N_HARD
    x = rng.exponential(1.0, (n, 8, 8)).astype(np.float32)
    x[N_BACKGROUND:N_BACKGROUND + N_EASY, :3, :3] += 20.0
    y = np.r_[np.zeros(N_BACKGROUND), np.ones(N_EASY + N_HARD)].astype(np.int64)
    w = np.r_[np.ones(N_BACKGROUND + N_EASY), np.full(N_HARD, HARD_WEIGHT)]
    order = rng.permutation(n)
    x, y, w = x[order], y[order], w[order]
    if nan_row is not None:
        w[nan_row] = np.nan
    with h5py.File(path, "w") as handle:
        handle["X"], handle["y"], handle["w"] = x, y, w
    return path, w


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from transfer.cli import main

    work = tmp_path_factory.mktemp("event_weights")
    path, w = two_kind_file(work / "two_kinds.h5")
    common = ["--data", str(path), "--x-key", "X", "--y-key", "y", "--classes", ",".join(CLASSES),
              "--backbone", "mlp", "--weights", "none", "--epochs", "1", "--batch-size", "32", "--patience", "0",
              "--verbose", "0", "--split", "0.5,0.25,0.25", "--class-weight", "none"]
    assert main([*common, "--out", str(work / "plain")]) == 0
    assert main([*common, "--event-weight", "w", "--out", str(work / "weighted")]) == 0
    return work, w


def test_weighted_run_records_the_weighting_and_its_figures_drop(two_runs):
    import pandas as pd

    work, w = two_runs
    plain, weighted = ({**json.loads((work / name / "metrics.json").read_text())}
                       for name in ("plain", "weighted"))
    assert yaml.safe_load((work / "plain" / "config.yaml").read_text())["event_weight"] == "none"
    assert yaml.safe_load((work / "weighted" / "config.yaml").read_text())["event_weight"] == "w"
    assert plain["event_weight"] == "none" and "event_weights" not in plain and "weighted" not in plain["test"]
    recorded = weighted["event_weights"]
    assert recorded["choice"] == "w" and "'w'" in recorded["read_from"] and recorded["loss"].startswith("|w|")
    # the trees separate the easy kind only; the hard kind, 20 times heavier, pulls every weighted figure down
    assert weighted["baseline"]["test"]["roc_auc"] < plain["baseline"]["test"]["roc_auc"] - 0.15
    assert weighted["baseline"]["test"]["weighted"] is True
    # the network's figures are those of its own scores with each event's weight, read back by file#row
    table = pd.read_csv(work / "weighted" / "predictions.csv")
    rows = table["path"].str.rsplit("#", n=1).str[1].astype(int).to_numpy()
    truth = (table["true_class"] == "signal").to_numpy()
    assert weighted["test"]["roc_auc"] == pytest.approx(weighted_auc(truth, table["score_signal"], w[rows]))
    assert weighted["test"]["unweighted"]["roc_auc"] == pytest.approx(roc_auc_score(truth, table["score_signal"]))
    assert weighted["test"]["weight_per_class"]["signal"] == pytest.approx(w[rows][truth].sum())
    assert "weighted test events" in weighted["test"]["intervals"]["method"]
    assert "event weights | --event-weight w" in (work / "weighted" / "report.md").read_text()
    assert table["weight"].tolist() == w[rows].tolist()   # what an ensemble weighs its figures with
    assert "weight" not in pd.read_csv(work / "plain" / "predictions.csv")


def test_an_ensemble_takes_the_weights_its_runs_record_or_says_its_figures_are_unweighted(two_runs):
    """The weighted run's predictions.csv gives the test events' weights, and the ensemble's figures (the
    members' too) are weighted; a run trained with weights whose predictions.csv lost them leaves the ensemble
    unweighted, and metrics.json, report.md and the console say so."""
    import shutil

    import pandas as pd

    from transfer.experiments.ensemble import ensemble_runs

    work, w = two_runs
    result = ensemble_runs([work / "plain", work / "weighted"], work / "ensemble")
    table = pd.read_csv(work / "ensemble" / "predictions.csv")
    rows = table["path"].str.rsplit("#", n=1).str[1].astype(int).to_numpy()
    truth = (table["true_class"] == "signal").to_numpy()
    recorded = result.metrics["event_weights"]
    assert recorded["choice"] == "w" and recorded["from"] == [str(work / "weighted")]
    assert recorded["trained_unweighted"] == [str(work / "plain")]
    assert result.metrics["test"]["roc_auc"] == pytest.approx(weighted_auc(truth, table["score_signal"], w[rows]))
    plain_run = pd.read_csv(work / "plain" / "predictions.csv").set_index("path").loc[table["path"]]
    assert result.metrics["members"][0]["roc_auc"] == pytest.approx(
        weighted_auc(truth, plain_run["score_signal"], w[rows]))
    assert "weighted with --event-weight w" in (work / "ensemble" / "report.md").read_text()
    lost = work / "lost_weights"
    lost.mkdir()
    shutil.copy(work / "weighted" / "config.yaml", lost)
    pd.read_csv(work / "weighted" / "predictions.csv").drop(columns="weight").to_csv(lost / "predictions.csv",
                                                                                   index=False)
    result = ensemble_runs([work / "plain", lost], work / "ensemble_unweighted")
    assert "records none" in result.metrics["event_weights"]["unweighted_because"]
    assert result.metrics["test"]["roc_auc"] == pytest.approx(roc_auc_score(truth, table["score_signal"]))
    assert "**Figures UNWEIGHTED: " in (work / "ensemble_unweighted" / "report.md").read_text()
    assert any(line.startswith("figures UNWEIGHTED: ") for line in result.summary_lines())


def test_a_bad_weight_stops_the_run_naming_the_file_and_row(tmp_path, capsys):
    from transfer.cli import main

    path, _ = two_kind_file(tmp_path / "bad.h5", nan_row=7)
    args = ["--data", str(path), "--x-key", "X", "--y-key", "y", "--classes", ",".join(CLASSES),
            "--backbone", "mlp", "--weights", "none", "--out", str(tmp_path / "run")]
    assert main([*args, "--event-weight", "w"]) == 2
    err = capsys.readouterr().err
    assert f"{path}#7, key 'w': --event-weight w: weight nan is not finite" in err
    assert main([*args, "--event-weight", "genWeight"]) == 2
    assert "--event-weight genWeight" in capsys.readouterr().err and not (tmp_path / "run").exists()
