"""The figures of a classifier on one split: accuracy, log loss, confusion, ROC AUC per class and background
rejection, computed from scores (plain arrays in, plain dicts out)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transfer.evaluation.physics import DEFAULT_EFFICIENCIES, rejection_at_efficiency

#: Score columns of predictions.csv are ``score_<class>``.
SCORE_PREFIX = "score_"
#: predictions.csv's column of each test event's weight (``--event-weight``; only in weighted runs).
WEIGHT_COLUMN = "weight"


@dataclass
class SplitScores:
    """Model scores on one split: image paths, true labels, ``(n, classes)`` scores, and the events' weights
    (``--event-weight``, signed; None: unweighted), which every figure then uses."""

    paths: list
    y_true: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None


def _finite(value):
    return None if value is None or not math.isfinite(value) else float(value)


def cross_entropy(scores, y_true, epsilon: float = 1e-7, sample_weight=None) -> float:
    """Mean ``-log p(true class)``, probabilities clipped to ``[epsilon, 1 - epsilon]`` as Keras' loss clips
    them: the validation loss every stage monitors (weighted mean with ``sample_weight``)."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), epsilon, 1 - epsilon)
    y_true = np.asarray(y_true, dtype=np.int64)
    if not len(y_true):
        return float("nan")
    losses = np.log(scores[np.arange(len(y_true)), y_true])
    if sample_weight is not None:
        return float(-np.average(losses, weights=sample_weight))
    return float(-np.mean(losses))


def roc_auc(y_true, scores, class_names, sample_weight=None):
    """ROC AUC: one number for two classes (signal = second class); else one-vs-rest per class, macro, micro.

    A class without both positive and negative events in ``y_true`` has AUC
    ``None`` and is left out of the macro average. ``sample_weight``: the AUC
    of the weighted events (:func:`~transfer.evaluation.physics.weighted_auc`).
    """
    from sklearn.metrics import roc_auc_score

    from transfer.evaluation.physics import weighted_auc

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    n = len(class_names)

    def auc(truth, score, w=sample_weight):
        if not 0 < truth.sum() < len(truth):
            return None
        return float(roc_auc_score(truth, score)) if w is None else weighted_auc(truth, score, w)

    if n == 2:
        return auc(y_true == 1, scores[:, 1])
    per_class = {name: auc(y_true == k, scores[:, k]) for k, name in enumerate(class_names)}
    defined = [v for v in per_class.values() if v is not None]
    onehot = np.eye(n)[y_true]
    micro = auc(onehot.ravel().astype(bool), scores.ravel(),
                None if sample_weight is None else np.repeat(np.asarray(sample_weight, dtype=np.float64), n))
    return {"per_class": per_class, "macro": float(np.mean(defined)) if defined else None, "micro": micro}


def signal_index(class_names, signal: str | None = None) -> int | None:
    """Index of the signal class: two classes: ``signal`` or the second; more: ``signal`` or ``None`` (each in turn)."""
    if signal is not None:
        if signal not in class_names:
            raise ValueError(f"signal class {signal!r} is not one of the classes {list(class_names)}")
        return list(class_names).index(signal)
    return 1 if len(class_names) == 2 else None


def signal_classes(class_names, signal: str | None = None) -> list[int]:
    """The classes taken as signal in turn: the one signal for two classes, every class for more."""
    return [signal_index(class_names, signal)] if len(class_names) == 2 else list(range(len(class_names)))


def rejection_table(y_true, scores, class_names, signal: str | None = None,
                    efficiencies=DEFAULT_EFFICIENCIES, sample_weight=None) -> dict:
    """``{signal class: {"0.5": 1/FPR, "0.8": ..., "0.9": ...}}``, the signal's score as discriminant.

    Two classes: one entry, the signal class; more: one per class (one vs
    rest). ``None`` marks an infinite rejection (no background passes) and a
    class without both signal and background events in ``y_true``.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    table = {}
    for k in signal_classes(class_names, signal):
        truth = (y_true == k).astype(int)
        if 0 < truth.sum() < len(truth):
            values = rejection_at_efficiency(truth, scores[:, k], efficiencies, sample_weight)
        else:
            values = dict.fromkeys(map(float, efficiencies))
        table[class_names[k]] = {f"{eff:g}": _finite(value) for eff, value in values.items()}
    return table


def classification_metrics(y_true, scores, class_names, signal: str | None = None, sample_weight=None) -> dict:
    """Accuracy, loss, ROC AUC, rejection at fixed efficiency, precision/recall/F1, events per class, confusion.

    ``sample_weight`` (``--event-weight``, signed): every figure of the weighted events, the confusion matrix
    in summed weights; ``events_per_class`` stays a count, and ``weight_per_class`` and the ``unweighted``
    accuracy and ROC AUC are added.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    labels = list(range(len(class_names)))
    y_pred = scores.argmax(axis=1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0, sample_weight=w)
    if w is not None:
        support = np.bincount(y_true, minlength=len(labels))
    out = {
        "n_events": int(len(y_true)),
        "events_per_class": dict(zip(class_names, map(int, support))),
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=w)),
        # softmax outputs in float32 sum to 1 only to ~1e-7; sklearn wants them exact
        "loss": _finite(log_loss(y_true, scores / scores.sum(axis=1, keepdims=True), labels=labels, sample_weight=w)),
        "roc_auc": roc_auc(y_true, scores, class_names, w),
        "rejection": rejection_table(y_true, scores, class_names, signal, sample_weight=w),
        "precision": dict(zip(class_names, map(float, precision))),
        "recall": dict(zip(class_names, map(float, recall))),
        "f1": dict(zip(class_names, map(float, f1))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels, sample_weight=w).tolist(),
    }
    if w is not None:
        sums = np.bincount(y_true, weights=w, minlength=len(labels))
        out["weighted"] = True
        out["weight_per_class"] = dict(zip(class_names, map(float, sums)))
        out["unweighted"] = {"accuracy": float(accuracy_score(y_true, y_pred)),
                             "roc_auc": roc_auc(y_true, scores, class_names)}
    return out


def predictions_table(paths, scores, class_names, y_true=None):
    """Rows of ``predictions.csv``: path, true_class (when ``y_true`` is given), ``score_<class>``, predicted_class."""
    import pandas as pd

    scores = np.asarray(scores)
    table = pd.DataFrame({"path": [str(p) for p in paths]})
    if y_true is not None:
        table["true_class"] = [class_names[i] for i in y_true]
    for k, name in enumerate(class_names):
        table[SCORE_PREFIX + name] = scores[:, k]
    table["predicted_class"] = [class_names[i] for i in scores.argmax(axis=1)]
    return table


def true_class_fractions(matrix) -> np.ndarray:
    """Each row of a confusion matrix over its sum (0 where the row sums to 0): with summed weights a row may
    sum to less than one event, so the sum is not floored at 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums != 0)


def confusion_table(y_true, y_pred, class_names, sample_weight=None):
    """Confusion matrix as a table: rows ``kind`` = count / fraction (of the true class) x true class (with
    ``sample_weight``: summed weights instead of counts)."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))), sample_weight=sample_weight)
    fractions = true_class_fractions(counts)
    rows = []
    for kind, matrix in (("count", counts), ("fraction_of_true_class", fractions)):
        for name, values in zip(class_names, matrix):
            rows.append({"kind": kind, "true_class": name,
                         **{f"predicted_{c}": v for c, v in zip(class_names, values)}})
    return pd.DataFrame(rows)


def _finite_scores(scores) -> np.ndarray:
    """Scores with non-finite rows (a diverged network) replaced by equal class scores, so that the
    metrics can be computed; the health section says the run diverged."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        scores = scores.copy()
        scores[bad] = 1.0 / scores.shape[1]
    return scores


def evaluate_splits(splits: dict[str, SplitScores], class_names: list[str], signal: str | None = None,
                    seed: int = 0) -> dict:
    """``{"validation": metrics, "test": metrics + intervals}`` for one model's scores."""
    from transfer.evaluation.intervals import bootstrap_intervals

    out = {}
    for split, s in splits.items():
        out[split] = classification_metrics(s.y_true, _finite_scores(s.scores), class_names, signal, s.weights)
    test = splits["test"]
    out["test"]["intervals"] = bootstrap_intervals(test.y_true, _finite_scores(test.scores), class_names,
                                                   signal_classes(class_names, signal), seed=seed,
                                                   sample_weight=test.weights)
    return out
