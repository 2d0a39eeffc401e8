"""imgen.arrays.transform: preprocessing fitted on the training events only, on real HDF5 files."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from imgen.arrays import ArrayDataError, ArrayTransform, crop_box, fit_transform, open_arrays, parse_channels
from tests._arrays_data import egamma, layers, towers  # noqa: F401 (fixtures)


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
        kept = np.maximum(ds.read_batch(train)[0][:, 2:27], 0).astype(np.float64)
        assert t.log_knee == pytest.approx((kept.std(),), rel=1e-6)  # the knee: std of the kept training cells
        np.testing.assert_allclose(out, np.log1p(np.maximum(x[:, 2:27], 0) / t.log_knee[0]), rtol=1e-5)
        signed = ArrayTransform(scale="log")(x)  # no knee (runs saved before it): log(1 + |x|) as before
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


def test_log_knee_comes_from_training_events_makes_the_unit_irrelevant_and_old_runs_keep_theirs(tmp_path):
    x = np.random.default_rng(0).normal(0, 400.0, (40, 6, 8)).astype(np.float32)  # noise of MeV
    x[:, 3, 4] += 50_000.0  # a jet
    for name, values in (("mev.h5", x), ("gev.h5", x / 1000)):
        with h5py.File(tmp_path / name, "w") as handle:
            handle["E"] = values
    train = np.arange(0, 40, 2)
    fitted = {}
    for name in ("mev.h5", "gev.h5"):
        with open_arrays([f"a={tmp_path / name}"], "E") as ds:
            t = fit_transform(ds, train, scale="log")
            fitted[name] = (t, t(ds.read_batch(np.arange(40))[0]))
    (mev, out_mev), (_, out_gev) = fitted["mev.h5"], fitted["gev.h5"]
    assert mev.log_knee[0] == pytest.approx(x[train].astype(np.float64).std(), rel=1e-6)
    np.testing.assert_allclose(out_mev, out_gev, rtol=1e-4, atol=1e-5)  # MeV or GeV: the same inputs
    noise, jet = np.abs(out_mev[:, 0, 0]).mean(), out_mev[:, 3, 4].mean()
    assert noise < 0.1 and jet > 2  # noise stays near 0, where log(1 + |x|) of MeV lifted it to about 5.6
    assert ArrayTransform.from_dict(mev.to_dict()) == mev
    old = {k: v for k, v in mev.to_dict().items() if k != "log_knee"}  # arrays.json of an older run
    assert ArrayTransform.from_dict(old).log_knee is None
    np.testing.assert_allclose(ArrayTransform.from_dict(old)(x[:2, :, :, None]),
                               np.sign(x[:2, :, :, None]) * np.log1p(np.abs(x[:2, :, :, None])), rtol=1e-5)
