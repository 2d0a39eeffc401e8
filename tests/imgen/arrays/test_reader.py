"""imgen.arrays.reader: the three HDF5 layouts read alike, resampling, chunked reading, splits, errors.

Every test writes real HDF5 files (imgen.arrays.synth or h5py directly) and
reads them back through the library.
"""
from __future__ import annotations

import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

from imgen.arrays import ArrayDataError, ArrayTransform, open_arrays, overlap_matrix, resample_to_grid, split_indices
from imgen.errors import ImgenError
from imgen.split import assign_split
from tests._arrays_data import (N_EGAMMA, N_LAYERS, N_TOWERS, as_sorted_rows, egamma, layers, read_all, towers,  # noqa: F401 (fixtures)
                                write_h5)


def test_layout1_labels_from_key(egamma):
    combined, _ = egamma
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        assert ds.classes == ("electron", "photon")
        assert ds.event_shape == (32, 32, 2)
        assert ds.channel_names == ("energy", "time")
        x, y = read_all(ds)
    with h5py.File(combined, "r") as handle:
        np.testing.assert_array_equal(x, handle["X"][:])
        np.testing.assert_array_equal(y, handle["y"][:].astype(int))
    assert set(np.unique(y)) == {0, 1}


def test_class_from_file_equals_class_from_key(egamma):
    combined, per_class = egamma
    with open_arrays(str(combined), "X", y_key="y", classes=["electron", "photon"]) as by_key:
        from_key = read_all(by_key)
    with open_arrays([f"{name}={path}" for name, path in per_class.items()], "X") as by_file:
        assert by_file.classes == ("electron", "photon")
        from_file = read_all(by_file)
    assert len(from_key[0]) == len(from_file[0]) == 2 * N_EGAMMA
    assert as_sorted_rows(*from_key) == as_sorted_rows(*from_file)


def test_layout2_class_from_folder_dir_and_glob(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        assert ds.classes == ("jets", "pileup")
        assert len(ds.source.parts) == 4
        assert ds.event_shape == (28, 32, 1)
        assert np.bincount(ds.labels).tolist() == [N_TOWERS, N_TOWERS]
        whole = read_all(ds)
    spec = [f"jets={towers / 'jets'}", f"pileup={towers / 'pileup' / 'part-*.h5'}"]
    with open_arrays(spec, "gTowerEt") as ds:
        named = read_all(ds)
    np.testing.assert_array_equal(whole[0], named[0])
    np.testing.assert_array_equal(whole[1], named[1])


def test_layout3_layers_resampled_conserve_energy_per_layer_and_event(layers):
    spec = [f"{name}={path}" for name, path in layers.items()]
    with open_arrays(spec, "layer_0,layer_1,layer_2") as ds:
        assert ds.grid == (12, 96)
        assert ds.event_shape == (12, 96, 3)
        assert ds.channel_names == ("layer_0", "layer_1", "layer_2")
        x, y = read_all(ds)
    start = 0
    for name, path in layers.items():
        with h5py.File(path, "r") as handle:
            for c, key in enumerate(("layer_0", "layer_1", "layer_2")):
                raw = handle[key][:].astype(np.float64).sum(axis=(1, 2))
                got = x[start:start + N_LAYERS, ..., c].astype(np.float64).sum(axis=(1, 2))
                np.testing.assert_allclose(got, raw, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(x[start:start + N_LAYERS].sum(axis=(1, 2, 3)), handle["energy"][:, 0],
                                       rtol=1e-5)
        start += N_LAYERS


def test_resampling_is_area_based_and_conserves_sums():
    np.testing.assert_allclose(resample_to_grid(np.array([[[2.0, 6.0]]]), (1, 4)), [[[1, 1, 3, 3]]])
    np.testing.assert_allclose(resample_to_grid(np.array([[[1.0, 2.0, 3.0, 4.0]]]), (1, 2)), [[[3, 7]]])
    # 3 cells onto 2: the middle source cell is split half and half
    np.testing.assert_allclose(resample_to_grid(np.array([[[3.0, 6.0, 9.0]]]), (1, 2)), [[[6, 12]]])
    rng = np.random.default_rng(0)
    x = rng.gamma(1.0, 5.0, (20, 5, 7, 2))
    out = resample_to_grid(x, (12, 10))
    assert out.shape == (20, 12, 10, 2)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(overlap_matrix(5, 12).sum(axis=1), 1.0)
    same = rng.random((3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(resample_to_grid(same, (4, 4)), same)


def test_explicit_grid(layers):
    spec = [f"{name}={path}" for name, path in layers.items()]
    with open_arrays(spec, "layer_0,layer_1,layer_2", grid=(6, 24)) as ds:
        x, _ = ds.read_batch([0, 1])
    assert x.shape == (2, 6, 24, 3)
    with h5py.File(layers["eplus"], "r") as handle:
        np.testing.assert_allclose(x.sum(axis=(1, 2, 3)), handle["energy"][:2, 0], rtol=1e-5)


def test_chunked_reading_equals_whole_reading(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        x, y = read_all(ds)
        chunks = list(ds.iter_chunks(chunk_events=37))
        np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), np.arange(len(ds)))
        np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), x)
        np.testing.assert_array_equal(np.concatenate([c[2] for c in chunks]), y)
        # unsorted, repeated, across files: like NumPy fancy indexing
        idx = np.array([239, 3, 3, 130, 0, 119, 120, 77, 200, 3])
        xb, yb = ds.read_batch(idx)
        np.testing.assert_array_equal(xb, x[idx])
        np.testing.assert_array_equal(yb, y[idx])
        # a subset, shuffled: each index once, values those of the index
        subset = np.arange(5, len(ds), 3)
        ds.block_events = 16
        seen = [c for c in ds.iter_chunks(subset, chunk_events=64, shuffle=True, seed=4)]
        got_idx = np.concatenate([c[0] for c in seen])
        assert sorted(got_idx.tolist()) == subset.tolist()
        assert len(seen) == 2 and max(len(c[0]) for c in seen) <= 64  # chunks of whole blocks
        assert got_idx.tolist() != subset.tolist()
        np.testing.assert_array_equal(np.concatenate([c[1] for c in seen]), x[got_idx])
        # one file per class, yet a shuffled chunk mixes the classes
        assert len(set(seen[0][2].tolist())) == 2
        again = np.concatenate([c[0] for c in ds.iter_chunks(subset, chunk_events=64, shuffle=True, seed=4)])
        np.testing.assert_array_equal(again, got_idx)


def test_batches_cover_indices_with_transform(egamma):
    combined, _ = egamma
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        x, y = read_all(ds)
        transform = ArrayTransform(channels=(0,), scale="log")
        sizes, labels, first = [], [], None
        for xb, yb in ds.batches(np.arange(250), batch_size=32, transform=transform, chunk_events=50):
            sizes.append(len(xb))
            labels.append(yb)
            first = xb if first is None else first
        assert sizes == [32] * 7 + [26]
        np.testing.assert_array_equal(np.concatenate(labels), y[:250])
        np.testing.assert_allclose(first, np.log1p(x[:32, ..., :1]), rtol=1e-6)


def test_dataset_pickles_and_reopens(egamma):
    combined, _ = egamma
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        expected = ds.read_batch([4, 9])[0]
        clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.read_batch([4, 9])[0], expected)
    clone.close()


def test_splits_deterministic_and_partition(egamma):
    combined, _ = egamma
    assert assign_split(17, "photon", 3) == assign_split(17, "photon", 3)
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        splits = split_indices(ds, seed=5)
        assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(ds)))
        assert 0.65 < len(splits["train"]) / len(ds) < 0.95  # default 0.8
        ids = ds.event_ids()
        assert ids[0] == f"{combined.name}#0"
        assert all(assign_split(ids[i], ds.classes[ds.labels[i]], 5) == "test" for i in splits["test"])
        assert split_indices(ds, seed=5)["test"].tolist() == splits["test"].tolist()
        assert split_indices(ds, seed=6)["test"].tolist() != splits["test"].tolist()
        with pytest.raises(ImgenError, match="fractions"):
            split_indices(ds, fractions=(0.5, 0.5, 0.5))
    assert issubclass(ArrayDataError, ImgenError) and issubclass(ArrayDataError, ValueError)


def test_missing_key_lists_existing_keys(egamma):
    combined, _ = egamma
    with pytest.raises(ArrayDataError) as info:
        open_arrays(str(combined), "images", y_key="y", classes="electron,photon")
    message = str(info.value)
    assert str(combined) in message and "'images'" in message and "X, y" in message


def test_shapes_differ_between_files(tmp_path):
    a = write_h5(tmp_path / "a.h5", X=np.zeros((4, 8, 8), np.float32))
    b = write_h5(tmp_path / "b.h5", X=np.zeros((4, 8, 9), np.float32))
    with pytest.raises(ArrayDataError) as info:
        open_arrays([f"sig={a}", f"bkg={b}"], "X")
    assert "b.h5" in str(info.value) and "(8, 9)" in str(info.value) and "(8, 8)" in str(info.value)


def test_labels_outside_class_list(tmp_path):
    path = write_h5(tmp_path / "y.h5", X=np.ones((6, 4, 4), np.float32), y=np.array([0, 1, 0, 2, 1, 0]))
    with open_arrays(str(path), "X", y_key="y", classes="a,b") as ds:
        with pytest.raises(ArrayDataError) as info:
            ds.labels
    assert "y.h5" in str(info.value) and "event 3" in str(info.value) and "['a', 'b']" in str(info.value)
    fractional = write_h5(tmp_path / "f.h5", X=np.ones((3, 4, 4), np.float32), y=np.array([0.0, 0.5, 1.0]))
    with open_arrays(str(fractional), "X", y_key="y", classes="a,b") as ds, pytest.raises(ArrayDataError):
        ds.labels


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_file_key_and_event(tmp_path, bad):
    x = np.ones((30, 4, 4, 2), np.float32)
    x[21, 2, 1, 1] = bad
    path = write_h5(tmp_path / "bad.h5", X=x)
    with open_arrays([f"a={path}"], "X") as ds:
        ds.read_batch(np.arange(20))  # the clean part reads fine
        with pytest.raises(ArrayDataError) as info:
            ds.read_batch([5, 21])
        assert "bad.h5" in str(info.value) and "'X'" in str(info.value) and "event 21" in str(info.value)
        with pytest.raises(ArrayDataError, match="event 21"):
            ds.validate(chunk_events=8)


def test_empty_file(tmp_path):
    empty = write_h5(tmp_path / "empty.h5", X=np.zeros((0, 8, 8), np.float32))
    full = write_h5(tmp_path / "full.h5", X=np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ArrayDataError, match="empty.h5.*no events"):
        open_arrays([f"a={full}", f"b={empty}"], "X")
    with pytest.raises(ArrayDataError, match="no datasets"):
        open_arrays([f"a={write_h5(tmp_path / 'nothing.h5')}"], "X")


def test_imgen_arrays_never_imports_tensorflow():
    code = ("import sys, imgen.arrays, imgen.arrays.export, imgen.arrays.synth, imgen.__main__; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_unlabeled_files_for_prediction(egamma):
    _, per_class = egamma
    with open_arrays([str(per_class["photon"]), str(per_class["electron"])], "X", unlabeled=True,
                     classes="electron,photon") as ds:
        assert ds.classes == ("electron", "photon")
        assert (ds.labels == -1).all() and len(ds) == 2 * N_EGAMMA
        x, y = ds.read_batch([0])
    with h5py.File(per_class["photon"], "r") as handle:
        np.testing.assert_array_equal(x[0], handle["X"][0])
