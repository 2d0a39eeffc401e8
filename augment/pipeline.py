"""Augmentation pipelines and the dataset-level ``augment`` stage.

Three layers, each callable from a notebook with the names the CLI uses:

* the operation registry :data:`OPERATIONS` (name -> factory) and the presets
  :data:`PRESETS`; :func:`parse_ops` reads ``--ops`` strings such as
  ``"phi_shift:1.0,eta_flip:0.5,rotate:1.0"``;
* :func:`build_pipeline` returns an ``Augmentor.Pipeline`` holding those
  operations, and :func:`augment_image` applies it to one PIL image with its
  own seed (Augmentor's ``sample()`` is not used: it draws from the global
  random state and writes files with random UUID names);
* :func:`augment_dataset` reads an ``imgen`` folder and its manifest, expands
  the training split of each class and writes a complete dataset (validation
  and test images copied byte for byte) with an ``augmented_from`` column.

Example::

    from augment.pipeline import augment_dataset
    summary = augment_dataset("images", preset="physics", per_class=2000, seed=1)
    print(summary.format())
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import random
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping, Sequence, Union

import Augmentor
import numpy as np
from Augmentor.Operations import Operation, RotateRange, ZoomRandom
from PIL import Image
from tqdm import tqdm

from imgen._version import __version__
from imgen.atomic import staged_folder
from imgen.errors import ImgenError, ManifestError
from imgen.output.images import check_images
from imgen.output.manifest import AUGMENTED_FROM, COLUMNS, MANIFEST_NAME, read_manifest, write_manifest

from .operations import BackgroundFill, EtaFlip, PhiFlip, PhiShift, QuietSkew, SafeShear

__all__ = [
    "AugmentError",
    "OpInfo",
    "OPERATIONS",
    "PRESETS",
    "DEFAULT_PRESET",
    "DEFAULT_FACTOR",
    "DEFAULT_SEED",
    "parse_ops",
    "resolve_ops",
    "build_pipeline",
    "image_seed",
    "augment_image",
    "default_output_dir",
    "ClassSummary",
    "AugmentSummary",
    "augment_dataset",
]

log = logging.getLogger(__name__)

#: Image modes that are augmented (8 bits per band; what ``imgen`` writes).
SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")
DEFAULT_PRESET = "physics"
DEFAULT_FACTOR = 2.0
DEFAULT_SEED = 0
#: Written into every output folder: how it was made.
CONFIG_NAME = "augment-config.json"


class AugmentError(ValueError):
    """Bad input to ``augment``: the message names the file, class or option and the problem."""


# --------------------------------------------------------------------------
# Registry and presets
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class OpInfo:
    """One entry of :data:`OPERATIONS`.

    ``factory(probability)`` returns a fresh ``Augmentor.Operations.Operation``;
    ``physical`` says whether the result is still a possible event.
    """

    factory: Callable[[float], Operation]
    physical: bool
    description: str
    default_probability: float = 1.0


#: Every operation ``--ops`` and the presets can name. Adding one is one entry.
OPERATIONS: dict[str, OpInfo] = {
    "phi_shift": OpInfo(
        lambda p: PhiShift(p), True,
        "cyclic shift along phi (vertical) by a random number of rows; rows leaving one edge "
        "come back on the other", 1.0),
    "eta_flip": OpInfo(
        lambda p: EtaFlip(p), True,
        "reflection eta -> -eta (left-right mirror; Augmentor's flip_left_right)", 0.5),
    "phi_flip": OpInfo(
        lambda p: PhiFlip(p), True,
        "reflection phi -> -phi (top-bottom mirror; Augmentor's flip_top_bottom)", 0.5),
    "rotate": OpInfo(
        lambda p: BackgroundFill(RotateRange(p, max_left_rotation=5, max_right_rotation=5)), False,
        "rotate by up to 5 degrees either way, crop and resize back (Augmentor's rotate)", 1.0),
    "zoom_random": OpInfo(
        lambda p: ZoomRandom(p, percentage_area=0.8, randomise=False), False,
        "crop a random 80% x 80% window and resize it back (Augmentor's zoom_random)", 0.5),
    "shear": OpInfo(
        lambda p: BackgroundFill(SafeShear(p, max_shear_left=20, max_shear_right=20)), False,
        "shear along eta or phi by up to 20 degrees (Augmentor's shear, fixed for tall/wide images)",
        0.5),
    "skew": OpInfo(
        lambda p: BackgroundFill(QuietSkew(p, skew_type="RANDOM", magnitude=1)), False,
        "random perspective skew, magnitude 1 (Augmentor's skew)", 0.3),
}

#: Presets: name -> (description, operations with their probabilities).
PRESETS: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "physics": (
        "only transformations that keep the image a possible event: phi_shift (p=1), "
        "eta_flip (p=0.5), phi_flip (p=0.5)",
        (("phi_shift", 1.0), ("eta_flip", 0.5), ("phi_flip", 0.5)),
    ),
    "paper": (
        "the published pipeline: rotate up to 5 degrees (p=1), flip left-right (p=0.5), "
        "zoom_random 80% area (p=0.5), flip top-bottom (p=0.5), shear up to 20 degrees (p=0.5), "
        "skew (p=0.3). Rotation, shear, skew and zoom mix eta with phi and distort the sizes "
        "that encode pt, so its images are no longer possible events",
        (("rotate", 1.0), ("eta_flip", 0.5), ("zoom_random", 0.5), ("phi_flip", 0.5),
         ("shear", 0.5), ("skew", 0.3)),
    ),
}

OpSpec = Union[str, Sequence[Union[tuple[str, float], str, Operation]]]


def parse_ops(spec: str) -> list[tuple[str, float]]:
    """Parse ``"name:probability,name,..."`` into ``[(name, probability), ...]``.

    A name without ``:probability`` gets the registry's default probability.
    Names must be keys of :data:`OPERATIONS`; probabilities lie in [0, 1].
    """
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise AugmentError(f"--ops {spec!r}: no operations given; choose from {', '.join(OPERATIONS)}")
    ops = []
    for item in items:
        name, sep, value = (part.strip() for part in item.partition(":"))
        if name not in OPERATIONS:
            raise AugmentError(f"--ops: unknown operation {name!r}; choose from {', '.join(OPERATIONS)}")
        if sep:
            try:
                probability = float(value)
            except ValueError:
                raise AugmentError(f"--ops: {item!r}: probability {value!r} is not a number") from None
        else:
            probability = OPERATIONS[name].default_probability
        ops.append((name, probability))
    return ops


def resolve_ops(preset: str | None = DEFAULT_PRESET, ops: OpSpec | None = None) -> list[tuple[str, float] | Operation]:
    """The operation list a preset or an ``ops`` spec stands for (``ops`` wins when given)."""
    if ops is None:
        if preset not in PRESETS:
            raise AugmentError(f"preset {preset!r}: unknown; choose from {', '.join(PRESETS)}")
        return list(PRESETS[preset][1])
    if isinstance(ops, str):
        return list(parse_ops(ops))
    resolved: list[tuple[str, float] | Operation] = []
    for item in ops:
        if isinstance(item, Operation):
            resolved.append(item)
        elif isinstance(item, str):
            resolved.extend(parse_ops(item))
        else:
            try:
                name, probability = item
                probability = float(probability)
            except (TypeError, ValueError):
                raise AugmentError(f"ops: {item!r} is not a (name, probability) pair") from None
            if name not in OPERATIONS:
                raise AugmentError(f"ops: unknown operation {name!r}; choose from {', '.join(OPERATIONS)}")
            resolved.append((name, probability))
    if not resolved:
        raise AugmentError("ops: no operations given")
    return resolved


def build_pipeline(preset: str | None = DEFAULT_PRESET, ops: OpSpec | None = None) -> Augmentor.Pipeline:
    """An ``Augmentor.Pipeline`` (no source folder) holding the preset's or ``ops``' operations.

    ``ops`` may be a ``--ops`` string, or a list of ``(name, probability)``
    pairs and ready ``Augmentor.Operations.Operation`` objects (your own).
    More operations can be added with ``pipeline.add_operation(op)``; apply it
    with :func:`augment_image`.
    """
    pipeline = Augmentor.Pipeline()
    for item in resolve_ops(preset, ops):
        if isinstance(item, Operation):
            operation = item
        else:
            name, probability = item
            if not 0.0 <= probability <= 1.0:
                raise AugmentError(f"operation {name!r}: probability {probability} is not between 0 and 1")
            operation = OPERATIONS[name].factory(probability)
        pipeline.add_operation(operation)
    return pipeline


# --------------------------------------------------------------------------
# Applying a pipeline to one image, deterministically
# --------------------------------------------------------------------------

def image_seed(seed: int, source: str, index: int) -> int:
    """A 64-bit seed for the ``index``-th image generated from ``source`` (stable across runs and platforms)."""
    digest = hashlib.sha256(f"{seed}\0{source}\0{index}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global random state (what Augmentor draws from), then restore both."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def augment_image(pipeline: Augmentor.Pipeline, image: Image.Image, seed: int) -> Image.Image:
    """Apply ``pipeline``'s operations to ``image``; the same seed gives the same result.

    Each operation runs when a uniform draw in [0, 1) is below its
    probability, so probability 1 always runs and 0 never does. (Augmentor's
    own ``_execute`` rounds the draw to one decimal, which runs a
    probability-0 operation 5% of the time.) Size and mode are kept.
    """
    images = [image]
    with _seeded(seed):
        for operation in pipeline.operations:
            if random.random() < operation.probability:
                images = operation.perform_operation(images)
    result = images[0]
    if result.size != image.size or result.mode != image.mode:
        raise AugmentError(f"operation changed the image from {image.mode} {image.size} "
                           f"to {result.mode} {result.size}")
    return result


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassSummary:
    """Training images of one class: ``originals`` + ``generated`` = ``total``; ``target`` was asked for."""

    name: str
    originals: int
    generated: int
    target: int

    @property
    def total(self) -> int:
        return self.originals + self.generated

    @property
    def note(self) -> str:
        if self.originals >= self.target and self.generated == 0:
            return f"already has {self.originals} >= {self.target}: kept all, generated none"
        return ""


@dataclass
class AugmentSummary:
    """What :func:`augment_dataset` wrote. ``copied`` counts the carried-over validation/test images."""

    input_dir: Path
    output_dir: Path
    operations: list[str]
    seed: int
    classes: list[ClassSummary]
    copied: dict[str, int] = field(default_factory=dict)
    extra_files: list[str] = field(default_factory=list)

    @property
    def generated(self) -> int:
        return sum(c.generated for c in self.classes)

    def to_dict(self) -> dict:
        return {
            "input_dir": str(self.input_dir), "output_dir": str(self.output_dir),
            "operations": list(self.operations), "seed": self.seed,
            "classes": [{"name": c.name, "originals": c.originals, "generated": c.generated,
                         "total": c.total, "target": c.target} for c in self.classes],
            "copied": dict(self.copied), "extra_files": list(self.extra_files),
        }

    def format(self) -> str:
        """A plain-text table for the CLI (training split per class, then the other splits)."""
        width = max([len("class")] + [len(c.name) for c in self.classes])
        lines = [f"{'class':<{width}}  {'originals':>9}  {'generated':>9}  {'total':>7}"]
        for c in self.classes:
            line = f"{c.name:<{width}}  {c.originals:>9}  {c.generated:>9}  {c.total:>7}"
            lines.append(f"{line}  ({c.note})" if c.note else line)
        lines.append(f"operations: {', '.join(self.operations)}; seed {self.seed}")
        if self.copied:
            lines.append("copied unchanged: " + ", ".join(f"{n} {split}" for split, n in self.copied.items()))
        lines.append(f"wrote {self.generated} new training images to {self.output_dir}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# The dataset-level stage
# --------------------------------------------------------------------------

def default_output_dir(input_dir: str | os.PathLike) -> Path:
    """``images/`` -> ``images_augmented/`` next to it."""
    resolved = Path(input_dir).resolve()
    return resolved.with_name(resolved.name + "_augmented")


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _check_output(input_dir: Path, out_dir: Path, overwrite: bool) -> None:
    if _inside(out_dir, input_dir):
        raise AugmentError(f"--out {out_dir}: is the input folder or inside it; "
                           "augment never writes into its input")
    if _inside(input_dir, out_dir):
        raise AugmentError(f"--out {out_dir}: contains the input folder {input_dir}")
    if out_dir.exists() or out_dir.is_symlink():
        if not overwrite:
            raise AugmentError(f"--out {out_dir}: already exists; pass --overwrite to replace it")
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise AugmentError(f"--out {out_dir}: exists and is not a folder; not replacing it")
        if any(out_dir.iterdir()) and not _is_augment_output(out_dir):
            raise AugmentError(f"--out {out_dir}: exists and was not written by augment "
                               f"(no {MANIFEST_NAME} with an {AUGMENTED_FROM} column); not replacing it")


def _is_augment_output(folder: Path) -> bool:
    try:
        with (folder / MANIFEST_NAME).open(newline="", encoding="utf-8") as handle:
            return AUGMENTED_FROM in next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _target(count: int, per_class: int | None, factor: float | None) -> int:
    if per_class is not None:
        return per_class
    return int(math.floor(count * factor + 0.5))


def _check_counts(per_class: int | None, factor: float | None) -> tuple[int | None, float | None]:
    if per_class is not None and factor is not None:
        raise AugmentError("give either per_class (--per-class) or factor (--factor), not both")
    if per_class is None and factor is None:
        factor = DEFAULT_FACTOR
    if per_class is not None:
        if not isinstance(per_class, (int, np.integer)) or isinstance(per_class, bool) or per_class < 1:
            raise AugmentError(f"--per-class {per_class!r}: must be a whole number of images, at least 1")
        per_class = int(per_class)
    else:
        try:
            factor = float(factor)
        except (TypeError, ValueError):
            raise AugmentError(f"--factor {factor!r}: not a number") from None
        if not math.isfinite(factor) or factor < 1:
            raise AugmentError(f"--factor {factor:g}: must be at least 1 (augment never drops images)")
    return per_class, factor


def _read_rows(input_dir: Path) -> tuple[list[dict[str, str]], list[str]]:
    try:
        rows = read_manifest(input_dir, check_files=True)
    except ManifestError as error:
        raise AugmentError(str(error)) from error
    manifest = input_dir / MANIFEST_NAME
    with manifest.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    columns = list(COLUMNS) + [c for c in header if c not in COLUMNS and c != AUGMENTED_FROM]
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        where = f"{manifest}, line {number}"
        if row["path"] in seen:
            raise AugmentError(f"{where}: image {row['path']} is listed twice (also line {seen[row['path']]})")
        seen[row["path"]] = number
        if not row["class"].strip():
            raise AugmentError(f"{where}: image {row['path']} has an empty class")
        if (row.get(AUGMENTED_FROM) or "").strip():
            raise AugmentError(f"{manifest}: already augmented ({row['path']} is augmented from "
                               f"{row[AUGMENTED_FROM]}); augment the original folder instead")
    return rows, columns


def _load_image(path: Path) -> Image.Image:
    """Open and fully decode a PNG; errors name the file."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.format != "PNG":
                raise AugmentError(f"{path}: is {image.format}, not PNG")
            if image.mode not in SUPPORTED_MODES:
                raise AugmentError(f"{path}: image mode {image.mode} is not supported "
                                   f"(8-bit {', '.join(SUPPORTED_MODES)} only)")
            return image.copy()
    except AugmentError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise AugmentError(f"{path}: unreadable or truncated image ({error})") from error


@dataclass(frozen=True)
class _Job:
    source: str          # manifest path of the source image
    path: str            # manifest path of the new image
    index: int           # k in <stem>_aug<k>.png


def _plan(train: Mapping[str, list[dict[str, str]]], targets: Mapping[str, int],
          taken: set[str]) -> dict[str, list[_Job]]:
    """Which source makes which new image: round-robin over the sources sorted by path."""
    plan: dict[str, list[_Job]] = {}
    for name, rows in train.items():
        sources = sorted(row["path"] for row in rows)
        needed = max(0, targets[name] - len(sources))
        jobs = []
        for number in range(needed):
            source = sources[number % len(sources)]
            index = number // len(sources) + 1
            parent = PurePosixPath(source).parent
            new = str(parent / f"{PurePosixPath(source).stem}_aug{index}.png")
            if new in taken:
                raise AugmentError(f"class {name!r}: generated image {new} (from {source}) would "
                                   "overwrite an image of the input with the same name")
            taken.add(new)
            jobs.append(_Job(source, new, index))
        plan[name] = jobs
    return plan


def augment_dataset(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    preset: str | None = DEFAULT_PRESET,
    ops: OpSpec | None = None,
    per_class: int | None = None,
    factor: float | None = None,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    progress: bool = True,
) -> AugmentSummary:
    """Expand the training images of each class of an ``imgen`` folder; write a complete dataset.

    ``per_class`` is the number of training images each class ends with
    (originals included; a class that already has as many keeps all of them
    and gets none); ``factor`` multiplies each class's training count
    (rounded half up). Give at most one; the default is ``factor=2``.
    Validation and test images, original training images and any other
    top-level files are copied unchanged. Operations come from ``preset``
    (``"physics"`` or ``"paper"``) or ``ops`` (see :func:`build_pipeline`).
    The output (default ``<input>_augmented`` next to the input) is written to
    a temporary folder and renamed into place, so a failed run leaves nothing;
    an existing output is replaced only with ``overwrite=True``.

    Raises :class:`AugmentError` naming the file, class or option on bad input.
    """
    input_dir = Path(input_dir).resolve()
    if not input_dir.is_dir():
        raise AugmentError(f"{input_dir}: not a folder (expected a folder written by `python -m imgen`)")
    out_dir = default_output_dir(input_dir) if out_dir is None else Path(out_dir).resolve()
    _check_output(input_dir, out_dir, overwrite)
    per_class, factor = _check_counts(per_class, factor)
    pipeline = build_pipeline(preset, ops)
    operation_names = [f"{item}:{item.probability:g}" if isinstance(item, Operation) else f"{item[0]}:{item[1]:g}"
                       for item in resolve_ops(preset, ops)]

    # ---- validate everything before writing anything
    rows, columns = _read_rows(input_dir)
    train: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        train.setdefault(row["class"], [])
        if row["split"] == "train":
            train[row["class"]].append(row)
    train = dict(sorted(train.items()))
    if not train:
        raise AugmentError(f"{input_dir / MANIFEST_NAME}: lists no images")
    for name, class_rows in train.items():
        if not class_rows:
            raise AugmentError(f"class {name!r}: no training images in {input_dir / MANIFEST_NAME} "
                               "(nothing to augment from)")
    train_paths = [row["path"] for class_rows in train.values() for row in class_rows]
    for path in tqdm(train_paths, desc="checking", unit="img", disable=not progress, leave=False):
        _load_image(input_dir / path)
    try:  # every image copied, validation and test too, by the rule transfer reads them with
        check_images([input_dir / row["path"] for row in rows])
    except ImgenError as error:
        raise AugmentError(f"{input_dir / MANIFEST_NAME}: {error}") from None
    targets = {name: _target(len(class_rows), per_class, factor) for name, class_rows in train.items()}
    plan = _plan(train, targets, {row["path"] for row in rows})
    by_path = {row["path"]: row for row in rows}
    extra_files = sorted(p.name for p in input_dir.iterdir()
                         if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith("."))

    # ---- write into a temporary sibling, then rename into place
    with staged_folder(out_dir) as tmp:
        total = len(rows) + sum(len(jobs) for jobs in plan.values())
        with tqdm(total=total, desc="augment", unit="img", disable=not progress) as bar:
            for row in rows:
                target = tmp / row["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(input_dir / row["path"], target)
                bar.update()
            new_rows = []
            for name, jobs in plan.items():
                source_image: tuple[str, Image.Image] | None = None
                for job in jobs:
                    if source_image is None or source_image[0] != job.source:
                        source_image = (job.source, _load_image(input_dir / job.source))
                    try:
                        image = augment_image(pipeline, source_image[1], image_seed(seed, job.source, job.index))
                    except AugmentError as error:
                        raise AugmentError(f"{input_dir / job.source}: {error}") from error
                    except Exception as error:  # an Augmentor operation failed on this image
                        raise AugmentError(f"{input_dir / job.source}: augmentation failed "
                                           f"({type(error).__name__}: {error})") from error
                    image.save(tmp / job.path, format="PNG")
                    new_rows.append({**by_path[job.source], "path": job.path, "split": "train",
                                     AUGMENTED_FROM: job.source})
                    bar.update()
        for name in extra_files:
            shutil.copyfile(input_dir / name, tmp / name)
        write_manifest(tmp, [*({**row, AUGMENTED_FROM: ""} for row in rows), *new_rows],
                       columns=[*columns, AUGMENTED_FROM])
        # The configuration of the run, next to its results (reproducibility).
        (tmp / CONFIG_NAME).write_text(json.dumps({
            "hepvision_version": __version__, "input_dir": str(input_dir), "preset": preset,
            "ops": ops if isinstance(ops, str) or ops is None else operation_names,
            "operations": operation_names, "per_class": per_class, "factor": factor, "seed": seed,
            "train_images_per_class": targets}, indent=2) + "\n", encoding="utf-8")

    copied: dict[str, int] = {}
    for row in rows:
        if row["split"] != "train":
            copied[row["split"]] = copied.get(row["split"], 0) + 1
    classes = [ClassSummary(name, len(train[name]), len(plan[name]), targets[name]) for name in train]
    for c in classes:
        if c.note:
            log.info("class %s: %s", c.name, c.note)
    return AugmentSummary(input_dir, out_dir, operation_names, seed, classes, copied, extra_files)
