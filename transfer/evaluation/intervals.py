"""Bootstrap intervals for the test-split figures: what a number on a few hundred events is worth.

A test accuracy of 0.96 on 48 events of one class is 0.96 +- 0.03; the
interval says so. :func:`bootstrap_intervals` resamples the test events with
replacement (``n_resamples`` times, a fixed seed, so the same scores give the
same interval), recomputes accuracy, ROC AUC and background rejection on each
resample, and returns the central ``level`` interval (default 68 %, the
physicist's one sigma) of each, as ``[low, high]``.

Weighted events (``--event-weight``): the events are resampled as they are,
each carrying its weight, and every figure of a resample is the weighted one
(signed weights; a resample whose weights sum to zero has no accuracy).

Resamples that lack a class (possible on tiny test sets) are skipped for the
figures that need it; a figure with fewer than 20 usable resamples gets
``None``. Pure NumPy and scikit-learn, like :mod:`transfer.evaluation.physics`.
"""
from __future__ import annotations

import numpy as np

from transfer.evaluation.physics import DEFAULT_EFFICIENCIES, rejection_at_efficiency

DEFAULT_RESAMPLES = 200
DEFAULT_LEVEL = 0.68
MIN_RESAMPLES = 20


def _interval(values: list, level: float):
    values = [v for v in values if v is not None and np.isfinite(v)]
    if len(values) < MIN_RESAMPLES:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def _macro_auc(y, scores, n_classes: int, weights=None):
    """The signal's AUC for two classes, the mean one-vs-rest AUC for more (weighted with ``weights``); None
    when no class has both its events and others."""
    from sklearn.metrics import roc_auc_score

    from transfer.evaluation.physics import weighted_auc

    def auc(truth, score):
        return roc_auc_score(truth, score) if weights is None else weighted_auc(truth, score, weights)

    aucs = [auc(y == k, scores[:, k]) for k in ([1] if n_classes == 2 else range(n_classes))
            if 0 < (y == k).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else None


def bootstrap_intervals(y_true, scores, class_names, signal_classes: list[int] | None = None,
                        n_resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = 0,
                        efficiencies=DEFAULT_EFFICIENCIES, sample_weight=None) -> dict:
    """``{"accuracy": [lo, hi], "roc_auc": [lo, hi], "rejection": {class: {"0.5": [lo, hi], ...}}, ...}``.

    ``roc_auc`` is the signal's AUC for two classes and the macro average of
    one-vs-rest AUCs for more, as in ``metrics.json``. ``signal_classes`` are
    the class indices whose rejection is resampled (default: all but the first
    for two classes, every class for more). ``sample_weight``: the events' weights, carried by each resampled
    event (module docstring).
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(scores, dtype=np.float64)
    n_classes = len(class_names)
    if signal_classes is None:
        signal_classes = [1] if n_classes == 2 else list(range(n_classes))
    from sklearn import config_context

    rng = np.random.default_rng(seed)
    accuracy, auc = [], []
    rejection = {k: {f"{e:g}": [] for e in efficiencies} for k in signal_classes}
    correct = p.argmax(axis=1) == y
    # the inputs are checked once, here; scikit-learn's per-call validation was most of the time on small sets
    if not np.isfinite(p).all():
        raise ValueError("scores hold NaN or infinite values")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    with config_context(skip_parameter_validation=True, assume_finite=True):
        for _ in range(n_resamples):
            pick = rng.integers(0, len(y), len(y))
            ys, ps = y[pick], p[pick]
            ws = None if w is None else w[pick]
            if ws is None:
                accuracy.append(float(correct[pick].mean()))
            elif ws.sum() != 0:
                accuracy.append(float(np.sum(ws * correct[pick]) / ws.sum()))
            auc.append(_macro_auc(ys, ps, n_classes, ws))
            for k in signal_classes:
                truth = (ys == k).astype(int)
                if 0 < truth.sum() < len(truth):
                    for eff, value in rejection_at_efficiency(truth, ps[:, k], efficiencies, ws).items():
                        rejection[k][f"{eff:g}"].append(value)
    return {
        "level": level, "n_resamples": n_resamples,
        "method": "bootstrap over test events" if w is None else
                  "bootstrap over weighted test events (events resampled, each carrying its weight)",
        "accuracy": _interval(accuracy, level),
        "roc_auc": _interval(auc, level),
        "rejection": {class_names[k]: {e: _interval(v, level) for e, v in values.items()}
                      for k, values in rejection.items()},
    }


def format_interval(value, interval, digits: int = 3) -> str:
    """``0.812 [0.790, 0.835]``; ``n/a`` without a value; the value alone without an interval."""
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text if not interval else f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
