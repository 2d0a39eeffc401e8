"""Per-event weights, ``--event-weight genWeight|xsec|KEY|none``: where they are read, how they are checked, how
they enter the loss.

Simulated samples are weighted: NanoAOD's generator weight ``genWeight`` (negative for some events of NLO
generators), the sample's cross section ``xsec`` of CMS JSON files, or a per-event dataset of HDF5 files. The
weight travels with the event: ``python -m imgen`` records it in ``manifest.csv`` (``weight``, and
``weight_source``: ``genWeight`` or ``xsec``), HDF5 files hold it as a dataset next to the images. Each data
kind reads its own (:meth:`transfer.data.DataSource.event_weights`); this module checks them once, before any
training, and turns them into what the loss gets.

The one policy (README, "Event weights"):

* **figures** (accuracy, loss, ROC AUC, rejection, confusion matrix, the baseline's, the bootstrap intervals)
  use the weights **signed**, as an analysis sums its weighted events: a negative weight cancels a positive one;
* **the loss** gets ``|w| x class weight``, normalised so that the mean training weight is 1 (the learning
  rate means the same as unweighted). Signed weights in a cross-entropy make the loss unbounded below (a
  negative-weight event is pushed towards the wrong class without limit), and the network's scores estimate
  the same class probabilities either way when negative weights are a small correction; with ``balanced`` (or
  ``auto``) class weights the classes are balanced on their summed |weights|, not their event counts.

Errors name the file and the row: a non-finite weight, an event without one, a manifest without the weights
asked for (re-render it with imgen), a split whose weights sum to zero.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from transfer.errors import TransferError

#: ``--event-weight`` without weights.
NONE = "none"
#: Choices with a meaning of their own (any other value is a KEY: an HDF5 dataset, a manifest column).
NAMED = {"genWeight": "NanoAOD's generator weight (imgen's manifest.csv, weight_source genWeight)",
         "xsec": "the sample's cross section of CMS JSON files (imgen's manifest.csv, weight_source xsec)"}
#: How the loss and the figures use the weights (recorded in metrics.json).
LOSS_RULE = "|w| x class weight, normalised to a mean of 1 over the training events"
FIGURES_RULE = "signed weights (negative weights subtract)"


def load_event_weights(source, choice: str) -> np.ndarray | None:
    """Every event's weight of ``source`` (in its event order) for ``--event-weight choice``, checked; None for
    ``none``."""
    if choice in (None, NONE):
        return None
    values, where = source.event_weights(choice)
    check_finite(np.asarray(values, dtype=np.float64), where, choice)
    return np.asarray(values, dtype=np.float64)


def check_finite(values: np.ndarray, where: Callable[[int], str], choice: str) -> None:
    """Refuse a NaN or infinite weight, naming the file and the row (``where(index)``)."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise TransferError(f"{where(i)}: --event-weight {choice}: weight {float(values[i])!r} is not finite{more}; "
                            "fix or drop that event")


def check_split_sums(weights: np.ndarray, split: str, origin: str, choice: str) -> None:
    """A split whose weights are all zero, or sum to zero, has no weighted figures: refuse it."""
    if weights is None or not len(weights):
        return
    if not np.any(weights) or float(np.sum(weights)) == 0.0:
        raise TransferError(f"{origin}: --event-weight {choice}: the weights of the {split} split sum to zero "
                            f"({len(weights)} events); its weighted figures are undefined. Check the weights "
                            "(e.g. collision data written with xsec 0) or use --event-weight none")


def loss_weights(event_weights: np.ndarray, labels: np.ndarray, class_weight: dict | None = None) -> np.ndarray:
    """The per-event weights of the loss: ``|w| x class_weight[label]``, with a mean of 1 (module docstring)."""
    w = np.abs(np.asarray(event_weights, dtype=np.float64))
    if class_weight is not None:
        w = w * np.asarray([class_weight[int(k)] for k in np.asarray(labels)], dtype=np.float64)
    mean = float(w.mean()) if len(w) else 0.0
    if mean <= 0:
        raise TransferError("--event-weight: the training events' weights are all zero")
    return w / mean


def describe(view, choice: str) -> dict:
    """metrics.json's ``event_weights``: what was read, how it is used, sums and negative fractions per split."""
    from imgen.split import SPLITS

    out = {"choice": choice, "read_from": view.source.event_weight_origin, "loss": LOSS_RULE,
           "figures": FIGURES_RULE, "sum": {}, "negative_fraction": {}}
    for split in SPLITS:
        w = view.weights(split)
        out["sum"][split] = float(np.sum(w))
        out["negative_fraction"][split] = float(np.mean(w < 0)) if len(w) else 0.0
    return out
