"""Where training data comes from: one interface, a registry of kinds.

``--data`` may name an image folder (PNG class folders or a folder written by
``imgen``, :mod:`transfer.data.images`) or HDF5 calorimeter arrays
(:mod:`transfer.data.arrays`). Each kind of data is one :class:`DataKind`
in :data:`DATA_KINDS`: a ``claims(config)`` test on the options, a loader that
returns a :class:`DataSource`, and the predictor that scores new data for a
run trained on that kind (``python -m transfer predict``). The first kind that
claims a configuration is used (arrays: ``--x-key`` given or every ``--data``
value an HDF5 file; images otherwise), so adding a kind is one
:func:`register_data_kind` call and no branch anywhere else. What is an HDF5
file, a ``CLASS=FILE`` item or a folder of them is :mod:`imgen.arrays.files`'
to say, not this package's.

A :class:`DataSource` knows every event once: class names, labels, ids and
its default train/validation/test split. :meth:`DataSource.view` turns a split
(the default one, a cross-validation fold, a training-set subset) into a
:class:`DataView`, which fits whatever needs the training events (array
standardisation and crop) and hands numpy batches to the trainer (:mod:`transfer.data.batches`: one
pipeline for every Keras backend).

Example::

    from transfer.config import TrainConfig
    from transfer.data import open_data
    with open_data(TrainConfig(data=["electron=e.h5", "photon=p.h5"], x_key="X")) as source:
        view = source.view()
        view.counts()                # events per split and class
        train = view.dataset("train", batch_size=64, shuffle=True)
"""
from __future__ import annotations

import csv
import importlib
import io
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from imgen.arrays.files import holds_hdf5, is_hdf5_name, item_target
from imgen.split import SPLITS
from transfer.errors import TransferError
from transfer.run_folder import SPLIT_FILE

log = logging.getLogger(__name__)
#: Training events sampled for the input statistics (normalisation of networks from scratch, health checks).
STATISTICS_EVENTS = 10_000


class DataView:
    """The events of one run: indices per split into a :class:`DataSource`, batched by :meth:`dataset`.

    Subclasses set ``kind``, ``input_shape`` ((height, width, channels) the
    model takes), ``input_dtype`` (``"uint8"`` or ``"float32"``) and
    ``channel_names``, and implement :meth:`rows` (the inputs of a split),
    :meth:`run_files` and :meth:`describe`; :meth:`augmentation` where a
    symmetry of the inputs can be drawn on the fly.
    """

    kind = "?"
    input_shape: tuple = ()
    input_dtype = "uint8"
    channel_names: tuple = ()

    def __init__(self, source: "DataSource", splits: dict[str, np.ndarray]):
        self.source = source
        #: How these splits were made; folds and scans overwrite it with their own.
        self.split_source = source.split_source
        self.class_names = list(source.class_names)
        self.splits = {s: np.sort(np.asarray(splits[s], dtype=np.int64)) for s in SPLITS}
        _check_splits(self.splits, source.labels_all, self.class_names, source.describe_origin(), source.strict)
        if source.weights_all is not None:
            from transfer.data.event_weights import check_split_sums

            for split in SPLITS:
                check_split_sums(self.weights(split), split, source.describe_origin(), source.event_weight)

    def labels(self, split: str) -> np.ndarray:
        """Integer labels of ``split``, in the order of :meth:`ids` and :meth:`dataset`."""
        return self.source.labels_all[self.splits[split]]

    def weights(self, split: str) -> np.ndarray | None:
        """The event weights of ``split`` (``--event-weight``, signed, as read), in the order of :meth:`labels`;
        None without weights."""
        weights = self.source.weights_all
        return None if weights is None else weights[self.splits[split]]

    def ids(self, split: str) -> list[str]:
        """One identifier per event of ``split`` (image path, ``file#row``), for predictions.csv."""
        return self.source.ids(self.splits[split])

    def counts(self) -> dict[str, dict[str, int]]:
        """Events per split and class."""
        out = {}
        for split in SPLITS:
            numbers = np.bincount(self.labels(split), minlength=len(self.class_names))
            out[split] = {name: int(n) for name, n in zip(self.class_names, numbers)}
        return out

    def split_table(self) -> str:
        """CSV text ``path,class,split`` of every event of the source (``unused``: in no split)."""
        names = np.full(len(self.source.labels_all), "unused", dtype=object)
        for split, rows in self.splits.items():
            names[rows] = split
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "class", "split"])
        ids = self.source.ids(np.arange(len(names)))
        writer.writerows(zip(ids, (self.class_names[k] for k in self.source.labels_all), names))
        return text.getvalue()

    def input_statistics(self, seed: int = 0, max_events: int = STATISTICS_EVENTS) -> list[dict]:
        """Per channel (a list in channel order) ``channel``, ``mean``, ``variance``, ``std`` and ``max_abs`` of the model inputs (as given, uint8
        pixels or float32 arrays after the transform) over up to ``max_events`` random training events."""
        total = total_sq = None
        max_abs, seen = None, 0
        for x, _ in self.dataset("train", 256, shuffle=True, seed=seed):
            x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
            total = x.sum(axis=0) + (0 if total is None else total)
            total_sq = (x * x).sum(axis=0) + (0 if total_sq is None else total_sq)
            big = np.abs(x).max(axis=0)
            max_abs = big if max_abs is None else np.maximum(max_abs, big)
            seen += len(x) // max(1, int(np.prod(self.input_shape[:2])))
            if seen >= max_events:
                break
        count = seen * int(np.prod(self.input_shape[:2]))
        mean = total / count
        variance = np.maximum(total_sq / count - mean ** 2, 0.0)
        return [{"channel": name, "mean": float(m), "variance": float(v), "std": float(np.sqrt(v)),
                 "max_abs": float(a)} for name, m, v, a in zip(self.channel_names, mean, variance, max_abs)]

    def value_range(self) -> list[list[float]] | None:
        """Per-channel ``[low, high]`` that maps float inputs onto 0..255 for pretrained backbones."""
        return None

    def rows(self, split: str):
        """The inputs of ``split`` for :class:`~transfer.data.batches.Batches`: ``read(positions)``, ``order(seed,
        epoch)``, ``len()``."""
        raise NotImplementedError

    def augmentation(self):
        """``(x, rng, start, total) -> x``: a symmetry of these inputs drawn on the fly (``--augment-on-the-fly``;
        see :func:`transfer.data.batches.physics_augment`), or None."""
        return None

    #: Why :meth:`augmentation` is None, for the error of ``--augment-on-the-fly``.
    no_augmentation = "these inputs have no symmetry to draw on the fly"

    def dataset(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0, augment: bool = False,
                shard: tuple[int, int] = (0, 1), drop_remainder: bool = False, sample_weight=None):
        """The ``(input, label)`` batches of ``split`` for every Keras backend (reshuffled every epoch from
        ``seed``; ``shard`` and ``drop_remainder`` for data-parallel training: :mod:`transfer.data.batches`);
        ``(input, label, weight)`` with ``sample_weight`` (one per event of the split: the loss weights)."""
        from transfer.data.batches import Batches

        draw = None
        if augment:
            draw = self.augmentation()
            if draw is None:
                raise TransferError(f"--augment-on-the-fly: {self.no_augmentation}")
        return Batches(self.rows(split), self.labels(split), batch_size, shuffle=shuffle, seed=seed, augment=draw,
                       shard=shard, drop_remainder=drop_remainder, sample_weight=sample_weight)

    def run_files(self) -> dict[str, str]:
        """Extra files of the run folder (name -> text): the split, how to read new data."""
        return {SPLIT_FILE: self.split_table()}

    def describe(self) -> dict:
        """Facts for metrics.json and report.md (kind, shape, channels, scaling)."""
        return {"data_kind": self.kind, "input_shape": list(self.input_shape), "input_dtype": self.input_dtype,
                "channel_names": list(self.channel_names), "split_source": self.split_source}


class DataSource:
    """Every event of ``--data`` once; subclasses implement :meth:`ids` and :meth:`view`.

    Attributes:
        kind: the :class:`DataKind` name.
        class_names: class names in label order.
        labels_all: integer label of every event.
        default_splits: indices per split of the default split (the
            manifest's, or the project's one rule :func:`imgen.split.assign_split`
            with ``--split`` and ``--seed``).
        split_source: how ``default_splits`` was made.
    """

    kind = "?"
    #: ``--strict``: a validation or test split without some class is an error, not a warning.
    strict = False
    #: Every event's weight (``--event-weight``, :mod:`transfer.data.event_weights`), None without; which choice,
    #: and where the weights were read (for metrics.json).
    weights_all: np.ndarray | None = None
    event_weight = "none"
    event_weight_origin = ""
    class_names: list[str]
    labels_all: np.ndarray
    default_splits: dict[str, np.ndarray]
    split_source: str

    def ids(self, indices: np.ndarray) -> list[str]:
        raise NotImplementedError

    def view(self, splits: dict[str, np.ndarray] | None = None) -> DataView:
        """A :class:`DataView` of ``splits`` (default: :attr:`default_splits`)."""
        raise NotImplementedError

    def event_weights(self, choice: str) -> tuple[np.ndarray, Callable[[int], str]]:
        """``(every event's weight for --event-weight choice, where(index) -> "file, row ..." for errors)``; sets
        :attr:`event_weight_origin`. Kinds with weights override it."""
        raise TransferError(f"{self.describe_origin()}: --event-weight {choice}: these data hold no per-event "
                            "weights; use --event-weight none")

    def check_folds(self) -> None:
        """Raise when cross-validation over all events would leak (e.g. augmented copies)."""

    def describe_origin(self) -> str:
        return "--data"

    def close(self) -> None:
        """Release open files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_splits(splits: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str], origin: str,
                  strict: bool = False) -> None:
    """Every split has events and every class training events; a class absent from validation or test
    warns (its figures cannot be computed and are reported as n/a), or refuses with ``strict``."""
    for split in SPLITS:
        if not len(splits[split]):
            raise TransferError(f"{origin}: the {split} split has no events; use more events or other "
                                "--split fractions")
    missing = [c for k, c in enumerate(class_names) if not np.any(labels[splits["train"]] == k)]
    if missing:
        raise TransferError(f"{origin}: class(es) {', '.join(missing)} have no training events")
    for split in ("validation", "test"):
        absent = [c for k, c in enumerate(class_names) if not np.any(labels[splits[split]] == k)]
        if not absent:
            continue
        message = (f"{origin}: class(es) {', '.join(absent)} have no {split} events, so their {split} figures "
                   "(ROC AUC, background rejection) cannot be computed")
        if strict:
            raise TransferError(f"{message} (--strict); use more events or other --split fractions")
        log.warning("%s; they are reported as n/a (--strict refuses such data)", message)


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class DataKind:
    """One kind of ``--data``.

    Attributes:
        name: ``"images"``, ``"arrays"``...
        claims: ``claims(config) -> bool``: whether this kind reads ``config.data``.
        loader: ``"module:function"``; ``function(config) -> DataSource``,
            imported only when used.
        description: one line for messages and ``--help``.
        predictor: ``"module:function"``; ``function(model_path, inputs,
            batch_size, x_key=None, resample=False) -> DataFrame`` scores new
            data for a run trained on this kind (``data_kind`` in classes.json).
    """

    name: str
    claims: Callable
    loader: str
    description: str
    predictor: str

    def open(self, config) -> DataSource:
        return _load(self.loader)(config)

    def predict(self, model_path, inputs, batch_size: int, x_key=None, resample: bool = False):
        return _load(self.predictor)(model_path, inputs, batch_size, x_key=x_key, resample=resample)


def _load(spec: str) -> Callable:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


#: name -> kind, in the order they are asked to claim a configuration.
DATA_KINDS: dict[str, DataKind] = {}


def register_data_kind(kind: DataKind, first: bool = False) -> DataKind:
    """Add (or replace) ``kind``; ``first=True`` asks it before the others."""
    others = [(name, k) for name, k in DATA_KINDS.items() if name != kind.name]
    DATA_KINDS.clear()
    DATA_KINDS.update([(kind.name, kind), *others] if first else [*others, (kind.name, kind)])
    return kind


def data_kind_for(config) -> DataKind:
    """The first registered kind that claims ``config``."""
    for kind in DATA_KINDS.values():
        if kind.claims(config):
            return kind
    raise TransferError(f"--data {' '.join(config.data_items)}: not a kind of data transfer reads ("
                        + "; ".join(k.description for k in DATA_KINDS.values()) + ")")


def open_data(config) -> DataSource:
    """Open and check ``config.data`` with the kind that claims it, with its event weights (``--event-weight``)."""
    from transfer.data.event_weights import NONE, load_event_weights

    source = data_kind_for(config).open(config)
    source.strict = bool(getattr(config, "strict", False))
    choice = getattr(config, "event_weight", NONE) or NONE
    if choice != NONE:
        try:
            source.weights_all = load_event_weights(source, choice)
        except BaseException:
            source.close()
            raise
        source.event_weight = choice
    return source


def _claims_arrays(config) -> bool:
    """``--x-key`` given, a ``CLASS=...`` item (images never use them), or HDF5 files (or folders of them)."""
    items = config.data_items
    return bool(config.x_key) or any(item_target(item) != item for item in items) \
        or all(is_hdf5_name(item) or holds_hdf5(item) for item in items)


def _claims_images(config) -> bool:
    return True


register_data_kind(DataKind(
    "arrays", _claims_arrays, "transfer.data.arrays:open_array_source",
    "HDF5 arrays: --x-key KEY with CLASS=FILE|FOLDER|GLOB per class, FILE(s) with --y-key and --classes, "
    "or a folder of class folders or files",
    "transfer.data.arrays:predict_arrays"))
register_data_kind(DataKind(
    "images", _claims_images, "transfer.data.images:open_image_source",
    "one image folder with manifest.csv or one PNG subfolder per class",
    "transfer.deploy.predict:predict_image_inputs"))
