"""The cuts of the original analysis, and the cut flow they produce.

Two kinds of cut, applied in this order:

* object-level cuts remove objects (they are neither counted nor drawn):
  leptons (electrons and muons) need ``pt > lepton_pt_min`` and, if asked,
  tight ID and tight isolation; jets need ``pt > jet_pt_min``,
  ``|eta| < jet_eta_max`` and, if asked, tight ID. Photons, taus and MET are
  never cut. Inequalities are strict, as in the paper ("pt > 20 GeV").
* event-level cuts count the objects that survived and remove events:
  number of electrons, of muons, of leptons (electrons + muons), of jets, in
  this order. A count is exact (``"1"``), a minimum (``"2+"`` or ``">=2"``) or a
  maximum (``"<=3"``).

``PRESETS["paper"]``: leptons pt > 20 GeV with tight ID and isolation, jets
pt > 30 GeV with |eta| < 2.4 and tight ID, exactly one lepton. The default,
``"none"``, keeps every object and every event.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

from imgen.errors import ImgenError
from imgen.events.model import LEPTONS, Event

#: Count cuts in the order they are applied (and shown in the cut flow).
COUNT_CUTS = ("n_electrons", "n_muons", "n_leptons", "n_jets")


@dataclass(frozen=True)
class CountCut:
    """``minimum <= count <= maximum`` (``maximum`` None means no upper bound)."""

    minimum: int = 0
    maximum: int | None = None

    @classmethod
    def parse(cls, spec: "str | int | CountCut") -> "CountCut":
        if isinstance(spec, CountCut):
            return spec
        if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
            return cls(spec, spec)
        text = str(spec).strip().replace(" ", "")
        if m := re.fullmatch(r"(\d+)", text):
            return cls(int(m[1]), int(m[1]))
        if m := re.fullmatch(r"(\d+)\+|>=(\d+)", text):
            return cls(int(m[1] or m[2]), None)
        if m := re.fullmatch(r"<=(\d+)", text):
            return cls(0, int(m[1]))
        raise ImgenError(f"count {spec!r}: expected N (exactly), N+ or >=N (at least), <=N (at most)")

    def accepts(self, count: int) -> bool:
        return count >= self.minimum and (self.maximum is None or count <= self.maximum)

    def __str__(self) -> str:
        if self.maximum == self.minimum:
            return f"== {self.minimum}"
        if self.maximum is None:
            return f">= {self.minimum}"
        return f"<= {self.maximum}" if self.minimum == 0 else f"{self.minimum}..{self.maximum}"


@dataclass(frozen=True)
class Selection:
    """Object and event cuts; ``None`` or ``False`` disables a cut. Energies in GeV."""

    lepton_pt_min: float | None = None
    lepton_tight_id: bool = False
    lepton_tight_iso: bool = False
    jet_pt_min: float | None = None
    jet_eta_max: float | None = None
    jet_tight_id: bool = False
    n_electrons: CountCut | None = None
    n_muons: CountCut | None = None
    n_leptons: CountCut | None = None
    n_jets: CountCut | None = None

    def event_cuts(self) -> list[tuple[str, CountCut]]:
        """Active count cuts as (name, cut), in order."""
        return [(name, getattr(self, name)) for name in COUNT_CUTS if getattr(self, name) is not None]

    def cut_names(self) -> list[str]:
        return [f"{name.replace('n_', '')} {cut}" for name, cut in self.event_cuts()]

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in COUNT_CUTS:
            cut = getattr(self, name)
            data[name] = None if cut is None else str(cut)
        return data


PRESETS = {
    "none": Selection(),
    "paper": Selection(lepton_pt_min=20.0, lepton_tight_id=True, lepton_tight_iso=True,
                       jet_pt_min=30.0, jet_eta_max=2.4, jet_tight_id=True,
                       n_leptons=CountCut(1, 1)),
}


def build_selection(preset: "str | Selection | None" = "none", **overrides) -> Selection:
    """A preset (``"none"``, ``"paper"`` or a Selection) with some cuts changed.

    ``overrides`` use the field names (``jet_pt_min=40``, ``n_jets="2+"``);
    a value of None leaves the preset's cut as it is.
    """
    if isinstance(preset, Selection):
        base = preset
    elif (preset or "none") in PRESETS:
        base = PRESETS[preset or "none"]
    else:
        raise ImgenError(f"selection {preset!r}: expected one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(Selection.__dataclass_fields__)
    if unknown:
        raise ImgenError(f"unknown selection option(s): {', '.join(sorted(unknown))}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    for name in COUNT_CUTS:
        if name in changes:
            changes[name] = CountCut.parse(changes[name])
    for name in ("lepton_pt_min", "jet_pt_min", "jet_eta_max"):
        if name in changes:
            changes[name] = float(changes[name])
    return replace(base, **changes)


def _keep(obj, sel: Selection) -> bool:
    if obj.kind in LEPTONS:
        return ((sel.lepton_pt_min is None or obj.pt > sel.lepton_pt_min)
                and (not sel.lepton_tight_id or obj.tight_id)
                and (not sel.lepton_tight_iso or obj.tight_iso))
    if obj.kind == "jet":
        return ((sel.jet_pt_min is None or obj.pt > sel.jet_pt_min)
                and (sel.jet_eta_max is None or abs(obj.eta) < sel.jet_eta_max)
                and (not sel.jet_tight_id or obj.tight_id))
    return True


def select_objects(event: Event, selection: Selection) -> Event:
    """The event with the objects that fail the object-level cuts removed."""
    kept = tuple(o for o in event.objects if _keep(o, selection))
    if len(kept) == len(event.objects):
        return event
    return replace(event, objects=kept)


def object_counts(event: Event) -> dict[str, int]:
    counts = Counter(o.kind for o in event.objects)
    return {"n_electrons": counts["electron"], "n_muons": counts["muon"],
            "n_leptons": counts["electron"] + counts["muon"], "n_jets": counts["jet"]}


def event_cuts_passed(event: Event, selection: Selection) -> int:
    """How many event cuts, in order, an (object-selected) event passes."""
    cuts = selection.event_cuts()
    if not cuts:
        return 0
    counts = object_counts(event)
    for passed, (name, cut) in enumerate(cuts):
        if not cut.accepts(counts[name]):
            return passed
    return len(cuts)


def apply_selection(event: Event, selection: Selection) -> Event | None:
    """Object cuts, then event cuts: the selected event, or None if it is cut."""
    event = select_objects(event, selection)
    return event if event_cuts_passed(event, selection) == len(selection.event_cuts()) else None


@dataclass
class CutFlow:
    """Events per class: in, after each event cut, out. Objects kept per kind.

    Mergeable, so workers count batches and the main process adds them up.
    """

    cut_names: list[str]
    events: dict[str, list[int]] = field(default_factory=dict)
    objects_in: Counter = field(default_factory=Counter)
    objects_kept: Counter = field(default_factory=Counter)

    def add(self, class_name: str, passed: int, kept: bool) -> None:
        """One event that entered; ``passed`` event cuts passed; ``kept`` if it is out."""
        row = self.events.setdefault(class_name, [0] * (len(self.cut_names) + 2))
        row[0] += 1
        for i in range(passed):
            row[1 + i] += 1
        if kept:
            row[-1] += 1

    def merge(self, other: "CutFlow") -> None:
        for name, row in other.events.items():
            mine = self.events.setdefault(name, [0] * len(row))
            for i, n in enumerate(row):
                mine[i] += n
        self.objects_in.update(other.objects_in)
        self.objects_kept.update(other.objects_kept)

    def count_objects(self, before: Event, after: Event) -> None:
        self.objects_in.update(o.kind for o in before.objects)
        self.objects_kept.update(o.kind for o in after.objects)

    def rows(self) -> list[tuple[str, dict[str, int]]]:
        """(step, {class: events}) for in, each cut, out; plus a total column."""
        steps = ["in", *self.cut_names, "out"]
        out = []
        for i, step in enumerate(steps):
            values = {name: row[i] for name, row in sorted(self.events.items())}
            values["total"] = sum(values.values())
            out.append((step, values))
        return out

    def format(self) -> str:
        rows = self.rows()
        if not self.events:
            return "cut flow: no events"
        classes = [c for c in rows[0][1]]
        width = max(12, *(len(s) for s, _ in rows))
        cols = [max(9, len(c)) for c in classes]
        lines = ["  " + "step".ljust(width) + "".join(c.rjust(w + 2) for c, w in zip(classes, cols))]
        for step, values in rows:
            lines.append("  " + step.ljust(width) + "".join(str(values[c]).rjust(w + 2)
                                                          for c, w in zip(classes, cols)))
        cut = sorted(k for k in self.objects_in if self.objects_kept[k] != self.objects_in[k])
        if cut:
            lines.append("  objects kept by the object cuts: " + ", ".join(
                f"{k} {self.objects_kept[k]}/{self.objects_in[k]}" for k in cut))
        return "\n".join(lines)


def cut_flow_of(events: Iterable[tuple[str, Event]], selection: Selection) -> CutFlow:
    """Cut flow of ``(class, event)`` pairs, for notebooks and tests."""
    flow = CutFlow(selection.cut_names())
    total = len(selection.event_cuts())
    for class_name, event in events:
        selected = select_objects(event, selection)
        passed = event_cuts_passed(selected, selection)
        flow.add(class_name, passed, passed == total)
        flow.count_objects(event, selected)
    return flow
