"""One input pipeline for every Keras backend: numpy batches of a split, as a ``keras.utils.PyDataset``.

TensorFlow, JAX and PyTorch all train from the same :class:`Batches`: plain numpy ``(x, y)`` (or ``(x,)`` to
predict), so a GPU node without TensorFlow trains exactly what a laptop with it trains. What a batch holds is
decided here, once, for every data kind:

* **Rows.** A data kind hands over a *rows* object for the split (:class:`InMemoryRows`: arrays already in
  memory, decoded images, cached features; :class:`DecodedImages`: PNG files decoded in parallel threads, cached
  in memory when they fit; the HDF5 reader's chunked rows in :mod:`transfer.data.arrays`). ``rows.read(positions)``
  returns the inputs of those events; ``rows.order(seed, epoch)`` their order in a shuffled epoch (a permutation
  for rows in memory, a chunk-aware one for HDF5 files, so reads stay contiguous and memory flat).
* **Shuffling** is a function of ``(seed, epoch)`` alone: the same run gives the same batches on every backend,
  on every process of a multi-process job, and whatever the prefetching order.
* **Augmentation** (``augment``: a function ``(x, rng, start, total) -> x``) draws for the whole global batch
  from a generator seeded with ``(seed, epoch, batch)``; each process applies the draws of its own events.
* **Sharding.** With ``shard=(index, count)`` (a multi-process job) every global batch of ``batch_size`` events is
  cut into ``count`` equal parts and process ``index`` gets its part: what Keras' data-parallel JAX trainer
  assembles into one global batch. ``drop_remainder`` leaves out a last batch that would not split evenly (training
  only; validation and test scores are computed on every event).
* **Prefetching.** The next batches are read in a background thread while the current one trains (Keras reads
  ``batches[i]`` in order), so decoding and HDF5 reads overlap the computation on every backend.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

import keras
import numpy as np

#: Batches read ahead of the one being trained on.
PREFETCH_BATCHES = 2
#: Threads that decode PNG files (all cores by default: decoding releases the GIL).
DECODE_THREADS = max(1, os.cpu_count() or 1)


def shuffled(n: int, seed: int, epoch: int) -> np.ndarray:
    """The positions ``0..n-1`` in the order of ``epoch`` of a run seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


class InMemoryRows:
    """Rows of an array in memory (images, features, generated events)."""

    def __init__(self, x: np.ndarray):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def read(self, positions: np.ndarray) -> np.ndarray:
        return self.x[positions]

    def order(self, seed: int, epoch: int) -> np.ndarray:
        return shuffled(len(self.x), seed, epoch)


def decode_png(path: str, channels: int) -> np.ndarray:
    """The uint8 ``(height, width, channels)`` pixels of a PNG, as ``tf.io.decode_png(..., channels)`` gives them
    for the modes the datasets hold (grey, grey + alpha, RGB, RGBA, palette: alpha dropped, palette expanded)."""
    import cv2

    with open(path, "rb") as handle:
        image = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable PNG")
    if image.ndim == 2:
        image = image[..., None]
    elif image.shape[2] >= 3:
        image = image[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
    if channels == 1 and image.shape[2] != 1:
        image = image[..., :1]  # grey + alpha comes back as grey values in every colour channel
    return np.ascontiguousarray(image)


class DecodedImages:
    """PNG files decoded in parallel threads; all of them kept in memory after the first read when they fit
    in ``cache_bytes`` (one decoding pass per run instead of one per epoch)."""

    def __init__(self, paths: Sequence[str], shape: tuple[int, int, int], cache_bytes: int):
        self.paths = list(paths)
        self.shape = tuple(shape)
        self.cached = len(self.paths) * int(np.prod(self.shape)) <= cache_bytes
        self._all: np.ndarray | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, positions) -> np.ndarray:
        out = np.empty((len(positions), *self.shape), np.uint8)

        def one(i):
            out[i] = decode_png(self.paths[positions[i]], self.shape[2])

        with ThreadPoolExecutor(min(DECODE_THREADS, max(1, len(positions)))) as pool:
            list(pool.map(one, range(len(positions))))
        return out

    def read(self, positions: np.ndarray) -> np.ndarray:
        if not self.cached:
            return self._decode(positions)
        with self._lock:
            if self._all is None:
                self._all = self._decode(np.arange(len(self.paths)))
        return self._all[positions]

    def order(self, seed: int, epoch: int) -> np.ndarray:
        return shuffled(len(self.paths), seed, epoch)


def physics_augment(x: np.ndarray, rng: np.random.Generator, start: int = 0, total: int | None = None) -> np.ndarray:
    """Symmetries of full-azimuth eta-phi images, drawn per image: a roll along phi (rows; phi is periodic) and
    flips eta -> -eta (columns) and phi -> -phi (rows).

    The draws are made for the ``total`` events of the global batch and ``x`` gets those of its events
    ``start, start + 1, ...``: every event is augmented the same way however many processes share the batch.
    """
    return symmetry_augment(x, rng, start, total, phi_axis=1, eta_axis=2, roll=True)


def symmetry_augment(x: np.ndarray, rng: np.random.Generator, start: int = 0, total: int | None = None, *,
                     phi_axis: int, eta_axis: int | None = None, roll: bool = True) -> np.ndarray:
    """:func:`physics_augment` on any layout: a roll along ``phi_axis`` (1: rows, 2: columns) when ``roll`` (a
    periodic phi), a flip of it, and a flip of ``eta_axis`` when there is one; drawn per event."""
    n, size = x.shape[0], x.shape[phi_axis]
    total = n if total is None else total
    part = slice(start, start + n)
    shift = rng.integers(0, size, total)[part]
    flip_eta, flip_phi = (rng.random(total) < 0.5)[part], (rng.random(total) < 0.5)[part]
    x = np.array(x, copy=True)
    if roll:
        cells = (np.arange(size)[None, :] - shift[:, None]) % size
        x = x[np.arange(n)[:, None], cells] if phi_axis == 1 else x[np.arange(n)[:, None, None],
                                                                   np.arange(x.shape[1])[None, :, None],
                                                                   cells[:, None, :]]
    if eta_axis is not None:
        x[flip_eta] = np.flip(x[flip_eta], axis=eta_axis)
    x[flip_phi] = np.flip(x[flip_phi], axis=phi_axis)
    return x


class Batches(keras.utils.PyDataset):
    """The batches of one split for ``fit``, ``evaluate`` and ``predict`` (see the module docstring).

    ``labels`` None gives ``(x,)`` batches (prediction); ``batch_size`` is the global batch. ``sample_weight``
    (one per event, with labels) gives ``(x, y, w)`` batches: Keras' per-event weights of the loss.
    """

    def __init__(self, rows, labels: np.ndarray | None, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 augment: Callable[..., np.ndarray] | None = None,
                 shard: tuple[int, int] = (0, 1), drop_remainder: bool = False, prefetch: int = PREFETCH_BATCHES,
                 sample_weight: np.ndarray | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        index, count = shard
        if batch_size % count or (count > 1 and not drop_remainder):
            raise ValueError(f"batches of {batch_size} shared by {count} processes: the batch size must divide by "
                             "the processes and a short last batch be dropped")
        self.rows, self.labels = rows, None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size, self.local_batch, self.shard = int(batch_size), int(batch_size) // count, (index, count)
        self.shuffle, self.seed, self.augment = shuffle, int(seed), augment
        self.n = len(rows)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        if self.sample_weight is not None and (self.labels is None or len(self.sample_weight) != self.n):
            raise ValueError(f"sample weights need labels and one weight per event ({self.n})")
        self.batches = self.n // self.batch_size if drop_remainder else math.ceil(self.n / self.batch_size)
        self.epoch = 0
        self._order = self._make_order()
        self._prefetch = prefetch
        self._pool = ThreadPoolExecutor(1) if prefetch else None
        self._pending: dict[tuple[int, int], Future] = {}

    def _make_order(self) -> np.ndarray:
        return self.rows.order(self.seed, self.epoch) if self.shuffle else np.arange(self.n)

    def __len__(self) -> int:
        return self.batches

    def positions(self, index: int, order: np.ndarray | None = None) -> np.ndarray:
        """The positions (into the split's events) of this process's part of batch ``index``."""
        order = self._order if order is None else order
        start = index * self.batch_size + self.shard[0] * self.local_batch
        return order[start:start + self.local_batch]

    def _load(self, epoch: int, index: int, order: np.ndarray) -> tuple:
        positions = self.positions(index, order)
        x = self.rows.read(positions)
        if self.augment is not None:
            x = self.augment(x, np.random.default_rng([self.seed, epoch, index, 7]), self.shard[0] * len(positions),
                             len(positions) * self.shard[1])
        if self.labels is None:
            return (x,)
        if self.sample_weight is not None:
            return x, self.labels[positions], self.sample_weight[positions]
        return x, self.labels[positions]

    def __getitem__(self, index: int) -> tuple:
        if not 0 <= index < self.batches:
            raise IndexError(f"batch {index} of {self.batches}")
        future = self._pending.pop((self.epoch, index), None)
        batch = future.result() if future is not None else self._load(self.epoch, index, self._order)
        if self._pool is not None:
            for ahead in range(index + 1, min(index + 1 + self._prefetch, self.batches)):
                if (self.epoch, ahead) not in self._pending:
                    self._pending[(self.epoch, ahead)] = self._pool.submit(self._load, self.epoch, ahead, self._order)
        return batch

    def on_epoch_end(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self.epoch += 1
        if self.shuffle:
            self._order = self._make_order()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
