"""The custom Keras layers inside every saved ``model.keras``: input preprocessing, input standardisation,
the head's feature scaling, and a wrapper that keeps a pretrained backbone in inference mode.

Registered with Keras under the package name ``hepvision``, so a model loads once this module is imported
(:func:`transfer.run_folder.load_model` does that).
"""
from __future__ import annotations

import keras
from keras import ops


def _applications_module(name: str):
    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        raise ValueError(f"keras.applications.{name} has no preprocess_input")
    return module


def to_rgb(x):
    """(..., C) with C in 1, 2, 3 -> (..., 3): see :data:`transfer.models.backbones.RGB_MAPPINGS`."""
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
    Always computes in float32: under mixed precision a 16-bit ``scale`` of a
    backbone whose features hardly vary (1 / spread above 65504) would be inf.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

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
        return (ops.cast(features, "float32") - self.mean) * self.scale

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


def find_preprocessing_layer(model):
    """The model's :class:`BackbonePreprocessing` layer, or None (compact networks trained from scratch)."""
    return next((layer for layer in model.layers if isinstance(layer, BackbonePreprocessing)), None)


def all_layers(layer):
    """``layer`` and every layer inside it: nested models and wrapped layers included."""
    yield layer
    for inner in getattr(layer, "layers", None) or []:
        yield from all_layers(inner)
    wrapped = getattr(layer, "layer", None)
    if wrapped is not None:
        yield from all_layers(wrapped)
