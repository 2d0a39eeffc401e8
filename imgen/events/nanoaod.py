"""Reading CMS NanoAOD ROOT files with uproot and awkward (no ROOT installation).

NanoAOD is what CMS publishes as open data today: a flat TTree (``Events``)
with one entry per event, a jagged branch per object property with a counter
branch (``nJet``, ``Jet_pt``, ``Jet_eta``, ...), and flat branches per event
(``MET_pt``, ``run``, ``luminosityBlock``, ``event``). The tree is read in
chunks (``TTree.iterate``, :data:`STEP_SIZE` of arrays at a time), so memory
stays flat whatever the file size, and each chunk is validated with numpy.

Branches read (``<P>`` is the collection prefix), and how they map onto the
fields of :class:`~imgen.events.model.PhysicsObject`:

==========  =====================  =============================================
kind        prefix                 tight ID / tight isolation
==========  =====================  =============================================
jet         ``Jet``                ``Jet_jetId & 2`` (the tight bit) / -
tau         ``Tau``                - / -
photon      ``Photon``             - / -
electron    ``Electron``           ``Electron_cutBased >= 4`` (tight) /
                                   ``Electron_pfRelIso03_all < 0.15``
muon        ``Muon``               ``Muon_tightId`` / ``Muon_pfRelIso04_all < 0.15``
==========  =====================  =============================================

plus ``n<P>``, ``<P>_pt``, ``<P>_eta``, ``<P>_phi`` of every collection, the
b-tag discriminant of jets (``--btag-branch``, default
:data:`DEFAULT_BTAG_BRANCH`), ``MET_pt`` and ``MET_phi`` (optional: without
it MET is not drawn and the summary counts the events, as for JSON without
``met_phi``), and ``run``, ``luminosityBlock``, ``event``. The event number
of the manifest and of the image name is ``event``; ``run`` and
``luminosityBlock`` go into the manifest's ``run`` and ``lumi`` columns, and
``genWeight`` (optional: simulation has it, collision data not) into its
``weight`` column (``weight_source`` ``genWeight``), for ``transfer
--event-weight genWeight``.

The b-tag discriminant differs between NanoAOD versions; its working point
(``--btag-cut``) defaults to the medium one of the table :data:`BTAG_BRANCHES`
(CMS BTV working points for 2016, the year of the CMS NanoAOD open-data
release; other years differ by a few hundredths: give ``--btag-cut``). As for JSON, a negative discriminant means "no score".

Values are validated as in :func:`imgen.events.cms_json.parse_event`: a non-finite
value or a negative pt makes a bad event (skipped and counted, or fatal with
``--strict``), phi is wrapped into [-pi, pi). Whole-file problems raise
:class:`~imgen.errors.ImgenError` naming the file (and tree and branch): not a
ROOT file, a truncated file, no such tree, an empty tree, a missing branch
(with the nearest names the tree has), a jagged branch whose counts disagree
with its counter branch.
"""
from __future__ import annotations

import difflib
import logging
import math
import os
import struct
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Iterator

import numpy as np

from imgen.errors import BadEventError, ImgenError
from imgen.events.model import NO_BTAG_BELOW, OBJECT_GROUPS, Event, PhysicsObject, wrap_phi

log = logging.getLogger(__name__)

DEFAULT_TREE = "Events"
#: b-tag discriminant branch -> (tagger, NanoAOD versions that have it, medium working point
#: and the data-taking campaign it is for). CMS BTV publishes one set per year: check yours.
BTAG_BRANCHES: dict[str, tuple[str, str, float, str]] = {
    "Jet_btagDeepFlavB": ("DeepJet", "v5 and later", 0.2489, "2016 UL post-VFP"),
    "Jet_btagDeepB": ("DeepCSV", "v5 to v11", 0.5847, "2016 UL post-VFP"),
    "Jet_btagCSVV2": ("CSVv2", "v1 to v11", 0.8484, "2016 legacy"),
}
DEFAULT_BTAG_BRANCH = "Jet_btagDeepFlavB"
#: Arrays read per chunk (uproot's memory units): what the reader holds at a time.
STEP_SIZE = "8 MB"
#: Relative isolation below which a lepton counts as isolated (the usual tight PF isolation cut).
ISOLATED_BELOW = 0.15


@dataclass(frozen=True)
class Collection:
    """One object collection: its branch prefix and how tight ID / isolation are read."""

    kind: str
    prefix: str
    tight_id: str | None = None     # branch suffix
    tight_iso: str | None = None    # branch suffix

    def branch(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"

    @property
    def counter(self) -> str:
        return f"n{self.prefix}"


#: kind -> collection, in the order of :data:`imgen.events.model.OBJECT_GROUPS` (the JSON reader's order).
COLLECTIONS = {c.kind: c for c in (
    Collection("jet", "Jet", tight_id="jetId"),
    Collection("tau", "Tau"),
    Collection("photon", "Photon"),
    Collection("electron", "Electron", tight_id="cutBased", tight_iso="pfRelIso03_all"),
    Collection("muon", "Muon", tight_id="tightId", tight_iso="pfRelIso04_all"),
)}
assert tuple(COLLECTIONS) == OBJECT_GROUPS

#: tight-ID or isolation branch suffix -> values -> bool array (see the module docstring)
FLAG_RULES = {
    "jetId": lambda v: (v.astype(np.int64) & 2) != 0,
    "cutBased": lambda v: v >= 4,
    "tightId": lambda v: v != 0,
    "pfRelIso03_all": lambda v: v < ISOLATED_BELOW,
    "pfRelIso04_all": lambda v: v < ISOLATED_BELOW,
}
EVENT_BRANCHES = ("run", "luminosityBlock", "event", "MET_pt")
#: ``genWeight``: the generator weight of simulated events, recorded as the manifest's ``weight`` (collision data
#: have none).
GEN_WEIGHT = "genWeight"
OPTIONAL_BRANCHES = ("MET_phi", GEN_WEIGHT)


@dataclass(frozen=True)
class NanoAODOptions:
    """What to read from a NanoAOD file; ``btag_cut`` None takes the branch's medium working point."""

    tree: str = DEFAULT_TREE
    btag_branch: str = DEFAULT_BTAG_BRANCH
    btag_cut: float | None = None

    def __post_init__(self) -> None:
        if not self.tree:
            raise ImgenError("--tree: give the name of the events tree (NanoAOD: Events)")
        if not self.btag_branch.startswith("Jet_"):
            raise ImgenError(f"--btag-branch {self.btag_branch!r}: expected a jet branch (Jet_...), e.g. "
                             f"{', '.join(BTAG_BRANCHES)}")
        if self.btag_cut is not None and not math.isfinite(self.btag_cut):
            raise ImgenError(f"--btag-cut {self.btag_cut!r}: expected a number")

    @property
    def cut(self) -> float:
        if self.btag_cut is not None:
            return float(self.btag_cut)
        if self.btag_branch in BTAG_BRANCHES:
            return BTAG_BRANCHES[self.btag_branch][2]
        raise ImgenError(f"--btag-branch {self.btag_branch}: no known working point; give --btag-cut "
                         f"(known branches: {', '.join(BTAG_BRANCHES)})")


def collection_branches(c: Collection, options: NanoAODOptions) -> list[str]:
    """The jagged branches read of one collection (its counter not included)."""
    names = [c.branch("pt"), c.branch("eta"), c.branch("phi")]
    names += [c.branch(s) for s in (c.tight_id, c.tight_iso) if s]
    if c.kind == "jet":
        names.append(options.btag_branch)
    return names


def branches_read(options: NanoAODOptions) -> list[str]:
    """Every branch the reader needs (``MET_phi`` is optional), in reading order."""
    names = list(EVENT_BRANCHES)
    for c in COLLECTIONS.values():
        names += [c.counter, *collection_branches(c, options)]
    return names


def btag_wp(options: NanoAODOptions, cli_wp: float) -> float:
    """The threshold jets' ``btag`` (the ``--btag-branch`` score) are compared with."""
    return options.cut


def describe(options: NanoAODOptions) -> str:
    return (f"NanoAOD tree {options.tree}: b-tag {options.btag_branch} > {options.cut:g}; branches "
            f"{', '.join(branches_read(options))}, {', '.join(OPTIONAL_BRANCHES)} (if present)")


def pixel_settings(options: NanoAODOptions) -> dict:
    return {"nanoaod.btag_branch": options.btag_branch}


def unpack_event(event_id: str, payload: Event | BadEventError, source: str) -> Event:
    """The worker half of the reader: the chunk was validated already (see :mod:`imgen.events.readers`)."""
    if isinstance(payload, BadEventError):
        raise payload
    return payload


# --------------------------------------------------------------------------
# Opening: the file, its tree, its branches, each error naming them
# --------------------------------------------------------------------------

def check_root_header(path: str | os.PathLike) -> None:
    """Refuse a local file that is not ROOT, or is shorter than its header says (truncated)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(25)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ImgenError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if head[:4] != b"root":
        raise ImgenError(f"{path}: not a ROOT file (it starts with {head[:8]!r}, a ROOT file with b'root')")
    if len(head) < 21:
        raise ImgenError(f"{path}: truncated ROOT file ({size} bytes, shorter than the file header)")
    version, _begin = struct.unpack(">ii", head[4:12])
    end = struct.unpack(">q", head[12:20])[0] if version >= 1000000 else struct.unpack(">i", head[12:16])[0]
    if size < end:
        raise ImgenError(f"{path}: truncated ROOT file ({size} bytes; its header says {end}): "
                         f"copy or download it again")


def nearest(name: str, names: list[str], n: int = 5) -> str:
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    if not close:  # same collection at least
        prefix = name.split("_", 1)[0]
        close = [b for b in names if b.split("_", 1)[0] == prefix][:n]
    return ", ".join(close) if close else "none"


class NanoAODStream:
    """The events of one NanoAOD file (an :class:`imgen.events.readers.EventStream`).

    Yields ``(event number, Event)``, or ``(event number, BadEventError)`` for
    a bad event, a chunk at a time.
    """

    def __init__(self, item, options: NanoAODOptions):
        import uproot  # imported here: `python -m imgen --help` stays fast

        self.source = item.location
        self.options = options
        self._size = item.size()
        if not item.url:
            check_root_header(item.path)
        try:
            self._file = uproot.open(item.url or item.path)
        except FileNotFoundError:
            raise ImgenError(f"{self.source}: no such file") from None
        except Exception as exc:  # uproot raises many kinds; every one is "cannot read this file"
            raise ImgenError(f"{self.source}: cannot read as a ROOT file: {_one_line(exc)}") from None
        try:
            self._tree = self._open_tree(uproot)
            self._check_branches(uproot)
        except BaseException:
            self._file.close()
            raise
        self.entries = self._tree.num_entries
        self._done = 0

    def _open_tree(self, uproot):
        tree_name = self.options.tree
        try:
            trees = {k.split(";")[0]: v for k, v in self._file.classnames().items()}
        except Exception as exc:
            raise ImgenError(f"{self.source}: cannot read its table of contents: {_one_line(exc)}") from None
        if trees.get(tree_name) != "TTree":
            found = sorted(k for k, v in trees.items() if v == "TTree")
            raise ImgenError(f"{self.source}: no tree {tree_name!r} (trees in the file: "
                             f"{', '.join(found) or 'none'}); NanoAOD calls it Events, else give --tree")
        try:
            tree = self._file[tree_name]
        except Exception as exc:
            raise ImgenError(f"{self.source}: tree {tree_name}: cannot read: {_one_line(exc)}") from None
        if tree.num_entries == 0:
            raise ImgenError(f"{self.source}: tree {tree_name} is empty (0 entries): nothing to render; "
                             f"leave the file out")
        return tree

    def _check_branches(self, uproot) -> None:
        tree, where = self._tree, f"{self.source}: tree {self.options.tree}"
        have = list(tree.keys())
        for name in branches_read(self.options):
            if name not in tree:
                hint = " (or give --btag-branch)" if name == self.options.btag_branch else ""
                raise ImgenError(f"{where}: no branch {name!r}{hint}; nearest it has: {nearest(name, have)} "
                                 f"({len(have)} branches)")
        for c in COLLECTIONS.values():
            for name in (c.counter, *collection_branches(c, self.options)):
                jagged = isinstance(tree[name].interpretation, uproot.AsJagged)
                if jagged != (name != c.counter):
                    shape = "jagged" if jagged else "one value per event"
                    want = "one value per event" if name == c.counter else f"jagged, counted by {c.counter}"
                    raise ImgenError(f"{where}: branch {name} is {shape} ({tree[name].typename}); "
                                     f"expected {want}")
        for name in (*EVENT_BRANCHES, *OPTIONAL_BRANCHES):
            if name in tree and isinstance(tree[name].interpretation, uproot.AsJagged):
                raise ImgenError(f"{where}: branch {name} is jagged ({tree[name].typename}); "
                                 f"expected one value per event")
        self._has_met_phi = "MET_phi" in tree
        self._has_gen_weight = GEN_WEIGHT in tree
        if not self._has_met_phi:
            log.warning("%s: no branch MET_phi: MET is not drawn", where)

    # -- reading -----------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[str, Any]]:
        names = branches_read(self.options) + (["MET_phi"] if self._has_met_phi else []) \
            + ([GEN_WEIGHT] if self._has_gen_weight else [])
        chunks = self._tree.iterate(names, step_size=STEP_SIZE, library="ak")
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                raise ImgenError(f"{self.source}: tree {self.options.tree}: cannot read entries from "
                                 f"{self._done} on: {_one_line(exc)}") from None
            start = self._done
            yield from chunk_events(chunk, self.source, self.options, start, self._has_met_phi)
            self._done = start + len(chunk)

    def position(self) -> int:
        return int(self._size * self._done / self.entries) if self.entries else 0

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "NanoAODStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# --------------------------------------------------------------------------
# One chunk of columns -> events
# --------------------------------------------------------------------------

def _flat(chunk, name: str) -> np.ndarray:
    import awkward as ak

    return ak.to_numpy(chunk[name])


def _jagged(chunk, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts per event, flat values) of a jagged branch."""
    import awkward as ak

    array = chunk[name]
    layout = array.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets)   # what uproot gives: read the buffers, no copy (ak.flatten is slower)
        return np.diff(offsets), np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
    return ak.to_numpy(ak.num(array, axis=1)), ak.to_numpy(ak.flatten(array, axis=1))


def _phis(values: np.ndarray) -> list[float]:
    """phi as Python floats, wrapped with :func:`imgen.events.model.wrap_phi` (same rounding as JSON)."""
    out = values.astype(np.float64).tolist()
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero(~((values >= -math.pi) & (values < math.pi)) & np.isfinite(values))
    for i in outside.tolist():
        out[i] = wrap_phi(out[i])
    return out


def chunk_events(chunk, source: str, options: NanoAODOptions, start: int,
                 has_met_phi: bool) -> Iterator[tuple[str, Event | BadEventError]]:
    """``(event number, Event or BadEventError)`` for each entry of one chunk, in order."""
    n = len(chunk)
    where = f"{source}: tree {options.tree}"
    ids = [str(e) for e in _flat(chunk, "event").tolist()]
    runs = _flat(chunk, "run").tolist()
    lumis = _flat(chunk, "luminosityBlock").tolist()
    problems = np.zeros(n, dtype=bool)
    per_kind = []
    for c in COLLECTIONS.values():
        counts = _flat(chunk, c.counter).astype(np.int64)
        columns = {}
        for name in collection_branches(c, options):
            got, values = _jagged(chunk, name)
            if not np.array_equal(got, counts):
                i = int(np.flatnonzero(got != counts)[0])
                raise ImgenError(f"{where}: branch {name} has {got[i]} value(s) in entry {start + i} "
                                 f"(event {ids[i]}) but {c.counter} says {counts[i]}: the file is inconsistent")
            columns[name] = values
        pt, eta, phi = (columns[c.branch(s)] for s in ("pt", "eta", "phi"))
        bad = ~np.isfinite(pt) | ~np.isfinite(eta) | ~np.isfinite(phi) | (pt < 0)
        btag: Any = repeat(None)
        if c.kind == "jet":
            score = columns[options.btag_branch].astype(np.float64)
            bad |= ~np.isfinite(score)
            btag = [s if s >= NO_BTAG_BELOW else None for s in score.tolist()]
        flags = [FLAG_RULES[s](columns[c.branch(s)]).tolist() if s else repeat(False)
                 for s in (c.tight_id, c.tight_iso)]
        # tuple.__new__ over zip: a PhysicsObject without the Python-level __new__ (twice as fast)
        objects = list(map(tuple.__new__, repeat(PhysicsObject), zip(
            repeat(c.kind), pt.astype(np.float64).tolist(), eta.astype(np.float64).tolist(), _phis(phi),
            btag, *flags)))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        bad_sum = np.concatenate([[0], np.cumsum(bad)])
        problems |= bad_sum[offsets[1:]] != bad_sum[offsets[:-1]]
        per_kind.append((c, offsets.tolist(), objects, columns))
    met = _flat(chunk, "MET_pt").astype(np.float64)
    met_phi = _flat(chunk, "MET_phi").astype(np.float64) if has_met_phi else None
    problems |= ~np.isfinite(met) | (met < 0)
    met_list = met.tolist()
    met_phi_list = _phis(met_phi) if met_phi is not None else repeat(None)
    if met_phi is not None:
        problems |= ~np.isfinite(met_phi)
    problems_list = problems.tolist()
    # the generator weight is recorded as it is (a NaN too: transfer refuses it naming the manifest row)
    weights = _flat(chunk, GEN_WEIGHT).astype(np.float64).tolist() if GEN_WEIGHT in chunk.fields else repeat(None)
    weight_source = GEN_WEIGHT if GEN_WEIGHT in chunk.fields else None
    for i, event_id, run, lumi, met_i, met_phi_i, weight in zip(range(n), ids, runs, lumis, met_list, met_phi_list,
                                                                 weights):
        if problems_list[i]:
            yield event_id, _bad_event(i, event_id, source, per_kind, options.btag_branch, met_list[i],
                                       None if met_phi is None else float(met_phi[i]))
            continue
        objects: tuple = ()
        for _, offsets, kind_objects, _ in per_kind:
            a, b = offsets[i], offsets[i + 1]
            if a != b:
                objects += tuple(kind_objects[a:b])
        yield event_id, Event(event_id, objects, met_i, met_phi_i, 0, run, lumi, weight, weight_source)


def _bad_event(i: int, event_id: str, source: str, per_kind, btag_branch: str, met: float,
               met_phi: float | None) -> BadEventError:
    """The first problem of a bad entry, worded as :func:`imgen.events.cms_json.parse_event` words it."""
    here = f"{source}: event {event_id}"
    for c, offsets, _, columns in per_kind:
        for j, k in enumerate(range(offsets[i], offsets[i + 1])):
            for suffix in ("pt", "eta", "phi"):
                value = float(columns[c.branch(suffix)][k])
                if not math.isfinite(value):
                    return BadEventError(f"{here}: {c.branch(suffix)}[{j}] is {value} (NaN or infinite)",
                                         "non-finite value")
                if suffix == "pt" and value < 0:
                    return BadEventError(f"{here}: {c.branch(suffix)}[{j}]: negative pt {value:g} GeV",
                                         "negative pt")
            if btag_branch in columns and not math.isfinite(float(columns[btag_branch][k])):
                return BadEventError(f"{here}: {btag_branch}[{j}] is {float(columns[btag_branch][k])} "
                                     f"(NaN or infinite)", "non-finite value")
    if not math.isfinite(met):
        return BadEventError(f"{here}: MET_pt is {met} (NaN or infinite)", "non-finite value")
    if met < 0:
        return BadEventError(f"{here}: negative MET_pt {met:g} GeV", "negative pt")
    return BadEventError(f"{here}: MET_phi is {met_phi} (NaN or infinite)", "non-finite value")
