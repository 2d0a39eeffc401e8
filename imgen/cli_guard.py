"""How every command ends: one line for bad input, an interrupt or a full disk; never a traceback.

The three commands (``imgen``, ``augment``, ``transfer``) run their work
through :func:`run_command`:

* the package's error class (a ``ValueError`` subclass) -> ``error: ...``, exit 2;
* a full disk (``ENOSPC``, ``EDQUOT``) -> ``error: FOLDER: no space left ...``
  with the space left there, exit 2;
* Ctrl-C -> ``interrupted; run the same command again to resume``, exit 130;
  SIGTERM -> the same line, exit 143 (128 + the signal number, as a shell reports).

SIGTERM is turned into an exception (:class:`Terminated`) in the main thread, so
the same clean-up as for Ctrl-C runs: temporary files and staging folders are
removed by the ``finally`` blocks of :mod:`imgen.atomic` and the writers.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Callable

INTERRUPTED = "interrupted; run the same command again to resume"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class Terminated(BaseException):
    """SIGTERM arrived; a ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception`` eats it."""


_INSTALLED_BY: int | None = None


def _raise_terminated(signum, frame):
    if os.getpid() != _INSTALLED_BY:  # a forked worker inherited the handler: end as SIGTERM ends it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def _existing(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def no_space_message(exc: OSError, folder: str | os.PathLike | None = None) -> str:
    """``FOLDER: no space left on the device ... leaving N kB free there ...``; FOLDER from the error, else ``folder``."""
    where = Path(exc.filename).parent if exc.filename else Path(folder or ".")
    try:
        free = _size(shutil.disk_usage(_existing(where)).free)
    except OSError:
        free = "unknown"
    return (f"{where}: no space left on the device ({os.strerror(exc.errno)}); the unfinished files were "
            f"removed, leaving {free} free there: free more space and run the same command again to resume")


def run_command(body: Callable[[], int], errors: tuple[type[BaseException], ...],
                folder: str | os.PathLike | None = None) -> int:
    """Run ``body()`` and turn how it ends into one line and an exit status (module docstring).

    ``folder`` is named when a full disk is reported without a file name
    (HDF5 and zip writers do not give one).
    """
    global _INSTALLED_BY
    previous = None
    try:
        _INSTALLED_BY = os.getpid()
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        pass
    try:
        return body()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"error: {no_space_message(exc, folder)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Terminated:
        print(INTERRUPTED, file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
