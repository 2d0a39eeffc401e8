"""Small, physically plausible HDF5 files in the three layouts :mod:`imgen.arrays` reads.

Real calorimeter samples are gigabytes and cannot ship with the package; tests,
benchmarks and the notebook write these instead. Same seed, same arrays.

* **Electron / photon crops** (layout 1, or one file per class): 32x32 cells,
  channels ``energy`` (GeV) and ``time`` (ns), about 50 GeV per shower.
  Photon: one compact core (sigma 0.9 cells); 30 % convert, giving two
  sub-clusters split along phi. Electron: a core broader in phi (sigma 1.3
  cells, the magnetic field spreads it) and, 60 % of the time, a
  bremsstrahlung photon further along phi. Converted photons and radiating
  electrons look alike: separable, with overlap. Cells below 0.15 GeV
  (3 sigma of the 0.05 GeV noise) are zero; time is Gaussian jitter shrinking
  with the cell energy, and zero where the energy is.
* **Trigger towers** (layout 2, class from folder): ``gTowerEt`` (N, 28, 32)
  in MeV. Pileup is Gamma distributed, minus a pedestal subtraction, plus
  electronic noise: about 6 % of all values are negative. Rows 0, 1 and 27
  (outside the acceptance) and row 14 (a dead row) are always zero. Class
  ``jets`` has one or two hard jets of 20-60 GeV; ``pileup`` only
  sometimes a soft one of 5-25 GeV.
* **Realistic trigger towers** (layout 2, class from folder): ``gTowerEt``
  (N, 28, 32) in MeV, eta along the rows (0.2 per tower), phi along the 32
  columns (periodic: deposits near phi = +-pi wrap across the edge, so a roll
  along the columns gives an event of the same physics). Both classes have
  two back-to-back large-radius jets, extra radiation jets and heavy pileup
  (see :func:`write_realistic_towers`): ``signal`` is a 1.1 TeV resonance
  X -> W W with two-pronged jets, ``multijet`` QCD dijets from a falling
  mass spectrum with gluon jets and more radiation. The classes overlap:
  gradient-boosted trees on the cells reach about 0.83 ROC AUC at 2,000
  events, and a network trained from scratch can memorise them.
* **Three-layer calorimeter** (layout 3, one file per class): ``layer_0``
  (N, 3, 96), ``layer_1`` (N, 12, 12), ``layer_2`` (N, 12, 6) over the same
  transverse extent, and ``energy`` (N, 1), the sum of all cells. ``eplus``
  and ``gamma`` deposit mostly in layer 1, photons starting later (less in
  layer 0); ``piplus`` showers are wider and deeper.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from imgen.atomic import atomic_path

EGAMMA_CLASSES = ("electron", "photon")
TOWER_CLASSES = ("jets", "pileup")
LAYER_CLASSES = ("eplus", "gamma", "piplus")
LAYER_SHAPES = {"layer_0": (3, 96), "layer_1": (12, 12), "layer_2": (12, 6)}
#: Always-zero rows of the trigger tower map.
TOWER_ZERO_ROWS = (0, 1, 14, 27)
#: Electron core width along phi in cells (photons: 0.9).
ELECTRON_PHI_WIDTH = 1.15


@contextmanager
def _atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file written under a temporary name, renamed into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, prefix=f".{path.stem}-", suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
        yield handle


def _gauss_1d(n_cells: int, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(..., n_cells) Gaussian at cell centres on [0, n_cells), normalised to 1."""
    x = np.arange(n_cells) + 0.5
    g = np.exp(-0.5 * ((x - centre[..., None]) / sigma[..., None]) ** 2)
    return g / np.maximum(g.sum(axis=-1, keepdims=True), 1e-300)


def _showers(rows: int, cols: int, c_row, c_col, s_row, s_col, energy) -> np.ndarray:
    """Sum of separable Gaussian showers: arguments (N, K) -> (N, rows, cols)."""
    return np.einsum("nkh,nkw,nk->nhw", _gauss_1d(rows, c_row, s_row), _gauss_1d(cols, c_col, s_col), energy)


# ---------------------------------------------------------------- e / gamma
def electron_photon_events(n: int, particle: str, rng: np.random.Generator,
                           size: int = 32) -> np.ndarray:
    """(n, size, size, 2) float32 crops [energy GeV, time ns] of one particle type."""
    if particle not in EGAMMA_CLASSES:
        raise ValueError(f"particle must be one of {EGAMMA_CLASSES}, not {particle!r}")
    centre = size / 2 + rng.uniform(-0.5, 0.5, (n, 1))
    c_col = np.repeat(centre, 2, axis=1)  # eta: columns
    c_row = np.repeat(size / 2 + rng.uniform(-0.5, 0.5, (n, 1)), 2, axis=1)  # phi: rows
    total = 50.0 * (1 + 0.1 * rng.standard_normal(n))
    split = np.ones(n)  # share of the main shower
    spread = rng.lognormal(0.0, 0.1, (n, 1))  # shower-to-shower width fluctuation
    s_col = np.full((n, 2), 0.9) * spread
    s_row = np.full((n, 2), 0.9) * spread
    offset = np.zeros(n)
    if particle == "electron":
        s_row[:, 0] *= ELECTRON_PHI_WIDTH / 0.9
        brem = rng.random(n) < 0.6
        split = np.where(brem, 1 - rng.uniform(0.1, 0.4, n), 1.0)
        offset = np.where(brem, rng.uniform(1.5, 5.0, n), 0.0)
    else:
        convert = rng.random(n) < 0.3
        split = np.where(convert, rng.uniform(0.5, 0.8, n), 1.0)
        offset = np.where(convert, rng.uniform(1.0, 4.0, n), 0.0)
    c_row[:, 1] += rng.choice([-1.0, 1.0], n) * offset  # the partner is displaced in phi
    energy = np.stack([split, 1 - split], axis=1) * total[:, None]
    e = _showers(size, size, c_row, c_col, s_row, s_col, energy)
    e = e + 0.05 * rng.standard_normal(e.shape)
    e = np.where(e < 0.15, 0.0, e)
    t = np.where(e > 0, rng.standard_normal(e.shape) * 0.5 / np.sqrt(np.maximum(e, 1e-9)), 0.0)
    return np.stack([e, t], axis=-1).astype(np.float32)


def electron_photon_sample(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) with y = 0 electron, 1 photon, events shuffled; deterministic in seed."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([electron_photon_events(n_per_class, p, rng) for p in EGAMMA_CLASSES])
    y = np.repeat(np.arange(len(EGAMMA_CLASSES)), n_per_class)
    order = rng.permutation(len(y))
    return x[order], y[order]


def _write_egamma(handle: h5py.File, x: np.ndarray, y: np.ndarray | None) -> None:
    dset = handle.create_dataset("X", data=x)
    dset.attrs["channel_names"] = ["energy", "time"]
    dset.attrs["units"] = ["GeV", "ns"]
    if y is not None:
        handle.create_dataset("y", data=y.astype(np.float32))


def write_electron_photon_combined(path: str | os.PathLike, n_per_class: int, seed: int = 0) -> Path:
    """Layout 1: ``/X`` (N, 32, 32, 2) float32 and ``/y`` (N,) 0 = electron, 1 = photon."""
    x, y = electron_photon_sample(n_per_class, seed)
    with _atomic_h5(path) as handle:
        _write_egamma(handle, x, y)
    return Path(path)


def write_electron_photon_per_class(folder: str | os.PathLike, n_per_class: int,
                                    seed: int = 0) -> dict[str, Path]:
    """The same events as :func:`write_electron_photon_combined`, one file per class.

    Each file also has ``y`` (all one value), as real per-class files do.
    """
    x, y = electron_photon_sample(n_per_class, seed)
    out = {}
    for cid, name in enumerate(EGAMMA_CLASSES):
        out[name] = Path(folder) / f"{name}.h5"
        with _atomic_h5(out[name]) as handle:
            _write_egamma(handle, x[y == cid], y[y == cid])
    return out


def write_electron_photon_large(path: str | os.PathLike, n_events: int, seed: int = 0,
                                chunk_events: int = 8192, hdf5_chunk: int = 256,
                                compression: str | None = None) -> Path:
    """Layout 1 of any size, written chunk by chunk (memory: one chunk).

    Used by ``benchmarks/arrays.py`` to make files larger than memory.
    """
    with _atomic_h5(path) as handle:
        xd = handle.create_dataset("X", shape=(n_events, 32, 32, 2), dtype=np.float32,
                                   chunks=(min(hdf5_chunk, n_events), 32, 32, 2), compression=compression)
        xd.attrs["channel_names"] = ["energy", "time"]
        yd = handle.create_dataset("y", shape=(n_events,), dtype=np.float32)
        for number, start in enumerate(range(0, n_events, chunk_events)):
            n = min(chunk_events, n_events - start)
            rng = np.random.default_rng([seed, number])
            y = rng.integers(0, 2, n)
            x = np.empty((n, 32, 32, 2), np.float32)
            for cid, name in enumerate(EGAMMA_CLASSES):
                x[y == cid] = electron_photon_events(int((y == cid).sum()), name, rng)
            xd[start:start + n] = x
            yd[start:start + n] = y
    return Path(path)


# ------------------------------------------------------------ trigger towers
def trigger_tower_events(n: int, kind: str, rng: np.random.Generator,
                         shape: tuple[int, int] = (28, 32)) -> np.ndarray:
    """(n, 28, 32) float32 gTowerEt in MeV for class ``jets`` or ``pileup``."""
    if kind not in TOWER_CLASSES:
        raise ValueError(f"kind must be one of {TOWER_CLASSES}, not {kind!r}")
    rows, cols = shape
    et = rng.gamma(2.0, 300.0, (n, rows, cols)) - 130.0 + rng.normal(0.0, 40.0, (n, rows, cols))
    k = 2
    if kind == "jets":
        energy = rng.uniform(20e3, 60e3, (n, k)) * np.stack([np.ones(n), rng.random(n) < 0.5], axis=1)
    else:
        energy = rng.uniform(5e3, 25e3, (n, k)) * np.stack([rng.random(n) < 0.4, np.zeros(n)], axis=1)
    c_row = rng.uniform(3, rows - 3, (n, k))
    c_col = rng.uniform(2, cols - 2, (n, k))
    sigma = np.full((n, k), 1.2)
    et = et + _showers(rows, cols, c_row, c_col, sigma, sigma, energy)
    et[:, list(TOWER_ZERO_ROWS), :] = 0.0
    return et.astype(np.float32)


def write_trigger_towers(folder: str | os.PathLike, n_per_class: int, seed: int = 0,
                         files_per_class: int = 2) -> dict[str, list[Path]]:
    """Layout 2: ``folder/<class>/part-<i>.h5`` with ``gTowerEt`` only (no labels)."""
    return _write_tower_files(folder, TOWER_CLASSES, n_per_class, files_per_class,
                              trigger_tower_events, seed, {"units": "MeV"})


def _write_tower_files(folder, classes, n_per_class: int, files_per_class: int, events, seed: int,
                       attrs: dict) -> dict[str, list[Path]]:
    """Layout 2 of ``classes``: ``folder/<class>/part-<i>.h5``, each a ``gTowerEt`` dataset of
    ``events(n, class, rng)`` with ``attrs``; one generator of ``seed`` draws every file in turn."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for name in classes:
        sizes = np.diff(np.linspace(0, n_per_class, files_per_class + 1).astype(int))
        out[name] = []
        for i, size in enumerate(sizes):
            path = Path(folder) / name / f"part-{i}.h5"
            with _atomic_h5(path) as handle:
                dset = handle.create_dataset("gTowerEt", data=events(int(size), name, rng))
                dset.attrs.update(attrs)
            out[name].append(path)
    return out


# ------------------------------------------------- realistic trigger towers
#: Classes of :func:`write_realistic_towers`, in label order (the signal second, as ``transfer`` expects).
REALISTIC_TOWER_CLASSES = ("multijet", "signal")
#: Tower size: 0.2 in eta (rows) by 2 pi / 32 in phi (columns, periodic).
TOWER_ETA_SIZE, TOWER_PHI_SIZE = 0.2, 2 * np.pi / 32
#: Pileup: mean number of soft pileup particles per tower and per interaction at eta = 0, and their mean
#: transverse energy (MeV); the density grows towards the forward rows as 1 + RISE (eta / 2.5)^4.
PILEUP_PARTICLES_PER_MU, PILEUP_PARTICLE_ET = 0.02, 350.0
PILEUP_FORWARD_RISE = 4.0
#: Pileup jets (MeV): on average one per this many interactions, 10 GeV x (1 + Pareto(2.5)).
PILEUP_JETS_PER_MU, PILEUP_JET_ET = 1 / 6, 10e3
#: Electronic noise per tower (MeV), at eta = 0 and at the edge of the acceptance.
TOWER_NOISE = (150.0, 300.0)
#: Zero suppression of the readout: towers with |ET| below this (MeV) are sent as 0.
TOWER_NOISE_CUT = 500.0
#: The two leading large-radius jets. Signal: a resonance X -> W W (or Z Z) of this mass (MeV) and
#: relative width (natural width and jet response), decaying isotropically. Background: QCD dijets,
#: their mass a falling power law from a threshold, their rapidity difference from the Rutherford-like
#: t-channel (chi = exp|dy| uniform on [1, 12]).
RESONANCE_MASS, RESONANCE_WIDTH = 1100e3, 0.08
DIJET_MASS_MIN, DIJET_MASS_INDEX, DIJET_MASS_MAX = 500e3, 3.0, 4e6
#: The W/Z inside a signal jet: mass (MeV) and its resolution.
SIGNAL_MASS, SIGNAL_MASS_WIDTH = 85e3, 8e3
#: Extra (initial/final-state radiation) jets per event, Poisson means: a colour-singlet signal radiates
#: less than a multijet event. pT (MeV) 25 GeV x Pareto(2.5), capped.
EXTRA_JETS = {"multijet": 2.5, "signal": 1.0}
EXTRA_JET_PT_MIN, EXTRA_JET_PT_INDEX, EXTRA_JET_PT_MAX = 25e3, 2.5, 400e3
#: Spread of a jet's fragments about its axis, in towers at 100 GeV (shrinking as 1/sqrt(pT)):
#: quark jets (the boson's prongs) are narrower than gluon jets (most of the multijet background).
QUARK_WIDTH, GLUON_WIDTH = 0.55, 0.85
#: Lateral size of one fragment's shower, in towers.
SHOWER_WIDTH = 0.45


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function to 1.5e-7 (Abramowitz and Stegun 7.1.26), without SciPy."""
    sign, x = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _cell_integrals(n_cells: int, centre: np.ndarray, sigma: np.ndarray, periodic: bool) -> np.ndarray:
    """(..., n_cells) share of a Gaussian of ``centre``/``sigma`` (in cells) falling in each cell [i, i+1).

    Along a periodic axis the Gaussian wraps around (its images one period away on either side are added),
    so the shares sum to 1; along an open one what falls outside the cells is lost, as energy leaving the
    acceptance is.
    """
    edges = np.arange(n_cells + 1, dtype=np.float64)
    shifts = (-n_cells, 0, n_cells) if periodic else (0,)
    out = 0.0
    for shift in shifts:
        z = (edges - (centre[..., None] + shift)) / (np.sqrt(2.0) * sigma[..., None])
        out = out + 0.5 * np.diff(_erf(z), axis=-1)
    return out


def _deposit(rows: int, cols: int, c_row, c_col, sigma, energy) -> np.ndarray:
    """Sum of Gaussian deposits, arguments (N, K) in cells and MeV -> (N, rows, cols); phi (columns) wraps."""
    return np.einsum("nkh,nkw,nk->nhw", _cell_integrals(rows, c_row, sigma, periodic=False),
                     _cell_integrals(cols, c_col % cols, sigma, periodic=True), energy)


def _pareto(rng: np.random.Generator, low: float, index: float, high: float, size) -> np.ndarray:
    """A falling power-law spectrum dN/dx ~ x^-(index+1) from ``low``, capped at ``high``."""
    return np.minimum(low * rng.random(size) ** (-1.0 / index), high)


def _fragments(rng: np.random.Generator, c_row, c_col, pt, width: float, n_fragments: int = 4):
    """A jet (or prong) of ``pt`` (N,) at (c_row, c_col) split into fragments: (N, F) centres and energies.

    The shares are Dirichlet(0.8) (one or two hard fragments and softer ones), the offsets Gaussian with
    ``width`` towers at 100 GeV, narrowing as 1/sqrt(pT); each fragment's energy is smeared by the
    calorimeter resolution 50 % / sqrt(E / GeV) (+) 5 %.
    """
    n = len(pt)
    share = rng.dirichlet(np.full(n_fragments, 0.8), n)
    spread = (width * np.sqrt(100e3 / np.maximum(pt, 1e3))).clip(0.15, 2.0)[:, None]
    rows = c_row[:, None] + spread * rng.standard_normal((n, n_fragments))
    cols = c_col[:, None] + spread * rng.standard_normal((n, n_fragments))
    energy = share * pt[:, None]
    resolution = np.sqrt(0.25 / np.maximum(energy / 1e3, 1e-3) + 0.05 ** 2)
    energy = energy * (1.0 + resolution * rng.standard_normal(energy.shape)).clip(0.0, None)
    return rows, cols, energy


def _pileup(rng: np.random.Generator, n: int, rows: int, cols: int, mu: np.ndarray, mu_reference: float):
    """Pileup minus its pedestal, pileup jets and electronic noise, (n, rows, cols) MeV, for ``mu`` (n,).

    Soft pileup is compound Poisson (a Poisson number of particles per tower, each of exponential energy:
    a Gamma of that many units), heavy-tailed; the pedestal subtracts its mean at ``mu_reference``, so
    events above it are biased up and below it down. Pileup jets (one per :data:`PILEUP_JETS_PER_MU`
    interactions) add hard, localised fluctuations in both classes.
    """
    eta = (np.arange(rows) + 0.5 - rows / 2) * TOWER_ETA_SIZE
    density = 1.0 + PILEUP_FORWARD_RISE * (eta / 2.5) ** 4
    mean_particles = PILEUP_PARTICLES_PER_MU * density[None, :, None] * mu[:, None, None]
    count = rng.poisson(np.broadcast_to(mean_particles, (n, rows, cols)))
    et = rng.gamma(np.maximum(count, 1e-12), PILEUP_PARTICLE_ET) * (count > 0)
    et -= PILEUP_PARTICLES_PER_MU * density[None, :, None] * mu_reference * PILEUP_PARTICLE_ET
    noise = TOWER_NOISE[0] + (TOWER_NOISE[1] - TOWER_NOISE[0]) * np.minimum(np.abs(eta) / 2.5, 1.0)
    et += noise[None, :, None] * rng.standard_normal((n, rows, cols))
    k = 12
    present = np.arange(k)[None, :] < rng.poisson(mu * PILEUP_JETS_PER_MU)[:, None]
    pt = PILEUP_JET_ET * (1.0 + rng.pareto(2.5, (n, k))) * present
    centres = rng.uniform(0, rows, (n, k)), rng.uniform(0, cols, (n, k))
    et += _deposit(rows, cols, *centres, np.full((n, k), 0.9), pt)
    return et


def _dijet(rng: np.random.Generator, n: int, kind: str, max_eta: float = 2.3):
    """pT (MeV), eta and phi (rad) of the two leading jets, (2, n) each, both inside |eta| < ``max_eta``.

    Signal: X -> V V at the resonance mass, cos(theta*) uniform; background: a falling dijet mass
    spectrum, forward-peaked (chi = exp|dy| uniform). pT = m / (2 cosh y*), the pair boosted along the
    beam by a Gaussian rapidity (sigma 0.5); events with a jet outside the acceptance are drawn again.
    """
    pt, eta = np.empty((2, n)), np.empty((2, n))
    todo = np.arange(n)
    while len(todo):
        m = len(todo)
        if kind == "signal":
            mass = RESONANCE_MASS * (1 + RESONANCE_WIDTH * rng.standard_normal(m))
            y_star = np.arctanh(rng.uniform(-0.999, 0.999, m))
        else:
            mass = _pareto(rng, DIJET_MASS_MIN, DIJET_MASS_INDEX, DIJET_MASS_MAX, m)
            y_star = 0.5 * np.log(rng.uniform(1.0, 12.0, m)) * rng.choice([-1.0, 1.0], m)
        boost = 0.5 * rng.standard_normal(m)
        e = np.stack([boost + y_star, boost - y_star])
        ok = (np.abs(e) < max_eta).all(axis=0)
        pt[:, todo[ok]] = mass[ok] / (2 * np.cosh(y_star[ok]))
        eta[:, todo[ok]] = e[:, ok]
        todo = todo[~ok]
    phi = rng.uniform(0, 2 * np.pi, n)
    phi = np.stack([phi, phi + np.pi + 0.1 * rng.standard_normal(n)])
    return pt, eta, phi


def _large_radius_jet(rng: np.random.Generator, kind: str, pt, c_row, c_col) -> list:
    """The fragments of a large-radius jet at (c_row, c_col): two prongs, (c_row, c_col, energy) each.

    Signal: a W/Z decaying to two quarks, momentum share z from the flat decay angle, opening angle from
    m^2 = z (1 - z) pT^2 dR^2 (a very uneven decay looks like one jet). Background: the hardest QCD
    splitting of a gluon jet, dz / z soft and d(dR) / dR collinear.
    """
    n = len(pt)
    if kind == "signal":
        u = rng.random(n)
        z = np.minimum(u, 1 - u).clip(0.01, None)
        mass = SIGNAL_MASS + SIGNAL_MASS_WIDTH * rng.standard_normal(n)
        d_r = mass / (pt * np.sqrt(z * (1 - z)))
        width = QUARK_WIDTH
    else:
        z = 0.01 * 50.0 ** rng.random(n)
        d_r = 0.1 * 10.0 ** rng.random(n)
        width = GLUON_WIDTH
    d_r = np.minimum(d_r, 1.5)
    angle = rng.uniform(0, 2 * np.pi, n)
    step_row, step_col = d_r * np.cos(angle) / TOWER_ETA_SIZE, d_r * np.sin(angle) / TOWER_PHI_SIZE
    # the pT-weighted centre of the two prongs is the jet axis
    return [_fragments(rng, c_row + z * step_row, c_col + z * step_col, (1 - z) * pt, width),
            _fragments(rng, c_row - (1 - z) * step_row, c_col - (1 - z) * step_col, z * pt, width)]


def realistic_tower_events(n: int, kind: str, rng: np.random.Generator, shape: tuple[int, int] = (28, 32),
                           mu: tuple[float, float] = (40.0, 80.0)) -> np.ndarray:
    """(n, 28, 32) float32 gTowerEt in MeV of class ``multijet`` or ``signal`` (see :func:`write_realistic_towers`).

    ``mu``: the range of the number of pileup interactions per event (uniform); the pedestal is
    subtracted at its middle.
    """
    if kind not in REALISTIC_TOWER_CLASSES:
        raise ValueError(f"kind must be one of {REALISTIC_TOWER_CLASSES}, not {kind!r}")
    rows, cols = shape
    parts = []  # (c_row, c_col, energy) of every fragment, (n, F) each
    eta_row = lambda eta: rows / 2 + eta / TOWER_ETA_SIZE  # noqa: E731
    for pt, eta, phi in zip(*_dijet(rng, n, kind)):
        parts.extend(_large_radius_jet(rng, kind, pt, eta_row(eta), phi / TOWER_PHI_SIZE))
    k = 6
    present = np.arange(k)[None, :] < rng.poisson(EXTRA_JETS[kind], n)[:, None]
    extra = _pareto(rng, EXTRA_JET_PT_MIN, EXTRA_JET_PT_INDEX, EXTRA_JET_PT_MAX, (n, k)) * present
    extra_row, extra_col = rng.uniform(0, rows, (n, k)), rng.uniform(0, cols, (n, k))
    for j in range(k):
        parts.append(_fragments(rng, extra_row[:, j], extra_col[:, j], extra[:, j], GLUON_WIDTH, 3))
    c_row, c_col, energy = (np.concatenate([p[i] for p in parts], axis=1) for i in range(3))
    sigma = np.full(energy.shape, SHOWER_WIDTH)
    et = _deposit(rows, cols, c_row, c_col, sigma, energy)
    events_mu = rng.uniform(mu[0], mu[1], n)
    et += _pileup(rng, n, rows, cols, events_mu, (mu[0] + mu[1]) / 2)
    et[np.abs(et) < TOWER_NOISE_CUT] = 0.0
    et[:, list(TOWER_ZERO_ROWS), :] = 0.0
    return et.astype(np.float32)


def write_realistic_towers(folder: str | os.PathLike, n_per_class: int, seed: int = 0,
                           files_per_class: int = 2, mu: tuple[float, float] = (40.0, 80.0)
                           ) -> dict[str, list[Path]]:
    """Layout 2 like :func:`write_trigger_towers`: ``folder/<class>/part-<i>.h5`` with ``gTowerEt`` only
    (attributes ``units`` = MeV, ``dims`` = event, eta, phi), classes ``multijet`` and ``signal``.

    Trigger towers as a small real sample looks, where the toy :func:`write_trigger_towers` is far too
    easy (a network reaches 0.99 there). Every event has, deposited as Gaussian showers integrated over
    the towers (energy leaving the acceptance in eta is lost, phi wraps around):

    * **two large-radius jets**, back to back in phi. ``signal``: a resonance X -> W W of 1.1 TeV
      (8 % resolution), decaying isotropically; each W -> q q' gives two prongs with momentum share z
      (flat decay angle) and opening angle m_W / (pT sqrt(z (1 - z))), about 1.5-3 towers. ``multijet``:
      QCD dijets, mass a falling power law from 500 GeV, rapidity difference t-channel-like (forward),
      each jet's hardest splitting soft and collinear (dz / z, d(dR) / dR) and broader (gluon) fragments;
    * **extra radiation jets**, Poisson 2.5 per multijet event, 1.0 per (colour-singlet) signal event,
      pT from 25 GeV on a power law; every jet is split into fragments (Dirichlet shares, Gaussian offsets
      narrowing as 1/sqrt(pT)) smeared by the calorimeter resolution 50 %/sqrt(E) (+) 5 %;
    * **pileup**: mu uniform in ``mu`` (default 40-80) interactions; soft pileup is compound Poisson
      (a Gamma of a Poisson number of 350 MeV particles per tower, up to five times denser in the forward
      rows), heavy-tailed pileup jets (one per 6 interactions, 10 GeV x (1 + Pareto(2.5))); the pedestal
      subtracts the soft pileup's mean at the middle of the mu range, so low-mu events go negative;
      electronic noise 150 MeV (central) to 300 MeV (forward); zero suppression sends |ET| < 500 MeV
      as 0. About half of the live towers are non-zero, a fifth negative; values run from -3 GeV
      to several hundred GeV;
    * rows 0, 1 and 27 (outside the acceptance) and 14 (dead) always 0, as in :func:`write_trigger_towers`.

    What separates the classes (jet substructure, the dijet mass and rapidity difference, radiation)
    is spread over the event and overlaps: gradient-boosted trees on the cells (``transfer``'s
    baseline) reach ROC AUC 0.83 at 2,000 events and 0.77 at 1,000 (``--scale none``, mean of
    4 seeds); on ``--scale log`` they lose the channel total's energy meaning (0.62).
    Same seed, same events.
    """
    return _write_tower_files(folder, REALISTIC_TOWER_CLASSES, n_per_class, files_per_class,
                              lambda n, name, rng: realistic_tower_events(n, name, rng, mu=mu), seed,
                              {"units": "MeV", "dims": ["event", "eta", "phi"]})


# ---------------------------------------------------------- layered calorimeter
def calo_layer_events(n: int, particle: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``layer_0/1/2`` (GeV, float32) and ``energy`` (n, 1), the sum of all cells."""
    if particle not in LAYER_CLASSES:
        raise ValueError(f"particle must be one of {LAYER_CLASSES}, not {particle!r}")
    total = rng.uniform(10.0, 100.0, n)
    shares = {"eplus": (0.25, 0.65, 0.10), "gamma": (0.10, 0.75, 0.15), "piplus": (0.05, 0.35, 0.30)}[particle]
    width = {"eplus": 0.05, "gamma": 0.045, "piplus": 0.12}[particle]  # fraction of the extent
    jitter = rng.normal(1.0, 0.25, (n, 3)).clip(0.2, None)
    c_row, c_col = rng.normal(0.5, 0.03, n), rng.normal(0.5, 0.03, n)
    out = {}
    for layer, ((rows, cols), share) in enumerate(zip(LAYER_SHAPES.values(), shares)):
        energy = (total * share * jitter[:, layer])[:, None]
        s = np.full((n, 1), width * (1 + 0.5 * layer))
        e = _showers(rows, cols, (c_row * rows)[:, None], (c_col * cols)[:, None], s * rows, s * cols, energy)
        out[f"layer_{layer}"] = np.where(e < 1e-3, 0.0, e).astype(np.float32)
    out["energy"] = sum(v.astype(np.float64).sum(axis=(1, 2)) for v in out.values())[:, None]
    return out


def write_calo_layers(folder: str | os.PathLike, n_per_class: int, seed: int = 0) -> dict[str, Path]:
    """Layout 3: ``folder/<class>.h5`` with ``layer_0``, ``layer_1``, ``layer_2``, ``energy``."""
    return _write_layer_files(folder, n_per_class, seed, calo_layer_events)


def _write_layer_files(folder, n_per_class: int, seed: int, events) -> dict[str, Path]:
    """``folder/<class>.h5`` per class of :data:`LAYER_CLASSES`, each with the datasets ``events(n, class, rng)``
    returns; one generator for all classes, in that order."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in LAYER_CLASSES:
        out[name] = Path(folder) / f"{name}.h5"
        with _atomic_h5(out[name]) as handle:
            for key, value in events(n_per_class, name, rng).items():
                handle.create_dataset(key, data=value)
    return out


# ------------------------------------------------- showers that overlap like real ones
# ``write_calo_layers`` above separates its classes by construction (every network scores 1.000 on
# it): a study of which network reads depth best needs classes that overlap the way e+, gamma and pi+
# showers do in a real sampling calorimeter. Same keys, shapes and layout, so every command that reads
# one reads the other.

#: Longitudinal extent of the three layers in radiation lengths X0 (thin strips, the bulk, a thin
#: back layer), as in the ATLAS-like calorimeter of the CaloGAN samples: 21 X0 in all, the rest leaks.
SHOWER_LAYER_X0 = (3.0, 16.0, 2.0)
#: Critical energy of lead in GeV: the depth of the shower maximum is ln(E / E_c) - 0.5 X0 after the start.
CRITICAL_ENERGY_GEV = 0.0074
#: Longitudinal profile dE/dt ~ t^(a-1) exp(-b t) (Longo), b in 1/X0 (the PDG's 0.5 for lead).
PROFILE_B = 0.5
#: Where showers start, mean depth in X0: an electron radiates at once; a photon converts after
#: 9/7 X0 on average (so one in five converts within the first 0.3 X0 and looks like an electron).
ELECTRON_START_X0, PHOTON_START_X0 = 0.3, 9.0 / 7.0
#: A charged pion's nuclear interaction length in X0 (lead: 17.6 cm against 0.56 cm): half of them cross
#: the 21 X0 without interacting.
PION_LAMBDA_X0 = 31.0
#: Charge exchange (pi+ n -> pi0 p, the pi0 -> gamma gamma): an almost purely electromagnetic shower that
#: starts wherever the pion interacted, like a photon that converted late.
CHARGE_EXCHANGE = 0.12
#: Energy a minimum-ionising particle leaves per X0 (GeV): the e+ track before its shower, a
#: non-interacting pi+.
MIP_GEV_PER_X0 = 0.007
#: Sampling fluctuations (stochastic term per layer, sqrt(GeV)), electronic noise per cell (GeV) and the
#: zero suppression (3 sigma of the noise).
SAMPLING_TERM, CELL_NOISE_GEV = 0.10, 0.005
#: Lateral widths as fractions of the transverse extent: the electromagnetic core grows with depth, 15 %
#: of the energy goes into a halo; hadronic energy comes in clumps, wider still.
EM_CORE, EM_CORE_PER_X0, EM_HALO, EM_HALO_SHARE = 0.02, 0.002, 0.07, 0.15
HADRON_CLUMP, HADRON_SPREAD = 0.045, 0.06


def _layer_bounds() -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(SHOWER_LAYER_X0)])


def _profile_in_layers(energy: np.ndarray, start: np.ndarray, shape_a: np.ndarray, b: float,
                       step: float = 0.05) -> np.ndarray:
    """(n, 3) energy of a Gamma-shaped longitudinal profile starting at depth ``start`` (X0) in each layer;
    what goes past the last layer leaks out. Integrated numerically (NumPy only)."""
    import math

    bounds = _layer_bounds()
    t = np.arange(step / 2, bounds[-1], step)                        # depths of the slices, X0
    u = np.clip(t[None, :] - start[:, None], 0.0, None) * b           # (n, slices), in units of 1/b
    log_norm = np.array([math.lgamma(a) for a in shape_a])
    with np.errstate(divide="ignore"):
        density = np.exp((shape_a[:, None] - 1) * np.log(u) - u - log_norm[:, None]) * b * step
    density[u <= 0] = 0.0
    layer_of = np.searchsorted(bounds, t, side="right") - 1
    return np.stack([density[:, layer_of == k].sum(axis=1) for k in range(3)], axis=1) * energy[:, None]


def _em_shape(energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Profile shape a = 1 + b t_max, t_max = ln(E / E_c) - 0.5, fluctuating shower to shower."""
    t_max = np.log(np.maximum(energy, 0.05) / CRITICAL_ENERGY_GEV) - 0.5
    return (1.0 + PROFILE_B * t_max) * rng.lognormal(0.0, 0.12, len(energy))


def _lateral(rows: int, cols: int, centre: np.ndarray, sigma: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """(n, rows, cols) of K round Gaussian deposits per event: ``centre`` (n, K, 2) and ``sigma`` (n, K) in
    fractions of the extent, ``energy`` (n, K)."""
    return _showers(rows, cols, centre[..., 0] * rows, centre[..., 1] * cols, sigma * rows, sigma * cols, energy)


def calo_shower_events(n: int, particle: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``layer_0/1/2`` (GeV, float32, the shapes of :data:`LAYER_SHAPES`) and ``energy`` (n, 1): showers
    of ``eplus``, ``gamma`` or ``piplus`` of 10-100 GeV whose classes overlap as real ones do.

    * e+: the shower starts at once (mean :data:`ELECTRON_START_X0`), after a short minimum-ionising
      track; gamma: no track, the shower starts where the photon converts (exponential, mean 9/7 X0).
      Both have the same lateral shape; what tells them apart is how much reaches the thin first layer,
      and a photon that converts early is an electron to every layer.
    * pi+: half cross the calorimeter as a minimum-ionising track of a few tens of MeV; the others
      interact at an exponential depth (:data:`PION_LAMBDA_X0`) and split into an electromagnetic part
      (pi0s: 12 % charge exchange, almost all of it) and a wide, clumpy hadronic part seen at 70 % of its
      energy, most of which leaks out the back. A charge exchange early on is a photon.
    * every layer: sampling fluctuations, per-event shower-shape fluctuations, cell noise and zero
      suppression.
    """
    if particle not in LAYER_CLASSES:
        raise ValueError(f"particle must be one of {LAYER_CLASSES}, not {particle!r}")
    bounds = _layer_bounds()
    energy = rng.uniform(10.0, 100.0, n)
    centre = 0.5 + rng.normal(0.0, 0.03, (n, 2))
    em_energy = energy.copy()
    hadron_energy = np.zeros(n)
    track_until = np.zeros(n)          # a minimum-ionising track from depth 0 to here (X0)
    if particle == "eplus":
        start = rng.exponential(ELECTRON_START_X0, n)
        track_until = start
    elif particle == "gamma":
        start = rng.exponential(PHOTON_START_X0, n)
    else:
        start = rng.exponential(PION_LAMBDA_X0, n)
        interacts = start < bounds[-1]
        exchange = rng.random(n) < CHARGE_EXCHANGE
        em_share = np.where(exchange, rng.uniform(0.85, 1.0, n), rng.beta(2.0, 2.5, n)) * interacts
        em_energy = energy * em_share
        hadron_energy = 0.7 * energy * (1 - em_share) * interacts
        track_until = np.minimum(start, bounds[-1])
        start = np.minimum(start, bounds[-1])
    em_layers = _profile_in_layers(em_energy, start, _em_shape(em_energy, rng), PROFILE_B)
    hadron_layers = _profile_in_layers(hadron_energy, start, np.full(n, 2.0), 1.0 / (0.6 * PION_LAMBDA_X0))
    track_layers = np.clip(track_until[:, None] - bounds[None, :-1], 0.0, np.diff(bounds)[None, :]) * MIP_GEV_PER_X0
    out = {}
    for k, (key, (rows, cols)) in enumerate(LAYER_SHAPES.items()):
        depth = 0.5 * (bounds[k] + bounds[k + 1])
        core = EM_CORE + EM_CORE_PER_X0 * np.clip(depth - start, 0.0, None)
        em = em_layers[:, k] * rng.lognormal(0.0, 0.03, n)
        deposits = [(centre[:, None, :], core[:, None], (em * (1 - EM_HALO_SHARE))[:, None]),
                    (centre[:, None, :], np.full((n, 1), EM_HALO), (em * EM_HALO_SHARE)[:, None]),
                    (centre[:, None, :], np.full((n, 1), 0.01), track_layers[:, k:k + 1])]
        clumps = centre[:, None, :] + rng.normal(0.0, HADRON_SPREAD, (n, 3, 2))
        weights = rng.dirichlet(np.ones(3), n)
        deposits.append((clumps, np.full((n, 3), HADRON_CLUMP), hadron_layers[:, k:k + 1] * weights))
        e = sum(_lateral(rows, cols, c, s, w) for c, s, w in deposits)
        visible = e.sum(axis=(1, 2))
        smear = 1 + SAMPLING_TERM / np.sqrt(np.maximum(visible, 1e-3)) * rng.standard_normal(n)
        e = e * np.clip(smear, 0.0, None)[:, None, None] + CELL_NOISE_GEV * rng.standard_normal(e.shape)
        out[key] = np.where(e < 3 * CELL_NOISE_GEV, 0.0, e).astype(np.float32)
    out["energy"] = sum(out[k].astype(np.float64).sum(axis=(1, 2)) for k in LAYER_SHAPES)[:, None]
    return out


def write_calo_showers(folder: str | os.PathLike, n_per_class: int, seed: int = 0) -> dict[str, Path]:
    """Layout 3 like :func:`write_calo_layers` (``folder/<class>.h5`` with ``layer_0``, ``layer_1``,
    ``layer_2``, ``energy``), with the overlapping showers of :func:`calo_shower_events`."""
    return _write_layer_files(folder, n_per_class, seed, calo_shower_events)
