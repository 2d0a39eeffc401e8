"""Writes that never leave half a file or half a run folder behind.

Files go to a temporary name beside their target and are renamed into place;
a run is written into a hidden staging folder that is renamed to its final
name once everything in it is complete.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import ContextManager

from imgen import atomic
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


def staged_folder(out: str | os.PathLike, overwrite: bool = False) -> ContextManager[Path]:
    """Check ``out`` (:func:`check_output_folder`), then yield a hidden staging folder
    ``.<out>.partial-XXXX`` beside it; on success it replaces ``out``.

    On an exception the staging folder is removed and ``out`` is left as it was
    (:func:`imgen.atomic.staged_folder`); the staging folders of runs that were
    killed (``kill -9``, a crash) are removed first.
    """
    out = check_output_folder(out, overwrite)
    prefix = f".{out.name}.partial-"
    if out.parent.is_dir():
        for leftover in out.parent.glob(prefix + "*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
                log.info("removed %s, left by an interrupted run", leftover)
    return atomic.staged_folder(out, prefix=prefix)


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
