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
