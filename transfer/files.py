"""Writes that never leave half a file or half a run folder behind, and one writer per output.

Files go to a temporary name beside their target and are renamed into place;
a run is written into a hidden staging folder that is renamed to its final
name once everything in it is complete. Every output is locked while it is
written (:func:`output_lock`, :mod:`imgen.locking`): a second process on the
same ``--out`` is refused in one line naming the first.
"""
from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from imgen import atomic
from imgen.locking import exclusive_lock, process_alive
from transfer.errors import RunFolderError, TransferError

log = logging.getLogger(__name__)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    return atomic.write_atomic(path, text, prefix=f".{path.name}-", permissions=0o666 & ~atomic.UMASK)


def check_output_folder(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an existing, non-empty ``out`` unless ``overwrite`` (before any work starts)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TransferError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TransferError(f"--out {out}: already holds a run; choose another --out or pass --overwrite")
    return out


#: What a refusal calls the process that holds an output (``what`` of :func:`output_lock`).
RUN = "transfer run"


def lock_path(out: str | os.PathLike) -> Path:
    """``.<name>.lock`` beside ``out``: the lock of a folder that is written staged (it does not exist yet)."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@contextmanager
def output_lock(out: str | os.PathLike, what: str = RUN, *, wait: float = 0.0, busy=None,
                waiting=None) -> Iterator[Path]:
    """Hold the lock of the output ``out`` (:func:`lock_path`) for the block: one writer per output.

    Another process holding it is refused at once with one line naming it
    (``busy(holder)`` gives another message), or waited for up to ``wait``
    seconds. Re-entrant: a run inside an experiment that holds the lock gets it.
    Missing parent folders are created, and removed again if still empty at the end.
    """
    out = Path(out)
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferError(f"--out {out}: cannot create its folder ({exc.strerror or exc})") from None
    try:
        with exclusive_lock(
                lock_path(out),
                busy=busy or (lambda holder: TransferError(
                    f"--out {out}: another {what} ({holder}) is writing this folder; wait for it to finish, "
                    "or use another --out")),
                wait=wait, waiting=waiting,
                cannot_create=lambda exc: TransferError(f"--out {out}: cannot create the lock file "
                                                        f"{lock_path(out).name} ({exc.strerror or exc})")) as path:
            yield path
    finally:
        for folder in created:               # innermost first; stops at one that is not empty
            try:
                folder.rmdir()
            except OSError:
                break


def staging_prefix(out: Path) -> str:
    """``.<name>.partial-<pid>-``: a staging folder's name says which process writes it."""
    return f".{out.name}.partial-{os.getpid()}-"


def staging_owner(folder: Path) -> int | None:
    """The process id in a staging folder's name (:func:`staging_prefix`), None for one without."""
    tail = folder.name.rpartition(".partial-")[2]
    pid = tail.split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_dead_staging(out: Path) -> None:
    """Remove the staging folders of ``out`` that killed runs left (``kill -9``, a crash); never one whose
    process is alive."""
    prefix = f".{out.name}.partial-"
    if not out.parent.is_dir():
        return
    for leftover in out.parent.glob(prefix + "*"):
        if not leftover.is_dir():
            continue
        owner = staging_owner(leftover)
        if owner is not None and owner != os.getpid() and process_alive(owner):
            log.warning("%s: left in place: its process %d is still running", leftover, owner)
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s, left by an interrupted run", leftover)


@contextmanager
def staged_folder(out: str | os.PathLike, overwrite: bool = False, what: str = RUN) -> Iterator[Path]:
    """Lock ``out`` (:func:`output_lock`) and check it (:func:`check_output_folder`), then yield a hidden
    staging folder ``.<out>.partial-<pid>-XXXX`` beside it; on success it replaces ``out``.

    On an exception the staging folder is removed and ``out`` is left as it was
    (:func:`imgen.atomic.staged_folder`); the staging folders of runs that were
    killed are removed first (:func:`remove_dead_staging`).
    """
    out = Path(out)
    with output_lock(out, what):
        out = check_output_folder(out, overwrite)
        remove_dead_staging(out)
        with atomic.staged_folder(out, prefix=staging_prefix(out)) as staging:
            yield staging


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse a file ``path`` that could not be written, before any work: its folder must exist (and be a
    folder), and ``path`` must not be a folder."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise TransferError(f"{flag} {path}: is a folder; give the name of the file to write")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise TransferError(f"{flag} {path}: its folder {folder} {what}; create it first, or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise TransferError(f"{flag} {path}: cannot write into {folder} (permission denied)")
    return path


def read_run_json(model_path: str | os.PathLike, name: str, required_keys: tuple[str, ...]) -> dict:
    """The JSON file ``name`` that training wrote beside ``model_path`` (classes.json, arrays.json).

    Errors name the file and what predict needs from it. The files themselves
    are named and read by :mod:`transfer.run_folder`.
    """
    import json

    path = Path(model_path).with_name(name)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise RunFolderError(f"{path}: not found; predict needs the {name} that training writes "
                             "beside model.keras") from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or any(key not in info for key in required_keys):
        raise RunFolderError(f"{path}: expected a JSON object with the keys {', '.join(required_keys)}")
    return info
