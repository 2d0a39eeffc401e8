"""Deterministic partitions of events: train/validation/test splits and shards.

Both come from a stable hash (BLAKE2b, not Python's salted ``hash()``) of the
event's identity, never from its position in a file, so re-rendering, adding
files, resuming or sharding never moves an event to another split or shard.

:func:`assign_split` is the one split rule of the project: every route asks it
(``imgen`` rendering JSON or ROOT events, ``imgen arrays`` exporting HDF5 rows
to PNGs, ``transfer`` reading HDF5 arrays or an image folder without a
manifest), so an event has the same split whichever route it takes. The
identity of an event is

* rendered events: the manifest's ``event`` (the event number);
* HDF5 array rows: ``file#row`` (:func:`imgen.arrays.event_ids`);
* PNGs without a manifest: the file name without ``<class>_`` and ``.png``
  (:func:`image_event_id`), which is the ``event`` of an image ``imgen`` rendered.

Stratification by class is a property of the rule: the class is hashed with
the event, so each class is split at the fractions on its own, whatever the
other classes hold (exactly in expectation; a class of a few events may miss a
split, which ``transfer`` reports).
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np

from imgen.errors import ImgenError

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
#: The split seed of every route (``imgen --seed``, ``imgen arrays --seed``, ``transfer --seed``): 0, the
#: seed every dataset rendered so far was split with, so none of them moves.
DEFAULT_SEED = 0
#: Most shards a run may be cut into (a batch farm of 100,000 jobs is already far beyond use).
MAX_SHARDS = 100_000


def _unit(person: bytes, *parts: object) -> float:
    """A number in [0, 1) fixed by ``parts``; ``person`` keeps uses independent."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    digest = hashlib.blake2b(text, digest_size=8, person=person).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def parse_fractions(spec: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1): three non-negative numbers summing to 1."""
    try:
        values = [float(v) for v in (spec.split(",") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or min(values) < 0 or not all(map(math.isfinite, values)) \
            or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ImgenError(f"split fractions {spec!r}: expected three non-negative numbers "
                         f"train,validation,test summing to 1, e.g. 0.8,0.1,0.1")
    return values[0], values[1], values[2]


def assign_split(event_id: str | int, class_name: str, seed: int = DEFAULT_SEED,
                 fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """``"train"``, ``"validation"`` or ``"test"`` for one event, from (seed, class, event).

    Pure and stable across runs, machines and Python versions; an integer
    event id and its decimal string are the same event.
    """
    train, validation, _ = parse_fractions(fractions)
    u = _unit(b"hepvision-split", seed, class_name, event_id)
    if u < train:
        return "train"
    if u < train + validation:
        return "validation"
    return "test"


def split_events(event_ids: Sequence[str | int], class_names: Sequence[str], seed: int = DEFAULT_SEED,
                 fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Indices per split (sorted int64 arrays) of events given by identity and class, by :func:`assign_split`."""
    fractions = parse_fractions(fractions)
    if len(event_ids) != len(class_names):
        raise ImgenError(f"{len(event_ids)} event ids for {len(class_names)} class names")
    names = np.array([assign_split(e, c, seed, fractions) for e, c in zip(event_ids, class_names)], dtype=object)
    return {s: np.flatnonzero(names == s).astype(np.int64) for s in SPLITS}


def image_event_id(relpath: str, class_name: str) -> str:
    """The event id of an image without a manifest: ``W/W_10924.png`` -> ``10924``.

    The file name without its suffix and without ``<class>_`` in front (how
    ``imgen`` names the images it renders, :func:`imgen.output.images.image_relpath`),
    so a rendered folder whose manifest is lost keeps its splits.
    """
    stem = relpath.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    prefix = f"{class_name}_"
    return stem[len(prefix):] if stem.startswith(prefix) and len(stem) > len(prefix) else stem


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"2/8"`` -> (2, 8): the third of eight parts (counted from 0)."""
    if spec is None:
        return None
    try:
        index, count = (int(v) for v in (spec.split("/") if isinstance(spec, str) else spec))
    except (TypeError, ValueError):
        raise ImgenError(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise ImgenError(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    if count > MAX_SHARDS:
        raise ImgenError(f"--shard {spec!r}: {count} shards is more than the {MAX_SHARDS:,} allowed (each shard "
                         "writes its own manifest); use fewer, larger shards")
    return index, count


def assign_shard(event_id: str | int, class_name: str, count: int) -> int:
    """Which of ``count`` shards renders this event: from (class, event), the
    identity of its image, so two shards never write the same file."""
    return int(_unit(b"hepvision-shard", class_name, event_id) * count)
