"""Write events as a NanoAOD-layout ROOT file (uproot), the inverse of :mod:`imgen.events.nanoaod`.

For tests and benchmarks, which need NanoAOD files of known content without a
download, and for turning a JSON sample into ROOT: :func:`write_nanoaod`
takes validated :class:`~imgen.events.model.Event` objects (e.g. from
:func:`imgen.events.cms_json.read_events` or :mod:`imgen.synth` through
:func:`events_of_json`) and writes one ``Events`` tree with the branches
:mod:`imgen.events.nanoaod` reads. Flags are written so that they read back the same:
``Jet_jetId`` 6 (tight + tight lepton veto) or 0, ``Electron_cutBased`` 4 or
0, relative isolations 0.05 or 0.5, ``Muon_tightId`` as a bool. Values are
stored as float32, as NanoAOD does (the toy generator's values are float32
already, so they read back exactly). A jet without a b-tag score gets -1.

``MET_phi`` is written when every event has ``met_phi``, and left out when
none has (as in the real 2011 JSON sample); ``genWeight`` likewise when the
events' ``weight_source`` is ``genWeight`` (simulation); event numbers must be integers.
Events are written as they come, :data:`BASKET_EVENTS` at a time (memory stays
flat), under a temporary name that is renamed when the file is complete.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from imgen.atomic import move_into_place, temp_file_beside
from imgen.errors import ImgenError
from imgen.events.cms_json import parse_event
from imgen.events.model import Event
from imgen.events.nanoaod import COLLECTIONS, DEFAULT_TREE, GEN_WEIGHT

#: events per ``TTree.extend`` call (one basket per branch)
BASKET_EVENTS = 20_000
_FLAG_VALUES = {  # branch suffix -> (value when the flag is set, when not), dtype
    "jetId": ((6, 0), np.int32),
    "cutBased": ((4, 0), np.int32),
    "tightId": ((True, False), np.bool_),
    "pfRelIso03_all": ((0.05, 0.5), np.float32),
    "pfRelIso04_all": ((0.05, 0.5), np.float32),
}


def events_of_json(pairs: Iterable[tuple[str, dict]], source: str = "<memory>") -> Iterator[Event]:
    """Validated events from ``(event number, raw JSON event)`` pairs (e.g. ``imgen.synth.generate_events``)."""
    for event_id, raw in pairs:
        yield parse_event(event_id, raw, source)


def _has_gen_weight(event: Event) -> bool:
    return event.weight_source == GEN_WEIGHT


def _branch_types(btag_branch: str, met_phi: bool, gen_weight: bool = False) -> dict[str, object]:
    types: dict[str, object] = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64}
    for c in COLLECTIONS.values():
        for suffix in ("pt", "eta", "phi"):
            types[c.branch(suffix)] = "var * float32"
        for suffix in (c.tight_id, c.tight_iso):
            if suffix:
                types[c.branch(suffix)] = f"var * {np.dtype(_FLAG_VALUES[suffix][1]).name}"
        if c.kind == "jet":
            types[btag_branch] = "var * float32"
    types["MET_pt"] = np.float32
    if met_phi:
        types["MET_phi"] = np.float32
    if gen_weight:
        types[GEN_WEIGHT] = np.float32
    return types


def _columns(events: list[Event], btag_branch: str, met_phi: bool, gen_weight: bool = False) -> dict[str, object]:
    import awkward as ak

    data: dict[str, object] = {}
    try:
        data["event"] = np.array([int(e.event_id) for e in events], dtype=np.uint64)
    except ValueError:
        raise ImgenError("NanoAOD event numbers are integers: cannot write event "
                         f"{next(e.event_id for e in events if not e.event_id.isdigit())!r}") from None
    data["run"] = np.array([1 if e.run is None else e.run for e in events], dtype=np.uint32)
    data["luminosityBlock"] = np.array([1 if e.lumi is None else e.lumi for e in events], dtype=np.uint32)
    for c in COLLECTIONS.values():
        groups = [e.of_kind(c.kind) for e in events]
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        flat = [o for g in groups for o in g]

        def jagged(values, dtype):
            return ak.unflatten(np.asarray(values, dtype=dtype), counts)

        for field in ("pt", "eta", "phi"):
            data[c.branch(field)] = jagged([getattr(o, field) for o in flat], np.float32)
        for suffix, field in ((c.tight_id, "tight_id"), (c.tight_iso, "tight_iso")):
            if suffix:
                (yes, no), dtype = _FLAG_VALUES[suffix]
                data[c.branch(suffix)] = jagged([yes if getattr(o, field) else no for o in flat], dtype)
        if c.kind == "jet":
            data[btag_branch] = jagged([-1.0 if o.btag is None else o.btag for o in flat], np.float32)
    if any(e.met is None for e in events):
        raise ImgenError("NanoAOD has MET_pt in every event: cannot write an event without met")
    data["MET_pt"] = np.array([e.met for e in events], dtype=np.float32)
    if met_phi:
        data["MET_phi"] = np.array([e.met_phi for e in events], dtype=np.float32)
    if gen_weight:
        data[GEN_WEIGHT] = np.array([e.weight for e in events], dtype=np.float32)
    return data


def write_nanoaod(path: str | os.PathLike, events: Iterable[Event], *, tree: str = DEFAULT_TREE,
                  btag_branch: str = "Jet_btagCSVV2") -> Path:
    """Write ``events`` to ``path`` as a NanoAOD-layout tree; returns the path.

    ``btag_branch`` names the branch the jets' ``btag`` scores go to (the
    JSON ``CSV`` is a CSV score, hence the default).
    """
    import uproot

    path = Path(path)
    batches = _batches(iter(events))
    first = next(batches, [])
    met_phi = bool(first) and first[0].met_phi is not None
    gen_weight = bool(first) and _has_gen_weight(first[0])
    fd, tmp = temp_file_beside(path, prefix=".tmp-", suffix=".root")
    os.close(fd)
    try:
        with uproot.recreate(tmp) as handle:
            out = handle.mktree(tree, _branch_types(btag_branch, met_phi, gen_weight),
                                counter_name=lambda name: "n" + name.split("_", 1)[0])
            for batch in itertools.chain([first] if first else [], batches):
                if any((e.met_phi is not None) != met_phi for e in batch):
                    raise ImgenError(f"{path}: some events have met_phi and some not; NanoAOD has MET_phi "
                                     f"in all events or in none")
                if any(_has_gen_weight(e) != gen_weight for e in batch):
                    raise ImgenError(f"{path}: some events have a genWeight and some not; NanoAOD has genWeight "
                                     f"in all events or in none")
                out.extend(_columns(batch, btag_branch, met_phi, gen_weight))
        return move_into_place(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _batches(events: Iterator[Event]) -> Iterator[list[Event]]:
    while batch := list(itertools.islice(events, BASKET_EVENTS)):
        yield batch
