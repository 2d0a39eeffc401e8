"""K-fold cross-validation splits and their summary, as plain arrays and dicts.

Small physics samples give noisy single-split results; K folds give a mean
and a spread. Every event is in exactly one test fold; each fold's training
part gives up a stratified validation subset for early stopping, so the test
fold is never looked at before the final evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split


@dataclass(frozen=True)
class Fold:
    """Indices (into the labels given) of one fold's train, validation and test parts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def stratified_folds(labels: Sequence[int] | np.ndarray, k: int = 5, seed: int = 0,
                     validation_fraction: float = 0.1) -> list[Fold]:
    """``k`` stratified folds: disjoint test folds covering every event.

    Within each fold, ``validation_fraction`` of the training part (stratified)
    becomes the validation set. Same labels and seed, same folds.
    """
    y = np.asarray(labels)
    if k < 2:
        raise ValueError(f"need at least 2 folds, got k={k}")
    smallest = np.unique(y, return_counts=True)[1].min() if len(y) else 0
    if smallest < k:
        raise ValueError(f"the smallest class has {smallest} events, fewer than k={k} folds")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    folds = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for number, (rest, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        train, validation = train_test_split(rest, test_size=validation_fraction, stratify=y[rest],
                                             random_state=seed + number)
        folds.append(Fold(np.sort(train), np.sort(validation), np.sort(test)))
    return folds


def train_fraction_subset(train: np.ndarray, labels: Sequence[int] | np.ndarray, fraction: float,
                          seed: int = 0) -> np.ndarray:
    """A stratified ``fraction`` of the ``train`` indices (learning curves, ``--train-fraction``)."""
    train = np.asarray(train)
    if not 0 < fraction <= 1:
        raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return train
    y = np.asarray(labels)[train]
    keep, _ = train_test_split(train, train_size=fraction, stratify=y, random_state=seed)
    return np.sort(keep)


def flatten_metrics(metrics: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as ``{"a.b": value}``; other values dropped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_)):
            out[name] = float(value)
    return out


def summarize_folds(fold_metrics: Iterable[Mapping]) -> dict[str, dict[str, float]]:
    """Per metric across folds: ``{"auc": {"mean", "std", "n"}}`` (dotted keys for nested).

    ``std`` is the sample standard deviation (ddof=1; 0 for one fold). Missing
    or non-numeric values (e.g. an infinite rejection stored as None) and
    non-finite numbers are left out of that metric; ``n`` counts the folds used.
    """
    values: dict[str, list[float]] = {}
    for metrics in fold_metrics:
        for name, value in flatten_metrics(metrics).items():
            if math.isfinite(value):
                values.setdefault(name, []).append(value)
    return {name: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                   "n": len(v)} for name, v in values.items()}
