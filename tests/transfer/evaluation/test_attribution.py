"""transfer.evaluation.attribution: integrated gradients are complete, the re-initialised copy keeps the fitted
input statistics and nothing learned, and the sanity check's correlations measure what they claim."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from transfer.evaluation.attribution import (METHODS, Inputs, averaged_correlation, completeness,  # noqa: E402
                                             randomized_copy, rank_correlation, sanity_check)
from transfer.models.backbones import get_backbone  # noqa: E402
from transfer.models.classifier import build_transfer_model  # noqa: E402
from transfer.models.layers import InputStandardization  # noqa: E402


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_transfer_model(get_backbone("cnn3d"), (6, 8, 3), 3, input_dtype="float32",
                                normalization={"mean": [0.5, 1.0, 2.0], "variance": [1.0, 4.0, 9.0]}).model


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(0)
    x = (rng.gamma(2.0, 1.0, (10, 6, 8, 3)) * (rng.random((10, 6, 8, 3)) < 0.4)).astype(np.float32)
    return x, np.arange(10) % 3


def test_integrated_gradients_sum_to_the_change_of_the_log_odds(model, events, monkeypatch):
    from transfer.evaluation import attribution

    x, labels = events
    inputs = Inputs.of(x)
    assert np.all(inputs.baseline == 0)  # most cells are empty: the baseline is an empty detector
    maps = METHODS["integrated_gradients"].compute(model, x, labels, inputs)
    coarse = completeness(model, x, labels, maps, inputs)
    assert coarse < 0.05
    # where the event equals the baseline nothing is attributed
    assert np.all(maps[x == 0] == 0)
    finer_inputs = dataclasses.replace(inputs, steps=4 * attribution.IG_STEPS)  # the path integral converges
    finer = METHODS["integrated_gradients"].compute(model, x, labels, finer_inputs)
    assert completeness(model, x, labels, finer, finer_inputs) < coarse / 2  # about 1 / steps: ReLU kinks
    # explain chooses the steps: doubled until the maps are complete enough
    monkeypatch.setattr(attribution, "IG_TOLERANCE", coarse / 3)
    steps, reached = attribution.path_steps(model, x, labels, inputs, events=len(x))
    assert steps > attribution.IG_STEPS and (reached <= coarse / 3 or steps == attribution.IG_MAX_STEPS)


def test_every_method_gives_a_map_of_the_input_shape(model, events):
    x, labels = events
    assert not METHODS["gradcam"].applies(model)  # cnn3d's trunk ends in per-layer pooling, not an average
    for method in (m for m in METHODS.values() if m.applies(model)):
        maps = method.compute(model, x[:4], labels[:4], Inputs.of(x))
        assert maps.shape == x[:4].shape and np.isfinite(maps).all()
        assert method.signed or (maps >= 0).all()


def test_the_randomized_copy_keeps_the_input_statistics_and_nothing_learned(model, events):
    copy = randomized_copy(model, seed=4)
    originals = {w.path: w for w in model.weights}
    standardization = [layer for layer in copy.layers if isinstance(layer, InputStandardization)][0]
    original = [layer for layer in model.layers if isinstance(layer, InputStandardization)][0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(standardization.std),
                                  keras.ops.convert_to_numpy(original.std))
    kernels = [(a, b) for a, b in zip(model.weights, copy.weights) if "kernel" in a.path]
    assert kernels and all(not np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
                           for a, b in kernels)
    assert len(originals) == len(copy.weights)
    x, _ = events
    assert not np.allclose(model.predict(x, verbose=0), copy.predict(x, verbose=0))


def test_correlations_are_per_channel_and_signed_only_for_signed_maps():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 4, 6, 3))
    # the shared input standardisation scales each channel's gradient alike in both networks: no agreement from it
    scaled = rng.normal(size=a.shape) * np.array([1.0, 100.0, 1e4])
    assert abs(rank_correlation(a * np.array([1.0, 100.0, 1e4]), scaled).mean()) < 0.2
    np.testing.assert_allclose(rank_correlation(a, 3 * a), 1.0)
    np.testing.assert_allclose(rank_correlation(a, -a), 1.0)  # magnitudes: a flipped sign is the same map
    np.testing.assert_allclose(rank_correlation(a, -a, signed=True), -1.0)
    assert averaged_correlation(a[:2], a[:2] * 5) == pytest.approx(1.0)
    assert averaged_correlation(a[:2], np.zeros_like(a[:2])) == 1.0  # a constant map tells nothing apart


def test_sanity_check_passes_different_maps_and_fails_alike_ones():
    rng = np.random.default_rng(1)
    labels = np.arange(40) % 2
    own = np.abs(rng.normal(size=(40, 6, 6, 1)))
    check = sanity_check(METHODS["saliency"], own, np.abs(rng.normal(size=own.shape)), labels, 2)
    assert check.passed and abs(check.correlation) < 0.3 and "passes" in check.text()
    alike = sanity_check(METHODS["saliency"], own, own * 2 + 0.01 * rng.random(own.shape), labels, 2)
    assert not alike.passed and "FAILS" in alike.text() and alike.as_dict()["passed"] is False


def test_gradcam_works_where_a_trunk_ends_in_global_average_pooling_and_says_where_not(events):
    from transfer.errors import TransferError

    keras.utils.set_random_seed(2)
    resnet = build_transfer_model(get_backbone("resnet15"), (6, 8, 3), 3, input_dtype="float32",
                                  normalization={"mean": [0.0] * 3, "variance": [1.0] * 3}).model
    x, labels = events
    maps = METHODS["gradcam"].compute(resnet, x[:3], labels[:3], Inputs.of(x))
    assert maps.shape == x[:3].shape and (maps >= 0).all()
    np.testing.assert_allclose(maps[..., 0], maps[..., 2])  # one map, spread evenly over the channels
    smallcnn = build_transfer_model(get_backbone("smallcnn"), (6, 8, 3), 3, input_dtype="float32").model
    with pytest.raises(TransferError, match="global average pooling.*use saliency, smoothgrad or integrated"):
        METHODS["gradcam"].compute(smallcnn, x[:1], labels[:1], Inputs.of(x))
