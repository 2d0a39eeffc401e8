"""Output of a rendering run: PNG files, manifest, HDF5, run configuration.

Promises, and how they are kept:

* An interrupted run never leaves half a file in place: images are written
  into a staging folder and reach ``OUT/<class>/`` by ``os.replace`` once
  complete; the manifest, the HDF5 file and the configuration are written
  under a temporary name in their final folder, then ``os.replace``-d.
* A malformed input file never leaves half an output: the images of one
  input file are written to a staging folder (``OUT/.imgen-staging/<id>/``)
  and moved to ``OUT/<class>/`` only once the whole file has been read. A
  file that turns out malformed half-way has its staging folder deleted; a
  run that is killed leaves it for the next run to reuse (resume).
* Resume: an image that already exists (in place or staged) is not rendered
  again, unless ``overwrite``, when the record inside it
  (:mod:`imgen.provenance`: source file, event, settings fingerprint) is the
  one of the event being rendered; otherwise a staged image is rendered again
  and an image in place stops the run. A run with other settings is refused
  as a whole (``imgen-config.json``, its ``fingerprint``) unless it overwrites.
  After a complete unsharded run, images of earlier runs that the manifest no
  longer lists are removed (:func:`remove_unlisted_images`).
* Shards: shard I of N writes ``manifest-shard-I-of-N.csv`` (and
  ``images-shard-I-of-N.h5``) next to the images; :func:`merge_shard_manifests`
  (``python -m imgen merge-shards OUT``) joins them into ``manifest.csv``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from imgen.atomic import move_into_place, temp_file_beside, write_atomic
from imgen.errors import ImgenError
from imgen.manifest import COLUMNS, MANIFEST_NAME, RUN_COLUMNS, SPLITS, write_manifest
from imgen.provenance import read_provenance

STAGING = ".imgen-staging"
CONFIG_NAME = "imgen-config.json"
HDF5_NAME = "images.h5"
_TMP_PREFIX = ".tmp-"
_SHARD_MANIFEST = re.compile(r"manifest-shard-(\d+)-of-(\d+)\.csv\Z")
#: Columns of the manifest of a rendering run
SPOOL_COLUMNS = COLUMNS + RUN_COLUMNS


def image_relpath(class_name: str, event_id: str) -> str:
    """``Wjets/Wjets_10924.png``: relative to the dataset root, forward slashes."""
    return f"{class_name}/{class_name}_{event_id}.png"


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"


def manifest_name(shard: tuple[int, int] | None) -> str:
    return MANIFEST_NAME if shard is None else f"manifest{shard_suffix(shard)}.csv"


def hdf5_name(shard: tuple[int, int] | None) -> str:
    return HDF5_NAME if shard is None else f"images{shard_suffix(shard)}.h5"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder."""
    write_atomic(path, data, prefix=_TMP_PREFIX)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def is_complete_png(path: str | os.PathLike) -> bool:
    """True if the file starts with the PNG signature and ends with its IEND chunk."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(0, os.SEEK_END)
            if handle.tell() < 8 + len(_PNG_END):
                return False
            handle.seek(-len(_PNG_END), os.SEEK_END)
            return head == b"\x89PNG\r\n\x1a\n" and handle.read() == _PNG_END
    except OSError:
        return False


def write_staged(path: str, data: bytes) -> None:
    """Write a file in a staging folder: directly (it is moved into place later)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Staging: one input file's images, moved into place when the file is done
# --------------------------------------------------------------------------

class Staging:
    """``OUT/.imgen-staging/<id>/<class>/``: the images of one input file.

    Images are written here directly (:func:`write_staged`), not via a
    temporary name: a staged file only reaches ``OUT/<class>/`` through
    :meth:`commit`, and a file left by a killed run is checked by
    :meth:`check_leftovers` before it is reused.
    """

    def __init__(self, out: str | os.PathLike, source: str | os.PathLike, shard: tuple[int, int] | None):
        self.out = Path(out)
        key = f"{Path(source).resolve()}\x1f{shard_suffix(shard)}"
        self.root = self.out / STAGING / hashlib.blake2b(key.encode(), digest_size=8).hexdigest()

    def folder(self, class_name: str) -> Path:
        folder = self.root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def check_leftovers(self) -> int:
        """Delete staged files a killed run left incomplete; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/*"):
            if not is_complete_png(path):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def commit(self) -> int:
        """Move every staged image to ``OUT/<class>/``; returns how many."""
        moved = 0
        if not self.root.is_dir():
            return 0
        for class_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            target = self.out / class_dir.name
            prefix = os.path.join(target, "")
            made = False
            try:
                with os.scandir(class_dir) as entries:
                    for entry in entries:
                        if entry.name.startswith(_TMP_PREFIX):
                            os.unlink(entry.path)
                            continue
                        if not made:  # no empty class folders
                            target.mkdir(parents=True, exist_ok=True)
                            made = True
                        os.replace(entry.path, prefix + entry.name)
                        moved += 1
            except OSError as exc:  # e.g. a class folder that is not writable
                raise ImgenError(f"{target}: cannot move images into the class folder ({exc.strerror or exc}); "
                                 "make it writable (or remove it) and run the same command again") from None
        self.discard()
        return moved

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            (self.out / STAGING).rmdir()  # only when empty (no other file or shard staged)
        except OSError:
            pass


# --------------------------------------------------------------------------
# Manifest rows, spooled to disk so that memory stays flat
# --------------------------------------------------------------------------

class ManifestSpool:
    """Manifest rows of the run so far, in a temporary CSV in ``out``.

    ``mark()`` before an input file and ``rollback()`` if it fails, so the
    manifest only lists files read to the end.
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        fd, self._path = tempfile.mkstemp(prefix=_TMP_PREFIX + "manifest-", suffix=".csv", dir=self.out)
        self._handle = os.fdopen(fd, "w+", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._mark = 0
        self.count = 0
        self._mark_count = 0

    def add(self, path: str, class_name: str, event: str, source: str, split: str,
            run: int | None = None, lumi: int | None = None) -> None:
        self._writer.writerow((path, class_name, event, source, split,
                               "" if run is None else run, "" if lumi is None else lumi))
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
        """Write ``out/<name>`` (with :func:`imgen.manifest.write_manifest`), drop the spool."""
        try:
            return write_manifest(self.out, self.rows(), SPOOL_COLUMNS, name=name)
        finally:
            self.close()

    def close(self) -> None:
        self._handle.close()
        Path(self._path).unlink(missing_ok=True)


def remove_leftovers(out: str | os.PathLike) -> int:
    """Delete the temporary files (``.tmp-*``: spooled manifests, HDF5, config) a killed run left in ``out``.

    Call it holding the output lock (:mod:`imgen.lock`), so that no live run owns them.
    """
    removed = 0
    for path in Path(out).glob(_TMP_PREFIX + "*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    for path in Path(out).glob(".manifest-*.csv"):   # write_manifest's temporary name
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def remove_unlisted_images(out: str | os.PathLike, manifest: str | os.PathLike) -> int:
    """Delete class-folder PNGs that imgen rendered but ``manifest`` does not list; returns how many.

    After a complete (unsharded) run the manifest is the dataset: an image of an
    earlier run whose event these inputs no longer give would otherwise stay on
    disk, listed nowhere. Only images carrying imgen's provenance record are
    removed; other files are left alone.
    """
    out = Path(out)
    with open(manifest, newline="", encoding="utf-8") as handle:
        listed = {row["path"] for row in csv.DictReader(handle)}
    removed = 0
    for path in _class_folder_pngs(out):
        if path.relative_to(out).as_posix() not in listed and read_provenance(path) is not None:
            path.unlink()
            removed += 1
    return removed


def _class_folder_pngs(out: Path) -> Iterator[Path]:
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        yield from sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))


def write_run_counts(out: str | os.PathLike, counts: Mapping[str, object]) -> Path:
    """Add what the last run left out (objects outside eta, duplicate events) to ``imgen-config.json``."""
    path = Path(out) / CONFIG_NAME
    record = json.loads(path.read_text(encoding="utf-8"))
    record["last_run"] = dict(counts)
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def check_shard_manifest(out: Path, path: Path, index: int, total: int) -> list[dict[str, str]]:
    """The rows of one shard manifest, verified: complete, parseable, every image present, every image listed.

    A shard cut short (a copy interrupted, a full disk) may end on a line
    boundary and still parse; that is caught by the last check: every PNG in
    the class folders whose (class, event) falls in this shard must be listed.
    """
    from imgen.split import assign_shard

    where = f"merge-shards: shard {index} of {total} ({path})"
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):
        raise ImgenError(f"{where}: ends in the middle of a line (cut short); render that shard again")
    try:
        rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImgenError(f"{where}: not a readable manifest ({exc}); render that shard again") from None
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise ImgenError(f"{where}: no rows or missing columns; render that shard again")
    listed = set()
    for number, row in enumerate(rows, start=2):
        if row.get("split") not in SPLITS or not row.get("path") or None in row.values() or None in row:
            raise ImgenError(f"{where}, line {number}: incomplete row {row!r}; render that shard again")
        if not (out / row["path"]).is_file():
            raise ImgenError(f"{where}, line {number}: image {row['path']} does not exist; render that shard again")
        listed.add(row["path"])
    for png in _class_folder_pngs(out):
        name = png.parent.name
        event = png.stem[len(name) + 1:] if png.stem.startswith(name + "_") else None
        if event and assign_shard(event, name, total) == index and png.relative_to(out).as_posix() not in listed:
            raise ImgenError(f"{where}: does not list {png.relative_to(out).as_posix()}, which belongs to this "
                             "shard (the manifest is cut short); render that shard again")
    return rows


def merge_shard_manifests(out: str | os.PathLike) -> Path:
    """Join ``manifest-shard-I-of-N.csv`` of all N shards into ``manifest.csv``.

    Refuses when a shard is missing, counts disagree, a shard manifest fails
    :func:`check_shard_manifest`, or two rows name the same image. The shard
    manifests are kept.
    """
    out = Path(out)
    found: dict[int, Path] = {}
    counts = set()
    for path in sorted(out.glob("manifest-shard-*-of-*.csv")):
        m = _SHARD_MANIFEST.match(path.name)
        if m:
            found[int(m[1])] = path
            counts.add(int(m[2]))
    if not found:
        raise ImgenError(f"{out}: no manifest-shard-I-of-N.csv to merge")
    if len(counts) != 1:
        raise ImgenError(f"{out}: shard manifests of different shard counts {sorted(counts)}")
    total = counts.pop()
    missing = sorted(set(range(total)) - set(found))
    if missing:
        raise ImgenError(f"{out}: shard(s) {', '.join(map(str, missing))} of {total} have no manifest yet")

    checked = [check_shard_manifest(out, found[index], index, total) for index in range(total)]
    seen: dict[str, int] = {}
    for index, rows in enumerate(checked):
        for row in rows:
            if row["path"] in seen:
                raise ImgenError(f"{found[index]}: image {row['path']} is also in shard {seen[row['path']]}")
            seen[row["path"]] = index
    with found[0].open(newline="", encoding="utf-8") as handle:
        columns = next(csv.reader(handle), None) or list(COLUMNS)  # NanoAOD shards add run, lumi
    return write_manifest(out, (row for rows in checked for row in rows), columns)


# --------------------------------------------------------------------------
# HDF5: the whole dataset in one file
# --------------------------------------------------------------------------

class Hdf5Writer:
    """``X`` uint8 (N, H, W, 3), ``y`` class index, ``event``, ``split``,
    ``path``, ``source``; attribute ``classes``. One gzip chunk per image,
    compressed by the workers (:func:`compress_image`) and written as is."""

    def __init__(self, path: str | os.PathLike, size: int, classes: Sequence[str], attrs: Mapping[str, str]):
        import h5py  # only runs that write HDF5 pay for the import

        self.path = Path(path)
        fd, self._tmp = temp_file_beside(self.path, prefix=_TMP_PREFIX, suffix=".h5")
        os.close(fd)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["classes"] = list(classes)
        for key, value in attrs.items():
            self._file.attrs[key] = value
        self.classes = {name: i for i, name in enumerate(classes)}
        self._x = self._file.create_dataset("X", shape=(0, size, size, 3), maxshape=(None, size, size, 3),
                                            chunks=(1, size, size, 3), dtype="u1",
                                            compression="gzip", compression_opts=1)
        text = h5py.string_dtype("utf-8")
        self._columns = {
            "y": self._file.create_dataset("y", (0,), maxshape=(None,), dtype="i4", chunks=(4096,)),
            **{name: self._file.create_dataset(name, (0,), maxshape=(None,), dtype=text, chunks=(4096,))
               for name in ("event", "split", "path", "source")},
        }
        self._buffer: list[tuple] = []
        self.count = 0
        self._mark = 0

    def append(self, class_name: str, event: str, split: str, path: str, source: str, chunk: bytes) -> None:
        index = self.count
        if index >= self._x.shape[0]:
            self._x.resize(max(1024, 2 * index), axis=0)
        self._x.id.write_direct_chunk((index, 0, 0, 0), chunk)
        self._buffer.append((self.classes[class_name], event, split, path, source))
        self.count += 1
        if len(self._buffer) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        start = self.count - len(self._buffer)
        for i, (name, dataset) in enumerate(self._columns.items()):
            if dataset.shape[0] < self.count:
                dataset.resize(self.count, axis=0)
            dataset[start:self.count] = [row[i] for row in self._buffer]
        self._buffer.clear()

    def mark(self) -> None:
        self._flush()
        self._mark = self.count

    def rollback(self) -> None:
        self._buffer.clear()
        self.count = self._mark

    def finish(self) -> Path:
        self._flush()
        self._x.resize(self.count, axis=0)
        for dataset in self._columns.values():
            dataset.resize(self.count, axis=0)
        self._file.close()
        return move_into_place(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file. Closing may fail (a full disk): the error that stopped
        the run is the one to report, and the temporary file goes either way."""
        try:
            self._columns.clear()
            self._x = None
            self._file.close()
        except Exception:  # noqa: BLE001 - HDF5 cannot flush what the disk refused
            pass
        finally:
            self._tmp.unlink(missing_ok=True)


def compress_image(image: np.ndarray) -> bytes:
    """One HDF5 chunk of ``X``: the image as the gzip (deflate) filter stores it."""
    import zlib

    return zlib.compress(np.ascontiguousarray(image).tobytes(), 1)


# --------------------------------------------------------------------------
# Run configuration: written next to the images, checked on resume
# --------------------------------------------------------------------------

def fingerprint(pixels: Mapping[str, object]) -> str:
    """Stable digest of everything that decides pixels."""
    text = json.dumps(pixels, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def check_and_write_config(out: str | os.PathLike, config: Mapping[str, object], pixels: Mapping[str, object],
                           overwrite: bool) -> Path:
    """Refuse to mix images of different settings in ``out``; then record ``config``.

    ``pixels`` is the part of the configuration that changes images (render
    settings, object cuts); split fractions and seed may change freely.
    """
    out = Path(out)
    path = out / CONFIG_NAME
    digest = fingerprint(pixels)
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ImgenError(f"{path}: unreadable run configuration ({exc}); remove it or use --overwrite") from None
        if previous.get("fingerprint") != digest:
            before, now = previous.get("pixels", {}), dict(pixels)
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise ImgenError(f"{out}: holds images rendered with other settings (changed: "
                             f"{', '.join(changed) or 'renderer version'}); use --overwrite to re-render "
                             f"them, or another --out")
    record = {**config, "pixels": dict(pixels), "fingerprint": digest}
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path
