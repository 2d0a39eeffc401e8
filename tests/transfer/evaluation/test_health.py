"""Health checks and intervals: a collapsed run is flagged, a healthy one is not; intervals mean something."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from transfer.evaluation.health import assess, chance_loss, symptoms
from transfer.evaluation.intervals import bootstrap_intervals
from transfer.evaluation.metrics import SplitScores, roc_auc


def _informative_scores(labels, rng, strength=2.0, classes=3):
    logits = rng.normal(0, 1, (len(labels), classes))
    logits[np.arange(len(labels)), labels] += strength
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def test_chance_loss_is_ln_k_for_balanced_classes():
    assert chance_loss(np.repeat([0, 1, 2], 10), 3) == pytest.approx(np.log(3))
    assert chance_loss([0, 0, 0, 1], 2) < np.log(2)


def test_constant_predictions_are_collapsed_and_informative_ones_are_not():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    constant = np.tile([0.34, 0.33, 0.33], (len(labels), 1))
    good = _informative_scores(labels, rng)
    flat = SplitScores([], labels, constant)
    health = assess(flat, flat, 3, val_loss=float(np.log(3)), monitor_events=[])
    assert health["collapsed"]
    assert health["warnings"][0].startswith("COLLAPSED")
    fine = SplitScores([], labels, good)
    auc = roc_auc(labels, good, ["a", "b", "c"])["macro"]
    health = assess(fine, fine, 3, val_loss=0.6, monitor_events=[], network_auc_val=auc)
    assert health == {"collapsed": False, "warnings": []}


def test_nan_outputs_are_collapsed():
    labels = np.array([0, 1, 0, 1])
    scores = np.full((4, 2), np.nan)
    assert "diverged" in symptoms(scores, labels, 2)[0]
    health = assess(SplitScores([], labels, scores), SplitScores([], labels, scores), 2, None, [])
    assert health["collapsed"]


def test_worse_than_baseline_is_said_in_one_sentence():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 30)
    scores = _informative_scores(labels, rng, strength=1.0)
    fine = SplitScores([], labels, scores)
    health = assess(fine, fine, 3, 0.9, [], network_auc_val=0.80, baseline_auc_val=0.95,
                    network_acc_val=0.6, baseline_acc_val=0.85)
    assert not health["collapsed"]
    assert any("worse than the baseline" in w and "0.950" in w for w in health["warnings"])


def test_intervals_contain_the_estimate_and_shrink_with_more_events():
    rng = np.random.default_rng(2)
    widths = []
    for n in (60, 1200):
        labels = np.repeat([0, 1], n // 2)
        scores = _informative_scores(labels, rng, strength=1.0, classes=2)
        intervals = bootstrap_intervals(labels, scores, ["b", "s"], seed=0)
        accuracy = (scores.argmax(1) == labels).mean()
        auc = roc_auc(labels, scores, ["b", "s"])
        low, high = intervals["accuracy"]
        assert low <= accuracy <= high
        assert intervals["roc_auc"][0] <= auc <= intervals["roc_auc"][1]
        rejection = intervals["rejection"]["s"]["0.5"]
        assert rejection[0] < rejection[1]
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def _separable_arrays(path, n_per_class=80, raw_scale=2.0e4, seed=0):
    """Raw-MeV-like towers: class b has a hard deposit at one place, class a at another."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    x = rng.gamma(1.0, 300.0, (len(labels), 12, 12, 1)) - 250.0
    rows = np.where(labels == 1, 3, 8)
    x[np.arange(len(labels)), rows, 6, 0] += raw_scale * rng.uniform(0.5, 1.5, len(labels))
    with h5py.File(path, "w") as handle:
        handle["X"] = x.astype(np.float32)
        handle["y"] = labels
    return path


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["none", "log", "standardize"])
def test_every_scale_trains_a_compact_network_above_chance(tmp_path, scale):
    from transfer.config import TrainConfig
    from transfer.training.runner import run_training

    # the classes differ only in where the deposit sits: mlp sees every cell's position; smallcnn pools
    # globally and is blind to it by design (cnn, without BatchNorm, learns too slowly for 48 steps here)
    path = _separable_arrays(tmp_path / "towers.h5")
    result = run_training(TrainConfig(data=str(path), x_key="X", y_key="y", classes="a,b", backbone="mlp",
                                      scale=scale, epochs=6, batch_size=16, verbose=0, seed=1,
                                      out=str(tmp_path / f"run-{scale}")))
    metrics = result.metrics
    assert metrics["input_normalization"].startswith("per-channel standardisation")
    assert not metrics["health"]["collapsed"]
    assert metrics["test"]["roc_auc"] > 0.8
    assert metrics["baseline"]["test"]["roc_auc"] > 0.8
    saved = json.loads((result.out_dir / "metrics.json").read_text())
    assert saved["baseline"]["test"]["intervals"]["accuracy"] is not None
    assert "baseline (gradient-boosted trees)" in (result.out_dir / "report.md").read_text()


@pytest.mark.slow
def test_a_broken_run_is_flagged_collapsed_and_a_normal_run_is_not(tmp_path):
    from transfer.cli import main

    path = _separable_arrays(tmp_path / "towers.h5", n_per_class=60)
    common = ["--data", str(path), "--x-key", "X", "--y-key", "y", "--classes", "a,b", "--backbone", "smallcnn",
              "--epochs", "4", "--batch-size", "16", "--verbose", "0", "--seed", "3"]
    broken, normal = tmp_path / "broken", tmp_path / "normal"
    assert main([*common, "--optimizer", "sgd", "--lr", "100", "--out", str(broken)]) == 3
    assert main([*common, "--out", str(normal)]) == 0
    bad = json.loads((broken / "metrics.json").read_text())
    good = json.loads((normal / "metrics.json").read_text())
    assert bad["health"]["collapsed"] is True
    assert good["health"]["collapsed"] is False
    report = (broken / "report.md").read_text()
    assert report.splitlines()[2].startswith("**COLLAPSED")
    assert "COLLAPSED" not in (normal / "report.md").read_text()


def _history(train, val, stage="from-scratch"):
    import pandas as pd

    n = len(train)
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "stage": stage, "stage_epoch": np.arange(1, n + 1),
                         "accuracy": train, "val_accuracy": val, "val_loss": np.linspace(0.6, 0.5, n)})


def test_overfitting_is_called_from_the_gap_at_the_kept_or_last_epoch_and_not_on_a_healthy_run():
    from transfer.evaluation.health import OVERFIT_GAP, overfitting

    memorising = _history([0.6, 0.8, 0.9, 0.97, 0.99], [0.6, 0.75, 0.8, 0.82, 0.84])
    found = overfitting(memorising, {"stage": "from-scratch", "epoch": 2})
    assert found["overfitting"] and found["kept_epoch"] == 2
    assert found["gap_kept"] == pytest.approx(0.05) and found["gap_last"] == pytest.approx(0.15)
    healthy = _history([0.6, 0.8, 0.86, 0.88, 0.9], [0.6, 0.78, 0.84, 0.85, 0.86])
    assert not overfitting(healthy, {"stage": "from-scratch", "epoch": 5})["overfitting"]
    at_edge = _history([0.9, 0.9], [0.9 - OVERFIT_GAP + 0.01, 0.9 - OVERFIT_GAP + 0.01])
    assert not overfitting(at_edge)["overfitting"]
    # validation falling at the last epoch with the training accuracy flat (a BatchNorm spike) is not memorising
    spike = _history([0.6, 0.9, 0.9, 0.89], [0.6, 0.88, 0.89, 0.5])
    found = overfitting(spike, {"stage": "from-scratch", "epoch": 3})
    assert found["gap_last"] > OVERFIT_GAP and not found["overfitting"]
    assert overfitting(_history([0.9], [0.9])[["epoch", "accuracy"]]) is None  # no validation column

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    fine = SplitScores([], labels, _informative_scores(labels, rng))
    warned = assess(fine, fine, 3, 0.6, [], history=memorising, best={"stage": "from-scratch", "epoch": 2})
    text = [w for w in warned["warnings"] if w.startswith("OVERFITTING")]
    assert len(text) == 1 and "0.990 against 0.840" in text[0] and "augment" in text[0]
    assert warned["fit"]["overfitting"]
    quiet = assess(fine, fine, 3, 0.6, [], history=healthy, best={"stage": "from-scratch", "epoch": 5})
    assert not any("OVERFITTING" in w for w in quiet["warnings"]) and not quiet["fit"]["overfitting"]


def test_a_collapse_the_run_left_is_reported_as_transient_and_one_it_kept_is_not():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 40)
    fine = SplitScores([], labels, _informative_scores(labels, rng))
    history = _history([0.4, 0.4, 0.6, 0.8, 0.85], [0.33, 0.33, 0.6, 0.8, 0.82])
    event = {"stage": "from-scratch", "epoch": 1, "symptoms": ["every event is predicted as class 0"]}
    left = assess(fine, fine, 3, 0.6, [event, {**event, "epoch": 2}], history=history)
    assert left["transient_collapse"]["left_at"] == {"stage": "from-scratch", "epoch": 3}
    assert any(w.startswith("transient collapse") and "left at from-scratch epoch 3" in w for w in left["warnings"])
    stayed = assess(fine, fine, 3, 0.6, [{**event, "epoch": e} for e in (4, 5)], history=history)
    assert "transient_collapse" not in stayed
    assert any(w.startswith("during training (from-scratch stage, epoch 4)") for w in stayed["warnings"])
