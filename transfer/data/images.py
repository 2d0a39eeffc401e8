"""Image folders -> checked, split, labelled datasets -> numpy batches (:mod:`transfer.data.batches`).

A data folder is either

* written by ``imgen``/``augment``: it holds ``manifest.csv``, whose ``split``
  column (train/validation/test) is used as it is, or
* plain class subfolders of PNG images (``root/<class>/*.png``): the split is
  made by the project's one rule (:func:`hash_split`: fractions ``split``,
  ``seed``, each image's event from its file name) and recorded in the run
  folder as ``split.csv``.

Class names are sorted unless the caller gives ``classes`` (an order, and
possibly a subset). Every image's PNG header is read up front (Pillow), so that
a corrupt file or a mix of sizes or channel counts is reported, naming the
files, before any training starts.

:func:`open_image_source` makes such a folder the ``images`` kind of
:mod:`transfer.data` (uint8 PNGs decoded in parallel threads), next to HDF5
arrays (:mod:`transfer.data.arrays`); the image-only path is
:class:`ImageView`.

Example::

    from transfer.data.images import image_batches, load_image_dataset
    images = load_image_dataset("images/")
    train = image_batches(images.paths("train"), images.labels("train"), images.image_shape, batch_size=32,
                          shuffle=True)
"""
from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgen.errors import ImgenError, ManifestError
from imgen.output.images import check_images as _check_image_files
from imgen.output.manifest import AUGMENTED_FROM, MANIFEST_NAME, SPLITS, read_manifest
from imgen.split import DEFAULT_FRACTIONS, DEFAULT_SEED, image_event_id, split_events
from transfer.data import DataSource, DataView
from transfer.errors import TransferError

log = logging.getLogger(__name__)

#: ``split_source`` of an image folder without a manifest.
SPLIT_SOURCE = "hash of (seed, class, event)"
#: Decoded images of a split are kept in memory up to this size (else decoded again every epoch).
MAX_IMAGE_CACHE_BYTES = 2 << 30


@dataclass
class ImageDataset:
    """A checked image dataset: files, labels, splits and the common image shape.

    Attributes:
        root: the data folder.
        class_names: class names in label order (label ``i`` is ``class_names[i]``).
        files: relative path (forward slashes) of every image.
        classes: class name of every image.
        splits: split (``train``/``validation``/``test``) of every image.
        image_shape: ``(height, width, channels)`` of the decoded images.
        split_source: ``"manifest"`` or :data:`SPLIT_SOURCE` (made here).
        augmented: per image, whether it is an augmented copy (manifest only).
        events, sources: per image, the manifest's ``event`` and ``source``
            (the event it was rendered from; manifest only), for the baseline.
    """

    root: Path
    class_names: list[str]
    files: list[str]
    classes: list[str]
    splits: list[str]
    image_shape: tuple[int, int, int]
    split_source: str
    augmented: list[bool] | None = None
    events: list[str] | None = None
    sources: list[str] | None = None

    def _rows(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]

    def paths(self, split: str) -> list[str]:
        """Absolute paths of the images of ``split``, in a fixed order."""
        return [str(self.root / self.files[i]) for i in self._rows(split)]

    def relative_paths(self, split: str) -> list[str]:
        return [self.files[i] for i in self._rows(split)]

    def labels(self, split: str) -> np.ndarray:
        """Integer labels (indices into :attr:`class_names`) of ``split``."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.array([index[self.classes[i]] for i in self._rows(split)], dtype=np.int64)

    def all_labels(self) -> np.ndarray:
        """Integer label of every image, in :attr:`files` order."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.array([index[c] for c in self.classes], dtype=np.int64)

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of images per split and class."""
        counts = Counter(zip(self.splits, self.classes))
        return {split: {name: counts[(split, name)] for name in self.class_names} for split in SPLITS}

    def split_table(self) -> str:
        """CSV text (``path,class,split``) of the split, for ``split.csv`` in the run folder."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "class", "split"])
        writer.writerows(zip(self.files, self.classes, self.splits))
        return text.getvalue()


def load_image_dataset(root: str | os.PathLike, classes: list[str] | None = None,
                       split: tuple = DEFAULT_FRACTIONS, seed: int = DEFAULT_SEED) -> ImageDataset:
    """Read, check and split the images under ``root`` (see the module docstring).

    Raises:
        TransferError: no images, fewer than two classes, an empty class, a
            split without images, a corrupt or non-PNG file, mixed sizes or
            channel counts, unknown ``classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise TransferError(f"--data {root}: no such folder")
    augmented = events = sources = None
    if (root / MANIFEST_NAME).is_file():
        files, names, splits, augmented, events, sources = _from_manifest(root)
        source = "manifest"
    else:
        files, names = _from_class_folders(root)
        splits = None
        source = SPLIT_SOURCE
    class_names = _choose_classes(root, sorted(set(names)), classes)
    keep = [i for i, name in enumerate(names) if name in class_names]
    files, names = [files[i] for i in keep], [names[i] for i in keep]
    shape = check_images([root / f for f in files])
    if splits is None:
        splits = hash_split(files, names, split, seed)
        where = f"--data {root} (split {','.join(f'{f:g}' for f in split)}, seed {seed})"
    else:
        splits = [splits[i] for i in keep]
        augmented, events, sources = ([column[i] for i in keep] for column in (augmented, events, sources))
        where = str(root / MANIFEST_NAME)
    _check_splits_have_images(where, class_names, names, splits)
    dataset = ImageDataset(root=root, class_names=class_names, files=files, classes=names,
                           splits=splits, image_shape=shape, split_source=source, augmented=augmented,
                           events=events, sources=sources)
    log.info("%s: %d images %dx%dx%d, classes %s, split from %s: %s", root, len(files), *shape,
             ", ".join(class_names), source,
             ", ".join(f"{s} {sum(c.values())}" for s, c in dataset.counts().items()))
    return dataset


def _from_manifest(root: Path) -> tuple[list[str], list[str], list[str], list[bool], list[str], list[str]]:
    try:
        rows = read_manifest(root)
    except ManifestError as exc:
        raise TransferError(str(exc)) from None
    if not rows:
        raise TransferError(f"{root / MANIFEST_NAME}: lists no images")
    return ([r["path"] for r in rows], [r["class"] for r in rows], [r["split"] for r in rows],
            [bool(r.get(AUGMENTED_FROM)) for r in rows], [r.get("event", "") for r in rows],
            [r.get("source", "") for r in rows])


def _from_class_folders(root: Path) -> tuple[list[str], list[str]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise TransferError(f"--data {root}: no {MANIFEST_NAME} and no class subfolders "
                            "(expected root/<class>/*.png)")
    files, names = [], []
    for folder in folders:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        pngs = [p for p in entries if p.suffix.lower() == ".png"]
        if len(pngs) < len(entries):
            log.warning("%s: ignoring %d file(s) that are not .png", folder, len(entries) - len(pngs))
        if not pngs:
            raise TransferError(f"--data {root}: class folder {folder.name}/ holds no PNG images")
        files += [p.relative_to(root).as_posix() for p in pngs]
        names += [folder.name] * len(pngs)
    return files, names


def _choose_classes(root: Path, found: list[str], wanted: list[str] | None) -> list[str]:
    if wanted is not None:
        unknown = [c for c in wanted if c not in found]
        if unknown:
            raise TransferError(f"--classes: {', '.join(unknown)} not in {root} (it has {', '.join(found)})")
        if len(wanted) < len(found):
            log.info("using classes %s only (of %s)", ", ".join(wanted), ", ".join(found))
        found = list(wanted)
    if len(found) < 2:
        raise TransferError(f"--data {root}: classification needs at least two classes, found "
                            f"{len(found)}: {', '.join(found) or 'none'}")
    return found


def _check_splits_have_images(where: str, class_names, names, splits) -> None:
    counts = Counter(zip(splits, names))
    for split in SPLITS:
        if not any(counts[(split, c)] for c in class_names):
            raise TransferError(f"{where}: the {split} split has no images; use more images or other --split "
                                "fractions")
    empty = [c for c in class_names if not counts[("train", c)]]
    if empty:
        raise TransferError(f"{where}: class(es) {', '.join(empty)} have no training images")


def hash_split(files: list[str], classes: list[str], fractions: tuple = DEFAULT_FRACTIONS,
               seed: int = DEFAULT_SEED) -> list[str]:
    """Split name for each image without a manifest, by the project's one rule
    (:func:`imgen.split.assign_split` over (seed, class, event), the event from
    the file name, :func:`imgen.split.image_event_id`): a folder ``imgen``
    rendered keeps its manifest's splits, and adding images never moves one."""
    ids = [image_event_id(f, c) for f, c in zip(files, classes)]
    rows = split_events(ids, classes, seed, fractions)
    splits = [""] * len(files)
    for name, indices in rows.items():
        for i in indices:
            splits[int(i)] = name
    return splits


def check_images(paths: list) -> tuple[int, int, int]:
    """The common decoded shape of PNG files, by the rule of :func:`imgen.output.images.check_images`.

    Raises:
        TransferError: naming the file, for an unreadable, corrupt or non-PNG
            file, an unsupported mode, or sizes/channel counts that differ.
    """
    try:
        return _check_image_files(paths)
    except ImgenError as exc:
        raise TransferError(str(exc)) from None


def image_batches(paths: list[str], labels, shape: tuple[int, int, int], batch_size: int = 32,
                  shuffle: bool = False, seed: int = 0, augment: bool = False):
    """:class:`~transfer.data.batches.Batches` of ``(uint8 image, label)`` (or images alone when ``labels`` is
    None) from PNG files of one ``shape`` (height, width, channels), decoded in parallel and kept in memory when
    they fit (:data:`MAX_IMAGE_CACHE_BYTES`), reshuffled each epoch from ``seed``, with the phi roll and flips of
    :func:`~transfer.data.batches.physics_augment` drawn on the fly when ``augment``."""
    from transfer.data.batches import Batches, DecodedImages, physics_augment

    rows = DecodedImages(paths, shape, MAX_IMAGE_CACHE_BYTES)
    if not rows.cached:
        log.info("decoded images need %.1f GiB: decoding them again every epoch", len(paths) * np.prod(shape) / 2**30)
    return Batches(rows, labels, batch_size, shuffle=shuffle, seed=seed, augment=physics_augment if augment else None)


# --------------------------------------------------------------------------
# The "images" data kind (see transfer.data)
# --------------------------------------------------------------------------

#: Options that only mean something for HDF5 arrays.
ARRAY_ONLY_OPTIONS = {"y_key": "--y-key", "channels": "--channels", "min_value": "--min-value",
                      "crop": "--crop"}


class ImageView(DataView):
    """One run's images: uint8 PNGs, decoded once per split and kept in memory when they fit."""

    kind = "images"
    input_dtype = "uint8"

    def __init__(self, source: "ImageSource", splits):
        super().__init__(source, splits)
        self.images = source.images
        self.input_shape = tuple(self.images.image_shape)
        self.channel_names = tuple(["grey"] if self.input_shape[2] == 1 else ["red", "green", "blue"])
        self._rows: dict = {}

    @property
    def is_event_image(self) -> bool:
        """Full-azimuth eta-phi event images, as ``imgen`` renders events (its imgen-config.json says so)."""
        from imgen.features import read_imgen_config

        try:
            return "render" in (read_imgen_config(self.images.root) or {})
        except ImgenError:  # not readable JSON
            return False

    def _paths(self, split: str) -> list[str]:
        return [str(self.images.root / self.images.files[i]) for i in self.splits[split]]

    def rows(self, split: str):
        """The decoded images of ``split``, shared by every pass over it (training, features, statistics)."""
        from transfer.data.batches import DecodedImages

        if split not in self._rows:
            self._rows[split] = DecodedImages(self._paths(split), self.input_shape, MAX_IMAGE_CACHE_BYTES)
        return self._rows[split]

    def augmentation(self):
        """The phi roll and flips (``--augment-on-the-fly auto`` turns them on for imgen's event images only)."""
        from transfer.data.batches import physics_augment

        return physics_augment

    def describe(self) -> dict:
        return {**super().describe(), "data": str(self.images.root),
                "input_scaling": "uint8 pixels: the backbone's preprocess_input (from scratch: / 255)"}


class ImageSource(DataSource):
    """An image folder (:func:`load_image_dataset`) as a :class:`~transfer.data.DataSource`."""

    kind = "images"

    def __init__(self, images: ImageDataset):
        self.images = images
        self.class_names = list(images.class_names)
        self.labels_all = images.all_labels()
        names = np.asarray(images.splits)
        self.default_splits = {s: np.flatnonzero(names == s) for s in SPLITS}
        self.split_source = images.split_source

    def ids(self, indices) -> list[str]:
        return [self.images.files[int(i)] for i in indices]

    def view(self, splits=None) -> ImageView:
        return ImageView(self, self.default_splits if splits is None else splits)

    def event_weights(self, choice: str):
        """The manifest's weights: ``genWeight``/``xsec``: its ``weight`` column where ``weight_source`` says so
        (imgen records them); another KEY: the manifest column KEY. Errors name the manifest line."""
        from imgen.output.manifest import WEIGHT_COLUMNS
        from transfer.data.event_weights import NAMED

        root = self.images.root
        manifest = root / MANIFEST_NAME
        if self.images.split_source != "manifest":
            raise TransferError(f"--event-weight {choice}: {root} has no {MANIFEST_NAME}, so no per-event weights; "
                                "render the events with python -m imgen, whose manifest records each event's weight")
        try:
            rows = read_manifest(root, check_files=False)
        except ManifestError as exc:
            raise TransferError(str(exc)) from None
        found = {r["path"]: (line, r) for line, r in enumerate(rows, start=2)}
        column = WEIGHT_COLUMNS[0] if choice in NAMED else choice
        header = list(rows[0]) if rows else []
        if choice in NAMED and not any((r.get(WEIGHT_COLUMNS[1]) or "") == choice for r in rows):
            redo = ("re-render it with python -m imgen from NanoAOD files with a genWeight branch (simulation)"
                    if choice == "genWeight" else "re-render it with python -m imgen from CMS JSON files with xsec")
            had = ("no weight column (written before imgen recorded weights)" if column not in header else
                   f"weight_source {sorted({r.get(WEIGHT_COLUMNS[1]) or '(empty)' for r in rows})}")
            raise TransferError(f"{manifest}: --event-weight {choice}: the manifest records no {choice} weights "
                                f"({had}); {redo}, or use --event-weight none")
        if column not in header:
            raise TransferError(f"{manifest}: --event-weight {choice}: no column {choice!r} (it has "
                                f"{', '.join(header)}); for HDF5 arrays KEY names a dataset")
        values = np.empty(len(self.images.files))
        lines = []
        for i, path in enumerate(self.images.files):
            line, row = found[path]
            lines.append(line)
            text = (row.get(column) or "").strip()
            if choice in NAMED and (row.get(WEIGHT_COLUMNS[1]) or "") != choice:
                raise TransferError(f"{manifest}, line {line} ({path}): --event-weight {choice}: this event has "
                                    f"weight_source {row.get(WEIGHT_COLUMNS[1]) or '(empty)'!r}, not {choice}; every "
                                    "event needs one (render all classes from weighted files)")
            try:
                values[i] = float(text)
            except ValueError:
                raise TransferError(f"{manifest}, line {line} ({path}): --event-weight {choice}: weight "
                                    f"{text or '(empty)'!r} is not a number") from None
        self.event_weight_origin = (f"{manifest}, column {column}" + (f" (weight_source {choice})"
                                                                     if choice in NAMED else ""))
        return values, lambda i: f"{manifest}, line {lines[i]} ({self.images.files[i]})"

    def check_folds(self) -> None:
        if self.images.augmented and any(self.images.augmented):
            raise TransferError(f"{self.images.root / MANIFEST_NAME}: holds augmented copies of training "
                                "images; cross-validation over all images would put copies of test images "
                                "into training. Run --folds on the folder before augmentation")

    def describe_origin(self) -> str:
        return f"--data {self.images.root}"


def open_image_source(config) -> ImageSource:
    """The ``images`` data kind: one folder (``config.data``), checked and split."""
    items = config.data_items
    if len(items) != 1:
        raise TransferError(f"--data {' '.join(items)}: images come from one folder; several values are "
                            "for HDF5 arrays (give --x-key)")
    given = [flag for name, flag in ARRAY_ONLY_OPTIONS.items() if getattr(config, name) not in (None, False)]
    if config.scale != "none":
        given.append("--scale")
    if given:
        raise TransferError(f"{', '.join(given)}: only for HDF5 arrays (with --x-key), but --data {items[0]} "
                            "is an image folder")
    return ImageSource(load_image_dataset(items[0], config.classes, config.split, config.seed))
