"""transfer.evaluation.report: pure functions of (y_true, scores, class_names)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from transfer.evaluation.metrics import classification_metrics, confusion_table, predictions_table, roc_auc
from transfer.evaluation.plots import plot_confusion_matrix, plot_roc, plot_training_curves
from transfer.evaluation.report import report_markdown


def scores_for(y_true, n_classes, rng, strength=2.0):
    logits = rng.normal(size=(len(y_true), n_classes))
    logits[np.arange(len(y_true)), y_true] += strength
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_binary_metrics_use_the_second_class_as_signal():
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 20)
    scores = scores_for(y, 2, rng)
    metrics = classification_metrics(y, scores, ["bkg", "sig"])
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, scores[:, 1]))
    assert metrics["events_per_class"] == {"bkg": 30, "sig": 20} and metrics["n_events"] == 50
    assert sum(map(sum, metrics["confusion_matrix"])) == 50
    assert 0 <= metrics["precision"]["sig"] <= 1 and 0 <= metrics["recall"]["bkg"] <= 1


def test_multiclass_auc_and_a_class_missing_from_the_split():
    rng = np.random.default_rng(1)
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    scores = scores_for(y, 3, rng)
    auc = roc_auc(y, scores, ["a", "b", "c"])
    assert auc["macro"] == pytest.approx(roc_auc_score(y, scores, multi_class="ovr"))
    assert auc["micro"] == pytest.approx(roc_auc_score(np.eye(3)[y], scores, average="micro"))
    partial = roc_auc(y[:20], scores[:20], ["a", "b", "c"])
    assert partial["per_class"]["c"] is None
    assert partial["macro"] == pytest.approx(np.mean([partial["per_class"]["a"], partial["per_class"]["b"]]))


def test_tables():
    y = np.array([0, 0, 1, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    table = predictions_table(["p0", "p1", "p2", "p3"], scores, ["a", "b", "c"], y)
    assert table["predicted_class"].tolist() == ["a", "b", "b", "c"]
    assert table["true_class"].tolist() == ["a", "a", "b", "c"]
    confusion = confusion_table(y, scores.argmax(1), ["a", "b", "c"]).set_index(["kind", "true_class"])
    assert confusion.loc[("count", "a")].tolist() == [1, 1, 0]
    assert confusion.loc[("fraction_of_true_class", "a")].tolist() == [0.5, 0.5, 0.0]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_plots_are_written(tmp_path, n_classes):
    rng = np.random.default_rng(2)
    names = ["bkg", "sig", "other"][:n_classes]
    y = np.arange(40) % n_classes
    scores = scores_for(y, n_classes, rng)
    plot_confusion_matrix(y, scores.argmax(1), names, tmp_path / "cm.png")
    plot_roc(y, scores, names, tmp_path / "roc.png")
    history = pd.DataFrame({"epoch": [1, 2, 3], "stage": ["head", "head", "fine-tune"], "loss": [1, 0.8, 0.5],
                            "val_loss": [1.1, 0.9, 0.7], "accuracy": [0.4, 0.6, 0.8],
                            "val_accuracy": [0.3, 0.5, 0.7]})
    plot_training_curves(history, tmp_path / "curves.png")
    for name in ("cm.png", "roc.png", "curves.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 500
    with Image.open(tmp_path / "roc.png") as image:
        wide = image.size[0] > 1.6 * image.size[1]
    assert wide == (n_classes == 2)  # the rejection panel sits beside the ROC curves


def test_report_markdown_names_the_random_fallback():
    metrics = {"backbone": "vgg19", "weights_used": "none", "weights_reason": "offline", "fine_tune": "partial",
               "opened_layers": ["x"], "optimizer": "adam", "lr": 1e-3, "fine_tune_lr": 1e-4,
               "image_shape": [64, 64, 1], "image_size": [64, 64], "best": {"stage": "head", "epoch": 2},
               "timing": {"total_s": 12.0}, "events_per_class": {"train": {"a": 1, "b": 2}},
               "validation": {"accuracy": 0.5, "loss": 0.7, "roc_auc": 0.6},
               "test": {"accuracy": 0.75, "loss": 0.5, "roc_auc": 0.8, "events_per_class": {"a": 2, "b": 2},
                        "precision": {"a": 1.0, "b": 0.5}, "recall": {"a": 0.5, "b": 1.0}}}
    text = report_markdown(metrics, ["a", "b"])
    assert "random initialisation, not transfer learning" in text and "| test | 0.750 | 0.500 | 0.800 |" in text
