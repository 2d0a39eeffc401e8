"""imgen.arrays.synth: deterministic toy files that look like the real ones."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from imgen.arrays import open_arrays, synth
from tests._arrays_data import read_all, towers  # noqa: F401 (fixtures)


def test_trigger_towers_look_like_the_real_ones(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        x, _ = read_all(ds)
    assert 0.04 < (x < 0).mean() < 0.08
    always_zero = np.flatnonzero((x == 0).all(axis=(0, 2, 3))).tolist()
    assert always_zero == list(synth.TOWER_ZERO_ROWS)


def test_synth_is_deterministic():
    a = synth.electron_photon_sample(20, seed=9)
    b = synth.electron_photon_sample(20, seed=9)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], synth.electron_photon_sample(20, seed=10)[0])


def test_showers_overlap_the_way_real_ones_do():
    """e+ reach the thin first layer more than photons, which convert later; half the pions cross as MIPs,
    the others leak; and a sizeable share of each class looks like another one (the point of the sample)."""
    rng = np.random.default_rng(0)
    n = 600
    events = {name: synth.calo_shower_events(n, name, rng) for name in synth.LAYER_CLASSES}
    for name, layers in events.items():
        for key, shape in synth.LAYER_SHAPES.items():
            assert layers[key].shape == (n, *shape) and layers[key].dtype == np.float32
            assert (layers[key] >= 0).all()
    first = {name: e["layer_0"].sum(axis=(1, 2)) / np.maximum(e["energy"][:, 0], 1e-9) for name, e in events.items()}
    assert first["eplus"].mean() > 1.5 * first["gamma"].mean()
    # the overlap: a photon converting early deposits in layer 0 as much as a typical electron
    assert 0.1 < (first["gamma"] > np.median(first["eplus"])).mean() < 0.4
    visible = {name: e["energy"][:, 0] for name, e in events.items()}
    assert 40 < visible["eplus"].mean() < 60 and 40 < visible["gamma"].mean() < 60  # 10-100 GeV, little leaks
    assert visible["piplus"].mean() < 0.4 * visible["eplus"].mean()  # hadronic energy leaks out the back
    crossing = visible["piplus"] < 1.0  # a MIP leaves tens of MeV
    assert 0.3 < crossing.mean() < 0.7
    # a pion that exchanged its charge early is an electromagnetic shower as big as a photon's
    assert (visible["piplus"] > 0.7 * 10.0).any()


def test_shower_files_are_layout_three_and_deterministic(tmp_path):
    a = synth.write_calo_showers(tmp_path / "a", 30, seed=5)
    b = synth.write_calo_showers(tmp_path / "b", 30, seed=5)
    assert list(a) == list(synth.LAYER_CLASSES)
    items = [f"{name}={path}" for name, path in a.items()]
    with open_arrays(items, ["layer_0", "layer_1", "layer_2"]) as ds:
        x, y = read_all(ds)
        assert ds.grid == (12, 96) and x.shape == (90, 12, 96, 3)
    with open_arrays([f"{n}={p}" for n, p in b.items()], ["layer_0", "layer_1", "layer_2"]) as ds:
        np.testing.assert_array_equal(read_all(ds)[0], x)


# ------------------------------------------------------------ realistic trigger towers
N_REALISTIC = 150  # per class


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    root = tmp_path_factory.mktemp("realistic")
    paths = synth.write_realistic_towers(root, N_REALISTIC, seed=4, files_per_class=2)
    with open_arrays(str(root), "gTowerEt") as ds:
        x, y = read_all(ds)
        classes = ds.classes
    return root, paths, x[..., 0], y, classes


def test_realistic_towers_layout_shapes_and_units(realistic):
    root, paths, x, y, classes = realistic
    assert tuple(classes) == synth.REALISTIC_TOWER_CLASSES  # the signal is the second class
    assert x.shape == (2 * N_REALISTIC, 28, 32) and x.dtype == np.float32
    assert np.bincount(y.astype(int)).tolist() == [N_REALISTIC, N_REALISTIC]
    assert np.isfinite(x).all()
    with h5py.File(paths["signal"][0]) as handle:
        assert list(handle) == ["gTowerEt"]
        assert handle["gTowerEt"].attrs["units"] == "MeV"
        assert list(handle["gTowerEt"].attrs["dims"]) == ["event", "eta", "phi"]
    always_zero = np.flatnonzero((x == 0).all(axis=(0, 2))).tolist()
    assert always_zero == list(synth.TOWER_ZERO_ROWS)


def test_realistic_towers_are_pileup_noise_and_jets_in_mev(realistic):
    _, _, x, _, _ = realistic
    live = np.delete(x, synth.TOWER_ZERO_ROWS, axis=1)
    # zero suppression: nothing between 0 and the cut; pileup and noise over the whole grid, some negative
    assert not ((live != 0) & (np.abs(live) < synth.TOWER_NOISE_CUT)).any()
    assert 0.3 < (live != 0).mean() < 0.7
    assert 0.05 < (live < 0).mean() < 0.3
    assert (live != 0).mean(axis=(0, 2)).min() > 0.2  # every live row has pileup
    # several decades: sub-GeV pileup towers up to hundreds of GeV in the jets' cores
    assert np.percentile(np.abs(live[live != 0]), 10) < 1e3
    assert np.percentile(live.max(axis=(1, 2)), 50) > 1e5
    assert live.min() < -1e3  # the pedestal subtraction's tail


def test_realistic_towers_classes_overlap():
    """A simple physics variable separates the classes, but far from perfectly."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    x = np.concatenate([synth.realistic_tower_events(300, kind, rng) for kind in synth.REALISTIC_TOWER_CLASSES])
    y = np.repeat([0, 1], 300)
    ht = (x * (x > 1e4)).sum(axis=(1, 2))  # energy in towers above 10 GeV
    assert 0.6 < roc_auc_score(y, ht) < 0.95


def test_realistic_towers_seeded():
    a = synth.realistic_tower_events(10, "signal", np.random.default_rng(3))
    b = synth.realistic_tower_events(10, "signal", np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synth.realistic_tower_events(10, "signal", np.random.default_rng(4)))
    with pytest.raises(ValueError, match="kind"):
        synth.realistic_tower_events(1, "jets", np.random.default_rng(0))


def test_realistic_towers_same_seed_same_files(tmp_path):
    first = synth.write_realistic_towers(tmp_path / "a", 6, seed=8, files_per_class=1)
    again = synth.write_realistic_towers(tmp_path / "b", 6, seed=8, files_per_class=1)
    other = synth.write_realistic_towers(tmp_path / "c", 6, seed=9, files_per_class=1)
    for name in synth.REALISTIC_TOWER_CLASSES:
        with h5py.File(first[name][0]) as a, h5py.File(again[name][0]) as b, h5py.File(other[name][0]) as c:
            np.testing.assert_array_equal(a["gTowerEt"][:], b["gTowerEt"][:])
            assert not np.array_equal(a["gTowerEt"][:], c["gTowerEt"][:])


def test_deposits_wrap_around_phi_and_leave_in_eta():
    one = np.ones((1, 1))
    # a shower centred on the phi edge: half of it on either side, all of its energy kept
    edge = synth._deposit(28, 32, 14.5 * one, 0.0 * one, 0.8 * one, 1000.0 * one)[0]
    inside = synth._deposit(28, 32, 14.5 * one, 16.0 * one, 0.8 * one, 1000.0 * one)[0]
    assert edge.sum() == pytest.approx(1000.0) and inside.sum() == pytest.approx(1000.0)
    np.testing.assert_allclose(edge[:, 0], edge[:, 31])
    np.testing.assert_allclose(np.roll(inside, -16, axis=1), edge, atol=1e-9)
    # along eta (rows) the grid ends: a shower centred on the last edge loses half its energy
    assert synth._deposit(28, 32, 28.0 * one, 16.0 * one, 0.8 * one, 1000.0 * one).sum() == pytest.approx(500.0)


def test_realistic_towers_are_periodic_in_phi():
    """Nothing marks the phi edge: per-column activity is flat, and jets cross the edge as often as
    any other column boundary."""
    rng = np.random.default_rng(6)
    x = np.concatenate([synth.realistic_tower_events(200, kind, rng) for kind in synth.REALISTIC_TOWER_CLASSES])
    hard = x > 5e3
    per_column = hard.mean(axis=(0, 1))
    assert per_column.std() < 0.1 * per_column.mean()
    # hard towers adjacent across a column boundary: the edge (31 | 0) like the boundaries inside
    across = (hard & np.roll(hard, -1, axis=2)).mean(axis=(0, 1))
    assert abs(across[31] - across[:31].mean()) < 4 * across[:31].std() + 1e-3
