"""The matched baseline: gradient-boosted trees on the same events as the network.

A network's test AUC means little alone: 0.96 is poor where trees on a dozen
event numbers reach 0.995. Every training run therefore also fits a
scikit-learn :class:`~sklearn.ensemble.HistGradientBoostingClassifier` on
**exactly the run's train events**, stops it early on **the run's validation
events**, and scores **the run's test events**; ``metrics.json`` gets a
``baseline`` section with the same figures as the network.

What the trees see depends on the data (:data:`BASELINE_INPUTS`, one entry
per data kind):

* images rendered by ``imgen`` from events: the events' physics objects
  (:mod:`imgen.features`: counts of jets, b-jets, leptons; MET, HT, leading
  pts, dilepton mass, ...), read back through the manifest's ``source`` and
  ``event`` columns with the rendering's selection;
* other image folders (or when the source events cannot be found, which is
  said): the images block-averaged down to at most :data:`MAX_PIXEL_FEATURES`;
* HDF5 arrays: the preprocessed cells (after ``--channels``, ``--min-value``,
  ``--crop``, ``--scale``) sum-pooled down to at most
  :data:`MAX_PIXEL_FEATURES`, plus each channel's total.

At most :data:`MAX_TRAIN_EVENTS` training events are used (a fixed random
subset beyond that, recorded), so the baseline costs seconds.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from transfer.errors import TransferError

log = logging.getLogger(__name__)

BASELINES = ("trees", "none")
MAX_PIXEL_FEATURES = 2048
MAX_TRAIN_EVENTS = 100_000
#: Image folders without source events: images are averaged down to at most this many pixels per side.
PIXEL_SIDE = 16


@dataclass
class BaselineInputs:
    """Feature matrices per split and what they are."""

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    description: str
    names: list[str] | None = None
    #: per split, the events (indices into the data source) of the rows, for their weights (``--event-weight``)
    indices: dict[str, np.ndarray] | None = None


def pool_factor(rows: int, cols: int, channels: int, limit: int = MAX_PIXEL_FEATURES) -> int:
    """The smallest square block size that brings ``rows x cols x channels`` to at most ``limit`` values."""
    factor = 1
    while math.ceil(rows / factor) * math.ceil(cols / factor) * channels > limit:
        factor += 1
    return factor


def block_pool(x: np.ndarray, factor: int, reduce: str = "sum") -> np.ndarray:
    """``(n, rows, cols, channels)`` -> ``(n, ceil(rows/f), ceil(cols/f), channels)``, zero-padded blocks."""
    if factor == 1:
        return x
    n, rows, cols, channels = x.shape
    pad_r, pad_c = -rows % factor, -cols % factor
    x = np.pad(x, ((0, 0), (0, pad_r), (0, pad_c), (0, 0)))
    blocks = x.reshape(n, (rows + pad_r) // factor, factor, (cols + pad_c) // factor, factor, channels)
    return blocks.sum(axis=(2, 4)) if reduce == "sum" else blocks.mean(axis=(2, 4))


def _train_subset(indices: np.ndarray, seed: int) -> np.ndarray:
    if len(indices) <= MAX_TRAIN_EVENTS:
        return indices
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, MAX_TRAIN_EVENTS, replace=False))


# --------------------------------------------------------------------------
# Inputs per data kind
# --------------------------------------------------------------------------

def _array_inputs(view, seed: int) -> BaselineInputs:
    ds, transform = view.source.ds, view.transform
    rows, cols, channels = view.input_shape
    factor = pool_factor(rows, cols, channels)
    features, labels, rows_of = {}, {}, {}
    for split in ("train", "validation", "test"):
        indices = view.splits[split]
        if split == "train":
            indices = _train_subset(indices, seed)
        parts, ys, picked = [], [], []
        for piece, x, y in ds.iter_chunks(indices):
            x = transform(x).astype(np.float64)
            pooled = block_pool(x, factor).reshape(len(x), -1)
            parts.append(np.concatenate([pooled, x.sum(axis=(1, 2))], axis=1))
            ys.append(y)
            picked.append(piece)
        features[split], labels[split], rows_of[split] = np.concatenate(parts), np.concatenate(ys), np.concatenate(picked)
    shape = "x".join(str(math.ceil(s / factor)) for s in (rows, cols))
    return BaselineInputs(features, labels, f"preprocessed cells sum-pooled {factor}x{factor} to {shape}x{channels}"
                                           f" plus each channel's total ({features['train'].shape[1]} features)",
                          indices=rows_of)


def _pixel_features(paths: list, side: int = PIXEL_SIDE) -> np.ndarray:
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as image:
            image.load()
            small = image.resize((min(side, image.width), min(side, image.height)), Image.Resampling.BOX)
            rows.append(np.asarray(small, dtype=np.float64).ravel())
    return np.stack(rows)


def _image_inputs(view, seed: int) -> BaselineInputs:
    from imgen.errors import ImgenError
    from imgen.features import FEATURE_NAMES, features_of_sources, read_imgen_config, rendering_settings

    images = view.images
    labels = {split: view.labels(split) for split in ("train", "validation", "test")}
    rows_of = {split: view.splits[split] for split in labels}
    reason = "the folder has no manifest with source events"
    meant = False   # imgen rendered these images from events their manifest names
    if images.sources is not None and all(images.sources) and all(images.events):
        try:
            imgen_config = read_imgen_config(images.root)
            if imgen_config is None:
                reason = f"{images.root} has no imgen-config.json (how the events were selected and drawn)"
            else:
                meant = True
                settings = rendering_settings(imgen_config)
                features = {split: features_of_sources(
                    [(images.sources[i], images.events[i]) for i in view.splits[split]], images.root, settings)
                    for split in labels}
                return BaselineInputs(features, labels, f"physics objects of the source events "
                                      f"({', '.join(FEATURE_NAMES)})", list(FEATURE_NAMES), rows_of)
        except ImgenError as exc:
            reason = str(exc)
    # imgen's images whose events cannot be read (a folder moved without them) change what the network is
    # compared with: trees on pixels are far weaker than on the events' physics objects
    (log.warning if meant else log.info)(
        "baseline on downsampled pixels%s: %s", ", not on the events' physics objects" if meant else "", reason)
    features = {split: _pixel_features([images.root / images.files[i] for i in view.splits[split]])
                for split in labels}
    return BaselineInputs(features, labels, f"pixels averaged down to at most {PIXEL_SIDE}x{PIXEL_SIDE} "
                                            f"({features['train'].shape[1]} features; {reason})", indices=rows_of)


#: data kind -> function(view, seed) -> BaselineInputs
BASELINE_INPUTS: dict[str, Callable] = {"arrays": _array_inputs, "images": _image_inputs}


# --------------------------------------------------------------------------
# Fit and score
# --------------------------------------------------------------------------

@dataclass
class BaselineResult:
    """Validation and test scores of the trees, with what they saw and how long they took."""

    scores: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    description: str
    n_features: int
    n_train: int
    iterations: int
    seconds: float
    #: per split, the events' weights (``--event-weight``, signed) for the figures; None when unweighted
    weights: dict[str, np.ndarray] | None = None


#: Up to this many training events the trees are grown on one thread. Their OpenMP threads wait for each
#: other at every split, and when another process shares the cores (a second job, the training's own input
#: threads, a test worker) a small sample took 30 times longer on 2 threads than on one (96 events: 116 s
#: against 3.8 s; 1,600 events: 27 s against 12 s); large samples keep OpenMP's default.
ONE_THREAD_EVENTS = 20_000


def fit_trees(x_train, y_train, x_val, y_val, num_classes: int, seed: int = 0, sample_weight=None):
    """A HistGradientBoostingClassifier stopped early on the given validation events (not a random
    slice of the training events)."""
    import contextlib

    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    # scikit-learn's default of 20 events per leaf cannot split a sample of a few dozen events at all
    leaf = int(np.clip(len(y_train) // 30, 2, 20))
    model = HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, early_stopping=True,
                                           n_iter_no_change=20, min_samples_leaf=leaf, random_state=seed)
    threads = threadpool_limits(1, user_api="openmp") if len(y_train) <= ONE_THREAD_EVENTS \
        else contextlib.nullcontext()
    with threads:
        model.fit(x_train, y_train, sample_weight=sample_weight, X_val=x_val, y_val=y_val)
    return model


def _class_scores(model, x, num_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per class, also for classes the trees never saw."""
    probabilities = model.predict_proba(x)
    scores = np.zeros((len(x), num_classes))
    scores[:, model.classes_.astype(int)] = probabilities
    return scores


def run_baseline(view, seed: int = 0, class_weight: dict | None = None) -> BaselineResult:
    """Fit the baseline on ``view``'s train events (stopped on its validation events), score both.

    With event weights (``--event-weight``) the trees are fitted with the network's loss weights (|w| x class
    weight, :func:`transfer.data.event_weights.loss_weights`) and their figures use the signed weights."""
    started = time.perf_counter()
    try:
        builder = BASELINE_INPUTS[view.kind]
    except KeyError:
        raise TransferError(f"no baseline for data of kind {view.kind!r}; use --baseline none") from None
    inputs = builder(view, seed)
    # a feature without a single value among the training events (no event with two leptons in a small
    # sample) says nothing, and scikit-learn's binning fails on an all-NaN column: leave it out
    known = ~np.isnan(inputs.features["train"]).all(axis=0)
    inputs.features = {split: x[:, known] for split, x in inputs.features.items()}
    num_classes = len(view.class_names)
    y_train = inputs.labels["train"]
    weights = None if class_weight is None else np.asarray([class_weight[int(k)] for k in y_train])
    events = view.source.weights_all
    if events is not None:
        from transfer.data.event_weights import loss_weights

        weights = loss_weights(events[inputs.indices["train"]], y_train, class_weight)
    model = fit_trees(inputs.features["train"], y_train, inputs.features["validation"], inputs.labels["validation"],
                      num_classes, seed, weights)
    scores = {split: _class_scores(model, inputs.features[split], num_classes) for split in ("validation", "test")}
    seconds = time.perf_counter() - started
    log.info("baseline (gradient-boosted trees on %s): %d iterations, %.1f s", inputs.description,
             model.n_iter_, seconds)
    return BaselineResult(scores=scores, labels={s: inputs.labels[s] for s in scores}, description=inputs.description,
                          n_features=int(inputs.features["train"].shape[1]), n_train=int(len(y_train)),
                          iterations=int(model.n_iter_), seconds=seconds,
                          weights=None if events is None else {s: events[inputs.indices[s]] for s in scores})
