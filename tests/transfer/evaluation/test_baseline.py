"""The matched baseline: same events as the network, physics features read back through the manifest."""
from __future__ import annotations

import csv
import json
import math

import h5py
import numpy as np
import pytest

from imgen.events.cms_json import read_events
from imgen.features import FEATURE_NAMES, event_features, features_of_sources
from imgen.pipeline import render_files
from imgen.split import split_events
from imgen.synth import generate
from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.evaluation.baseline import block_pool, pool_factor, run_baseline


def _flipped_file(path, n_per_class=60, seed=0):
    """Two classes told apart by one cell, with the relation flipped in the test split only.

    Trees that saw only training events score about 0 on the test split; any
    test event in their training would pull that up.
    """
    labels = np.repeat([0, 1], n_per_class)
    ids = [f"{path.name}#{row}" for row in range(len(labels))]  # the split identity of an HDF5 row
    test = split_events(ids, ["ab"[k] for k in labels], seed, (0.6, 0.2, 0.2))["test"]
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (len(labels), 8, 8, 1)).astype(np.float32)
    signal = labels.astype(bool).copy()
    signal[test] = ~signal[test]
    x[signal, 3, 4, 0] += 50.0
    with h5py.File(path, "w") as handle:
        handle["X"] = x
        handle["y"] = labels
    return path, test


def test_baseline_is_fitted_on_exactly_the_training_events(tmp_path):
    path, test = _flipped_file(tmp_path / "flipped.h5")
    config = TrainConfig(data=str(path), x_key="X", y_key="y", classes="a,b", backbone="smallcnn",
                         split="0.6,0.2,0.2", seed=0)
    with open_data(config) as source:
        view = source.view()
        assert np.array_equal(view.splits["test"], np.sort(test))
        result = run_baseline(view, seed=0)
    assert result.n_train == len(view.splits["train"])
    val_accuracy = (result.scores["validation"].argmax(1) == result.labels["validation"]).mean()
    test_accuracy = (result.scores["test"].argmax(1) == result.labels["test"]).mean()
    assert val_accuracy > 0.9
    assert test_accuracy < 0.1, "the baseline saw test events"
    assert "sum-pooled" in result.description


def test_pooling_keeps_sums_and_respects_the_limit():
    x = np.arange(2 * 5 * 7 * 2, dtype=np.float64).reshape(2, 5, 7, 2)
    factor = pool_factor(5, 7, 2, limit=20)
    pooled = block_pool(x, factor)
    assert pooled.shape[1] * pooled.shape[2] * pooled.shape[3] <= 20
    np.testing.assert_allclose(pooled.sum(axis=(1, 2)), x.sum(axis=(1, 2)))
    assert pool_factor(5, 7, 2, limit=70) == 1


def _direct_features(raw: dict) -> dict:
    """A few features straight from one raw JSON event, without imgen's parser."""
    jets = [j for j in raw.get("jet", {}).values() if abs(j["eta"]) <= 3.0]
    leptons = [o for kind in ("electron", "muon") for o in raw.get(kind, {}).values() if abs(o["eta"]) <= 3.0]
    pts = sorted((j["pt"] for j in jets), reverse=True)
    return {"n_jets": len(jets), "n_bjets": sum(j["CSV"] > 0.679 for j in jets), "n_leptons": len(leptons),
            "met": raw["met"], "ht": sum(pts), "jet1_pt": pts[0] if pts else math.nan}


def test_physics_features_through_the_manifest_equal_the_json(tmp_path):
    generate(tmp_path / "events", events=12, seed=5)
    render_files([tmp_path / "events"], tmp_path / "images", size=16, workers=1, seed=1)
    with open(tmp_path / "images" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    imgen_config = json.loads((tmp_path / "images" / "imgen-config.json").read_text())
    from imgen.features import rendering_settings

    features = features_of_sources([(r["source"], r["event"]) for r in rows], tmp_path / "images",
                                   rendering_settings(imgen_config))
    assert features.shape == (36, len(FEATURE_NAMES))
    for row, values in zip(rows, features):
        raw = json.loads(open(row["source"]).read())["Event"][row["event"]]
        for name, expected in _direct_features(raw).items():
            got = values[FEATURE_NAMES.index(name)]
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, rel=1e-6), \
                (row["path"], name)


def test_dilepton_mass_of_a_known_pair():
    from imgen.events.model import Event, PhysicsObject

    event = Event("1", (PhysicsObject("muon", 45.0, 0.5, 0.1), PhysicsObject("muon", 40.0, -0.7, 2.9)), 30.0, 1.0)
    values = dict(zip(FEATURE_NAMES, event_features(event)))
    expected = math.sqrt(2 * 45 * 40 * (math.cosh(1.2) - math.cos(2.8)))
    assert values["dilepton_mass"] == pytest.approx(expected)
    assert values["n_leptons"] == 2 and values["dilepton_same_flavour"] == 1.0
    assert math.isnan(values["jet1_pt"])


def test_image_baseline_reads_the_source_events_of_each_split(tmp_path):
    generate(tmp_path / "events", events=30, seed=2)
    render_files([tmp_path / "events"], tmp_path / "images", size=16, workers=1, seed=3)
    config = TrainConfig(data=str(tmp_path / "images"), backbone="smallcnn")
    with open_data(config) as source:
        view = source.view()
        result = run_baseline(view, seed=0)
        assert result.description.startswith("physics objects")
        assert result.n_features == len(FEATURE_NAMES)
        test_rows = view.splits["test"]
        direct = np.stack([event_features(next(e for e in read_events(view.images.sources[i])
                                                if e.event_id == view.images.events[i]))
                           for i in test_rows])
        assert direct.shape[0] == len(result.labels["test"]) == len(test_rows)


def test_images_moved_without_their_events_get_a_pixel_baseline_with_a_warning(tmp_path, monkeypatch, caplog):
    import logging
    import shutil

    generate(tmp_path / "events", events=20, seed=2)
    render_files([tmp_path / "events"], tmp_path / "images", size=16, workers=1, seed=3)
    moved = tmp_path / "elsewhere" / "images"
    shutil.copytree(tmp_path / "images", moved)
    shutil.rmtree(tmp_path / "events")   # the manifest still names the event files
    monkeypatch.chdir(tmp_path / "elsewhere")
    with open_data(TrainConfig(data=str(moved), backbone="smallcnn")) as source, \
            caplog.at_level(logging.INFO, logger="transfer.evaluation.baseline"):
        result = run_baseline(source.view(), seed=0)
    assert result.description.startswith("pixels averaged") and "is not found" in result.description
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "transfer.evaluation.baseline"]
    assert len(warned) == 1 and "not on the events' physics objects" in warned[0].getMessage()


def test_plain_image_folder_gets_a_pixel_baseline_and_says_why(tmp_path, caplog):
    from tests._transfer_data import make_blob_dataset

    root = make_blob_dataset(tmp_path / "blobs", per_class=15, size=24)
    with open_data(TrainConfig(data=str(root), backbone="smallcnn")) as source:
        result = run_baseline(source.view(), seed=0)
    assert result.description.startswith("pixels averaged")
    assert "imgen-config.json" in result.description
    assert not [r for r in caplog.records if r.levelno >= 30 and r.name == "transfer.evaluation.baseline"]  # nothing was meant to be read: no warning
    accuracy = (result.scores["test"].argmax(1) == result.labels["test"]).mean()
    assert accuracy > 0.5  # blobs at different places: the pixels separate them


def test_images_rendered_from_nanoaod_get_the_physics_baseline_too(tmp_path):
    from imgen.events.nanoaod_write import events_of_json, write_nanoaod
    from imgen.synth import generate_events

    for name in ("TTjets", "Wjets"):
        (tmp_path / "root").mkdir(exist_ok=True)
        write_nanoaod(tmp_path / "root" / f"{name}.root", events_of_json(generate_events(name, 25, seed=4)))
    render_files([tmp_path / "root"], tmp_path / "images", size=16, workers=1, seed=2, btag_branch="Jet_btagCSVV2")
    with open_data(TrainConfig(data=str(tmp_path / "images"), backbone="smallcnn")) as source:
        view = source.view()
        result = run_baseline(view, seed=0)
        assert result.description.startswith("physics objects")
        rows = [(view.images.sources[i], view.images.events[i]) for i in view.splits["test"]]
    from imgen.features import read_imgen_config, rendering_settings

    settings = rendering_settings(read_imgen_config(tmp_path / "images"))
    again = features_of_sources(rows, tmp_path / "images", settings)
    direct = []
    for source, number in rows:
        name = source.rsplit("/", 1)[-1].removesuffix(".root")
        raw = dict(generate_events(name, 25, seed=4))[number]
        direct.append(_direct_features(raw))
    for values, expected in zip(again, direct):
        assert values[FEATURE_NAMES.index("n_jets")] == expected["n_jets"]
        assert values[FEATURE_NAMES.index("met")] == pytest.approx(expected["met"], rel=1e-6)


def test_a_feature_no_training_event_has_is_left_out(tmp_path, monkeypatch):
    """scikit-learn's binning fails on an all-NaN column (no event with two leptons in a small sample)."""
    from transfer.evaluation import baseline
    from transfer.evaluation.baseline import BaselineInputs, fit_trees

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    x = np.column_stack([labels + rng.normal(0, 0.1, 40), np.full(40, np.nan)])
    with pytest.raises(ValueError):
        fit_trees(x, labels, x, labels, 2)
    path, _ = _flipped_file(tmp_path / "f.h5")
    config = TrainConfig(data=str(path), x_key="X", y_key="y", classes="a,b", backbone="smallcnn",
                         split="0.6,0.2,0.2", seed=0)

    def with_empty_column(view, seed):
        real = baseline._array_inputs(view, seed)
        features = {s: np.column_stack([f, np.full(len(f), np.nan)]) for s, f in real.features.items()}
        return BaselineInputs(features, real.labels, real.description)

    monkeypatch.setitem(baseline.BASELINE_INPUTS, "arrays", with_empty_column)
    with open_data(config) as source:
        result = run_baseline(source.view(), seed=0)
    assert (result.scores["validation"].argmax(1) == result.labels["validation"]).mean() > 0.9
