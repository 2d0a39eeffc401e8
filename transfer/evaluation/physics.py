"""The figures physicists quote for a classifier, besides accuracy and AUC.

* background rejection 1/FPR at a fixed signal efficiency (TPR): how many
  background events are let through for each one kept, at the working point
  an analysis would choose;
* the likelihood-ratio discriminant ln(p_s / sum p_b), which turns softmax
  outputs into one score per event with a wide, cuttable range.

Pure NumPy and scikit-learn; results are plain floats and dicts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import roc_curve

DEFAULT_EFFICIENCIES = (0.5, 0.8, 0.9)
#: Probability floor (and 1 - ceiling) in the discriminant, so 0 and 1 stay finite.
EPS = 1e-7


def rejection_at_efficiency(y_true: Sequence[int] | np.ndarray, score: Sequence[float] | np.ndarray,
                            efficiencies: Sequence[float] = DEFAULT_EFFICIENCIES,
                            sample_weight=None) -> dict[float, float | None]:
    """``{efficiency: 1 / FPR}`` at each signal efficiency, interpolated on the ROC curve.

    ``y_true`` is 1 for signal, 0 for background; higher ``score`` means more
    signal-like. FPR at a given TPR is the linear interpolation between the
    ROC points around it (at a TPR reached by several points, the lowest FPR,
    i.e. the best cut). Where no background passes (FPR = 0) the rejection is
    infinite and reported as None, which stays valid JSON; ``summarize_folds``
    skips it.

    Example: y = [1, 0, 1, 0], score = [.9, .8, .7, .6] gives
    ``{0.75: 4.0}`` for efficiency 0.75 (FPR 0.25 halfway between (0, .5) and (.5, 1)).

    ``sample_weight`` (``--event-weight``, signed): efficiency and FPR are fractions of summed weights.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"y_true must hold both 0 (background) and 1 (signal), got {np.unique(y).tolist()}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False, sample_weight=sample_weight)
    tpr_unique, first = np.unique(tpr, return_index=True)  # first = lowest FPR at that TPR
    fpr_best = fpr[first]
    out: dict[float, float | None] = {}
    for eff in efficiencies:
        if not 0 < eff <= 1:
            raise ValueError(f"efficiency must be in (0, 1], got {eff}")
        rate = float(np.interp(eff, tpr_unique, fpr_best))
        out[float(eff)] = None if rate <= 0 else 1.0 / rate
    return out


def weighted_roc(truth, score, sample_weight) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of weighted events (signed weights: fractions of summed weights): the one curve that both
    :func:`weighted_auc` integrates and ``roc.png`` draws, so the figure's AUC is metrics.json's."""
    fpr, tpr, _ = roc_curve(np.asarray(truth).astype(int), np.asarray(score, dtype=np.float64),
                            sample_weight=np.asarray(sample_weight, dtype=np.float64))
    return fpr, tpr


def weighted_auc(truth, score, sample_weight) -> float:
    """ROC AUC of weighted events: the area under the weighted ROC curve (trapezoids, :func:`weighted_roc`).

    scikit-learn's ``roc_auc_score`` with ``sample_weight`` gives the same for non-negative weights, but
    refuses negative ones (NLO generators), whose ROC curve may step back; the area under the curve as it
    goes is then the signed sum that an analysis of the weighted events would see.
    """
    fpr, tpr = weighted_roc(truth, score, sample_weight)
    return float(np.trapezoid(tpr, fpr))


def likelihood_ratio_discriminant(scores: Sequence[Sequence[float]] | np.ndarray, signal_index: int,
                                  eps: float = EPS) -> np.ndarray:
    """ln(p_s / sum of the other classes' p) per event, from (N, K) probabilities.

    Probabilities are clipped to [eps, 1 - eps] (both the signal one and the
    background sum), so a saturated softmax gives about +-ln(1/eps) instead of
    +-inf. For two classes this is the logit of p_s.
    """
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"scores must be (events, classes) with at least 2 classes, got shape {p.shape}")
    if not 0 <= signal_index < p.shape[1]:
        raise ValueError(f"signal_index {signal_index} outside 0..{p.shape[1] - 1}")
    signal = np.clip(p[:, signal_index], eps, 1 - eps)
    background = np.clip(p.sum(axis=1) - p[:, signal_index], eps, 1 - eps)
    return np.log(signal) - np.log(background)
