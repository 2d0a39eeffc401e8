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
            "['cnn', 'cnn3d', 'mlp', 'rcnn', 'resnet15', 'smallcnn']; "
            "sys.exit('keras' in sys.modules or 'tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- the networks over calorimeter layers -------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn3d", "rcnn"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_layer_networks_take_one_to_three_layers_and_keep_them_apart(name, depth):
    model = build_compact(name, (12, 6, depth), 3)
    assert model.output_shape == (None, 3)
    if name == "cnn3d":
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
        assert [c.kernel_size[2] for c in convs[:3]] == [min(3, depth)] * 3  # never deeper than the layers
        # nothing pools along depth: every 5D tensor keeps all the layers
        assert all(layer.output.shape[3] == depth for layer in model.layers if len(layer.output.shape) == 5)
    else:
        gru = model.get_layer("depth_gru")
        assert gru.input.shape[1] == depth and gru.unroll  # one step per layer, in depth order
        encoder = model.get_layer("shared_encoder").layer
        assert encoder.input_shape == (None, 12, 6, 1)  # one encoder, shared by every layer


def test_rcnn_reads_the_layers_in_order():
    """The GRU makes the order of the layers matter: the same layers reversed score differently."""
    keras.utils.set_random_seed(1)
    model = build_compact("rcnn", (8, 8, 3), 2)
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    assert np.abs(model.predict(x, verbose=0) - model.predict(x[..., ::-1], verbose=0)).max() > 1e-4


def test_layer_networks_refuse_more_layers_than_a_calorimeter_has_and_too_small_grids():
    from transfer.errors import TransferError
    from transfer.models.backbones import MAX_LAYERS, check_channels, check_image_size, get_backbone

    for name in ("cnn3d", "rcnn"):
        spec = get_backbone(name)
        check_channels(spec, MAX_LAYERS)
        with pytest.raises(TransferError, match=rf"{name}' reads at most {MAX_LAYERS} calorimeter layers.*has "
                                                rf"{MAX_LAYERS + 1}.*--channels"):
            check_channels(spec, MAX_LAYERS + 1)
        with pytest.raises(TransferError, match=r"image size 2x6 is below the minimum.*3x3"):
            check_image_size(spec, (2, 6))
    check_channels(get_backbone("smallcnn"), MAX_LAYERS + 1)  # the channel-mixing networks take any number
