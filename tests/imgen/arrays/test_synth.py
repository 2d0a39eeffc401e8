"""imgen.arrays.synth: deterministic toy files that look like the real ones."""
from __future__ import annotations

import numpy as np

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
