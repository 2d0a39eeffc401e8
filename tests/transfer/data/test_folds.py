"""transfer.data.folds: K-fold splits and their summary."""
from __future__ import annotations

import math

import numpy as np
import pytest

from transfer.data.folds import flatten_metrics, stratified_folds, summarize_folds, train_fraction_subset

LABELS = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_test_folds_disjoint_and_covering_and_parts_disjoint():
    folds = stratified_folds(LABELS, k=5, seed=1)
    assert len(folds) == 5
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(len(LABELS)))  # every event tested exactly once
    for fold in folds:
        parts = [set(fold.train.tolist()), set(fold.validation.tolist()), set(fold.test.tolist())]
        assert sum(map(len, parts)) == len(LABELS)
        assert set.union(*parts) == set(range(len(LABELS)))
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_stratification_holds():
    for fold in stratified_folds(LABELS, k=5, seed=2, validation_fraction=0.2):
        assert np.bincount(LABELS[fold.test]).tolist() == [12, 6, 2]
        assert np.bincount(LABELS[fold.validation], minlength=3).tolist() == [10, 5, 1]


def test_deterministic_with_seed():
    a, b = stratified_folds(LABELS, 4, seed=3), stratified_folds(LABELS, 4, seed=3)
    assert all(np.array_equal(x.test, y.test) and np.array_equal(x.validation, y.validation) for x, y in zip(a, b))
    c = stratified_folds(LABELS, 4, seed=4)
    assert not all(np.array_equal(x.test, y.test) for x, y in zip(a, c))


def test_bad_fold_counts():
    with pytest.raises(ValueError, match="at least 2"):
        stratified_folds(LABELS, 1)
    with pytest.raises(ValueError, match="smallest class has 10"):
        stratified_folds(LABELS, 11)


def test_train_fraction_subset_is_stratified_subset():
    train = np.arange(100)
    half = train_fraction_subset(train, LABELS, 0.5, seed=0)
    assert len(half) == 50 and set(half) <= set(train)
    assert np.bincount(LABELS[half]).tolist() == [30, 15, 5]
    assert train_fraction_subset(train, LABELS, 1.0) is train
    with pytest.raises(ValueError):
        train_fraction_subset(train, LABELS, 0.0)


def test_summarize_folds_mean_std_dotted_keys():
    folds = [
        {"accuracy": 0.8, "rejection": {"0.5": 10.0, "0.9": None}, "backbone": "cnn", "ok": True},
        {"accuracy": 0.9, "rejection": {"0.5": 20.0, "0.9": 4.0}},
        {"accuracy": 1.0, "rejection": {"0.5": 30.0, "0.9": float("inf")}},
    ]
    summary = summarize_folds(folds)
    assert set(summary) == {"accuracy", "rejection.0.5", "rejection.0.9"}
    assert summary["accuracy"]["mean"] == pytest.approx(0.9)
    assert summary["accuracy"]["std"] == pytest.approx(0.1)  # sample std of 0.8, 0.9, 1.0
    assert summary["rejection.0.5"] == {"mean": 20.0, "std": 10.0, "n": 3}
    assert summary["rejection.0.9"] == {"mean": 4.0, "std": 0.0, "n": 1}  # None and inf left out
    assert flatten_metrics({"a": {"b": {"c": np.float32(2)}}}) == {"a.b.c": 2.0}
    assert math.isfinite(summarize_folds([{"x": 1}])["x"]["std"])
