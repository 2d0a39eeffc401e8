"""Reading calorimeter arrays from HDF5: lazily, in chunks, layers resampled onto one grid.

The three layouts of :mod:`imgen.arrays` (resolved by
:func:`imgen.arrays.files.resolve_source`) are read the same way; layers of
different shapes are resampled onto one grid, conserving energy
(:func:`resample_to_grid`), and stacked as channels.

Files never have to fit in memory: :class:`ArrayDataset` keeps the files
open read-only and reads the events it is asked for (``read_batch``), in
chunks (``iter_chunks``) or in training batches (``batches``). Each row's
identity (:meth:`ArrayDataset.event_ids`: ``file#row``, or the event number in imgen's own output) decides its
split (:func:`split_indices`, the project's one rule; imgen's output keeps the split it records).

This module is pure NumPy + h5py: it never imports TensorFlow.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import h5py
import numpy as np

from imgen.arrays.files import (EVENT_KEY, SPLIT_KEY, ArrayDataError, ArrayPart, ArraySource, file_event_names,
                                is_imgen_hdf5, list_datasets, resolve_source, where)
from imgen.split import DEFAULT_FRACTIONS, DEFAULT_SEED, SPLITS, split_events

if TYPE_CHECKING:
    from imgen.arrays.transform import ArrayTransform

log = logging.getLogger(__name__)

#: Events read per chunk by the chunked passes (a 32x32x2 float32 event is
#: 8 KiB, so 4096 events are 32 MiB).
DEFAULT_CHUNK_EVENTS = 4096
#: Contiguous events kept together when shuffling (see ``iter_chunks``).
DEFAULT_BLOCK_EVENTS = 256
#: Per-file HDF5 chunk cache: large enough that compressed chunks read in
#: several slices are decompressed once.
CACHE_BYTES = 32 * 2**20
#: Rows skipped between two wanted rows before a read is split in two: reading
#: a few unwanted rows is cheaper than another HDF5 call.
MAX_GAP = 16
#: Attributes of an image dataset that may name its channels.
CHANNEL_NAME_ATTRS = ("channel_names", "channels")


# --------------------------------------------------------------------------
# Resampling layers onto one grid
# --------------------------------------------------------------------------

def overlap_matrix(n_source: int, n_target: int) -> np.ndarray:
    """(n_source, n_target): share of source cell i that falls in target cell j.

    Both axes span the same extent [0, 1]; each row sums to one, which is what
    makes the resampling conserve energy exactly.
    """
    src = np.linspace(0.0, 1.0, n_source + 1)
    tgt = np.linspace(0.0, 1.0, n_target + 1)
    low = np.maximum(src[:-1, None], tgt[None, :-1])
    high = np.minimum(src[1:, None], tgt[None, 1:])
    share = np.clip(high - low, 0.0, None)
    return share / share.sum(axis=1, keepdims=True)


def resample_to_grid(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Area-based resampling of (N, H, W[, C]) onto (N, *grid[, C]).

    Every source cell's energy is split over the target cells in proportion to
    their overlap area, so the total of each event and channel is conserved
    (to float rounding). Values are energies per cell, not densities: a coarse
    cell split in four gives four cells of a quarter of its energy.
    """
    h, w = x.shape[1], x.shape[2]
    if (h, w) == tuple(grid):
        return x.astype(np.float32, copy=False)
    rows = overlap_matrix(h, grid[0])
    cols = overlap_matrix(w, grid[1])
    spec = "nhw,hH,wW->nHW" if x.ndim == 3 else "nhwc,hH,wW->nHWc"
    return np.einsum(spec, x.astype(np.float64), rows, cols, optimize=True).astype(np.float32)


def default_grid(shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The common grid of several layers: the most rows by the most columns.

    For (3, 96), (12, 12), (12, 6) this is (12, 96): no layer loses
    resolution along either axis, and where the counts divide (as here)
    every source cell maps onto whole target cells.
    """
    return max(s[0] for s in shapes), max(s[1] for s in shapes)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def _read_sorted(dset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted, unique) of ``dset`` as slices: h5py fancy indexing is slow."""
    out = np.empty((len(rows),) + dset.shape[1:], dtype=dset.dtype)
    if not len(rows):
        return out
    breaks = np.flatnonzero(np.diff(rows) > MAX_GAP) + 1
    start = 0
    for group in np.split(rows, breaks):
        block = dset[int(group[0]):int(group[-1]) + 1]
        out[start:start + len(group)] = block[group - group[0]]
        start += len(group)
    return out


def _check_finite(block: np.ndarray, rows: np.ndarray, path: Path, key: str) -> None:
    if np.issubdtype(block.dtype, np.floating):
        good = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if not good.all():
            raise ArrayDataError(f"{where(path, key)}: NaN or infinite value in event {int(rows[~good][0])}")


def _channel_names(dset: h5py.Dataset, key: str, several_keys: bool) -> list[str]:
    if dset.ndim == 3:
        return [key]
    n = dset.shape[3]
    for attr in CHANNEL_NAME_ATTRS:
        if attr in dset.attrs:
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(dset.attrs[attr])]
            if len(names) == n:
                return names
    return [f"{key}[{c}]" for c in range(n)] if several_keys else [str(c) for c in range(n)]


#: HDF5 attribute naming a dataset's axes, event first (:func:`imgen.arrays.synth.write_realistic_towers` writes
#: ``["event", "eta", "phi"]``): which axis is eta and which phi, for the symmetries of :meth:`ArrayDataset.geometry`.
DIMS_ATTR = "dims"
#: Optional HDF5 attribute listing the periodic axes by name; without it an axis named ``phi`` is the full
#: azimuth, periodic. ``periodic = []`` says a phi axis covers part of the azimuth only (no roll).
PERIODIC_ATTR = "periodic"


def _strings(value) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def dataset_geometry(dset: h5py.Dataset) -> dict:
    """``{"eta": axis, "phi": axis, "phi_periodic": bool}`` of one HDF5 dataset's events from its ``dims``
    attribute (axes counted in the event array, 1 = rows, 2 = columns; a name absent, its key absent); ``{}``
    without a usable ``dims``."""
    if DIMS_ATTR not in dset.attrs:
        return {}
    names = [n.strip().lower() for n in _strings(dset.attrs[DIMS_ATTR])]
    if len(names) not in (dset.ndim, dset.ndim - 1) or len(names) < 3:
        return {}
    out: dict = {axis: names.index(axis) for axis in ("eta", "phi") if axis in names[1:3]}
    if "phi" in out:
        periodic = ([n.strip().lower() for n in _strings(dset.attrs[PERIODIC_ATTR])]
                    if PERIODIC_ATTR in dset.attrs else ["phi"])
        out["phi_periodic"] = "phi" in periodic
    return out


def shuffled_chunks(n: int, block_events: int, chunk_events: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled pass over positions ``0..n-1`` that keeps reads contiguous: blocks of ``block_events``
    consecutive positions in random order, grouped ``chunk_events // block_events`` at a time into chunks, each
    chunk shuffled. Every chunk mixes events from the whole range (every class, even with one file per class)
    while a chunk is read as a few contiguous slices."""
    blocks = np.split(np.arange(n), np.arange(block_events, n, block_events))
    per_chunk = max(1, chunk_events // block_events)
    order = rng.permutation(len(blocks))
    chunks = []
    for start in range(0, len(order), per_chunk):
        chunk = np.sort(np.concatenate([blocks[b] for b in order[start:start + per_chunk]]))
        chunks.append(chunk[rng.permutation(len(chunk))])
    return chunks


class ArrayDataset:
    """Events of an :class:`ArraySource`, read lazily; global index = file order.

    Files stay open read-only until :meth:`close` (or the ``with`` block ends).
    ``event_shape`` is (H, W, C) after resampling layers onto ``grid`` and
    stacking channels; a 2-D event becomes one channel. Pickling drops the open
    handles (they are reopened on use), so the object can go to worker
    processes.
    """

    def __init__(self, source: ArraySource, grid: tuple[int, int] | None = None,
                 check_finite: bool = True):
        self.source = source
        self.check_finite = check_finite
        self._handles: dict[Path, h5py.File] = {}
        self._lock = threading.Lock()  # tf.data may read from two threads (training, validation)
        self._labels: np.ndarray | None = None
        self._ids: list[str] | None = None
        self._recorded_splits = None           # per split, False: the files record none
        try:
            counts, shapes = self._inspect_all()
        except BaseException:
            self.close()
            raise
        several = len(source.x_keys) > 1
        first_file = self._file(source.parts[0].path)
        self.layer_shapes = {k: shapes[k][1] for k in source.x_keys}
        self.channel_names = tuple(name for k in source.x_keys
                                   for name in _channel_names(first_file[k], k, several))
        self.grid = tuple(grid) if grid else default_grid([s[:2] for s in self.layer_shapes.values()])
        self.counts = np.asarray(counts, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        geometries = [dataset_geometry(first_file[k]) for k in source.x_keys]
        #: Which event axis is eta and which phi, and whether phi is periodic, as the files' ``dims`` attribute
        #: says (:func:`dataset_geometry`); ``{}`` when they do not say or their keys disagree.
        self.geometry = geometries[0] if all(g == geometries[0] for g in geometries) else {}
        chunks = first_file[source.x_keys[0]].chunks
        self.block_events = max(DEFAULT_BLOCK_EVENTS, chunks[0] if chunks else 0)

    # -- files -------------------------------------------------------------
    def _file(self, path: Path) -> h5py.File:
        with self._lock:
            handle = self._handles.get(path)
            if handle is None or not handle.id.valid:
                try:
                    handle = h5py.File(path, "r", rdcc_nbytes=CACHE_BYTES)
                except OSError as exc:
                    raise ArrayDataError(f"{path}: not a readable HDF5 file ({exc})") from exc
                self._handles[path] = handle
            return handle

    def _dataset(self, path: Path, key: str) -> h5py.Dataset:
        handle = self._file(path)
        obj = handle.get(key)
        if not isinstance(obj, h5py.Dataset):
            existing = list_datasets(path, handle)
            raise ArrayDataError(f"{where(path, key)}: no such dataset; the file has "
                                 f"{', '.join(existing) if existing else 'no datasets'}")
        return obj

    def _inspect_all(self) -> tuple[list[int], dict[str, tuple[Path, tuple[int, ...]]]]:
        """Events per file and, per key, the first file and its event shape (all must agree)."""
        counts, shapes = [], {}
        for part in self.source.parts:
            n, part_shapes = self._inspect(part)
            counts.append(n)
            for key, shape in part_shapes.items():
                first = shapes.setdefault(key, (part.path, shape))
                if first[1] != shape:
                    raise ArrayDataError(
                        f"{where(part.path, key)}: event shape {shape} differs from {first[1]} in "
                        f"{first[0]} (every file must hold events of the same shape)")
        return counts, shapes

    def _inspect(self, part: ArrayPart) -> tuple[int, dict[str, tuple[int, ...]]]:
        lengths, shapes = {}, {}
        for key in self.source.x_keys:
            dset = self._dataset(part.path, key)
            if dset.ndim not in (3, 4):
                raise ArrayDataError(f"{where(part.path, key)}: shape {dset.shape} is not "
                                     "(events, rows, cols) or (events, rows, cols, channels)")
            lengths[key], shapes[key] = dset.shape[0], tuple(dset.shape[1:])
        if self.source.y_key is not None and part.class_id is None:
            dset = self._dataset(part.path, self.source.y_key)
            if dset.ndim != 1 and dset.shape[1:] != (1,):
                raise ArrayDataError(f"{where(part.path, self.source.y_key)}: labels of shape "
                                     f"{dset.shape}, expected (events,) of class ids")
            lengths[self.source.y_key] = dset.shape[0]
        if len(set(lengths.values())) > 1:
            raise ArrayDataError(f"{part.path}: keys hold different numbers of events: {lengths}")
        n = next(iter(lengths.values()))
        if n == 0:
            raise ArrayDataError(f"{where(part.path, self.source.x_keys[0])}: no events (empty file)")
        return n, shapes

    def close(self) -> None:
        with self._lock:
            for handle in self._handles.values():
                if handle.id.valid:
                    handle.close()
            self._handles.clear()

    def __enter__(self) -> "ArrayDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def __len__(self) -> int:
        return int(self.offsets[-1])

    # -- shape and labels ---------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        return self.source.classes

    @property
    def n_events(self) -> int:
        return len(self)

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return (*self.grid, len(self.channel_names))

    @property
    def labels(self) -> np.ndarray:
        """Class id of every event (int64; -1 when unlabeled), read chunk-wise and range-checked once."""
        if self._labels is None:
            self._labels = np.concatenate([self._part_labels(i) for i in range(len(self.source.parts))])
        return self._labels

    def _part_labels(self, i: int) -> np.ndarray:
        part, n = self.source.parts[i], int(self.counts[i])
        if part.class_id is not None or self.source.y_key is None:  # -1: unlabeled
            return np.full(n, -1 if part.class_id is None else part.class_id, dtype=np.int64)
        dset = self._dataset(part.path, self.source.y_key)
        out = np.empty(n, dtype=np.int64)
        k = len(self.classes)
        for start in range(0, n, DEFAULT_CHUNK_EVENTS * 16):
            raw = np.asarray(dset[start:start + DEFAULT_CHUNK_EVENTS * 16]).reshape(-1)
            if raw.dtype.kind == "f":  # float labels are fine when they are whole numbers
                ids = np.rint(np.nan_to_num(raw, nan=-1.0, posinf=-1.0, neginf=-1.0)).astype(np.int64)
                ids[ids != raw] = -1
            else:
                ids = raw.astype(np.int64)
            bad = (ids < 0) | (ids >= k)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ArrayDataError(f"{where(part.path, self.source.y_key)}: label {raw[j].item()!r} of event "
                                     f"{start + j} is outside the class list {list(self.classes)} "
                                     f"(expected ids 0..{k - 1})")
            out[start:start + len(ids)] = ids
        return out

    def event_column(self, key: str) -> np.ndarray:
        """A per-event number of every file (e.g. a weight, ``transfer --event-weight KEY``) as float64, file
        after file: the 1-D dataset ``key`` (or ``(events, 1)``), one value per event of the file."""
        parts = [self._part_column(i, key) for i in range(len(self.source.parts))]
        return np.concatenate(parts) if parts else np.empty(0)

    def named_weights(self, name: str) -> tuple[np.ndarray, str]:
        """Every event's weight ``name`` (``genWeight``, ``xsec``) and where it was read: per file, its dataset
        ``name`` if it has one, else the ``weight`` imgen wrote (:data:`imgen.output.hdf5.WEIGHT_KEY`) where its
        ``weight_source`` is ``name`` for every event; a file with neither is refused, naming it (and the first
        event whose weight came from elsewhere)."""
        from imgen.output.hdf5 import WEIGHT_KEY, WEIGHT_SOURCE_KEY

        parts, read_from = [], set()
        for i, part in enumerate(self.source.parts):
            handle = self._file(part.path)
            if isinstance(handle.get(name), h5py.Dataset) or not is_imgen_hdf5(part.path, handle):
                parts.append(self._part_column(i, name))   # a dataset of that name (or its "no such dataset")
                read_from.add(f"key {name!r}")
                continue
            if not isinstance(handle.get(WEIGHT_KEY), h5py.Dataset):
                raise ArrayDataError(f"{part.path}: no {name} weights: imgen wrote this file from events without "
                                     f"weights (no {WEIGHT_KEY!r} dataset); render it again with python -m imgen "
                                     "from " + ("NanoAOD files with a genWeight branch" if name == "genWeight" else
                                                "CMS JSON files with xsec" if name == "xsec" else f"events with {name}"))
            sources = self._recorded_column(i, WEIGHT_SOURCE_KEY)
            wrong = [row for row, s in enumerate(sources) if s != name]
            if wrong:
                found = ", ".join(repr(s) if s else "none" for s in sorted(set(sources)))
                raise ArrayDataError(
                    f"{part.path}#{wrong[0]}, key {WEIGHT_SOURCE_KEY!r}: this event's weight is "
                    f"{repr(sources[wrong[0]]) if sources[wrong[0]] else 'absent'}, not {name} ({len(wrong)} of the "
                    f"file's {len(sources)} events have no {name} weight; its weights: {found}); every event needs "
                    f"one: render every class from events with {name}")
            parts.append(self._part_column(i, WEIGHT_KEY))
            read_from.add(f"key {WEIGHT_KEY!r} (weight_source {name})")
        return (np.concatenate(parts) if parts else np.empty(0)), " or ".join(sorted(read_from))

    def _part_column(self, i: int, key: str) -> np.ndarray:
        """The per-event number ``key`` of part ``i`` (:meth:`event_column`)."""
        part, n = self.source.parts[i], int(self.counts[i])
        dset = self._dataset(part.path, key)
        if dset.shape not in ((n,), (n, 1)) or dset.dtype.kind not in "iuf":
            raise ArrayDataError(f"{where(part.path, key)}: shape {dset.shape} of {dset.dtype}, but a per-event "
                                 f"number needs one value per event ({n} numbers)")
        return np.asarray(dset[...], dtype=np.float64).reshape(-1)

    def locate(self, indices: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Global indices -> (part number, row in that file)."""
        idx = np.asarray(indices, dtype=np.int64)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        return part, idx - self.offsets[part]

    def event_ids(self, indices: np.ndarray | Sequence[int] | None = None) -> list[str]:
        """The identity of events (default: all) that decides their split.

        In imgen's own output (:func:`is_imgen_hdf5`) it is the event number the
        file records (its ``event`` key), as in the manifest of the same events
        rendered to PNGs, so every route gives an event the same split. Elsewhere
        it is ``name#row``, ``name`` being the file's path relative to the folder
        all the files share (:func:`file_event_names`), so the identity, and so
        the split, does not depend on the working folder or on how the path was typed.
        """
        if self._ids is None:
            names = file_event_names([p.path for p in self.source.parts])
            ids: list[str] = []
            for i, name in enumerate(names):
                recorded = self._recorded_column(i, EVENT_KEY)
                ids += recorded if recorded is not None else [f"{name}#{r}" for r in range(int(self.counts[i]))]
            self._ids = ids
        if indices is None:
            return list(self._ids)
        return [self._ids[int(i)] for i in np.asarray(indices, dtype=np.int64).reshape(-1)]

    def _recorded_column(self, i: int, key: str) -> list[str] | None:
        """Column ``key`` (``event``, ``split``) of part ``i`` as text, when the file is imgen's output."""
        path = self.source.parts[i].path
        handle = self._file(path)
        if not is_imgen_hdf5(path, handle):
            return None
        dset = handle[key]
        if dset.ndim != 1 or dset.shape[0] != int(self.counts[i]):
            raise ArrayDataError(f"{where(path, key)}: {dset.shape[0]} rows for {int(self.counts[i])} events")
        return [v.decode() if isinstance(v, bytes) else str(v) for v in dset[...].tolist()]

    def recorded_splits(self) -> dict[str, np.ndarray] | None:
        """Indices per split as the files record them (imgen's output, its ``split`` key), or None when a
        file records none."""
        if self._recorded_splits is False:
            return None
        if self._recorded_splits is None:
            columns = [self._recorded_column(i, SPLIT_KEY) for i in range(len(self.source.parts))]
            if any(column is None for column in columns):
                self._recorded_splits = False
                return None
            names = np.array([s for column in columns for s in column], dtype=object)
            bad = sorted(set(names.tolist()) - set(SPLITS))
            if bad:
                part, row = self.locate([int(np.flatnonzero(names == bad[0])[0])])
                raise ArrayDataError(f"{where(self.source.parts[int(part[0])].path, SPLIT_KEY)}: split {bad[0]!r} "
                                     f"of row {int(row[0])} is not one of {', '.join(SPLITS)}")
            self._recorded_splits = {s: np.flatnonzero(names == s).astype(np.int64) for s in SPLITS}
        return self._recorded_splits

    def event_sources(self, indices: np.ndarray | Sequence[int] | None = None) -> list[str]:
        """``file#row`` of events (default: all), the file as given: where each comes from, for the
        export's manifest (``source``), a run's ``split.csv`` and ``predictions.csv`` (``path``)."""
        return self._rows_of([str(p.path) for p in self.source.parts], indices)

    def event_source(self, index: int) -> str:
        """``file#row`` of one event (:meth:`event_sources`)."""
        return self.event_sources([index])[0]

    def _rows_of(self, names: Sequence[str], indices) -> list[str]:
        parts, rows = self.locate(np.arange(len(self)) if indices is None else indices)
        return [f"{names[p]}#{r}" for p, r in zip(parts.tolist(), rows.tolist())]

    # -- reading ------------------------------------------------------------
    def _read_part(self, i: int, rows: np.ndarray) -> np.ndarray:
        path = self.source.parts[i].path
        layers = []
        for key in self.source.x_keys:
            block = _read_sorted(self._dataset(path, key), rows)
            if self.check_finite:
                _check_finite(block, rows, path, key)
            if block.ndim == 3:
                block = block[..., None]
            layers.append(resample_to_grid(block, self.grid))
        return layers[0] if len(layers) == 1 else np.concatenate(layers, axis=-1)

    def read_batch(self, indices: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Events at global ``indices`` (any order, repeats allowed) -> (x float32 NHWC, y int64).

        Rows are read in sorted order, file by file, as contiguous slices.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"event index out of range 0..{len(self) - 1}")
        unique, inverse = np.unique(idx, return_inverse=True)
        parts, rows = self.locate(unique)
        present = np.unique(parts)
        if len(present) == 1:  # the usual case: no copy into a second array
            x = self._read_part(int(present[0]), rows)
        else:
            x = np.empty((len(unique),) + self.event_shape, dtype=np.float32)
            for i in present:
                mask = parts == i
                x[mask] = self._read_part(int(i), rows[mask])
        if len(unique) == len(idx) and np.array_equal(unique, idx):
            return x, self.labels[idx]  # already sorted and unique: no reordering copy
        return x[inverse], self.labels[idx]

    def iter_chunks(self, indices: np.ndarray | Sequence[int] | None = None,
                    chunk_events: int = DEFAULT_CHUNK_EVENTS, shuffle: bool = False,
                    seed: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (indices, x, y) chunks covering ``indices`` (default: all) once.

        Without shuffle, chunks follow the file order. With shuffle, blocks of
        ``block_events`` contiguous events (at least one HDF5 chunk) are drawn
        in random order, ``chunk_events`` worth at a time, read together and
        shuffled: every chunk mixes events from the whole dataset (and so from
        every class, even with one file per class), while reads stay contiguous.
        """
        idx = np.sort(np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64))
        if not shuffle:
            for start in range(0, len(idx), chunk_events):
                piece = idx[start:start + chunk_events]
                yield (piece, *self.read_batch(piece))
            return
        for chunk in shuffled_chunks(len(idx), self.block_events, chunk_events, np.random.default_rng(seed)):
            ranks = np.sort(chunk)
            piece = idx[ranks]
            x, y = self.read_batch(piece)
            order = np.searchsorted(ranks, chunk)  # the chunk's shuffled order, applied to the rows read sorted
            yield piece[order], x[order], y[order]

    def batches(self, indices: np.ndarray | Sequence[int] | None = None, batch_size: int = 128,
                shuffle: bool = False, seed: int | None = None,
                transform: "ArrayTransform | None" = None,
                chunk_events: int = DEFAULT_CHUNK_EVENTS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Training batches (x, y) over ``indices``, one pass; the last may be short.

        Feed to ``tf.data.Dataset.from_generator`` or a ``keras.utils.PyDataset``;
        memory stays at about one chunk whatever the file size.
        """
        carry_x = carry_y = None
        for _, x, y in self.iter_chunks(indices, max(chunk_events, batch_size), shuffle, seed):
            if transform is not None:
                x = transform(x)
            if carry_x is not None:
                x, y = np.concatenate([carry_x, x]), np.concatenate([carry_y, y])
            full = len(x) - len(x) % batch_size
            for start in range(0, full, batch_size):
                yield x[start:start + batch_size], y[start:start + batch_size]
            carry_x, carry_y = (x[full:], y[full:]) if full < len(x) else (None, None)
        if carry_x is not None:
            yield carry_x, carry_y

    def validate(self, chunk_events: int = DEFAULT_CHUNK_EVENTS) -> None:
        """Full chunked pass: labels in range and every value finite (raises ArrayDataError)."""
        _ = self.labels
        for i, part in enumerate(self.source.parts):
            for key in self.source.x_keys:
                dset = self._dataset(part.path, key)
                for start in range(0, int(self.counts[i]), chunk_events):
                    rows = np.arange(start, min(start + chunk_events, int(self.counts[i])))
                    _check_finite(dset[start:start + len(rows)], rows, part.path, key)

    def config(self) -> dict:
        """What ``predict`` needs to read new files the same way (plain JSON types)."""
        return {**self.source.to_dict(), "grid": list(self.grid),
                "layer_grids": {k: list(s[:2]) for k, s in self.layer_shapes.items()},
                "channel_names": list(self.channel_names)}


def open_arrays(data: str | os.PathLike | Sequence[str | os.PathLike], x_key: str | Sequence[str],
                y_key: str | None = None, classes: str | Sequence[str] | None = None,
                grid: tuple[int, int] | None = None, check_finite: bool = True,
                unlabeled: bool = False) -> ArrayDataset:
    """``resolve_source`` then :class:`ArrayDataset`: the one-call entry point.

    Example::

        with open_arrays(["electron=e.h5", "photon=p.h5"], "X") as ds:
            x, y = ds.read_batch([0, 5, 7])
    """
    return ArrayDataset(resolve_source(data, x_key, y_key, classes, unlabeled), grid=grid,
                        check_finite=check_finite)


def split_indices(dataset: ArrayDataset, seed: int = DEFAULT_SEED,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Global indices per split: the split imgen recorded in its own output (as a manifest's split is
    used), else the project's one rule, :func:`imgen.split.split_events`, over (seed, class, event identity,
    :meth:`ArrayDataset.event_ids`): the same splits whether the rows are exported to PNGs
    (``imgen arrays``) or trained on directly (``transfer``)."""
    recorded = dataset.recorded_splits()
    if recorded is not None:
        return recorded
    classes = [dataset.classes[c] for c in dataset.labels.tolist()]
    return split_events(dataset.event_ids(), classes, seed, fractions)


def split_method(dataset: ArrayDataset) -> str:
    """How :func:`split_indices` splits ``dataset``, in words (``split_source`` of a run's metrics)."""
    if dataset.recorded_splits() is not None:
        return f"recorded by imgen in the file (key {SPLIT_KEY!r})"
    if any(is_imgen_hdf5(part.path, dataset._file(part.path)) for part in dataset.source.parts):
        return "hash of (seed, class, event number or file#row)"
    return "hash of (seed, class, file#row)"
