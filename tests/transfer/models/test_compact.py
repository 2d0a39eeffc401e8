"""transfer.models.compact: every network builds for calorimeter shapes, trains, and one learns."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from imgen.arrays import ArrayTransform  # noqa: E402
from imgen.arrays.synth import electron_photon_sample  # noqa: E402
from transfer.models.compact import COMPACT_NETWORKS, build_compact  # noqa: E402

SHAPES = [(32, 32, 2), (28, 32, 1), (12, 96, 3)]


@pytest.mark.parametrize("name", sorted(COMPACT_NETWORKS))
def test_builds_and_trains_one_epoch_on_every_shape(name):
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        model = COMPACT_NETWORKS[name](shape, 3)
        assert model.input_shape == (None, *shape)
        assert model.output_shape == (None, 3)
        assert model.layers[-1].activation.__name__ == "softmax"
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        x = rng.random((12, *shape), dtype=np.float32)
        history = model.fit(x, np.arange(12) % 3, epochs=1, batch_size=6, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        probabilities = model.predict(x[:4], verbose=0)
        assert probabilities.shape == (4, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_tiny_input_keeps_every_dimension():
    for name in ("cnn", "resnet15", "smallcnn"):
        model = build_compact(name, (12, 6, 1), 2)
        assert model.output_shape == (None, 2)
        assert all(min(layer.output.shape[1:3]) >= 1 for layer in model.layers if len(layer.output.shape) == 4)
    assert build_compact("cnn", (1, 1, 1), 2).output_shape == (None, 2)


def test_smallcnn_is_small_and_cnn_is_the_reference():
    assert build_compact("smallcnn", (28, 32, 1), 2).count_params() < 100_000
    cnn = build_compact("cnn", (32, 32, 2), 2)
    convs = [layer.filters for layer in cnn.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [32, 32, 64, 64, 128, 128]
    dense = [layer.units for layer in cnn.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [256, 128, 128, 64, 2]
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in cnn.layers) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown compact network 'vgg'.*smallcnn"):
        build_compact("vgg", (32, 32, 2), 2)
    with pytest.raises(ValueError, match="num_classes"):
        build_compact("mlp", (32, 32, 2), 1)
    with pytest.raises(ValueError, match="input_shape"):
        build_compact("mlp", (32, 32), 2)


def test_smallcnn_learns_electron_photon_showers():
    keras.utils.set_random_seed(0)
    log = ArrayTransform(scale="log")
    x, y = electron_photon_sample(600, seed=0)
    x_test, y_test = electron_photon_sample(300, seed=1)
    model = build_compact("smallcnn", (32, 32, 2), 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(log(x), y, epochs=8, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(log(x_test), y_test, verbose=0)
    assert accuracy > 0.8


def test_registry_import_is_light():
    code = ("import sys, transfer.models.compact as c; assert sorted(c.COMPACT_NETWORKS) == "
            "['cnn', 'mlp', 'resnet15', 'smallcnn']; sys.exit('keras' in sys.modules or 'tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
