"""The classifier: preprocessing, a backbone always in inference mode, a small head.

::

    uint8 image or float32 array (dataset size) -> BackbonePreprocessing (to float,
    channels -> RGB, resize, the backbone's own preprocess_input) -> InferenceMode(backbone)
    -> head (feature scaling, dropout, dense, softmax)

Everything, preprocessing included, lives inside the Keras model, so a saved
``model.keras`` takes raw uint8 images (or the float32 arrays as ``--scale``
leaves them) of the dataset's size and channel count, and nothing outside it
needs to know which backbone it holds.

Input scaling: uint8 images go to the backbone's ``preprocess_input`` (pixels
/ 255 for networks trained from scratch). Float32 arrays go to networks trained
from scratch as they are; for pretrained backbones each channel is first mapped
linearly onto 0..255 (``value_range``: the training split's minimum and
maximum), so that they look like pixels to ``preprocess_input``.

Channels for pretrained (3-channel) backbones: 1 channel is repeated three
times, 2 channels become (c0, c1, (c0 + c1) / 2); more than 3 are refused
(choose with ``--channels``). Compact networks take any channel count.

Networks trained from scratch (``pretrained=False``) get no extra head: their
own layers end in a dense softmax, as :mod:`transfer.compact` defines them.

Keras 3 passes ``training=True`` from ``fit`` down into nested models even
where a functional graph was built with ``backbone(x, training=False)``
(keras-team/keras#20285). :class:`InferenceMode` therefore calls the backbone
with ``training=False`` itself, and :func:`set_trainable` keeps every
BatchNormalization layer non-trainable as well: the ImageNet statistics are
never updated and never replaced by batch statistics, in either stage.
(Backbones registered with ``pretrained=False`` have no statistics to keep:
they are called like any layer and their BatchNorm layers train.)

This module imports Keras at import time (it defines Keras layers); the CLI
imports it only when it needs a model.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from transfer.backbones import BackboneSpec, check_channels, check_image_size
from transfer.errors import TransferError


def _applications_module(name: str):
    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        raise ValueError(f"keras.applications.{name} has no preprocess_input")
    return module


def to_rgb(x):
    """(..., C) with C in 1, 2, 3 -> (..., 3): see :data:`transfer.backbones.RGB_MAPPINGS`."""
    channels = x.shape[-1]
    if channels == 1:
        return ops.repeat(x, 3, axis=-1)
    if channels == 2:
        return ops.concatenate([x, ops.mean(x, axis=-1, keepdims=True)], axis=-1)
    return x


@keras.saving.register_keras_serializable(package="hepvision")
class BackbonePreprocessing(keras.layers.Layer):
    """uint8 images or float32 arrays -> the input a backbone expects.

    Casts to float32; maps each channel of float arrays linearly from
    ``value_range`` (one ``[low, high]`` per channel) onto 0..255 when given;
    makes three channels out of 1 or 2 when ``rgb`` (:func:`to_rgb`); resizes
    (bilinear) to ``image_size`` when it differs from the input; then, when
    ``pixels``, applies ``keras.applications.<preprocess>.preprocess_input``
    (pixels scaled to [0, 1] when ``preprocess`` is ``None``). With
    ``pixels=False`` (arrays into a network trained from scratch) the values
    pass unchanged. Always computes in float32, also under mixed precision.
    """

    def __init__(self, preprocess: str | None = None, image_size=None, rgb: bool = True, pixels: bool = True,
                 value_range=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if preprocess is not None:
            _applications_module(preprocess)
        self.preprocess = preprocess
        self.image_size = tuple(int(s) for s in image_size) if image_size else None
        self.rgb = bool(rgb)
        self.pixels = bool(pixels)
        self.value_range = [[float(v) for v in pair] for pair in value_range] if value_range else None

    def call(self, images):
        x = ops.cast(images, "float32")
        if self.value_range:
            low = ops.convert_to_tensor([pair[0] for pair in self.value_range], "float32")
            span = ops.convert_to_tensor([pair[1] - pair[0] for pair in self.value_range], "float32")
            x = (x - low) / span * 255.0
        if self.rgb:
            x = to_rgb(x)
        if self.image_size and tuple(x.shape[1:3]) != self.image_size:
            x = ops.image.resize(x, self.image_size, interpolation="bilinear")
        if not self.pixels:
            return x
        if self.preprocess is None:
            return x / 255.0
        return _applications_module(self.preprocess).preprocess_input(x)

    def compute_output_shape(self, input_shape):
        height, width = self.image_size or input_shape[1:3]
        channels = 3 if self.rgb and input_shape[-1] in (1, 2) else input_shape[-1]
        return (input_shape[0], height, width, channels)

    def get_config(self):
        return {**super().get_config(), "preprocess": self.preprocess,
                "image_size": list(self.image_size) if self.image_size else None, "rgb": self.rgb,
                "pixels": self.pixels, "value_range": self.value_range}


@keras.saving.register_keras_serializable(package="hepvision")
class InferenceMode(keras.layers.Wrapper):
    """Runs the wrapped layer or model with ``training=False``, whatever the caller says.

    Gradients still flow through it: unfrozen layers inside are fine-tuned,
    but BatchNormalization uses its moving statistics and dropout is off.
    """

    def call(self, inputs, training=None):
        return self.layer(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="hepvision")
class FeatureScaling(keras.layers.Layer):
    """``(features - mean) * scale``: centred per feature, one common scale.

    :meth:`set_statistics` takes the training images' features: ``mean`` per
    feature and ``scale`` = 1 / root-mean-square spread over all features.
    One scale for all features (not one per feature) keeps near-constant
    features from being blown up. Both are stored as non-trainable weights.
    """

    def build(self, input_shape):
        self.mean = self.add_weight(name="mean", shape=(input_shape[-1],), initializer="zeros",
                                    trainable=False)
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False)

    def set_statistics(self, features) -> None:
        import numpy as np

        features = np.asarray(features, dtype=np.float64)
        spread = float(np.sqrt(features.var(axis=0).mean()))
        self.mean.assign(features.mean(axis=0).astype("float32"))
        self.scale.assign(1.0 / max(spread, 1e-12))

    def call(self, features):
        return (features - ops.cast(self.mean, features.dtype)) * ops.cast(self.scale, features.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="hepvision")
class InputStandardization(keras.layers.Layer):
    """``(x - mean) / std`` per channel, with the training inputs' statistics stored as weights.

    Networks trained from scratch get it first, so that raw MeV, sign-log and
    standardised arrays and uint8 pixels reach their first convolution at
    unit scale, and ``model.keras`` still takes the raw inputs. The statistics
    are non-trainable weights (not constants), so exports (ONNX, TFLite)
    carry them like any weight. Always computes in float32.
    """

    def __init__(self, mean=None, variance=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self._initial = (None if mean is None else [float(v) for v in mean],
                         None if variance is None else [float(v) for v in variance])

    def build(self, input_shape):
        channels = int(input_shape[-1])
        mean, variance = self._initial
        self.mean = self.add_weight(name="mean", shape=(channels,), trainable=False,
                                    initializer=keras.initializers.Constant(mean or [0.0] * channels))
        self.std = self.add_weight(name="std", shape=(channels,), trainable=False,
                                   initializer=keras.initializers.Constant(
                                       [max(v, 1e-12) ** 0.5 for v in variance] if variance else [1.0] * channels))

    def call(self, x):
        x = ops.cast(x, "float32")
        return (x - self.mean) / self.std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config()  # the statistics travel as weights


@dataclass
class TransferModel:
    """The parts of one classifier; all share the same layer objects.

    Attributes:
        model: uint8 images -> class scores (softmax), what is trained in the
            fine-tuning stage and saved.
        backbone: the backbone (a Keras application without its top).
        head: backbone features -> class scores; trained alone on cached
            features in the frozen stage, and so trains ``model`` too.
        features: uint8 images -> backbone features, for the feature cache.
    """

    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    features: keras.Model


FEATURE_SCALING = "feature_scaling"


def build_head(feature_dim: int, num_classes: int, units: int = 256, dropout: float = 0.3) -> keras.Model:
    """FeatureScaling -> Dropout -> Dense(units, relu) -> Dropout -> Dense(num_classes, softmax).

    ``units=0`` leaves the hidden layer out. The first layer centres and
    scales the features with statistics of the training images' features
    (:func:`adapt_head`): backbones give features of very different scales
    (tiny ones when randomly initialised), and the learning rate then means
    the same for all of them.
    """
    inputs = keras.Input((feature_dim,), name="features")
    x = FeatureScaling(name=FEATURE_SCALING)(inputs)
    if units:
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout_1")(x)
        x = keras.layers.Dense(units, activation="relu", name="head_dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name="head")


def adapt_head(head: keras.Model, train_features) -> None:
    """Set the head's feature scaling from the training images' backbone features."""
    head.get_layer(FEATURE_SCALING).set_statistics(train_features)


def export_model(model: keras.Model) -> keras.Model:
    """An uncompiled model sharing ``model``'s layers: what is saved (no optimizer state)."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def build_transfer_model(spec: BackboneSpec, image_shape: tuple, num_classes: int,
                         image_size: tuple | None = None, weights: str | None = None,
                         head_units: int = 256, dropout: float = 0.3, input_dtype: str = "uint8",
                         value_range=None, normalization: dict | None = None,
                         from_scratch: bool = False) -> TransferModel:
    """Build the classifier for inputs of ``image_shape`` (height, width, channels).

    ``image_size`` (height, width) is what the backbone sees (the inputs are
    resized inside the model); ``None`` keeps their own size. ``weights`` is
    the backbone builder's ``weights`` argument (``None``, ``"imagenet"`` or a
    file path). ``input_dtype`` is ``"uint8"`` (images) or ``"float32"``
    (arrays); ``value_range`` (one ``[low, high]`` per channel) maps float
    arrays onto 0..255 for pretrained backbones (see the module docstring).
    Networks trained from scratch get no extra head (``head_units`` and
    ``dropout`` do not apply to them).

    ``normalization`` (``{"mean": [...], "variance": [...]}``, one value per
    input channel, measured on the training events) standardises the inputs
    inside the model for networks trained from scratch, so that they train
    alike on raw MeV, sign-log or standardised arrays and on uint8 pixels, and
    ``model.keras`` still takes the raw inputs. ``from_scratch=True`` (a
    pretrained backbone without pretrained weights) builds it like a network
    trained from scratch: it follows the training flag, so its BatchNorm
    layers learn, instead of running in inference mode.

    Raises:
        TransferError: a size below the backbone's minimum, a channel count
            it cannot take, or a weights file that does not fit the backbone.
    """
    height, width, channels = (int(s) for s in image_shape)
    image_size = tuple(image_size) if image_size else (height, width)
    check_image_size(spec, image_size)
    check_channels(spec, channels)
    if not spec.pretrained:
        head_units, dropout = 0, 0.0
    backbone_channels = spec.channels or channels
    try:
        backbone = spec.builder((*image_size, backbone_channels), weights)
    except Exception as exc:
        if weights not in (None, "imagenet"):
            raise TransferError(f"--weights {weights}: does not fit backbone {spec.name!r} "
                                f"({type(exc).__name__}: {exc})") from exc
        if weights == "imagenet":
            raise TransferError(f"loading the ImageNet weights of {spec.name!r} failed "
                                f"({type(exc).__name__}: {exc})") from exc
        raise
    floats = input_dtype != "uint8"
    normalized = normalization is not None and not spec.pretrained
    inputs = keras.Input((height, width, channels), dtype=input_dtype, name="image")
    x = BackbonePreprocessing(spec.preprocess, image_size, rgb=backbone_channels == 3 and channels in (1, 2),
                              pixels=not ((floats or normalized) and not spec.pretrained),
                              value_range=value_range if floats and spec.pretrained else None,
                              name="preprocess")(inputs)
    if normalized:
        x = InputStandardization(normalization["mean"], normalization["variance"], name="input_normalization")(x)
    # Pretrained weights (ImageNet, or a file or run of our own, also for compact networks) always run in
    # inference mode; a network trained from scratch follows the training flag, so its BatchNorm layers learn.
    keep_statistics = not from_scratch and (spec.pretrained or weights is not None)
    features = InferenceMode(backbone, name="backbone")(x) if keep_statistics else backbone(x)
    head = build_head(int(features.shape[-1]), num_classes, head_units, dropout)
    outputs = head(features)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_classifier")
    feature_model = keras.Model(inputs, features, name=f"{spec.name}_features")
    return TransferModel(model=model, backbone=backbone, head=head, features=feature_model)


def is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def weighted_layers(backbone: keras.Model, freeze_batch_norm: bool = True) -> list:
    """Layers of ``backbone`` with trainable parameters, bottom to top (BatchNorm excluded by default).

    These are what ``--unfreeze N`` counts: the top N of them are opened.
    """
    was_trainable = [layer.trainable for layer in backbone.layers]
    for layer in backbone.layers:  # trainable_weights is empty for a frozen layer
        layer.trainable = True
    found = [layer for layer in backbone.layers
             if layer.trainable_weights and not (freeze_batch_norm and is_batch_norm(layer))]
    for layer, trainable in zip(backbone.layers, was_trainable):
        layer.trainable = trainable
    return found


def layers_to_unfreeze(backbone: keras.Model, mode: str, unfreeze: int = 0,
                       freeze_batch_norm: bool = True) -> list:
    """The layers a fine-tuning ``mode`` (frozen, partial, full) opens; checks ``unfreeze``."""
    if mode == "frozen":
        return []
    candidates = weighted_layers(backbone, freeze_batch_norm)
    if mode == "full":
        return candidates
    if unfreeze > len(candidates):
        raise TransferError(f"--unfreeze {unfreeze}: backbone {backbone.name!r} has only "
                            f"{len(candidates)} layers with weights"
                            + (" (BatchNorm not counted)" if freeze_batch_norm else "")
                            + f"; use --unfreeze {len(candidates)} or --fine-tune full")
    return candidates[-unfreeze:]


def set_trainable(backbone: keras.Model, mode: str, unfreeze: int = 0, freeze_batch_norm: bool = True) -> list[str]:
    """Freeze ``backbone`` except what ``mode`` opens; BatchNorm stays frozen unless told otherwise.

    ``mode``: ``"frozen"`` (nothing), ``"partial"`` (the top ``unfreeze``
    layers with weights, see :func:`weighted_layers`) or ``"full"`` (every
    layer but BatchNorm). ``freeze_batch_norm=False`` (backbones trained from
    scratch) counts and opens BatchNorm layers like the others. Returns the
    names of the opened layers. Recompile the model afterwards.
    """
    opened = layers_to_unfreeze(backbone, mode, unfreeze, freeze_batch_norm)
    opened_ids = {id(layer) for layer in opened}
    backbone.trainable = bool(opened)
    # Layer by layer as well: Keras' TensorFlow backend skips assigning an
    # attribute the value it already has (its `self.x = self.x` short cut), so
    # the model-level assignment does not always reach the layers.
    for layer in backbone.layers:
        layer.trainable = id(layer) in opened_ids
    return [layer.name for layer in opened]
