"""What the training stages are fed besides the events: class weights (``--class-weight``) and on-the-fly
augmentation (``--augment-on-the-fly``), each decided from the options and the data."""
from __future__ import annotations

import numpy as np

from transfer.data import DataView

#: ``--class-weight auto`` weights the classes (balanced) when the largest has this many times the smallest's events.
AUTO_CLASS_WEIGHT_RATIO = 1.5


def resolve_class_weight(mode: str, labels, num_classes: int, event_weights=None) -> dict[int, float] | None:
    """The class weights for ``--class-weight none|balanced|auto`` (auto: balanced for unequal classes).

    With ``event_weights`` (``--event-weight``) the classes are compared and balanced on their summed |weights|:
    what each class weighs in the loss (:func:`transfer.data.event_weights.loss_weights` multiplies them)."""
    if event_weights is not None:
        return _balanced_weight_sums(mode, labels, num_classes, np.abs(np.asarray(event_weights, dtype=np.float64)))
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    unequal = counts.max() > AUTO_CLASS_WEIGHT_RATIO * max(counts.min(), 1)
    if mode == "balanced" or (mode == "auto" and unequal):
        return balanced_class_weights(labels, num_classes)
    return None


def _balanced_weight_sums(mode: str, labels, num_classes: int, weights: np.ndarray) -> dict[int, float] | None:
    """``{class: total / (classes x class total)}`` of summed |event weights|, when ``mode`` asks for it."""
    sums = np.bincount(np.asarray(labels, dtype=np.int64), weights=weights, minlength=num_classes)
    unequal = sums.max() > AUTO_CLASS_WEIGHT_RATIO * sums.min()
    if not (mode == "balanced" or (mode == "auto" and unequal)):
        return None
    return {k: float(sums.sum() / (num_classes * s)) if s > 0 else 1.0 for k, s in enumerate(sums)}


def resolve_augment(requested: bool | None, view: DataView, from_scratch: bool) -> bool:
    """``--augment-on-the-fly``; unset (auto): on for a network trained from scratch on full-azimuth eta-phi
    images that ``imgen`` rendered (phi rotations and eta, phi flips are symmetries of those events, and
    they are what lets a small network trained from scratch generalise from a few thousand images)."""
    if requested is not None:
        return bool(requested)
    return from_scratch and bool(getattr(view, "is_event_image", False))


def balanced_class_weights(labels, num_classes: int) -> dict[int, float]:
    """``{class id: n_events / (num_classes * n_events of the class)}`` (scikit-learn's "balanced")."""
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return {k: float(w) for k, w in enumerate(weights)}
