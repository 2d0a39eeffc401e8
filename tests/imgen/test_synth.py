"""The toy generator: determinism, the CMS layout, and the physics of each class."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imgen import synth

CLASSES = ("TTjets", "Wjets", "DYjets")
EVENT_KEYS = {"electron", "muon", "jet", "photon", "tau", "met", "met_phi", "sumet", "njet",
              "numel", "nummu", "run", "lumi", "isMC", "xsec"}
JET_KEYS = {"pt", "eta", "phi", "CSV", "tightID"}
LEPTON_KEYS = {"pt", "eta", "phi", "px", "py", "pz", "tightID", "tightIso"}
CSV_MEDIUM = 0.679


def check_cms_layout(document: dict, require_met_phi: bool) -> int:
    """Assert the CMS tuple layout; returns the number of events checked."""
    assert set(document) == {"Event"}
    for number, event in document["Event"].items():
        assert number.isdigit()
        assert set(event) <= EVENT_KEYS, set(event) - EVENT_KEYS
        assert {"met", "sumet", "njet", "numel", "nummu", "run", "lumi", "isMC", "xsec"} <= set(event)
        if require_met_phi:
            assert -math.pi <= event["met_phi"] <= math.pi
        for group, keys, count_key in (("jet", JET_KEYS, "njet"), ("electron", LEPTON_KEYS, "numel"),
                                       ("muon", LEPTON_KEYS, "nummu")):
            objects = event.get(group)
            # Real files leave empty groups out rather than writing {}.
            assert objects != {}, f"event {number}: empty {group} group written"
            objects = objects or {}
            assert list(objects) == [str(i) for i in range(len(objects))]
            assert event[count_key] == len(objects)
            for obj in objects.values():
                assert set(obj) == keys
                assert obj["pt"] > 0 and -math.pi <= obj["phi"] <= math.pi
    return len(document["Event"])


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("synth")
    paths = synth.generate(out, events=3000, seed=7)
    return {name: json.loads(path.read_text())["Event"] for name, path in paths.items()}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path):
    a = synth.generate(tmp_path / "a", events=50, seed=3)
    b = synth.generate(tmp_path / "b", events=50, seed=3)
    c = synth.generate(tmp_path / "c", events=50, seed=4)
    for name in CLASSES:
        assert a[name].read_bytes() == b[name].read_bytes()
        assert a[name].read_bytes() != c[name].read_bytes()


def test_adding_events_keeps_the_first_ones(tmp_path: Path):
    small = json.loads(synth.generate(tmp_path / "s", 20, seed=5, classes=["Wjets"])["Wjets"].read_text())
    large = json.loads(synth.generate(tmp_path / "l", 40, seed=5, classes=["Wjets"])["Wjets"].read_text())
    assert all(large["Event"][k] == v for k, v in small["Event"].items())


def test_real_fixture_passes_the_same_layout_check(cms_short_json: Path):
    # The checker must accept the real CMS sample, or it would prove nothing.
    assert check_cms_layout(json.loads(cms_short_json.read_text()), require_met_phi=False) == 4


def test_generated_files_have_the_cms_layout_and_its_quirks(sample):
    for name in CLASSES:
        assert check_cms_layout({"Event": sample[name]}, require_met_phi=True) == 3000
    jets = [j for events in sample.values() for e in events.values() for j in e.get("jet", {}).values()]
    assert any(j["CSV"] == -100.0 for j in jets), "real files carry CSV = -100 for some jets"
    assert all(j["CSV"] == -100.0 for j in jets if abs(j["eta"]) > 2.4), "no b-tag outside the tracker"
    assert max(abs(j["eta"]) for j in jets) < 4.7 and max(abs(j["eta"]) for j in jets) > 2.5
    leptons = [l for events in sample.values() for e in events.values()
               for g in ("electron", "muon") for l in e.get(g, {}).values()]
    assert max(abs(l["eta"]) for l in leptons) < 2.5
    assert any("jet" not in e for e in sample["DYjets"].values()), "events without jets omit the group"


def tight_leptons(event: dict) -> list[dict]:
    return [l for g in ("electron", "muon") for l in event.get(g, {}).values()
            if l["pt"] > 20 and l["tightID"] and l["tightIso"]]


def btags(event: dict) -> int:
    return sum(j["CSV"] > CSV_MEDIUM for j in event.get("jet", {}).values())


def dilepton_mass(a: dict, b: dict) -> float:
    e = sum(l["pt"] * math.cosh(l["eta"]) for l in (a, b))
    px, py, pz = (sum(l[k] for l in (a, b)) for k in ("px", "py", "pz"))
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


def test_lepton_multiplicity_per_class(sample):
    fraction_one = {n: np.mean([len(tight_leptons(e)) == 1 for e in sample[n].values()]) for n in CLASSES}
    fraction_two = np.mean([len(tight_leptons(e)) == 2 for e in sample["DYjets"].values()])
    assert fraction_one["TTjets"] > 0.7 and fraction_one["Wjets"] > 0.7
    assert fraction_two > 0.5 and fraction_one["DYjets"] < 0.45


def test_b_jet_multiplicity_and_jets_per_class(sample):
    mean_b = {n: np.mean([btags(e) for e in sample[n].values()]) for n in CLASSES}
    assert 1.2 < mean_b["TTjets"] < 2.2, mean_b
    assert mean_b["Wjets"] < 0.4 and mean_b["DYjets"] < 0.15, mean_b
    njet = {n: np.mean([e["njet"] for e in sample[n].values()]) for n in CLASSES}
    assert njet["TTjets"] > 3.5 > njet["Wjets"] > njet["DYjets"], njet


def test_dilepton_mass_peaks_at_the_z_in_dyjets(sample):
    masses = []
    for e in sample["DYjets"].values():
        for group in ("electron", "muon"):
            objects = list(e.get(group, {}).values())
            if len(objects) == 2:
                masses.append(dilepton_mass(*objects))
    masses = np.array(masses)
    assert len(masses) > 1500
    assert abs(np.median(masses) - 91.19) < 2.0
    assert np.mean(np.abs(masses - 91.19) < 10) > 0.8


def test_met_orders_the_classes_and_about_a_quarter_is_ambiguous(sample):
    met = {n: np.mean([e["met"] for e in sample[n].values()]) for n in CLASSES}
    assert met["TTjets"] > met["Wjets"] > met["DYjets"], met
    # The ambiguous DY mode loses one lepton: a quarter of DY events show one.
    one_lepton = np.mean([e["numel"] + e["nummu"] == 1 for e in sample["DYjets"].values()])
    assert 0.18 < one_lepton < 0.32, one_lepton


def test_cli_writes_files_and_rejects_bad_arguments(tmp_path: Path, python: str):
    done = subprocess.run([python, "-m", "imgen.synth", "--out", str(tmp_path), "--events", "5",
                           "--seed", "1"], capture_output=True, text=True, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DYjets.json", "TTjets.json", "Wjets.json"]
    assert "TTjets: 5 events" in done.stdout
    bad = subprocess.run([python, "-m", "imgen.synth", "--out", str(tmp_path), "--classes", "QCD"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown class" in bad.stderr and "QCD" in bad.stderr
