"""transfer.models.classifier and transfer.models.backbones: preprocessing, inference mode, freezing, registry."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from transfer.config import TrainConfig  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.models.backbones import BACKBONES, BackboneSpec, classifier_as_backbone, get_backbone, register_backbone
from transfer.models.classifier import build_transfer_model, export_model
from transfer.models.freezing import set_trainable, weighted_layers
from transfer.models.layers import BackbonePreprocessing, InferenceMode

REQUIRED = {"vgg16", "vgg19", "resnet50", "inceptionv3", "inceptionresnetv2", "xception", "mobilenetv2",
            "efficientnetb0"}


def test_registry_holds_the_study_backbones_with_their_limits():
    assert REQUIRED <= set(BACKBONES)
    limits = {name: BACKBONES[name].min_size for name in REQUIRED}
    assert limits == {"vgg16": 32, "vgg19": 32, "resnet50": 32, "mobilenetv2": 32, "efficientnetb0": 32,
                      "inceptionv3": 75, "inceptionresnetv2": 75, "xception": 71}
    with pytest.raises(TransferError, match="unknown backbone 'lenet'.*vgg16"):
        get_backbone("lenet")


def test_image_size_below_minimum_is_refused():
    with pytest.raises(TransferError, match="64x64 is below the minimum of backbone 'inceptionv3' .75x75"):
        build_transfer_model(get_backbone("inceptionv3"), (64, 64, 1), 3)


@pytest.mark.parametrize("module", ["vgg19", "inception_v3", "resnet"])
def test_preprocessing_is_the_backbones_own(module):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    layer = BackbonePreprocessing(module)
    expected = getattr(keras.applications, module).preprocess_input(images.astype("float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)), expected, rtol=1e-6, atol=1e-4)


def test_preprocessing_makes_rgb_resizes_and_serialises():
    grey = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    layer = BackbonePreprocessing(None, image_size=(8, 6), rgb=True)
    out = keras.ops.convert_to_numpy(layer(grey))
    assert out.shape == (1, 8, 6, 3)
    assert np.array_equal(out[..., 0], out[..., 2]) and 0 <= out.min() and out.max() <= 1
    clone = BackbonePreprocessing.from_config(layer.get_config())
    assert clone.image_size == (8, 6) and clone.rgb and clone.preprocess is None
    with pytest.raises(ValueError, match="no preprocess_input"):
        BackbonePreprocessing("os")


def _tiny_backbone(input_shape, weights=None):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x, name="tiny")
    if weights:
        model.load_weights(weights)
    return model


def test_backbone_always_runs_in_inference_mode():
    keras.utils.set_random_seed(0)
    spec = BackboneSpec(name="tiny-test", builder=_tiny_backbone, preprocess=None, min_size=8,
                        default_size=16, pretrained=True, channels=None)
    parts = build_transfer_model(spec, (16, 16, 1), 2, dropout=0.0)
    assert isinstance(parts.model.get_layer("backbone"), InferenceMode)
    x = np.random.default_rng(1).integers(0, 255, (4, 16, 16, 1), dtype=np.uint8)
    # Dropout inside the backbone would differ between the two calls, BatchNorm would use batch statistics
    train_mode = keras.ops.convert_to_numpy(parts.model(x, training=True))
    infer_mode = keras.ops.convert_to_numpy(parts.model(x, training=False))
    np.testing.assert_allclose(train_mode, infer_mode, rtol=1e-6)
    features = keras.ops.convert_to_numpy(parts.features(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(parts.head(features)), infer_mode, rtol=1e-6)


def test_partial_and_full_unfreezing_open_exactly_the_layers_and_never_batchnorm():
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3),
                                           pooling="avg")
    candidates = weighted_layers(backbone)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in candidates)
    assert candidates[-1].name == "conv5_block3_3_conv"

    opened = set_trainable(backbone, "partial", 5)
    assert opened == [layer.name for layer in candidates[-5:]]
    trainable = [layer.name for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable == opened
    assert {id(v) for v in backbone.trainable_weights} == {
        id(v) for layer in candidates[-5:] for v in layer.trainable_weights}

    opened = set_trainable(backbone, "full")
    assert len(opened) == len(candidates) == 53
    assert all(not layer.trainable for layer in backbone.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert set_trainable(backbone, "frozen") == [] and backbone.trainable_weights == []
    with pytest.raises(TransferError, match="--unfreeze 60.*only 53 layers"):
        set_trainable(backbone, "partial", 60)
    assert set_trainable(backbone, "partial") == [layer.name for layer in candidates[-4:]]   # not given: 4


def test_unfreeze_not_given_opens_every_layer_of_a_network_with_fewer_than_four_but_a_given_number_must_fit():
    inputs = keras.Input((8,))
    two = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(5)(inputs)), name="two_dense")
    assert set_trainable(two, "partial") == [layer.name for layer in two.layers[1:]]
    assert TrainConfig(data="x", backbone="mlp").unfreeze is None
    with pytest.raises(TransferError, match="--unfreeze 3: backbone 'two_dense' has only 2 layers"):
        set_trainable(two, "partial", 3)


def test_compact_classifiers_can_be_registered_as_backbones(tmp_path):
    def build_small(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
        x = keras.layers.BatchNormalization(name="small_bn")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    spec = BackboneSpec(name="small-test", builder=classifier_as_backbone(build_small), preprocess=None,
                        min_size=4, default_size=16, pretrained=False, channels=None)
    register_backbone(spec)
    try:
        with pytest.raises(TransferError, match="already registered"):
            register_backbone(spec)
        parts = build_transfer_model(get_backbone("small-test"), (12, 12, 2), 4, head_units=0)
        assert parts.backbone.output_shape == (None, 3)
        assert parts.model.output_shape == (None, 4)
        # trained from scratch: no inference-mode wrapper, BatchNorm is opened like any layer
        assert not any(isinstance(layer, InferenceMode) for layer in parts.model.layers)
        assert "small_bn" in set_trainable(parts.backbone, "full", freeze_batch_norm=False)
        path = tmp_path / "m.keras"
        export_model(parts.model).save(path)
        x = np.random.default_rng(0).integers(0, 255, (3, 12, 12, 2), dtype=np.uint8)
        loaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), parts.model.predict(x, verbose=0), rtol=1e-6)
    finally:
        BACKBONES.pop("small-test")


def test_mixed_precision_keeps_preprocessing_and_scores_in_float32():
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        spec = BackboneSpec(name="tiny-mp", builder=_tiny_backbone, preprocess="vgg16", min_size=8,
                            default_size=16, pretrained=False, channels=3)
        parts = build_transfer_model(spec, (16, 16, 1), 3)
        assert parts.model.get_layer("preprocess").compute_dtype == "float32"
        assert parts.backbone.layers[1].compute_dtype == "float16"
        x = np.zeros((2, 16, 16, 1), np.uint8)
        assert keras.ops.convert_to_numpy(parts.model(x)).dtype == np.float32
    finally:
        keras.config.set_dtype_policy(previous)
