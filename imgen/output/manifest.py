"""The dataset manifest: the spine that ties every image to its event and split.

Every image folder written by ``imgen`` (and by ``augment``) holds
``manifest.csv`` with one row per image. ``augment`` and ``transfer`` read the
splits from it, so that no copy of a validation or test event can reach
training.
"""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping

from imgen.atomic import atomic_file
from imgen.errors import ManifestError
from imgen.output.images import TMP_PREFIX

MANIFEST_NAME = "manifest.csv"
#: Columns every manifest has, in this order. ``path`` is relative to the
#: dataset root and uses forward slashes.
COLUMNS = ("path", "class", "event", "source", "split")
#: Columns ``python -m imgen`` adds after them: the run and luminosity block of
#: the event (NanoAOD ``run``/``luminosityBlock``, JSON ``run``/``lumi``), empty
#: where the input has none. ``event`` is only unique within a run.
RUN_COLUMNS = ("run", "lumi")
#: Columns after those: the event's weight and where it came from (``genWeight``: NanoAOD's branch, ``xsec``:
#: the JSON sample's cross section), empty where the input has none; ``transfer --event-weight`` reads them.
#: Manifests written before they existed have no such columns, which readers take as "no weights".
WEIGHT_COLUMNS = ("weight", "weight_source")
#: Extra column written by ``augment``: the ``path`` of the source image of a
#: generated image, empty for originals.
AUGMENTED_FROM = "augmented_from"
SPLITS = ("train", "validation", "test")


def manifest_path(root: str | os.PathLike) -> Path:
    return Path(root) / MANIFEST_NAME


def path_problem(path: str) -> str | None:
    """Why a manifest ``path`` is refused (absolute, ``..``, backslashes, empty), or None if it is fine.

    The one rule for every reader (``augment``, ``transfer``): an image of a
    dataset lies inside the dataset folder, so a manifest can never make a
    reader open (or a writer copy) a file elsewhere.
    """
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or (len(path) > 1 and path[1] == ":"):
        return (f"path {path!r} must be relative to the dataset folder, with forward slashes and no '..'")
    return None


def read_manifest(root: str | os.PathLike, check_files: bool = True) -> list[dict[str, str]]:
    """Rows of ``root/manifest.csv`` as dicts; errors name the file and row (paths: :func:`path_problem`)."""
    path = manifest_path(root)
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest (expected a folder written by `python -m imgen`)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; has {reader.fieldnames}")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        problem = path_problem(row["path"] or "")
        if problem:
            raise ManifestError(f"{path}, line {number}: {problem}")
        if row["split"] not in SPLITS:
            raise ManifestError(f"{path}, line {number}: split {row['split']!r} is not one of {SPLITS}")
        if check_files and not (Path(root) / row["path"]).is_file():
            raise ManifestError(f"{path}, line {number}: image {row['path']} does not exist")
    return rows


def write_manifest(root: str | os.PathLike, rows: Iterable[Mapping[str, object]],
                   columns: Iterable[str] = COLUMNS, *, name: str = MANIFEST_NAME) -> Path:
    """Write ``root/manifest.csv`` atomically (temporary file, then rename).

    ``name`` gives another file name (the shard manifests of ``imgen.output.staging``).
    """
    path = Path(root) / name
    columns = list(columns)
    with atomic_file(path, "w", newline="", encoding="utf-8", prefix=".manifest-", suffix=".csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


#: Columns of the manifest of a rendering run
SPOOL_COLUMNS = COLUMNS + RUN_COLUMNS + WEIGHT_COLUMNS


class ManifestSpool:
    """Manifest rows of the run so far, in a temporary CSV in ``out``.

    ``mark()`` before an input file and ``rollback()`` if it fails, so the
    manifest only lists files read to the end.
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        fd, self._path = tempfile.mkstemp(prefix=TMP_PREFIX + "manifest-", suffix=".csv", dir=self.out)
        self._handle = os.fdopen(fd, "w+", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._mark = 0
        self.count = 0
        self._mark_count = 0

    def add(self, path: str, class_name: str, event: str, source: str, split: str,
            run: int | None = None, lumi: int | None = None, weight: float | None = None,
            weight_source: str | None = None) -> None:
        self._writer.writerow((path, class_name, event, source, split,
                               "" if run is None else run, "" if lumi is None else lumi,
                               "" if weight is None else repr(float(weight)), weight_source or ""))
        self.count += 1

    def mark(self) -> None:
        self._handle.flush()
        self._mark, self._mark_count = self._handle.tell(), self.count

    def rollback(self) -> None:
        self._handle.flush()
        self._handle.seek(self._mark)
        self._handle.truncate()
        self.count = self._mark_count

    def rows(self) -> Iterator[dict[str, str]]:
        self._handle.flush()
        with open(self._path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                yield dict(zip(SPOOL_COLUMNS, row))

    def finish(self, name: str = MANIFEST_NAME) -> Path:
        """Write ``out/<name>`` (with :func:`imgen.output.manifest.write_manifest`), drop the spool."""
        try:
            return write_manifest(self.out, self.rows(), SPOOL_COLUMNS, name=name)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the spool; closing may fail to flush its last rows (a full disk): it goes either way."""
        try:
            self._handle.close()
        except OSError:
            pass
        finally:
            Path(self._path).unlink(missing_ok=True)
