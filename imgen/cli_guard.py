"""How every command ends: one line for bad input, an interrupt or a full disk; never a traceback.

The three commands (``imgen``, ``augment``, ``transfer``) run their work
through :func:`run_command`:

* the package's error class (a ``ValueError`` subclass) -> ``error: ...``, exit 2;
* a full disk (``ENOSPC``, ``EDQUOT``, also when a library reports it in its own
  exception, as TensorFlow and HDF5 do) -> ``error: FOLDER: no space left ...``
  with the space left there, exit 2;
* Ctrl-C -> one line saying what happens when the command is run again
  (``interrupted``: resume, by default), exit 130; SIGTERM -> the same line,
  exit 143 (128 + the signal number, as a shell reports).

Ctrl-C and SIGTERM become exceptions (``KeyboardInterrupt``, :class:`Terminated`)
in the main thread, so that the ``finally`` blocks of :mod:`imgen.atomic` and
the writers remove temporary files and staging folders. An exception cannot be
raised just anywhere, though: a Python handler runs at the next bytecode, also
inside Python code that a C extension calls back, and TensorFlow's C++ (like
JAX's) does not expect an exception there: it carries on with a NULL result and
ends in ``SystemError: Objects/listobject.c:338: bad argument to internal
function`` (exit 1, a traceback) instead of the one line. So while the main
thread is inside such a library (a frame of one of :data:`UNSAFE_MODULES` on
its stack), the signal is only recorded; it is raised at the next safe point:
when the thread is back in other code (a helper thread asks every
:data:`RECHECK_SECONDS`) or when training calls :func:`raise_if_interrupted`
between batches. A second Ctrl-C or SIGTERM while one is pending stops at once.

The helper thread is started with the command and parked until a signal is
deferred (a signal handler should not start threads). When the exception is
raised where Python cannot pass it on, in a ``__del__`` or a weakref callback
that the garbage collector runs (a Keras object's, in the middle of building a
model), Python prints "Exception ignored" and drops it; the command would then
train on forever. :func:`_rearm_ignored` sees those and defers the signal again.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

#: What an interrupted command says when running it again resumes (imgen, augment, a transfer grid).
INTERRUPTED = "interrupted; run the same command again to resume"
#: What it says when its output is written whole or not at all (a training run, pretrain, export...).
INTERRUPTED_RESTART = ("interrupted; nothing was written (the output appears only when complete): run the same "
                       "command again to start it over")
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: How libraries that wrap the error (TensorFlow's ResourceExhaustedError, HDF5) spell a full disk.
DISK_FULL_TEXTS = tuple(os.strerror(number) for number in DISK_FULL_ERRNOS)
#: Packages whose C++ calls back into Python without expecting an exception: a signal that arrives while
#: one of them is on the main thread's stack is raised once it has returned.
UNSAFE_MODULES = ("tensorflow", "jax", "jaxlib", "tf_keras", "h5py")
#: How often a pending signal is tried again.
RECHECK_SECONDS = 0.02
#: Temporary names that a full-disk message does not name (it names the folder the user gave).
TEMPORARY_MARKERS = (".imgen-staging", ".tmp-", ".partial-")


class Terminated(BaseException):
    """SIGTERM arrived; a ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception`` eats it."""


class _Signals:
    """The state of the handler: who installed it, the signal waiting for a safe point, the helper thread.

    ``lock`` is re-entrant: the handler runs in the main thread, also while that thread holds it. ``wake``
    unparks the helper (a signal was deferred, or the command ends: ``stop``)."""

    installed_by: int | None = None
    pending: type[BaseException] | None = None
    pending_signum: int = signal.SIGTERM
    rechecks = 0                       # signals the helper thread sent (not the user's)
    helper: threading.Thread | None = None
    depth = 0                          # run_command calls inside one another share the helper
    stop = False
    wake = threading.Event()
    lock = threading.RLock()


def _exception_for(signum: int) -> type[BaseException]:
    return KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _unsafe(frame) -> bool:
    """Whether a frame of :data:`UNSAFE_MODULES` is on the stack that ends in ``frame``."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "") or ""
        if name.partition(".")[0] in UNSAFE_MODULES:
            return True
        frame = frame.f_back
    return False


def _recheck(main_id: int) -> None:
    """Helper thread: parked until a signal is deferred; then, while it is pending, send it again to the main
    thread whenever that thread is outside the unsafe libraries, so that the handler raises it there. Never
    sends once it is no longer pending (:func:`run_command` puts back the previous handler after that, which
    could be the default)."""
    while True:
        _Signals.wake.wait()
        if _Signals.stop:
            return
        time.sleep(RECHECK_SECONDS)
        frame = sys._current_frames().get(main_id)
        with _Signals.lock:
            if _Signals.stop:
                return
            if _Signals.pending is None:
                _Signals.wake.clear()  # raised already: park again
                continue
            if frame is None or _unsafe(frame):   # still inside: the handler would only defer again
                continue
            _Signals.rechecks += 1
            try:
                signal.pthread_kill(main_id, _Signals.pending_signum)
            except (OSError, ValueError):
                return


def _on_signal(signum, frame):
    if os.getpid() != _Signals.installed_by:  # a forked worker inherited the handler: end as the signal ends it
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    with _Signals.lock:
        recheck = _Signals.rechecks > 0
        if recheck:
            _Signals.rechecks -= 1
        if recheck and _Signals.pending is None:
            return                              # raised already at a safe point
        if _unsafe(frame) and (recheck or _Signals.pending is None):
            if _Signals.pending is None:        # the first: record it, and let the helper ask until it is safe
                _Signals.pending, _Signals.pending_signum = _exception_for(signum), signum
                _Signals.wake.set()
            return
        exc = _Signals.pending or _exception_for(signum)   # safe here, or the user's second signal
        _Signals.pending = None
    raise exc()


def _rearm_ignored(unraisable) -> None:
    """``sys.unraisablehook`` while a command runs: a Ctrl-C or SIGTERM that Python dropped (raised inside a
    finalizer) is deferred again, to be raised at the next safe point; anything else goes to the usual hook."""
    exc = unraisable.exc_value
    if isinstance(exc, (KeyboardInterrupt, Terminated)) and threading.current_thread() is threading.main_thread():
        with _Signals.lock:
            if _Signals.pending is None:
                _Signals.pending = type(exc)
                _Signals.pending_signum = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
                _Signals.wake.set()
        return
    sys.__unraisablehook__(unraisable)


def raise_if_interrupted() -> None:
    """A safe point: raise the Ctrl-C or SIGTERM that arrived while the main thread was inside a library
    (:data:`UNSAFE_MODULES`). Training calls it between batches."""
    if _Signals.pending is None or threading.current_thread() is not threading.main_thread():
        return
    with _Signals.lock:
        exc, _Signals.pending = _Signals.pending, None
    if exc is not None:
        raise exc()


def _start_helper() -> None:
    """Start the parked helper thread (:func:`_recheck`) for the outermost :func:`run_command`."""
    _Signals.depth += 1
    if _Signals.helper is not None:
        return
    _Signals.stop = False
    _Signals.wake.clear()
    _Signals.helper = threading.Thread(target=_recheck, name="signal-recheck", daemon=True,
                                       args=(threading.main_thread().ident,))
    _Signals.helper.start()


def _stop_deferring(finished: bool = False) -> None:
    """Drop a pending signal; when the outermost command has ``finished``, stop the helper thread and wait
    for it, before the previous handlers come back."""
    with _Signals.lock:
        _Signals.pending = None
        _Signals.rechecks = 0
    if not finished:
        return
    _Signals.depth = max(0, _Signals.depth - 1)
    if _Signals.depth:
        return
    helper, _Signals.helper = _Signals.helper, None
    if helper is not None and helper is not threading.current_thread():
        with _Signals.lock:
            _Signals.stop = True
            _Signals.wake.set()
        helper.join()


def disk_full_error(exc: BaseException | None) -> BaseException | None:
    """The exception in ``exc``'s chain (itself, its cause or context) that reports a full disk, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        if not (isinstance(exc, OSError) and exc.errno is not None) and any(t in str(exc) for t in DISK_FULL_TEXTS):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_disk_full(exc: BaseException) -> bool:
    return disk_full_error(exc) is not None


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


def _shown_folder(path: Path) -> Path:
    """``path`` cut before its first temporary component (a staging folder the user never named)."""
    parts = path.parts
    for i, part in enumerate(parts):
        if any(marker in part for marker in TEMPORARY_MARKERS):
            return Path(*parts[:i]) if i else Path(".")
    return path


def no_space_message(exc: BaseException, folder: str | os.PathLike | None = None) -> str:
    """``FOLDER: no space left on the device ... leaving N kB free there ...``; FOLDER from the error, else ``folder``."""
    found = disk_full_error(exc) or exc
    filename = getattr(found, "filename", None)
    where = _shown_folder(Path(filename).parent) if filename else Path(folder or ".")
    number = found.errno if isinstance(found, OSError) and found.errno in DISK_FULL_ERRNOS else (
        errno.EDQUOT if DISK_FULL_TEXTS[1] in str(found) else errno.ENOSPC)
    try:
        free = _size(shutil.disk_usage(_existing(where)).free)
    except OSError:
        free = "unknown"
    return (f"{where}: no space left on the device ({os.strerror(number)}); the unfinished files were "
            f"removed, leaving {free} free there: free more space and run the same command again")


def run_command(body: Callable[[], int], errors: tuple[type[BaseException], ...],
                folder: str | os.PathLike | None = None, interrupted: str = INTERRUPTED) -> int:
    """Run ``body()`` and turn how it ends into one line and an exit status (module docstring).

    ``folder`` is named when a full disk is reported without a file name
    (HDF5 and zip writers do not give one); ``interrupted`` is the line of
    Ctrl-C and SIGTERM (:data:`INTERRUPTED`: running again resumes).
    """
    previous = {}
    _Signals.installed_by = os.getpid()
    _stop_deferring()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread: leave the signals as they are
            pass
    previous_hook = sys.unraisablehook
    if previous:
        _start_helper()
        sys.unraisablehook = _rearm_ignored
    try:
        return body()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Terminated:
        print(interrupted, file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        print(f"error: {no_space_message(exc, folder)}", file=sys.stderr)
        return 2
    finally:
        _stop_deferring(finished=bool(previous))
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
