"""Frozen-stage backbone features on disk, shared by the runs of a grid.

The head stage of a pretrained backbone trains on the backbone's outputs,
which do not depend on the optimizer or the fine-tuning regime: every cell of
a grid with the same backbone computes the same features. Inside
:func:`sharing_features`, :func:`shared_features` keeps them in a folder, one
``.npy`` file per key, and the second cell reads what the first one wrote.
Outside it (a single run) nothing is written: the features are computed as
before (and cached across epochs in memory by :mod:`transfer.training.runner`).

The key (:func:`feature_key`) holds everything that decides the features:
backbone, weights (and the weights file's size and time), the size the
backbone sees, the compute precision, the preprocessing of the data view
(kind, shape, channels, scale, crop, the value range of arrays), the events
of the split (ids and labels) and the size and modification time of the files
they come from. Change any of them and the features are computed again.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from imgen._version import __version__
from imgen.atomic import atomic_path

log = logging.getLogger(__name__)

_ACTIVE: contextvars.ContextVar["FeatureStore | None"] = contextvars.ContextVar("feature_store", default=None)


class FeatureStore:
    """A folder of feature arrays, ``<digest>.npy`` with the key beside it as ``<digest>.json``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def path_for(self, key: dict) -> Path:
        text = json.dumps(key, sort_keys=True, default=str)
        return self.folder / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".npy")

    def get_or_compute(self, key: dict, compute) -> np.ndarray:
        """The stored features of ``key``, or ``compute()``, stored atomically for the next run."""
        path = self.path_for(key)
        if path.is_file():
            self.hits += 1
            log.info("%s %s features read from the shared cache (%s)", key.get("backbone"), key.get("split"),
                     path.name)
            return np.load(path)
        self.misses += 1
        features = np.asarray(compute(), dtype=np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, prefix=f".{path.name}-", suffix=".npy") as tmp:
            np.save(tmp, features)
        with atomic_path(path.with_suffix(".json"), prefix=f".{path.stem}-") as tmp:
            Path(tmp).write_text(json.dumps(key, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        return features


def active_store() -> FeatureStore | None:
    return _ACTIVE.get()


@contextmanager
def sharing_features(folder: str | Path) -> Iterator[FeatureStore]:
    """Runs inside this block share frozen-stage features through ``folder``."""
    store = FeatureStore(folder)
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)


def shared_features(key: dict | None, compute) -> np.ndarray:
    """``compute()`` (the backbone's outputs), or what the active store holds for ``key``.

    Without an active store (a single run) or a key, ``compute()`` runs and nothing is written.
    """
    store = active_store()
    if store is None or key is None:
        return compute()
    return store.get_or_compute(key, compute)


def _file_stamps(view, ids: list[str]) -> list:
    """``[file, size, mtime_ns]`` of each distinct file behind ``ids`` (``path`` or ``path#row``)."""
    data = view.describe().get("data")
    root = Path(data) if isinstance(data, str) else None
    stamps = []
    for name in sorted({i.rpartition("#")[0] or i for i in ids}):
        path = Path(name)
        if root is not None and not path.is_absolute():
            path = root / path
        try:
            stat = path.stat()
            stamps.append([name, stat.st_size, stat.st_mtime_ns])
        except OSError:
            stamps.append([name, None, None])
    return stamps


def feature_key(spec, weights, image_size, view, split: str) -> dict:
    """Everything that decides the frozen backbone's outputs on ``split`` of ``view`` (see the module docstring)."""
    import keras

    ids = view.ids(split)
    weights_stamp = None
    if weights.file:
        try:
            stat = Path(weights.file).stat()
            weights_stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            pass
    described = {k: v for k, v in view.describe().items() if k != "split_source"}
    digest = hashlib.sha256("\n".join(ids).encode() + np.asarray(view.labels(split), np.int64).tobytes())
    return {
        "backbone": spec.name, "builder": getattr(spec.builder, "__name__", str(spec.builder)),
        "weights": weights.used, "weights_file": weights.file, "weights_stamp": weights_stamp,
        "image_size": list(image_size), "dtype_policy": keras.config.dtype_policy().name,
        "view": described, "value_range": view.value_range(), "split": split, "n_events": len(ids),
        "events": digest.hexdigest(), "files": hashlib.sha256(json.dumps(_file_stamps(view, ids)).encode()).hexdigest(),
        "hepvision_version": __version__,
    }


def extract_features(score, dataset) -> np.ndarray:
    """Backbone outputs for every image of ``dataset`` (inference mode, one pass); ``score`` is the feature
    model's :class:`~transfer.training.scoring.Scorer` (or any ``batches -> array``)."""
    return np.asarray(score(dataset), dtype=np.float32)


def feature_dataset(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                    shard: tuple[int, int] = (0, 1), drop_remainder: bool = False, sample_weight=None):
    """Batches of cached (features, label[, loss weight]), shuffled like the image pipeline
    (:mod:`transfer.data.batches`)."""
    from transfer.data.batches import Batches, InMemoryRows

    return Batches(InMemoryRows(features), labels, batch_size, shuffle=shuffle, seed=seed, shard=shard,
                   drop_remainder=drop_remainder, sample_weight=sample_weight)
