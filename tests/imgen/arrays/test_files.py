"""imgen.arrays.files: which files, keys and classes --data names; HDF5 detection; dataset listing."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from imgen.arrays import ArrayDataError, open_arrays, resolve_source
from tests._arrays_data import egamma, write_h5  # noqa: F401 (fixtures)


def test_classes_argument_orders_named_files(egamma):
    _, per_class = egamma
    spec = [f"{name}={path}" for name, path in per_class.items()]
    with open_arrays(spec, "X", classes="photon,electron") as ds:
        assert ds.classes == ("photon", "electron")
        x, y = ds.read_batch([0])
        assert y[0] == 0
    with h5py.File(per_class["photon"], "r") as handle:
        np.testing.assert_array_equal(x[0], handle["X"][0])
    with pytest.raises(ArrayDataError, match="do not match"):
        resolve_source(spec, "X", classes="photon,muon")


def test_missing_label_key_and_source_errors(egamma, tmp_path):
    combined, per_class = egamma
    with pytest.raises(ArrayDataError, match="labels"):
        open_arrays(str(combined), "X", y_key="labels", classes="electron,photon")
    with pytest.raises(ArrayDataError, match="--classes"):
        resolve_source(str(combined), "X", y_key="y")
    with pytest.raises(ArrayDataError, match="mix"):
        resolve_source([f"electron={per_class['electron']}", str(combined)], "X")
    with pytest.raises(ArrayDataError, match="no such file"):
        resolve_source([f"electron={tmp_path / 'nope.h5'}"], "X")
    with pytest.raises(ArrayDataError, match="matches no file"):
        resolve_source([f"electron={tmp_path / 'e_*.h5'}"], "X")
    with pytest.raises(ArrayDataError, match="no HDF5 files"):
        resolve_source([f"electron={tmp_path}"], "X")


def test_hdf5_detection_and_class_items(tmp_path):
    from imgen.arrays import first_hdf5_file, holds_hdf5, is_hdf5_name, item_target, list_datasets, named_item

    assert is_hdf5_name("a/B.H5") and is_hdf5_name("x.hdf5") and not is_hdf5_name("x.png")
    assert named_item("electron=e.h5") == ("electron", "e.h5") and named_item("data/e.h5") is None
    assert named_item("dir/a=b.h5") is None  # a path with "=" in it, not a class
    assert item_target("photon=p_*.h5") == "p_*.h5" and item_target("all.h5") == "all.h5"
    (tmp_path / "jets").mkdir()
    data = write_h5(tmp_path / "jets" / "part-0.h5", X=np.zeros((2, 4, 4), np.float32), y=np.zeros(2))
    assert holds_hdf5(tmp_path) and not holds_hdf5(tmp_path / "nope")
    assert first_hdf5_file(f"jets={tmp_path}") == data and first_hdf5_file(str(tmp_path / "none*.h5")) is None
    assert list_datasets(data) == ["X", "y"]
    (tmp_path / "manifest.csv").write_text("path,class,event,source,split\n")
    assert not holds_hdf5(tmp_path)  # a folder with a manifest is an image folder
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(ArrayDataError, match="bad.h5: not a readable HDF5 file"):
        list_datasets(tmp_path / "bad.h5")
