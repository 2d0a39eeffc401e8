"""One ``imgen`` run per output folder: an exclusive lock on ``OUT/.imgen.lock``.

Two runs writing the same folder would interleave their manifests and race on
the same image names. The lock is ``fcntl.flock`` (released by the kernel when
the process ends, even on ``kill -9``, so a stale lock file never blocks); the
file holds the holder's process id, which the refusal names.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from imgen.errors import ImgenError

LOCK_NAME = ".imgen.lock"


@contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``out`` for the block; refuse, naming the holder's PID, when another run has it."""
    import fcntl

    path = Path(out) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ImgenError(f"{out}: cannot create the lock file {path.name} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ImgenError(f"{out}: another imgen run (process {holder}) is writing this folder; wait for it "
                             "to finish, or use another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino   # not a file a releasing run just removed
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)
