"""One writer per output: an exclusive lock file that every command takes before it writes.

Two processes writing one output destroy each other's work (one removes the other's staging folder as
"left by an interrupted run", two grids rewrite one summary). Every command that writes an output takes the
output's lock first: ``imgen`` (``OUT/.imgen.lock``, :mod:`imgen.output.lock`), ``transfer`` runs, grids,
``pretrain`` and ``export`` (``.<name>.lock`` beside the folder, :mod:`transfer.files`), and the
``--weights toy-cms`` build in the shared Keras cache.

The lock is ``fcntl.flock``: the kernel releases it when the process ends, even on ``kill -9``, so a lock
file left behind never blocks anyone (on NFS, Linux emulates it with POSIX locks, which hold across the
nodes that share the file system). The file holds the holder's process id and host, which a refusal names.
A process that already holds a lock and asks for it again (a run inside a grid or a pretraining) gets it at
once: the lock is re-entrant within a process.

Besides refusing at once (``wait=0``), :func:`exclusive_lock` can wait a bounded time for the holder to
finish, for outputs that the second process can reuse (a toy-cms backbone another node is building).
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: How often a waiting process tries the lock again.
POLL_SECONDS = 0.5

#: path -> [file descriptor, depth]: the locks this process holds (re-entrant).
_HELD: dict[str, list[int]] = {}


def holder_text(path: str | os.PathLike, fd: int | None = None) -> str:
    """``process 1234 on node17``: who holds the lock ``path`` (as its file says), for messages."""
    try:
        raw = os.pread(fd, 256, 0) if fd is not None else Path(path).read_bytes()[:256]
    except OSError:
        raw = b""
    fields = raw.decode("utf-8", "replace").split()
    if not fields:
        return "a process that has not written its id yet"
    host = fields[1] if len(fields) > 1 else "?"
    return f"process {fields[0]}" + ("" if host == socket.gethostname() else f" on {host}")


def _try_lock(path: Path) -> tuple[int | None, int | None]:
    """``(fd, None)`` holding the lock of ``path``, or ``(None, fd_for_reading_the_holder)`` when it is taken."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None, fd
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino   # not a file a releasing holder just removed
        except FileNotFoundError:
            same = False
        if same:
            return fd, None
        os.close(fd)


@contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Callable[[str], BaseException], *, wait: float = 0.0,
                   waiting: Callable[[str], None] | None = None,
                   cannot_create: Callable[[OSError], BaseException] | None = None) -> Iterator[Path]:
    """Hold the lock file ``path`` for the block.

    When another process holds it: wait up to ``wait`` seconds for it
    (``waiting(holder)`` is called once, when the wait starts), then raise
    ``busy(holder)``, ``holder`` being :func:`holder_text`. A lock file that
    cannot be created raises ``cannot_create(error)`` (default: the ``OSError``).
    The lock file is removed when the block ends.
    """
    path = Path(path)
    key = os.path.abspath(path)
    held = _HELD.get(key)
    if held is not None:                      # this process holds it already (a run inside an experiment)
        held[1] += 1
        try:
            yield path
        finally:
            held[1] -= 1
        return
    deadline = time.monotonic() + max(0.0, wait)
    announced = False
    while True:
        try:
            fd, other = _try_lock(path)
        except OSError as exc:
            if cannot_create is None:
                raise
            raise cannot_create(exc) from None
        if fd is not None:
            break
        holder = holder_text(path, other)
        os.close(other)
        if time.monotonic() >= deadline:
            raise busy(holder)
        if not announced and waiting is not None:
            waiting(holder)
            announced = True
        time.sleep(min(POLL_SECONDS, max(0.01, deadline - time.monotonic())))
    _HELD[key] = [fd, 1]
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode("utf-8"), 0)
        except OSError:                       # a full disk: the lock holds, only its note is missing
            pass
        yield path
    finally:
        del _HELD[key]
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a staging folder's owner, say)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                   # exists, owned by someone else
        return True
    return True
