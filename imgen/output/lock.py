"""One ``imgen`` run per output folder: the lock ``OUT/.imgen.lock`` (:func:`imgen.locking.exclusive_lock`).

Two runs writing the same folder would interleave their manifests and race on
the same image names; the second is refused, naming the process that holds the folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ContextManager

from imgen.errors import ImgenError
from imgen.locking import exclusive_lock

LOCK_NAME = ".imgen.lock"


def output_lock(out: str | os.PathLike) -> ContextManager[Path]:
    """Hold the lock of ``out`` for the block; refuse, naming the holder, when another run has it."""
    return exclusive_lock(
        Path(out) / LOCK_NAME,
        busy=lambda holder: ImgenError(f"{out}: another imgen run ({holder}) is writing this folder; wait for it "
                                       "to finish, or use another --out"),
        cannot_create=lambda exc: ImgenError(f"{out}: cannot create the lock file {LOCK_NAME} ({exc.strerror})"))
