"""The standard physics numbers of an event: what a cut-based analysis or a BDT would use.

These are the inputs of the gradient-boosted baseline that ``transfer`` fits
beside every network trained on images rendered from events
(:mod:`transfer.evaluation.baseline`): if a network trained on the images does worse than
trees on these numbers, the images or the training lose information, and the
run says so.

The features are computed from the objects the image shows: the event after
the same object selection as the rendering (:func:`imgen.selection.select_objects`),
only the object kinds that were drawn, and only objects inside the image's
eta range (``|eta| <= eta_max``). MET counts when it was drawn (it has a
``met_phi``). Missing values (no second jet, fewer than two leptons) are NaN,
which the trees handle natively.

Pure functions of :class:`imgen.events.model.Event`; :func:`features_of_sources`
reads them back for the rows of a manifest (its ``source`` and ``event``
columns), one pass per source file.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from imgen.errors import BadEventError, ImgenError
from imgen.events.inputs import InputFile, file_kind
from imgen.events.model import LEPTONS, Event
from imgen.events.readers import ReadOptions, reader_for
from imgen.output.settings import CONFIG_NAME
from imgen.render import CSV_MEDIUM, OBJECT_KINDS
from imgen.selection import Selection, build_selection, select_objects

#: Feature names, in column order.
FEATURE_NAMES = (
    "n_jets", "n_bjets", "n_electrons", "n_muons", "n_leptons", "n_photons", "n_taus",
    "met", "ht", "jet1_pt", "jet2_pt", "bjet1_pt", "lepton1_pt", "lepton2_pt",
    "dilepton_mass", "dilepton_same_flavour", "lepton_met_mt", "lepton1_abs_eta",
)


def _dilepton_mass(a, b) -> float:
    """Invariant mass of two massless objects from pt, eta, phi."""
    return math.sqrt(max(0.0, 2.0 * a.pt * b.pt * (math.cosh(a.eta - b.eta) - math.cos(a.phi - b.phi))))


def _transverse_mass(lepton, met: float, met_phi: float) -> float:
    return math.sqrt(max(0.0, 2.0 * lepton.pt * met * (1.0 - math.cos(lepton.phi - met_phi))))


def event_features(event: Event, btag_wp: float = CSV_MEDIUM, eta_max: float = math.inf,
                   objects: Iterable[str] = OBJECT_KINDS) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one (already selected) event, as float64.

    ``btag_wp``, ``eta_max`` and ``objects`` are the rendering's: a jet with a
    CSV score above ``btag_wp`` is a b-jet, objects beyond ``eta_max`` and kinds
    not in ``objects`` are left out (they are not in the image either).
    """
    kinds = set(objects)
    shown = [o for o in event.objects if abs(o.eta) <= eta_max]
    jets = sorted((o for o in shown if o.kind == "jet"), key=lambda o: -o.pt)
    bjets = [j for j in jets if j.btag is not None and j.btag > btag_wp]
    if "bjet" not in kinds:
        jets = [j for j in jets if j not in bjets] if "jet" in kinds else []
        bjets = []
    elif "jet" not in kinds:
        jets = list(bjets)
    leptons = sorted((o for o in shown if o.kind in LEPTONS and o.kind in kinds), key=lambda o: -o.pt)
    n_of = {kind: sum(1 for o in shown if o.kind == kind) if kind in kinds else 0
            for kind in ("electron", "muon", "photon", "tau")}
    met = event.met if ("met" in kinds and event.met is not None and event.met_phi is not None) else math.nan
    nan = math.nan
    values = [
        len(jets), len(bjets), n_of["electron"], n_of["muon"], len(leptons), n_of["photon"], n_of["tau"],
        met, sum(j.pt for j in jets),
        jets[0].pt if jets else nan, jets[1].pt if len(jets) > 1 else nan,
        bjets[0].pt if bjets else nan,
        leptons[0].pt if leptons else nan, leptons[1].pt if len(leptons) > 1 else nan,
        _dilepton_mass(leptons[0], leptons[1]) if len(leptons) > 1 else nan,
        float(leptons[0].kind == leptons[1].kind) if len(leptons) > 1 else nan,
        _transverse_mass(leptons[0], met, event.met_phi) if leptons and not math.isnan(met) else nan,
        abs(leptons[0].eta) if leptons else nan,
    ]
    return np.asarray(values, dtype=np.float64)


def rendering_settings(imgen_config: Mapping) -> dict:
    """``btag_wp``, ``eta_max``, ``objects`` and the :class:`Selection` from an ``imgen-config.json`` record."""
    render = imgen_config.get("render", {})
    selection = {k: (v.replace("==", "").strip() if isinstance(v, str) else v)
                 for k, v in (imgen_config.get("selection") or {}).items()}  # "== 1" as CountCut writes it
    try:
        built = build_selection("none", **selection)
    except (ImgenError, TypeError) as exc:
        raise ImgenError(f"imgen-config.json: cannot rebuild its selection {selection} ({exc})") from None
    branch = (imgen_config.get("pixels") or {}).get("nanoaod.btag_branch")
    return {"btag_wp": float(render.get("btag_wp", CSV_MEDIUM)), "eta_max": float(render.get("eta_max", math.inf)),
            "objects": tuple(render.get("objects", OBJECT_KINDS)), "selection": built,
            "read_options": ReadOptions(**({"btag_branch": branch} if branch else {}))}


def source_events(path: str | os.PathLike, options: ReadOptions | None = None):
    """Every event of one event file (JSON or NanoAOD ROOT), through the same readers as the rendering."""
    item = InputFile(class_name="", path=Path(path))
    if file_kind(item.path) is None:
        raise ImgenError(f"{path}: not an event file imgen reads (.json, .json.gz, .root)")
    reader = reader_for(item)
    with reader.open(item, options or ReadOptions()) as stream:
        for number, payload in stream:
            try:
                yield reader.parse(number, payload, item.location)
            except BadEventError:  # skipped (and counted) by the rendering too: never in a manifest
                continue


def read_imgen_config(root: str | os.PathLike) -> dict | None:
    """The ``imgen-config.json`` that ``imgen`` wrote into ``root``, or None."""
    path = Path(root) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImgenError(f"{path}: not readable JSON ({exc})") from None


def resolve_source(source: str, root: str | os.PathLike) -> Path | None:
    """The event file a manifest's ``source`` names: as written (absolute or from the current
    folder), else relative to the dataset folder or its parent (where ``imgen`` usually ran)."""
    path = Path(source)
    candidates = [path] if path.is_absolute() else [path, Path(root) / path, Path(root).parent / path]
    return next((c for c in candidates if c.is_file()), None)


def features_of_sources(rows: Iterable[tuple[str, str]], root: str | os.PathLike,
                        settings: Mapping | None = None) -> np.ndarray:
    """One :data:`FEATURE_NAMES` row per ``(source, event)`` pair, in the order given.

    Each source file is read once (streaming) and its events are selected as
    in the rendering (``settings`` from :func:`rendering_settings`; default: no
    selection). Raises :class:`ImgenError` naming the file when a source
    cannot be found or an event is not in it.
    """
    rows = list(rows)
    settings = dict(settings or {"btag_wp": CSV_MEDIUM, "eta_max": math.inf, "objects": OBJECT_KINDS,
                                 "selection": build_selection("none")})
    selection: Selection = settings["selection"]
    wanted: dict[str, set[str]] = {}
    for source, event in rows:
        wanted.setdefault(source, set()).add(str(event))
    found: dict[tuple[str, str], np.ndarray] = {}
    for source, events in wanted.items():
        path = resolve_source(source, root)
        if path is None:
            raise ImgenError(f"{source}: the event file named in {Path(root) / 'manifest.csv'} is not found "
                             f"(looked from the current folder, {root} and {Path(root).parent})")
        for event in source_events(path, settings.get("read_options")):
            if event.event_id in events:
                found[(source, event.event_id)] = event_features(
                    select_objects(event, selection), settings["btag_wp"], settings["eta_max"],
                    settings["objects"])
        missing = events - {e for s, e in found if s == source}
        if missing:
            raise ImgenError(f"{path}: {len(missing)} event(s) of the manifest are not in it "
                             f"(e.g. {sorted(missing)[0]})")
    return np.stack([found[(source, str(event))] for source, event in rows]) if rows else \
        np.zeros((0, len(FEATURE_NAMES)))
