"""A physics toy generator: CMS-layout JSON events for TTjets, Wjets and DYjets.

Real CMS files cannot ship with the package, so the bundled sample is made
here, in exactly the layout CMS open-data tuple producers write (see the
``Event`` schema in the docs): one JSON file per class, ``{"Event": {"<n>":
{...}}}``, empty object groups absent, ``CSV = -100`` where no b-tag score
exists, ``met_phi`` present. Same seed, same bytes.

Kinematics (all energies in GeV, 7 TeV-like, parton shower and detector
reduced to the features the images show):

* W and Z bosons: Breit-Wigner mass (80.4/2.1, 91.19/2.5 GeV), transverse
  momentum from a Gamma distribution (harder for W from top decays), rapidity
  Gaussian; two-body decay with a 1 + cos^2 angular distribution, boosted to
  the lab. The neutrino of a W decay becomes the missing transverse energy.
* Leptons: |eta| < 2.5 and pt > 10 GeV (acceptance), electron or muon with
  equal probability; prompt leptons pass tight ID and isolation 95 % of the
  time; soft non-isolated leptons from b decays appear in some top events.
* Jets: |eta| < 4.7 (Gaussian in eta), reconstructed above 20 GeV; b jets
  from top decays with pt from Gamma(3, 25 GeV), light jets softer, extra
  radiation with a falling power law. b-tag (CSV) scores come from two
  overlapping Beta distributions (b: Beta(6, 1.3), light: Beta(1, 4), i.e.
  85 % b-tag efficiency and 1 % mistag at the CSV medium working point 0.679); a jet
  outside the tracker (|eta| > 2.4), or 3 % of central jets, has CSV = -100.
* MET: the true neutrino momentum plus Gaussian resolution of
  0.5 * sqrt(sumet) GeV per component; met_phi always present.

About one event in four is drawn from a mode that genuinely mimics another
class: a top pair with a lost jet and an untagged b (looks like W+jets), a
W produced with a b-quark pair and extra jets (looks like a top pair), a Z
whose second lepton escaped detection and shows up as MET (looks like a W).

Usage: ``python -m imgen synth --out DIR --events N --seed S`` (or ``python -m imgen.synth``).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from imgen.atomic import atomic_file

log = logging.getLogger(__name__)

#: Bumped whenever a change to this module changes the events a seed gives (pretrained weights record it).
GENERATOR_VERSION = 1
#: Fraction of events drawn from the mode that mimics another class.
AMBIGUOUS_FRACTION = 0.25
LEPTON_ETA_MAX = 2.5
LEPTON_PT_MIN = 10.0
JET_ETA_MAX = 4.7
JET_PT_MIN = 20.0
TRACKER_ETA_MAX = 2.4
NO_BTAG = -100.0
W_MASS, W_WIDTH = 80.4, 2.1
Z_MASS, Z_WIDTH = 91.19, 2.5
#: Cross sections (pb) written to ``xsec``, 7 TeV NLO-like values.
XSEC = {"TTjets": 157.5, "Wjets": 31314.0, "DYjets": 3048.0}


def _f32(value: float) -> float:
    """Round to float32 and back: real tuples store floats in single precision."""
    return float(np.float32(value))


def _wrap_phi(phi: float) -> float:
    return (phi + math.pi) % (2.0 * math.pi) - math.pi


# --------------------------------------------------------------------------
# Kinematics helpers (pure functions of a numpy Generator)
# --------------------------------------------------------------------------

@dataclass
class Particle:
    px: float
    py: float
    pz: float

    @property
    def pt(self) -> float:
        return math.hypot(self.px, self.py)

    @property
    def eta(self) -> float:
        return math.asinh(self.pz / self.pt) if self.pt > 0 else 0.0

    @property
    def phi(self) -> float:
        return math.atan2(self.py, self.px)

    @classmethod
    def from_pt_eta_phi(cls, pt: float, eta: float, phi: float) -> "Particle":
        return cls(pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta))


def breit_wigner(rng: np.random.Generator, mass: float, width: float, window: float = 25.0) -> float:
    """A Cauchy-distributed mass, truncated to ``mass +- window``."""
    while True:
        m = mass + 0.5 * width * math.tan(math.pi * (rng.random() - 0.5))
        if abs(m - mass) < window:
            return m


def two_body_decay(rng: np.random.Generator, mass: float, pt: float, rapidity: float,
                   phi: float) -> tuple[Particle, Particle]:
    """Decay a boson of given mass and momentum into two massless daughters.

    The polar angle follows 1 + cos^2(theta) in the rest frame (vector boson to
    fermions, unpolarised), then both daughters are boosted to the lab.
    """
    while True:
        cos_t = 2.0 * rng.random() - 1.0
        if 2.0 * rng.random() < 1.0 + cos_t * cos_t:
            break
    sin_t = math.sqrt(1.0 - cos_t * cos_t)
    phi_star = 2.0 * math.pi * rng.random()
    p_star = 0.5 * mass
    daughter = np.array([p_star, p_star * sin_t * math.cos(phi_star),
                         p_star * sin_t * math.sin(phi_star), p_star * cos_t])
    mt = math.hypot(mass, pt)
    boson = np.array([mt * math.cosh(rapidity), pt * math.cos(phi), pt * math.sin(phi),
                      mt * math.sinh(rapidity)])
    beta = boson[1:] / boson[0]
    out = []
    for sign in (1.0, -1.0):
        four = np.array([daughter[0], *(sign * daughter[1:])])
        out.append(_boost(four, beta))
    return out[0], out[1]


def _boost(four: np.ndarray, beta: np.ndarray) -> Particle:
    b2 = float(beta @ beta)
    if b2 <= 0.0:
        return Particle(*four[1:])
    gamma = 1.0 / math.sqrt(1.0 - b2)
    bp = float(beta @ four[1:])
    p = four[1:] + ((gamma - 1.0) * bp / b2 + gamma * four[0]) * beta
    return Particle(float(p[0]), float(p[1]), float(p[2]))


def in_lepton_acceptance(p: Particle) -> bool:
    return p.pt > LEPTON_PT_MIN and abs(p.eta) < LEPTON_ETA_MAX


def boson_decay_in_acceptance(rng: np.random.Generator, mass: float, width: float,
                              pt_shape: float, pt_scale: float,
                              need_both: bool) -> tuple[Particle, Particle]:
    """Resample a boson decay until its lepton(s) fall in the detector acceptance.

    ``need_both``: both daughters must be reconstructable leptons (Z); otherwise
    only the first (W: the second daughter is the neutrino).
    """
    while True:
        m = breit_wigner(rng, mass, width)
        pt = rng.gamma(pt_shape, pt_scale)
        y = rng.normal(0.0, 1.2)
        a, b = two_body_decay(rng, m, pt, y, 2.0 * math.pi * rng.random() - math.pi)
        if in_lepton_acceptance(a) and (not need_both or in_lepton_acceptance(b)):
            return a, b


def jet_eta(rng: np.random.Generator, sigma: float) -> float:
    while True:
        eta = rng.normal(0.0, sigma)
        if abs(eta) < JET_ETA_MAX:
            return eta


def power_law_pt(rng: np.random.Generator, pt_min: float, index: float) -> float:
    """Falling spectrum dN/dpt ~ pt^-index above pt_min (inverse-CDF draw)."""
    return pt_min * (1.0 - rng.random()) ** (-1.0 / (index - 1.0))


def csv_score(rng: np.random.Generator, is_b: bool, eta: float) -> float:
    """b-tag discriminant: two overlapping Beta shapes; -100 where none exists."""
    if abs(eta) > TRACKER_ETA_MAX or rng.random() < 0.03:
        return NO_BTAG
    return float(rng.beta(6.0, 1.3) if is_b else rng.beta(1.0, 4.0))


# --------------------------------------------------------------------------
# Event assembly
# --------------------------------------------------------------------------

@dataclass
class Truth:
    """What a generator mode produced, before the detector-like formatting."""
    leptons: list[tuple[str, Particle, bool]]  # (flavour, momentum, prompt)
    jets: list[tuple[Particle, bool]]          # (momentum, is_b)
    invisible: list[Particle]                  # neutrinos and lost particles


def _flavour(rng: np.random.Generator) -> str:
    return "electron" if rng.random() < 0.5 else "muon"


def _jet(rng: np.random.Generator, pt: float, sigma_eta: float, is_b: bool) -> tuple[Particle, bool]:
    phi = 2.0 * math.pi * rng.random() - math.pi
    return Particle.from_pt_eta_phi(pt, jet_eta(rng, sigma_eta), phi), is_b


def _radiation(rng: np.random.Generator, mean: float) -> list[tuple[Particle, bool]]:
    return [_jet(rng, power_law_pt(rng, 15.0, 3.0), 1.8, rng.random() < 0.02)
            for _ in range(rng.poisson(mean))]


def _soft_lepton_from_b(rng: np.random.Generator, near: Particle) -> tuple[str, Particle, bool]:
    pt = power_law_pt(rng, 3.0, 3.5)
    eta = float(np.clip(near.eta + rng.normal(0, 0.1), -LEPTON_ETA_MAX + 0.01, LEPTON_ETA_MAX - 0.01))
    return _flavour(rng), Particle.from_pt_eta_phi(pt, eta, near.phi + rng.normal(0, 0.1)), False


def truth_ttjets(rng: np.random.Generator, ambiguous: bool) -> Truth:
    """Semileptonic top pair: t -> b l nu, t -> b q q'."""
    lep, nu = boson_decay_in_acceptance(rng, W_MASS, W_WIDTH, 2.0, 35.0, need_both=False)
    jets = [_jet(rng, rng.gamma(3.0, 25.0), 1.0, True) for _ in range(2)]
    jets += [_jet(rng, rng.gamma(2.5, 20.0), 1.4, False) for _ in range(2)]
    jets += _radiation(rng, 0.6)
    leptons = [(_flavour(rng), lep, True)]
    if rng.random() < 0.15:
        leptons.append(_soft_lepton_from_b(rng, jets[0][0]))
    if ambiguous:
        # A jet falls below threshold and one b escapes tagging: W+jets-like.
        jets[3] = (Particle.from_pt_eta_phi(rng.uniform(5.0, JET_PT_MIN), jets[3][0].eta, jets[3][0].phi), False)
        jets[1] = (jets[1][0], False)
    return Truth(leptons, jets, [nu])


def truth_wjets(rng: np.random.Generator, ambiguous: bool) -> Truth:
    """W -> l nu with softer, mostly light recoil jets."""
    lep, nu = boson_decay_in_acceptance(rng, W_MASS, W_WIDTH, 1.5, 12.0, need_both=False)
    jets = [_jet(rng, power_law_pt(rng, 20.0, 3.2), 1.8, rng.random() < 0.05)
            for _ in range(rng.poisson(1.2))]
    if ambiguous:
        # W + heavy flavour with hard extra radiation: top-pair-like jet
        # multiplicity with a b-tagged jet.
        jets += [_jet(rng, rng.gamma(3.0, 20.0), 1.1, True)]
        jets += [_jet(rng, rng.gamma(2.5, 20.0), 1.4, False) for _ in range(2 + rng.poisson(0.5))]
    return Truth([(_flavour(rng), lep, True)], jets, [nu])


def truth_dyjets(rng: np.random.Generator, ambiguous: bool) -> Truth:
    """Z/gamma* -> l+ l- (same flavour, opposite charge by construction)."""
    a, b = boson_decay_in_acceptance(rng, Z_MASS, Z_WIDTH, 1.5, 8.0, need_both=True)
    flavour = _flavour(rng)
    jets = [_jet(rng, power_law_pt(rng, 20.0, 3.5), 1.8, rng.random() < 0.05)
            for _ in range(rng.poisson(0.8))]
    leptons = [(flavour, a, True), (flavour, b, True)]
    invisible: list[Particle] = []
    if ambiguous:
        # The softer lepton escapes reconstruction and its momentum shows up
        # as missing transverse energy: W-like.
        lost = min(range(2), key=lambda i: leptons[i][1].pt)
        invisible.append(leptons.pop(lost)[1])
    return Truth(leptons, jets, invisible)


#: Class name -> generator mode. Adding a class is one entry.
CLASS_GENERATORS: dict[str, Callable[[np.random.Generator, bool], Truth]] = {
    "TTjets": truth_ttjets,
    "Wjets": truth_wjets,
    "DYjets": truth_dyjets,
}


def detector_event(rng: np.random.Generator, truth: Truth, xsec: float, number: int) -> dict:
    """Format a truth record as a CMS-layout event (thresholds, IDs, MET)."""
    event: dict = {}
    groups: dict[str, list[dict]] = {"electron": [], "muon": []}
    for flavour, p, prompt in sorted(truth.leptons, key=lambda item: -item[1].pt):
        tight = rng.random() < (0.95 if prompt else 0.3)
        isolated = rng.random() < (0.95 if prompt else 0.1)
        groups[flavour].append({
            "eta": _f32(p.eta), "phi": _f32(p.phi), "pt": _f32(p.pt),
            "px": _f32(p.px), "py": _f32(p.py), "pz": _f32(p.pz),
            "tightID": bool(tight), "tightIso": bool(isolated),
        })
    jets = []
    for p, is_b in sorted(truth.jets, key=lambda item: -item[0].pt):
        if p.pt < JET_PT_MIN:
            continue
        jets.append({"CSV": _f32(csv_score(rng, is_b, p.eta)), "eta": _f32(p.eta),
                     "phi": _f32(p.phi), "pt": _f32(p.pt), "tightID": bool(rng.random() < 0.98)})
    visible_pt = sum(j["pt"] for j in jets) + sum(p.pt for _, p, _ in truth.leptons)
    sumet = visible_pt + rng.gamma(5.0, 60.0)
    sigma = 0.5 * math.sqrt(sumet)
    mex = sum(p.px for p in truth.invisible) + rng.normal(0.0, sigma)
    mey = sum(p.py for p in truth.invisible) + rng.normal(0.0, sigma)

    event["isMC"] = 1
    if groups["electron"]:
        event["electron"] = {str(i): o for i, o in enumerate(groups["electron"])}
    if jets:
        event["jet"] = {str(i): o for i, o in enumerate(jets)}
    if groups["muon"]:
        event["muon"] = {str(i): o for i, o in enumerate(groups["muon"])}
    event["lumi"] = 1 + number // 1000
    event["met"] = _f32(math.hypot(mex, mey))
    event["met_phi"] = _f32(math.atan2(mey, mex))
    event["njet"] = len(jets)
    event["numel"] = len(groups["electron"])
    event["nummu"] = len(groups["muon"])
    event["run"] = 1
    event["sumet"] = _f32(sumet)
    event["xsec"] = _f32(xsec)
    return event


def generate_events(class_name: str, events: int, seed: int) -> Iterator[tuple[str, dict]]:
    """Yield ``(event number, event dict)`` for one class, deterministically.

    Each class has its own random stream derived from (seed, class index), so
    adding events to one class never changes another.
    """
    if class_name not in CLASS_GENERATORS:
        raise ValueError(f"unknown class {class_name!r}; known: {', '.join(CLASS_GENERATORS)}")
    index = list(CLASS_GENERATORS).index(class_name)
    rng = np.random.default_rng([seed, index])
    make_truth = CLASS_GENERATORS[class_name]
    for number in range(1, events + 1):
        truth = make_truth(rng, rng.random() < AMBIGUOUS_FRACTION)
        yield str(number), detector_event(rng, truth, XSEC[class_name], number)


def write_class_file(path: Path, class_name: str, events: int, seed: int, indent: int | None = 3) -> Path:
    """Stream one class's events into ``path`` atomically (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pad = "" if indent is None else " " * indent
    newline = "" if indent is None else "\n"
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write("{" + newline + pad + '"Event": {' + newline)
        first = True
        for number, event in generate_events(class_name, events, seed):
            body = json.dumps(event, indent=indent, sort_keys=True)
            if indent is not None:
                body = body.replace("\n", "\n" + pad * 2)
            handle.write(("" if first else "," + newline) + pad * 2 + json.dumps(number) + ": " + body)
            first = False
        handle.write(newline + pad + "}" + newline + "}" + newline)
    return path


def generate(out_dir: str | os.PathLike, events: int = 1000, seed: int = 42,
             classes: list[str] | None = None, indent: int | None = 3) -> dict[str, Path]:
    """Write ``<out_dir>/<class>.json`` for each class; returns class -> path.

    ``events`` is the number of events per class.
    """
    if events < 1:
        raise ValueError(f"events must be at least 1, got {events}")
    out = Path(out_dir)
    written = {}
    for name in classes or list(CLASS_GENERATORS):
        written[name] = write_class_file(out / f"{name}.json", name, events, seed, indent)
        log.info("wrote %d %s events to %s", events, name, written[name])
    return written


if __name__ == "__main__":  # python -m imgen.synth: the same command as python -m imgen synth
    from imgen.__main__ import main

    sys.exit(main(["synth", *sys.argv[1:]]))
