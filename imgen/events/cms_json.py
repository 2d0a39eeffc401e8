"""Streaming, tolerant reading of CMS open-data JSON events.

Layout (as CMS open-data tuple producers write it)::

    {"Event": {"<event number>": {"jet": {"0": {"pt", "eta", "phi", "CSV", "tightID"}, ...},
                                  "electron": {"0": {"pt", "eta", "phi", "px", "py", "pz",
                                                     "tightID", "tightIso"}},
                                  "muon": {...}, "photon": {...}, "tau": {...},
                                  "met", "met_phi", "sumet", "njet", "numel", "nummu",
                                  "run", "lumi", "isMC", "xsec"}}}

Files of several GB are normal, so :func:`iter_raw_events` streams them with
ijson (C backend when installed): memory stays flat whatever the file size.
:func:`parse_event` turns one raw event into an :class:`Event` and is where the
tolerance lives, because real files vary:

* object groups (``jet``, ``electron``, ``muon``, ``photon``, ``tau``) are
  absent when empty; a group may be a ``{"0": {...}}`` object or a list;
* ``met_phi`` is missing in some productions (``Event.met_phi`` is then
  ``None`` and MET is not drawn); ``met`` may be missing too;
* ``CSV`` is -100 (any negative value) when no b-tag score exists, giving
  ``btag=None``; missing ``tightID``/``tightIso`` count as false;
* numbers written as strings (``"pt": "4.8"``) are accepted, and phi is
  wrapped into [-pi, pi);
* ``run`` and ``lumi`` are kept (for the manifest) when they are whole
  numbers, and are None otherwise: they are bookkeeping, never an error;
  so is ``xsec``, the sample's cross section, kept as the event's weight
  (the manifest's ``weight`` column, ``weight_source`` ``xsec``);
* some producers write ``phi = 0.0`` for every lepton while ``px, py`` are
  right (the bundled real sample does: its electrons have ``phi`` 0.0 but
  ``atan2(py, px)`` is consistent with their ``pt`` and ``eta``). A lepton whose
  ``phi`` is missing or exactly 0.0 and that has a non-zero ``(px, py)`` takes
  ``phi = atan2(py, px)``; the run summary counts these.

Bad events raise :class:`~imgen.errors.BadEventError` naming the file and the
event: a non-numeric or non-finite value, a negative pt, a missing pt/eta/phi,
an event that is not an object, an event number unusable as a file name.
``NaN``/``Infinity`` literals (which Python's ``json`` writes but JSON does not
allow, so the parser would reject the whole file) are read as non-finite
values of that one event. Whole-file problems (empty file, no ``Event`` key,
malformed JSON, unreadable file) raise :class:`~imgen.errors.ImgenError`.
"""
from __future__ import annotations

import gzip
import io
import logging
import math
import os
import re
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import ijson

from imgen.errors import BadEventError, ImgenError
from imgen.events.model import EVENT_ID_PATTERN, LEPTONS, NO_BTAG_BELOW, OBJECT_GROUPS, Event, PhysicsObject, wrap_phi

log = logging.getLogger(__name__)

try:  # the C backend is ~10x faster than the pure-Python one
    _ijson = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - depends on the installed wheel
    _ijson = ijson
    log.debug("ijson C backend unavailable, using %s", ijson.backend)

_CHUNK = 1 << 16


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------

_NONFINITE = re.compile(rb"([:\[,]\s*)(-?(?:Infinity|NaN|inf|nan))(?=\s*(?:[,\]}]|\Z))")
_NONFINITE_HINTS = (b"NaN", b"nan", b"Inf", b"inf")


class _TolerantReader:
    """File wrapper for ijson: quotes bare NaN/Infinity tokens, counts bytes.

    yajl rejects ``NaN`` at the lexer, which would make one bad value kill the
    whole file; quoted, it reaches :func:`parse_event` as a non-finite number
    of that one event. Each read returns the data up to the last comma and
    keeps the rest for the next, so a token is never split between two reads.
    """

    def __init__(self, raw: io.BufferedIOBase):
        self._raw = raw
        self._carry = b""
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while True:
            chunk = self._raw.read(_CHUNK if size is None or size < 0 else size)
            self.bytes_read += len(chunk)
            if not chunk:
                head, self._carry = self._carry, b""
                return self._fix(head)
            buf = self._carry + chunk if self._carry else chunk
            cut = buf.rfind(b",")
            if cut <= 0:
                self._carry = buf
                continue
            head, self._carry = buf[:cut], buf[cut:]
            return self._fix(head)

    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for .gz), for progress bars."""
        inner = getattr(self._raw, "fileobj", None)
        try:
            return inner.tell() if inner is not None else self.bytes_read
        except (OSError, ValueError):
            return self.bytes_read

    @staticmethod
    def _fix(head: bytes) -> bytes:
        if any(h in head for h in _NONFINITE_HINTS):
            return _NONFINITE.sub(rb'\1"\2"', head)
        return head

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "_TolerantReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_json(path: str | os.PathLike) -> _TolerantReader:
    """Open a ``.json`` (or ``.json.gz``) file for streaming; errors name the file."""
    path = Path(path)
    try:
        raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise ImgenError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    return _TolerantReader(raw)


def iter_raw_events(path: str | os.PathLike, reader: _TolerantReader | None = None
                    ) -> Iterator[tuple[str, Any]]:
    """Yield ``(event number, raw event)`` pairs of one file, streaming.

    Raises :class:`ImgenError` naming the file (and the last good event) for an
    empty file, a file without an ``Event`` object, or malformed JSON. Pass
    ``reader`` (from :func:`open_json`) to watch ``reader.bytes_read``.
    """
    path = Path(path)
    own = reader is None
    reader = reader or open_json(path)
    last = None
    count = 0
    try:
        try:
            for key, value in _ijson.kvitems(reader, "Event", use_float=True):
                last = key
                count += 1
                yield key, value
        except ijson.JSONError as exc:
            if count == 0 and _is_blank(path):
                raise ImgenError(f"{path}: empty file (expected a JSON object with an \"Event\" key)") from None
            where = f"after event {last}" if last is not None else "before the first event"
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ImgenError(f"{path}: malformed JSON {where} (near byte {reader.bytes_read}): {detail}") from None
        except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
            where = f"after event {last}" if last is not None else "before the first event"
            raise ImgenError(f"{path}: cannot read {where}: {exc}") from None
        if count == 0:
            _explain_no_events(path)
    finally:
        if own:
            reader.close()


def _is_blank(path: Path) -> bool:
    """True for a file holding nothing but whitespace."""
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            while chunk := handle.read(_CHUNK):
                if chunk.strip():
                    return False
            return True
    except (OSError, EOFError):
        return False


def _explain_no_events(path: Path) -> None:
    """No event came out: an empty production is fine, a wrong layout is an error."""
    keys: list[str] = []
    with open_json(path) as reader:
        events = _ijson.parse(reader, use_float=True)
        first = next(events, None)
        if first is None:
            raise ImgenError(f"{path}: empty file (expected a JSON object with an \"Event\" key)")
        if first[1] != "start_map":
            raise ImgenError(f"{path}: top level is {_json_kind(first[1])}, expected an object "
                             f"with an \"Event\" key")
        for prefix, kind, value in events:
            if prefix == "" and kind == "map_key":
                keys.append(value)
                if value == "Event":
                    _, nxt, _ = next(events)
                    if nxt != "start_map":
                        raise ImgenError(f"{path}: \"Event\" is {_json_kind(nxt)}, expected an object "
                                         f"mapping event numbers to events")
                    log.warning("%s: \"Event\" holds no events", path)
                    return
            if len(keys) > 20:
                break
    shown = ", ".join(repr(k) for k in keys[:10]) or "none"
    raise ImgenError(f"{path}: no \"Event\" key (top-level keys: {shown}); "
                     f"expected the CMS layout {{\"Event\": {{\"<event number>\": {{...}}}}}}")


def _json_kind(event: str) -> str:
    return {"start_array": "an array", "start_map": "an object", "string": "a string",
            "number": "a number", "integer": "a number", "double": "a number",
            "boolean": "a boolean", "null": "null"}.get(event, event)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def _number(value: Any, where: str, name: str) -> float:
    """A finite float from a JSON number (or numeric string); else BadEventError."""
    if type(value) is float:  # the common case, first
        if math.isfinite(value):
            return value
    elif type(value) is int:
        return float(value)
    elif type(value) is str:
        try:
            number = float(value)
        except ValueError:
            raise BadEventError(f"{where}: {name} is {_show(value)}, not a number", "non-numeric value") from None
        if math.isfinite(number):
            return number
    else:
        raise BadEventError(f"{where}: {name} is {_show(value)}, not a number", "non-numeric value")
    raise BadEventError(f"{where}: {name} is {_show(value)} (NaN or infinite)", "non-finite value")


def _flag(value: Any, where: str, name: str) -> bool:
    if value is True or value is False or value is None:
        return bool(value)
    if type(value) in (int, float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise BadEventError(f"{where}: {name} is {_show(value)}, expected true or false", "non-boolean flag")


def _counter(value: Any) -> int | None:
    """A run or lumi number, or None: they are only recorded, so an odd one is not an error."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str and value.strip().isdigit():
        return int(value)
    return None


def _weight(value: Any) -> float | None:
    """The sample's ``xsec`` as the event's weight, or None: recorded only (a NaN is kept, for ``transfer
    --event-weight xsec`` to refuse naming the manifest row), so an odd one is not an error here."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _objects(group: Any, kind: str, where: str) -> list[tuple[str, Any]]:
    if group is None:
        return []
    if isinstance(group, Mapping):
        return list(group.items())
    if isinstance(group, list):
        return [(str(i), item) for i, item in enumerate(group)]
    raise BadEventError(f"{where}: \"{kind}\" is {_show(group)}, expected an object of objects",
                        "malformed object group")


def _parse_object(kind: str, raw: Any, where: str) -> tuple[PhysicsObject, bool]:
    if not isinstance(raw, Mapping):
        raise BadEventError(f"{where}: expected an object, got {_show(raw)}", "malformed object")
    for name in ("pt", "eta"):
        if name not in raw:
            raise BadEventError(f"{where}: no {name}", "missing pt/eta/phi")
    pt = _number(raw["pt"], where, "pt")
    if pt < 0:
        raise BadEventError(f"{where}: negative pt {pt:g} GeV", "negative pt")
    eta = _number(raw["eta"], where, "eta")
    phi = _number(raw["phi"], where, "phi") if "phi" in raw else None
    from_momentum = False
    if kind in LEPTONS and (phi is None or phi == 0.0) and "px" in raw and "py" in raw:
        px, py = _number(raw["px"], where, "px"), _number(raw["py"], where, "py")
        if px != 0.0 or py != 0.0:
            phi, from_momentum = math.atan2(py, px), True
    if phi is None:
        raise BadEventError(f"{where}: no phi", "missing pt/eta/phi")
    btag = None
    if kind == "jet" and raw.get("CSV") is not None:
        csv = _number(raw["CSV"], where, "CSV")
        btag = csv if csv >= NO_BTAG_BELOW else None
    return (PhysicsObject(kind, pt, eta, wrap_phi(phi), btag,
                          _flag(raw.get("tightID"), where, "tightID"),
                          _flag(raw.get("tightIso"), where, "tightIso")), from_momentum)


def parse_event(event_id: Any, raw: Any, source: str | os.PathLike = "<memory>") -> Event:
    """Validate one raw event; :class:`BadEventError` names ``source`` and the event."""
    event_id = str(event_id)
    here = f"{source}: event {event_id}"
    if not EVENT_ID_PATTERN.match(event_id):
        raise BadEventError(f"{here}: event number is not usable in a file name "
                            f"(letters, digits, '_', '.', '+', '-' only)", "bad event number")
    if not isinstance(raw, Mapping):
        raise BadEventError(f"{here}: expected an object, got {_show(raw)}", "event is not an object")
    objects: list[PhysicsObject] = []
    fixed = 0
    for kind in OBJECT_GROUPS:
        for index, item in _objects(raw.get(kind), kind, here):
            obj, from_momentum = _parse_object(kind, item, f"{here}: {kind} {index}")
            objects.append(obj)
            fixed += from_momentum
    met = met_phi = None
    if raw.get("met") is not None:
        met = _number(raw["met"], here, "met")
        if met < 0:
            raise BadEventError(f"{here}: negative met {met:g} GeV", "negative pt")
    if raw.get("met_phi") is not None:
        met_phi = wrap_phi(_number(raw["met_phi"], here, "met_phi"))
    weight = _weight(raw.get("xsec"))
    return Event(event_id, tuple(objects), met, met_phi, fixed, _counter(raw.get("run")), _counter(raw.get("lumi")),
                 weight, None if weight is None else "xsec")


def read_events(path: str | os.PathLike, strict: bool = False) -> Iterator[Event]:
    """Valid events of one file, streaming; bad events are logged and skipped
    (or raised with ``strict=True``). For notebooks; the pipeline uses the
    two halves (:func:`iter_raw_events`, :func:`parse_event`) separately."""
    for key, raw in iter_raw_events(path):
        try:
            yield parse_event(key, raw, path)
        except BadEventError as exc:
            if strict:
                raise
            log.warning("skipped: %s", exc)
