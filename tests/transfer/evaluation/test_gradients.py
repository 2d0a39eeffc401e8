"""transfer.evaluation.gradients: the log-odds gradient is right (finite differences), reaches through the
uint8 input of an image model, and is the same under JAX as under TensorFlow for a saved model.keras."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.conftest import REPO_ROOT  # noqa: E402
from transfer.evaluation.gradients import differentiable, input_gradients  # noqa: E402
from transfer.models.backbones import get_backbone  # noqa: E402
from transfer.models.classifier import build_transfer_model  # noqa: E402


def _classifier(shape=(6, 8, 2), dtype="float32", classes=3):
    """A compact network as a run builds it: input standardisation inside, softmax out."""
    keras.utils.set_random_seed(3)
    channels = shape[-1]
    parts = build_transfer_model(get_backbone("smallcnn"), shape, classes, input_dtype=dtype,
                                 normalization={"mean": [1.0] * channels, "variance": [4.0] * channels})
    return parts.model


def _log_odds(model, x, c):
    scores = np.asarray(model.predict(x, verbose=0), np.float64)
    return np.log(scores[:, c]) - np.log(scores.sum(axis=1) - scores[:, c])


def test_the_gradient_of_the_log_odds_matches_finite_differences():
    model = _classifier()
    x = np.random.default_rng(0).gamma(2.0, 1.0, (3, 6, 8, 2)).astype(np.float32)
    classes = np.array([0, 2, 1])
    grads = input_gradients(model, x, classes)
    assert grads.shape == x.shape and grads.dtype == np.float32
    rng = np.random.default_rng(1)
    for event in range(3):
        for _ in range(3):
            cell = tuple(rng.integers(0, n) for n in x.shape[1:])
            step = np.zeros_like(x[event:event + 1])
            step[(0, *cell)] = 1e-2
            numeric = (_log_odds(model, x[event:event + 1] + step, classes[event])
                       - _log_odds(model, x[event:event + 1] - step, classes[event]))[0] / 2e-2
            assert grads[(event, *cell)] == pytest.approx(numeric, rel=0.05, abs=2e-3)
    # one event's gradient does not depend on the other events of the batch
    np.testing.assert_allclose(input_gradients(model, x[1:2], classes[1:2])[0], grads[1], rtol=1e-5, atol=1e-7)


def test_image_models_are_differentiated_through_their_uint8_input(tmp_path):
    from transfer.run_folder import load_model

    _classifier((10, 10, 3), dtype="uint8", classes=2).save(tmp_path / "model.keras")
    model = load_model(tmp_path / "model.keras")  # as explain gets it: a loaded model keeps its input in a list
    twin = differentiable(model)
    assert "float" in str(twin.inputs[0].dtype) and twin.layers[-1] is model.layers[-1]  # same layers, same weights
    images = np.random.default_rng(0).integers(0, 256, (2, 10, 10, 3)).astype(np.uint8)
    np.testing.assert_allclose(twin.predict(images.astype(np.float32), verbose=0), model.predict(images, verbose=0),
                               rtol=1e-5)
    grads = input_gradients(model, images, [0, 1])
    assert np.isfinite(grads).all() and np.abs(grads).max() > 0


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install 'jax[cpu]')")
def test_jax_gives_the_gradients_tensorflow_gives(tmp_path):
    """The run's model.keras, loaded in a process whose Keras runs on JAX (KERAS_BACKEND set before Keras is
    imported), gives the TensorFlow gradients, and a whole explanation runs there."""
    from transfer.evaluation.explain import explain_model

    model = _classifier()
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.random.default_rng(0).gamma(2.0, 1.0, (12, 6, 8, 2)).astype(np.float32)
    labels = np.arange(12) % 3
    np.save(tmp_path / "x.npy", x)
    expected = input_gradients(model, x, labels)
    reference = explain_model(model, x, labels, ["a", "b", "c"], ["saliency", "integrated_gradients"], events=1)
    code = f"""
import json, numpy as np, keras
assert keras.backend.backend() == "jax"
from transfer.run_folder import load_model
from transfer.evaluation.gradients import input_gradients
from transfer.evaluation.explain import explain_model
model = load_model({str(path)!r})
x = np.load({str(tmp_path / 'x.npy')!r})
labels = np.arange(12) % 3
np.save({str(tmp_path / 'jax.npy')!r}, input_gradients(model, x, labels))
e = explain_model(model, x, labels, ["a", "b", "c"], ["saliency", "integrated_gradients"], events=1)
print(json.dumps({{m: [c.correlation, c.per_event] for m, c in e.sanity.items()}}))
np.save({str(tmp_path / 'ig.npy')!r}, e.maps["integrated_gradients"]["right"])
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, rtol=1e-3, atol=1e-5)
    # the same maps (same events, same baseline, no randomness in integrated gradients)
    np.testing.assert_allclose(np.load(tmp_path / "ig.npy"), reference.maps["integrated_gradients"]["right"],
                               rtol=1e-3, atol=1e-5)
    sanity = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(sanity) == {"saliency", "integrated_gradients"}
