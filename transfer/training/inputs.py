"""What the training stages are fed besides the events: class weights (``--class-weight``) and on-the-fly
augmentation (``--augment-on-the-fly``), each decided from the options and the data."""
from __future__ import annotations

import numpy as np

from transfer.data import DataView

#: ``--class-weight auto`` weights the classes (balanced) when the largest has this many times the smallest's events.
AUTO_CLASS_WEIGHT_RATIO = 1.5


def resolve_class_weight(mode: str, labels, num_classes: int) -> dict[int, float] | None:
    """The class weights for ``--class-weight none|balanced|auto`` (auto: balanced for unequal classes)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    unequal = counts.max() > AUTO_CLASS_WEIGHT_RATIO * max(counts.min(), 1)
    if mode == "balanced" or (mode == "auto" and unequal):
        return balanced_class_weights(labels, num_classes)
    return None


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
