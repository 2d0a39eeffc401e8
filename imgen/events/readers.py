"""One event-reader interface, one implementation per kind of input file.

A rendering run (:mod:`imgen.pipeline`) does not know file formats. For each
input file it asks :data:`READERS` (keyed by the file's kind, see
:data:`imgen.events.inputs.FILE_KINDS`) for an :class:`EventReader` and uses two of
its parts:

* ``open(item, options)`` -> an :class:`EventStream`, run in the main
  process: it yields ``(event number, payload)`` in file order and says how
  far it got (``position()``, bytes, for the progress bar). Whole-file
  problems raise :class:`~imgen.errors.ImgenError` naming the file.
* ``parse(event number, payload, source)`` -> :class:`~imgen.events.model.Event`,
  run in the worker processes on each payload; a bad event raises
  :class:`~imgen.errors.BadEventError`, which the run skips and counts.

Implementations:

* ``json`` (:mod:`imgen.events.cms_json`): the payload is the raw event dict; ``parse``
  validates it (the expensive part, so it runs in the workers).
* ``nanoaod`` (:mod:`imgen.events.nanoaod`): columns are validated a chunk at a time
  with numpy in the main process (cheaper than per event), so the payload is a
  ready :class:`Event`, or the :class:`BadEventError` of a bad one, that
  ``parse`` hands back or raises.

Everything after ``parse`` (selection, split, rendering, manifest, HDF5,
shards, resume) is the same for every kind, so the same events give the same
images whatever file they came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from imgen.errors import ImgenError
from imgen.events import nanoaod
from imgen.events.cms_json import iter_raw_events, open_json, parse_event
from imgen.events.inputs import InputFile
from imgen.events.model import Event

#: Options of the readers that take some (NanoAOD: tree, b-tag branch and cut).
ReadOptions = nanoaod.NanoAODOptions


class EventStream(Protocol):
    """The events of one input file, in file order; a context manager."""

    def __iter__(self) -> Iterator[tuple[str, Any]]: ...

    def position(self) -> int:
        """Bytes of the file consumed so far (an estimate where the format has no byte order)."""

    def __enter__(self) -> "EventStream": ...

    def __exit__(self, *exc) -> None: ...


@dataclass(frozen=True)
class EventReader:
    """How files of one kind become events (see the module docstring).

    ``btag_wp(options, cli_wp)`` is the threshold the renderer compares this
    kind's ``btag`` scores with; ``describe(options)`` is the run summary's
    line about the kind (which tree and branches were read), or None.
    Every callable is a module-level function, so that it pickles.
    """

    kind: str
    open: Callable[[InputFile, ReadOptions], EventStream]
    parse: Callable[[str, Any, str], Event]
    btag_wp: Callable[[ReadOptions, float], float]
    describe: Callable[[ReadOptions], str | None]
    #: settings of this kind that change pixels, added to the run's fingerprint
    pixel_settings: Callable[[ReadOptions], dict]


class _JsonStream:
    """:func:`imgen.events.cms_json.iter_raw_events` as an :class:`EventStream`."""

    def __init__(self, item: InputFile, options: ReadOptions):
        self._path = item.path
        self._reader = open_json(item.path)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter_raw_events(self._path, self._reader)

    def position(self) -> int:
        return self._reader.position()

    def __enter__(self) -> "_JsonStream":
        return self

    def __exit__(self, *exc) -> None:
        self._reader.close()


def _cli_btag_wp(options: ReadOptions, cli_wp: float) -> float:
    return cli_wp


def _nothing(options: ReadOptions) -> None:
    return None


def _no_settings(options: ReadOptions) -> dict:
    return {}


READERS: dict[str, EventReader] = {
    "json": EventReader("json", _JsonStream, parse_event, _cli_btag_wp, _nothing, _no_settings),
    "nanoaod": EventReader("nanoaod", nanoaod.NanoAODStream, nanoaod.unpack_event, nanoaod.btag_wp,
                           nanoaod.describe, nanoaod.pixel_settings),
}


def reader_for(item: InputFile) -> EventReader:
    try:
        return READERS[item.kind]
    except KeyError:
        raise ImgenError(f"{item.location}: not a kind of event file imgen reads "
                         f"(known: {', '.join(sorted(READERS))})") from None


def run_btag_wp(files: list[InputFile], options: ReadOptions, cli_wp: float) -> float:
    """The one b-tag threshold of a run; refuses kinds of input whose thresholds differ.

    A JSON file's ``CSV`` and a NanoAOD file's ``--btag-branch`` are different
    discriminants with different working points, and a run has one render
    configuration, so a run mixing the two must be given equal thresholds.
    """
    by_kind = {kind: READERS[kind].btag_wp(options, cli_wp) for kind in sorted({f.kind for f in files})}
    if len(set(by_kind.values())) > 1:
        shown = ", ".join(f"{kind} {wp:g}" for kind, wp in by_kind.items())
        raise ImgenError(f"inputs of different kinds need different b-tag thresholds ({shown}: --btag-wp is the "
                         f"JSON CSV cut, --btag-cut the NanoAOD one); render them in separate runs, or give "
                         f"--btag-wp and --btag-cut the same value")
    return next(iter(by_kind.values()), cli_wp)
