"""transfer.data: the data-kind table (claims, loader, predictor) and the HDF5 rule it asks imgen for."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests._transfer_data import make_blob_dataset
from transfer.config import TrainConfig
from transfer.data import DATA_KINDS, _load, data_kind_for, open_data
from transfer.errors import TransferError


def test_every_kind_names_a_loader_and_a_predictor():
    assert list(DATA_KINDS) == ["arrays", "images"]
    for kind in DATA_KINDS.values():
        assert callable(_load(kind.loader)) and callable(_load(kind.predictor)), kind.name


def test_kinds_claim_by_imgens_hdf5_rule(tmp_path):
    folder = tmp_path / "towers" / "jets"
    folder.mkdir(parents=True)
    with h5py.File(folder / "part.HDF5", "w") as handle:
        handle["X"] = np.zeros((3, 4, 4), np.float32)
    images = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=3)
    assert data_kind_for(TrainConfig(data=[str(tmp_path / "towers")])).name == "arrays"
    assert data_kind_for(TrainConfig(data=["e.h5", "p.hdf5"])).name == "arrays"
    assert data_kind_for(TrainConfig(data=["electron=anything"])).name == "arrays"
    assert data_kind_for(TrainConfig(data=[str(images)])).name == "images"


def test_arrays_without_x_key_name_the_datasets_of_the_first_file(tmp_path):
    path = tmp_path / "all.h5"
    with h5py.File(path, "w") as handle:
        handle["calo"], handle["label"] = np.zeros((3, 4, 4), np.float32), np.zeros(3)
    with pytest.raises(TransferError, match=r"needs --x-key.*all.h5 holds calo, label"):
        open_data(TrainConfig(data=[str(path)]))
