"""Shared HDF5 fixtures of the imgen.arrays tests: real files written by imgen.arrays.synth."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from imgen.arrays import synth

N_EGAMMA = 150  # per class
N_TOWERS = 120
N_LAYERS = 80


@pytest.fixture(scope="module")
def egamma(tmp_path_factory):
    """Layout 1 combined file and the same events as one file per class."""
    root = tmp_path_factory.mktemp("egamma")
    combined = synth.write_electron_photon_combined(root / "all.h5", N_EGAMMA, seed=1)
    per_class = synth.write_electron_photon_per_class(root / "per", N_EGAMMA, seed=1)
    return combined, per_class


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    synth.write_trigger_towers(root, N_TOWERS, seed=2, files_per_class=2)
    return root


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    return synth.write_calo_layers(tmp_path_factory.mktemp("layers"), N_LAYERS, seed=3)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
    return path


def read_all(ds):
    return ds.read_batch(np.arange(len(ds)))


def as_sorted_rows(x, y):
    """Events as a sorted list of (label, bytes): order-free dataset comparison."""
    return sorted((int(label), event.tobytes()) for event, label in zip(x, y))
