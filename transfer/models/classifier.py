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
own layers end in a dense softmax, as :mod:`transfer.models.compact` defines them.

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

import warnings
from dataclasses import dataclass

import keras

from transfer.errors import TransferError
from transfer.models.backbones import BackboneSpec, check_channels, check_image_size
from transfer.models.layers import BackbonePreprocessing, FeatureScaling, InferenceMode, InputStandardization


def build_backbone(spec: BackboneSpec, input_shape: tuple, weights):
    """``spec``'s backbone for ``input_shape`` with ``weights`` (None, "imagenet" or a file).

    A file that does not fit is one TransferError. Keras' warnings from that failed loading are dropped with it:
    it warns once per layer it cannot find ("Skipping nested container ... saved with a Keras version that did
    not serialize sublayers"), which points at the wrong cause, before raising the error that says what is
    wrong. When the backbone builds, its warnings are shown as usual.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backbone = spec.builder(input_shape, weights)
    except Exception as exc:
        if weights not in (None, "imagenet"):
            raise TransferError(f"--weights {weights}: does not fit backbone {spec.name!r} "
                                f"({type(exc).__name__}: {exc})") from exc
        if weights == "imagenet":
            raise TransferError(f"loading the ImageNet weights of {spec.name!r} failed "
                                f"({type(exc).__name__}: {exc})") from exc
        raise
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return backbone


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
    backbone = build_backbone(spec, (*image_size, backbone_channels), weights)
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


