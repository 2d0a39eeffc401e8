"""Staging: one input file's images in ``OUT/.imgen-staging/<id>/<class>/``, moved into their class folders when
the file has been read to its end, and the clean-up of what killed runs left (temporary files, staged images,
images no manifest lists any more).
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

from imgen.errors import ImgenError
from imgen.output.images import TMP_PREFIX, class_folder_pngs, is_complete_png
from imgen.output.provenance import read_provenance
from imgen.output.shards import shard_suffix

STAGING = ".imgen-staging"


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
                        if entry.name.startswith(TMP_PREFIX):
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


def remove_leftovers(out: str | os.PathLike) -> int:
    """Delete the temporary files (``.tmp-*``: spooled manifests, HDF5, config) a killed run left in ``out``.

    Call it holding the output lock (:mod:`imgen.output.lock`), so that no live run owns them.
    """
    removed = 0
    for path in Path(out).glob(TMP_PREFIX + "*"):
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
    for path in class_folder_pngs(out):
        if path.relative_to(out).as_posix() not in listed and read_provenance(path) is not None:
            path.unlink()
            removed += 1
    return removed




# --------------------------------------------------------------------------
# HDF5: the whole dataset in one file
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Run configuration: written next to the images, checked on resume
# --------------------------------------------------------------------------


