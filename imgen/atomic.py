"""Writes that never leave half a file or half a folder in place.

Every package writes through these (see docs/CONVENTIONS.md, "Writes"):

* a file is written under a temporary name in its target folder (same file
  system, so the final ``os.replace`` is atomic) and renamed into place only
  once complete: :func:`atomic_file`, :func:`atomic_path`, :func:`write_atomic`;
* a folder is built in a temporary sibling and renamed into place at the end,
  an existing one being set aside first and restored if the rename fails:
  :func:`staged_folder`.

On any exception, ``KeyboardInterrupt`` included, the temporary file or folder
is removed and the target is left as it was. Whether an existing target may be
replaced is the caller's decision, made before any work starts.

``mkstemp`` and ``mkdtemp`` make owner-only files (0600) and folders (0700);
what is moved into place gets :data:`FILE_PERMISSIONS` (or what the caller
asks for) and folders what ``mkdir`` would give (:data:`FOLDER_PERMISSIONS`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import (reading it means setting it briefly,
#: which is best not done later, while other threads may create files).
UMASK = _read_umask()
#: Permissions of a file moved into place (readable by all, as datasets are shared).
FILE_PERMISSIONS = 0o644
#: Permissions of a folder moved into place: what ``mkdir`` would have given.
FOLDER_PERMISSIONS = 0o777 & ~UMASK


def temp_file_beside(path: str | os.PathLike, *, prefix: str | None = None, suffix: str = "") -> tuple[int, Path]:
    """Create an empty temporary file in ``path``'s folder; returns ``(fd, temporary path)``.

    For writers that keep the file open across calls (e.g. an HDF5 writer);
    finish with :func:`move_into_place`, or unlink it on failure. Prefer
    :func:`atomic_path` or :func:`atomic_file` where a ``with`` block fits.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix,
                               dir=path.parent)
    return fd, Path(tmp)


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike, permissions: int = FILE_PERMISSIONS) -> Path:
    """Give the finished temporary file ``permissions`` (mkstemp made it private) and rename it to ``path``."""
    os.chmod(tmp, permissions)
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, *, prefix: str | None = None, suffix: str = "",
                permissions: int = FILE_PERMISSIONS) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success it is renamed to ``path``.

    For libraries that open files by name (h5py). Close the file before the
    block ends. On an exception the temporary file is removed, ``path`` untouched.
    """
    fd, tmp = temp_file_beside(path, prefix=prefix, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        move_into_place(tmp, path, permissions)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = None,
                newline: str | None = None, prefix: str | None = None, suffix: str = "",
                permissions: int = FILE_PERMISSIONS) -> Iterator[IO]:
    """Yield a handle (``mode`` ``"w"`` or ``"wb"``) on a temporary file that replaces ``path`` on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, prefix=prefix, suffix=suffix, permissions=permissions) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as handle:
            yield handle


def write_atomic(path: str | os.PathLike, data: bytes | str, *, prefix: str | None = None,
                 permissions: int = FILE_PERMISSIONS) -> Path:
    """Write ``data`` (bytes, or text written as UTF-8 exactly as given) to ``path`` atomically."""
    if isinstance(data, str):
        opened = atomic_file(path, "w", encoding="utf-8", newline="", prefix=prefix, permissions=permissions)
    else:
        opened = atomic_file(path, "wb", prefix=prefix, permissions=permissions)
    with opened as handle:
        handle.write(data)
    return Path(path)


@contextmanager
def staged_folder(final_path: str | os.PathLike, *, prefix: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final_path``; on success it becomes ``final_path``.

    Missing parent folders are created. An existing ``final_path`` is
    replaced (refusing to is the caller's check, before any work). On an
    exception the temporary folder and the parent folders made here are
    removed and ``final_path`` is left as it was. The temporary folder is
    named ``<prefix>XXXX`` (default ``.<name>.tmp-``), an old ``final_path``
    is set aside in ``<prefix>old-XXXX`` while it is swapped.
    """
    final = Path(final_path)
    prefix = f".{final.name}.tmp-" if prefix is None else prefix
    created = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    try:
        os.chmod(staging, FOLDER_PERMISSIONS)
        yield staging
        _replace_folder(staging, final, old_prefix=prefix + "old-")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:               # innermost first; stops at one that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _replace_folder(new: Path, final: Path, old_prefix: str) -> None:
    """Rename ``new`` to ``final``; an existing ``final`` is set aside, then deleted (restored on failure)."""
    if not final.exists():
        os.replace(new, final)
        return
    old = Path(tempfile.mkdtemp(prefix=old_prefix, dir=final.parent))
    aside = old / final.name
    try:
        os.replace(final, aside)
    except BaseException:
        old.rmdir()
        raise
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(aside, final)             # put the previous folder back
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)
