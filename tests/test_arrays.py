"""imgen.arrays: the three HDF5 layouts, chunked reading, fitted preprocessing, errors.

Every test writes real HDF5 files (imgen.arrays_synth or h5py directly) and
reads them back through the library.
"""
from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from imgen import arrays_synth as synth
from imgen.arrays import (ArrayDataError, ArrayTransform, crop_box, fit_transform, open_arrays, overlap_matrix,
                          parse_channels, resample_to_grid, resolve_source, split_indices)
from imgen.errors import ImgenError
from imgen.split import assign_split

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


def _write(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
    return path


def _all(ds):
    return ds.read_batch(np.arange(len(ds)))


def _as_sorted_rows(x, y):
    """Events as a sorted list of (label, bytes): order-free dataset comparison."""
    return sorted((int(label), event.tobytes()) for event, label in zip(x, y))


# ------------------------------------------------------------------ layout 1
def test_layout1_labels_from_key(egamma):
    combined, _ = egamma
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        assert ds.classes == ("electron", "photon")
        assert ds.event_shape == (32, 32, 2)
        assert ds.channel_names == ("energy", "time")
        x, y = _all(ds)
    with h5py.File(combined, "r") as handle:
        np.testing.assert_array_equal(x, handle["X"][:])
        np.testing.assert_array_equal(y, handle["y"][:].astype(int))
    assert set(np.unique(y)) == {0, 1}


def test_class_from_file_equals_class_from_key(egamma):
    combined, per_class = egamma
    with open_arrays(str(combined), "X", y_key="y", classes=["electron", "photon"]) as by_key:
        from_key = _all(by_key)
    with open_arrays([f"{name}={path}" for name, path in per_class.items()], "X") as by_file:
        assert by_file.classes == ("electron", "photon")
        from_file = _all(by_file)
    assert len(from_key[0]) == len(from_file[0]) == 2 * N_EGAMMA
    assert _as_sorted_rows(*from_key) == _as_sorted_rows(*from_file)


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


# ------------------------------------------------------------------ layout 2
def test_layout2_class_from_folder_dir_and_glob(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        assert ds.classes == ("jets", "pileup")
        assert len(ds.source.parts) == 4
        assert ds.event_shape == (28, 32, 1)
        assert np.bincount(ds.labels).tolist() == [N_TOWERS, N_TOWERS]
        whole = _all(ds)
    spec = [f"jets={towers / 'jets'}", f"pileup={towers / 'pileup' / 'part-*.h5'}"]
    with open_arrays(spec, "gTowerEt") as ds:
        named = _all(ds)
    np.testing.assert_array_equal(whole[0], named[0])
    np.testing.assert_array_equal(whole[1], named[1])


def test_trigger_towers_look_like_the_real_ones(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        x, _ = _all(ds)
    assert 0.04 < (x < 0).mean() < 0.08
    always_zero = np.flatnonzero((x == 0).all(axis=(0, 2, 3))).tolist()
    assert always_zero == list(synth.TOWER_ZERO_ROWS)


# ------------------------------------------------------------------ layout 3
def test_layout3_layers_resampled_conserve_energy_per_layer_and_event(layers):
    spec = [f"{name}={path}" for name, path in layers.items()]
    with open_arrays(spec, "layer_0,layer_1,layer_2") as ds:
        assert ds.grid == (12, 96)
        assert ds.event_shape == (12, 96, 3)
        assert ds.channel_names == ("layer_0", "layer_1", "layer_2")
        x, y = _all(ds)
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


# ------------------------------------------------------------- chunked reading
def test_chunked_reading_equals_whole_reading(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        x, y = _all(ds)
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
        x, y = _all(ds)
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


# ------------------------------------------------------ preprocessing (fitted)
def test_standardize_uses_training_statistics_only(tmp_path, egamma):
    combined, _ = egamma
    shutil.copy(combined, tmp_path / "a.h5")
    train, validation = np.arange(0, 200), np.arange(200, 300)

    def stats(path):
        with open_arrays(str(path), "X", y_key="y", classes="electron,photon") as ds:
            return fit_transform(ds, train, scale="standardize")

    before = stats(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "r+") as handle:
        handle["X"][validation[0], 16, 16, 0] = 1e6  # a wild validation value
    assert stats(tmp_path / "a.h5") == before
    with h5py.File(tmp_path / "a.h5", "r+") as handle:
        handle["X"][train[0], 16, 16, 0] = 1e6  # the same change in training moves the mean
    assert stats(tmp_path / "a.h5").mean[0] > before.mean[0] + 1
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        standardized = before(ds.read_batch(train)[0]).astype(np.float64)
    np.testing.assert_allclose(standardized.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(standardized.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_crop_min_value_log_and_round_trip(towers):
    with open_arrays(str(towers), "gTowerEt") as ds:
        train = np.arange(0, len(ds), 2)
        t = fit_transform(ds, train, crop=True, min_value=0.0, scale="log")
        assert t.crop == (2, 27, 0, 32)  # rows 0, 1, 27 dropped; the dead row 14 inside stays
        assert t.output_shape(ds.event_shape) == (25, 32, 1)
        x, _ = ds.read_batch([0, 1, 2])
        out = t(x)
        assert out.shape == (3, 25, 32, 1)
        assert out.min() >= 0  # zero suppression removed the negative noise
        assert (out[:, 12] == 0).all()
        np.testing.assert_allclose(out, np.log1p(np.maximum(x[:, 2:27], 0)), rtol=1e-6)
        signed = ArrayTransform(scale="log")(x)
        assert (signed < 0).sum() == (x < 0).sum()  # sign-preserving log keeps negative cells
        np.testing.assert_allclose(signed, np.sign(x) * np.log1p(np.abs(x)), rtol=1e-6)
    assert ArrayTransform.from_dict(t.to_dict()) == t
    assert crop_box(np.zeros((3, 3), bool)) is None


def test_channels_by_index_and_name(egamma, layers):
    combined, _ = egamma
    with open_arrays(str(combined), "X", y_key="y", classes="electron,photon") as ds:
        x, _ = ds.read_batch([0])
        assert parse_channels("time", ds.channel_names) == parse_channels("1", ds.channel_names) == (1,)
        t = fit_transform(ds, np.arange(10), channels="time")
        np.testing.assert_array_equal(t(x), x[..., 1:2])
        assert t.channel_names == ("time",)
        with pytest.raises(ArrayDataError, match="energy.*time"):
            parse_channels("charge", ds.channel_names)
    spec = [f"{name}={path}" for name, path in layers.items()]
    with open_arrays(spec, "layer_0,layer_1,layer_2") as ds:
        t = fit_transform(ds, np.arange(10), channels="layer_1")
        x, _ = ds.read_batch([3])
        assert t(x).shape == (1, 12, 96, 1)
        with h5py.File(layers["eplus"], "r") as handle:
            assert t(x).sum() == pytest.approx(float(handle["layer_1"][3].sum()), rel=1e-5)


# ---------------------------------------------------------------------- splits
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


# ----------------------------------------------------------------- bad input
def test_missing_key_lists_existing_keys(egamma):
    combined, _ = egamma
    with pytest.raises(ArrayDataError) as info:
        open_arrays(str(combined), "images", y_key="y", classes="electron,photon")
    message = str(info.value)
    assert str(combined) in message and "'images'" in message and "X, y" in message


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


def test_shapes_differ_between_files(tmp_path):
    a = _write(tmp_path / "a.h5", X=np.zeros((4, 8, 8), np.float32))
    b = _write(tmp_path / "b.h5", X=np.zeros((4, 8, 9), np.float32))
    with pytest.raises(ArrayDataError) as info:
        open_arrays([f"sig={a}", f"bkg={b}"], "X")
    assert "b.h5" in str(info.value) and "(8, 9)" in str(info.value) and "(8, 8)" in str(info.value)


def test_labels_outside_class_list(tmp_path):
    path = _write(tmp_path / "y.h5", X=np.ones((6, 4, 4), np.float32), y=np.array([0, 1, 0, 2, 1, 0]))
    with open_arrays(str(path), "X", y_key="y", classes="a,b") as ds:
        with pytest.raises(ArrayDataError) as info:
            ds.labels
    assert "y.h5" in str(info.value) and "event 3" in str(info.value) and "['a', 'b']" in str(info.value)
    fractional = _write(tmp_path / "f.h5", X=np.ones((3, 4, 4), np.float32), y=np.array([0.0, 0.5, 1.0]))
    with open_arrays(str(fractional), "X", y_key="y", classes="a,b") as ds, pytest.raises(ArrayDataError):
        ds.labels


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_file_key_and_event(tmp_path, bad):
    x = np.ones((30, 4, 4, 2), np.float32)
    x[21, 2, 1, 1] = bad
    path = _write(tmp_path / "bad.h5", X=x)
    with open_arrays([f"a={path}"], "X") as ds:
        ds.read_batch(np.arange(20))  # the clean part reads fine
        with pytest.raises(ArrayDataError) as info:
            ds.read_batch([5, 21])
        assert "bad.h5" in str(info.value) and "'X'" in str(info.value) and "event 21" in str(info.value)
        with pytest.raises(ArrayDataError, match="event 21"):
            ds.validate(chunk_events=8)


def test_empty_file(tmp_path):
    empty = _write(tmp_path / "empty.h5", X=np.zeros((0, 8, 8), np.float32))
    full = _write(tmp_path / "full.h5", X=np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ArrayDataError, match="empty.h5.*no events"):
        open_arrays([f"a={full}", f"b={empty}"], "X")
    with pytest.raises(ArrayDataError, match="no datasets"):
        open_arrays([f"a={_write(tmp_path / 'nothing.h5')}"], "X")


def test_imgen_arrays_never_imports_tensorflow():
    code = ("import sys, imgen.arrays, imgen.arrays_cli, imgen.arrays_synth; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_synth_is_deterministic():
    a = synth.electron_photon_sample(20, seed=9)
    b = synth.electron_photon_sample(20, seed=9)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], synth.electron_photon_sample(20, seed=10)[0])


def test_unlabeled_files_for_prediction(egamma):
    _, per_class = egamma
    with open_arrays([str(per_class["photon"]), str(per_class["electron"])], "X", unlabeled=True,
                     classes="electron,photon") as ds:
        assert ds.classes == ("electron", "photon")
        assert (ds.labels == -1).all() and len(ds) == 2 * N_EGAMMA
        x, y = ds.read_batch([0])
    with h5py.File(per_class["photon"], "r") as handle:
        np.testing.assert_array_equal(x[0], handle["X"][0])
