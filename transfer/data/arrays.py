"""The ``arrays`` data kind: HDF5 calorimeter arrays, streamed in float32.

Everything about the files (layouts, keys, classes, reading, the split, the
preprocessing) is :mod:`imgen.arrays`'; this module adds the streaming into
numpy batches (:class:`ArrayRows` for :mod:`transfer.data.batches`), the run's
``arrays.json`` and prediction on new files.

``--data`` and ``--x-key`` go to :func:`imgen.arrays.open_arrays` (its three
layouts: labels from a key, one file or folder per class, several layers
resampled onto one grid), and everything is checked before training: keys,
shapes, labels inside the class list, every value finite (one chunked pass).

Events are never converted to PNG or uint8: training reads float32 batches
chunk by chunk (:class:`ArrayRows`: blocks of contiguous events drawn in an
order reshuffled every epoch, each chunk read once and served from memory), so
memory stays at a few chunks whatever the file size. The
preprocessing (``--channels``, ``--min-value``, ``--crop``, ``--scale``) is an
:class:`imgen.arrays.ArrayTransform` fitted on the training split alone and
saved beside the model as ``arrays.json``, which :func:`predict_arrays`
reads back so that new files are read and scaled exactly the same way.

The split is the project's one rule (:func:`imgen.arrays.split_indices`: a
hash of (seed, class, ``file#row``)), so an event has the split here that
``python -m imgen arrays`` gives it when exporting the same files to PNGs.
imgen's own ``images.h5`` keeps what imgen recorded: its class names (a
contradicting ``--classes`` is refused) and each event's split, as the
manifest of the same events rendered to PNGs does.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from imgen.arrays import (DEFAULT_CHUNK_EVENTS, ArrayTransform, first_hdf5_file, fit_transform, list_datasets,
                          open_arrays, split_indices, split_keys, split_method)
from imgen.errors import ImgenError
from transfer.data import DataSource, DataView
from transfer.errors import TransferError
from transfer.run_folder import ARRAYS_FILE, read_arrays_info

log = logging.getLogger(__name__)

#: ``split_source`` of metrics.json and ``split.method`` of arrays.json, for files other than imgen's own
#: output (whose recorded split is used: :func:`imgen.arrays.split_method`).
SPLIT_SOURCE = "hash of (seed, class, file#row)"
#: Training events sampled for the per-channel range that maps arrays onto 0..255 for pretrained backbones.
VALUE_RANGE_EVENTS = 10_000


def _as_transfer_error(exc: ImgenError) -> TransferError:
    return TransferError(str(exc))


class ArrayRows:
    """The events ``indices`` of an HDF5 dataset, transformed, for :class:`~transfer.data.batches.Batches`.

    A shuffled epoch visits blocks of ``block_events`` contiguous events in random order, grouped into chunks of
    about ``chunk_events`` and shuffled inside each chunk (:func:`imgen.arrays.reader.shuffled_chunks`, the rule
    of :meth:`~imgen.arrays.ArrayDataset.iter_chunks` too): a batch is drawn from one or two chunks, each chunk is
    read from the files once (contiguous slices) and kept until the next is needed.
    """

    #: Chunks kept in memory: the one being served and the one the prefetching thread reads ahead.
    KEEP_CHUNKS = 3

    def __init__(self, dataset, indices, transform: ArrayTransform, chunk_events: int = DEFAULT_CHUNK_EVENTS):
        self.dataset, self.indices = dataset, np.sort(np.asarray(indices, dtype=np.int64))
        self.transform, self.chunk_events = transform, int(chunk_events)
        self._chunks = [np.arange(s, min(s + self.chunk_events, len(self.indices)))
                        for s in range(0, len(self.indices), self.chunk_events)]
        self._chunk_of = self._chunk_index(self._chunks)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.indices)

    def _chunk_index(self, chunks) -> np.ndarray:
        chunk_of = np.empty(len(self.indices), np.int64)
        for k, positions in enumerate(chunks):
            chunk_of[positions] = k
        return chunk_of

    def order(self, seed: int, epoch: int) -> np.ndarray:
        from imgen.arrays.reader import shuffled_chunks

        chunks = shuffled_chunks(len(self.indices), self.dataset.block_events, self.chunk_events,
                                 np.random.default_rng([int(seed), int(epoch)]))
        with self._lock:
            self._chunks, self._chunk_of, self._cache = chunks, self._chunk_index(chunks), {}
        return np.concatenate(chunks) if chunks else np.empty(0, np.int64)

    def _chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted positions, their transformed inputs) of chunk ``k``, read once."""
        if k not in self._cache:
            positions = np.sort(self._chunks[k])
            x, _ = self.dataset.read_batch(self.indices[positions])
            while len(self._cache) >= self.KEEP_CHUNKS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = (positions, self.transform(x))
        return self._cache[k]

    def read(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        with self._lock:
            chunks = np.unique(self._chunk_of[positions])
            if len(chunks) == 1:
                sorted_positions, x = self._chunk(int(chunks[0]))
                return x[np.searchsorted(sorted_positions, positions)]
            out = None
            for k in chunks:
                sorted_positions, x = self._chunk(int(k))
                mine = self._chunk_of[positions] == k
                if out is None:
                    out = np.empty((len(positions), *x.shape[1:]), x.dtype)
                out[mine] = x[np.searchsorted(sorted_positions, positions[mine])]
            return out


class ArrayView(DataView):
    """One run's arrays: the transform fitted on this view's training events, float32 pipelines."""

    kind = "arrays"
    input_dtype = "float32"

    def __init__(self, source: "ArraySource", splits):
        super().__init__(source, splits)
        config = source.config
        try:
            self.transform = fit_transform(source.ds, self.splits["train"], channels=config.channels,
                                           scale=config.scale, min_value=config.min_value, crop=config.crop)
        except ImgenError as exc:
            raise _as_transfer_error(exc) from None
        self.input_shape = tuple(self.transform.output_shape(source.ds.event_shape))
        self.channel_names = tuple(self.transform.channel_names)
        self._value_range = None

    def _symmetries(self) -> dict | None:
        """``phi_axis``, ``eta_axis`` and ``roll`` for :func:`~transfer.data.batches.symmetry_augment` from the
        files' ``dims`` attribute (:attr:`imgen.arrays.ArrayDataset.geometry`), None when they name no phi axis.
        The roll needs a periodic phi axis kept whole: ``--crop`` cutting it leaves the flips only."""
        geometry = self.source.ds.geometry
        phi = geometry.get("phi")
        if phi is None:
            return None
        crop, (h, w) = self.transform.crop, self.source.ds.grid
        whole = crop is None or (crop[0:2] == (0, h) if phi == 1 else crop[2:4] == (0, w))
        return {"phi_axis": phi, "eta_axis": geometry.get("eta"), "roll": bool(geometry["phi_periodic"] and whole)}

    @property
    def is_event_image(self) -> bool:
        """Arrays whose files name a periodic phi axis (``dims``): ``--augment-on-the-fly auto`` rolls and flips
        them as it does imgen's event images."""
        return bool((self._symmetries() or {}).get("roll"))

    def augmentation(self):
        """The phi roll (periodic phi only) and the phi and eta flips, on the axes the files' ``dims`` name."""
        import functools

        from transfer.data.batches import symmetry_augment

        axes = self._symmetries()
        return None if axes is None else functools.partial(symmetry_augment, **axes)

    no_augmentation = ("the files name no phi axis: the roll and flips need the HDF5 attribute dims on the "
                       "dataset, e.g. ['event', 'eta', 'phi'] (periodic unless an attribute periodic says otherwise)")

    def rows(self, split: str) -> ArrayRows:
        return ArrayRows(self.source.ds, self.splits[split], self.transform)

    def value_range(self) -> list[list[float]]:
        """Per channel ``[min, max]`` of up to :data:`VALUE_RANGE_EVENTS` transformed training events."""
        if self._value_range is None:
            low = high = None
            seen = 0
            for _, x, _ in self.source.ds.iter_chunks(self.splits["train"], shuffle=True,
                                                      seed=self.source.config.seed):
                x = self.transform(x)
                lo, hi = x.min(axis=(0, 1, 2)), x.max(axis=(0, 1, 2))
                low = lo if low is None else np.minimum(low, lo)
                high = hi if high is None else np.maximum(high, hi)
                seen += len(x)
                if seen >= VALUE_RANGE_EVENTS:
                    break
            high = np.where(high > low, high, low + 1.0)
            self._value_range = [[float(a), float(b)] for a, b in zip(low, high)]
        return self._value_range

    def arrays_info(self) -> dict:
        """The content of ``arrays.json``: the reader's configuration and the fitted transform."""
        config = self.source.config
        return {"arrays": self.source.ds.config(), "transform": self.transform.to_dict(),
                "split": {"method": self.source.split_source, "fractions": list(config.split), "seed": config.seed}}

    def run_files(self) -> dict[str, str]:
        return {**super().run_files(), ARRAYS_FILE: json.dumps(self.arrays_info(), indent=2) + "\n"}

    def describe(self) -> dict:
        t = self.transform
        return {**super().describe(), "data": list(self.source.config.data_items),
                "x_keys": list(self.source.ds.source.x_keys), "y_key": self.source.ds.source.y_key,
                "grid": list(self.source.ds.grid), "scale": t.scale, "min_value": t.min_value,
                "crop": None if t.crop is None else list(t.crop),
                "input_scaling": f"float32 arrays, --scale {t.scale}; compact networks take them as they are, "
                                 "pretrained backbones get each channel mapped from the training range onto "
                                 "0..255, then their preprocess_input"}


class ArraySource(DataSource):
    """HDF5 arrays opened with :func:`imgen.arrays.open_arrays`; close it (or use ``with``)."""

    kind = "arrays"

    def __init__(self, dataset, config):
        self.ds, self.config = dataset, config
        self.class_names = list(dataset.classes)
        self.labels_all = dataset.labels
        try:
            self.default_splits = split_indices(dataset, config.seed, config.split)
            self.split_source = split_method(dataset)
        except ImgenError as exc:
            raise _as_transfer_error(exc) from None

    def ids(self, indices) -> list[str]:
        return self.ds.event_sources(np.asarray(indices, dtype=np.int64))

    def view(self, splits=None) -> ArrayView:
        return ArrayView(self, self.default_splits if splits is None else splits)

    def describe_origin(self) -> str:
        return f"--data {' '.join(self.config.data_items)}"

    def event_weights(self, choice: str):
        """The per-event dataset ``choice`` of every file; for ``genWeight`` and ``xsec`` also the ``weight``
        imgen's own HDF5 output records with its ``weight_source`` (:meth:`ArrayDataset.named_weights`). Errors
        name file#row."""
        from transfer.data.event_weights import NAMED

        try:
            if choice in NAMED:
                values, read_from = self.ds.named_weights(choice)
            else:
                values, read_from = self.ds.event_column(choice), f"key {choice!r}"
        except ImgenError as exc:
            raise TransferError(f"--event-weight {choice}: {exc}") from None
        self.event_weight_origin = f"HDF5 {read_from} of every file"
        return values, lambda i: f"{self.ds.event_source(i)}, {read_from}"

    def close(self) -> None:
        self.ds.close()


def open_array_source(config) -> ArraySource:
    """The ``arrays`` data kind: open, check every value, split (all before any training)."""
    items = config.data_items
    if not config.x_key:
        first = first_hdf5_file(items[0])
        try:
            keys = f" ({first} holds {', '.join(list_datasets(first)) or 'no datasets'})" if first else ""
        except ImgenError as exc:
            raise _as_transfer_error(exc) from None
        raise TransferError(f"--data {' '.join(items)}: HDF5 input needs --x-key, the dataset key of the "
                            f"images{keys}")
    dataset = None
    try:
        dataset = open_arrays(items, split_keys(config.x_key), config.y_key, config.classes)
        if len(dataset.classes) < 2:
            raise TransferError(f"--data {' '.join(items)}: classification needs at least two classes, found "
                                f"{len(dataset.classes)}: {', '.join(dataset.classes) or 'none'}")
        labels = dataset.labels  # reads and range-checks every label
        missing = [c for k, c in enumerate(dataset.classes) if not np.any(labels == k)]
        if missing:
            raise TransferError(f"--data {' '.join(items)}: class(es) {', '.join(missing)} have no events")
        dataset.validate()  # every value finite: one chunked pass
        log.info("%s: %d events of %s (%s), classes %s", " ".join(items), len(dataset),
                 "x".join(map(str, dataset.event_shape)), ", ".join(dataset.channel_names),
                 ", ".join(f"{c} {n}" for c, n in zip(dataset.classes, np.bincount(labels))))
        return ArraySource(dataset, config)
    except ImgenError as exc:
        if dataset is not None:
            dataset.close()
        raise _as_transfer_error(exc) from None
    except BaseException:
        if dataset is not None:
            dataset.close()
        raise


# --------------------------------------------------------------------------
# Prediction on new files
# --------------------------------------------------------------------------

def check_prediction_grids(dataset, saved: dict, where: str, arrays_file: Path) -> None:
    """Refuse files whose layers have another (rows, cols) than the training files' layers.

    The model learnt patterns on the training grid; resampling a crop or an
    upsampled copy onto it changes every score without a word, so it is done
    only when the user asks for it (``resample=True``, ``--resample``).
    Runs saved before ``layer_grids`` was recorded are checked against
    ``grid`` when they had one key.
    """
    expected = saved.get("layer_grids")
    if expected is None and len(saved["x_keys"]) == 1:
        expected = {saved["x_keys"][0]: saved["grid"]}
    for key, shape in dataset.layer_shapes.items():
        want = (expected or {}).get(key)
        if want is not None and tuple(shape[:2]) != tuple(want):
            raise TransferError(
                f"{where}: key {key} holds {shape[0]}x{shape[1]} cells per event, but the model was trained on "
                f"{want[0]}x{want[1]} ({arrays_file}); its scores on another grid are not comparable. "
                "Pass --resample to resample them onto the training grid anyway")


def predict_arrays(model_path: str | os.PathLike, inputs: list, batch_size: int = 256, x_key=None, model=None,
                   resample: bool = False):
    """Scores of every event of ``inputs`` (HDF5 files, folders, globs): a DataFrame like predictions.csv.

    The files are read with the keys (``x_key``, default: the training keys)
    and grid of the run's ``arrays.json``, their channel names must match the
    training data's, and the saved transform (channels, zero suppression,
    crop, scale with the training statistics) is applied before the model.
    Files whose grid differs from the training files' are refused unless
    ``resample`` (:func:`check_prediction_grids`). Columns: ``path``
    (``file#row``), ``score_<class>`` per class, ``predicted_class``.
    """
    from transfer.evaluation.metrics import predictions_table
    from transfer.run_folder import load_model, read_classes, require_model

    if model is None:
        model_path = require_model(model_path)
    class_names = read_classes(model_path)["classes"]
    info = read_arrays_info(model_path)
    saved, transform = info["arrays"], ArrayTransform.from_dict(info["transform"])
    try:
        keys = split_keys(x_key) if x_key else tuple(saved["x_keys"])
        dataset = open_arrays([str(p) for p in inputs], keys, unlabeled=True, classes=class_names,
                              grid=tuple(saved["grid"]))
    except ImgenError as exc:
        raise _as_transfer_error(exc) from None
    with dataset:
        where = ", ".join(str(p.path) for p in dataset.source.parts[:3]) + (
            ", ..." if len(dataset.source.parts) > 3 else "")
        if list(dataset.channel_names) != list(saved["channel_names"]):
            raise TransferError(f"{where}: channels {list(dataset.channel_names)}, but the model was trained on "
                                f"{list(saved['channel_names'])} ({Path(model_path).with_name(ARRAYS_FILE)})")
        if not resample:
            check_prediction_grids(dataset, saved, where, Path(model_path).with_name(ARRAYS_FILE))
        model = model or load_model(model_path)
        shape = transform.output_shape(dataset.event_shape)
        if tuple(model.input_shape[1:]) != tuple(shape):
            raise TransferError(f"{where}: events become {shape} after the saved transform, but {model_path} "
                                f"takes {tuple(model.input_shape[1:])}")
        scores = []
        try:
            for _, x, _ in dataset.iter_chunks():
                scores.append(np.asarray(model.predict(transform(x), batch_size=batch_size, verbose=0),
                                         dtype=np.float64))
        except ImgenError as exc:
            raise _as_transfer_error(exc) from None
        ids = dataset.event_sources()
    return predictions_table(ids, np.concatenate(scores), class_names)
