"""The model as it is saved and scored: float32 everywhere, on this process's device, whatever it trained under.

A model trained with ``--mixed-precision bf16|fp16`` keeps its 16-bit compute policy in every layer's config,
so a saved ``model.keras`` would compute in 16 bits wherever it is loaded (a CPU, ONNX, TFLite, hls4ml), and a
model trained data-parallel holds its weights spread over devices (and, with JAX, over processes).
:func:`float32_copy` rebuilds the same network from its config with every policy set to float32 (and
TensorFlow-only options such as synchronised BatchNorm off), outside any distribution, and gives it the trained
weights, which are float32 already: what is evaluated, saved and exported.
"""
from __future__ import annotations

from typing import Any

#: Layer options that only one backend accepts, reset so that the copy loads anywhere.
BACKEND_ONLY_OPTIONS = {"synchronized": False}


def _float32_config(config: Any) -> Any:
    """``config`` with every dtype policy float32 (kept where a layer already asks for float32 or an integer)."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            name = config["config"].get("name", "")
            return "float32" if name.startswith("mixed_") else config
        out = {}
        for key, value in config.items():
            if key in BACKEND_ONLY_OPTIONS and isinstance(value, bool):
                out[key] = BACKEND_ONLY_OPTIONS[key]
            elif key == "dtype" and isinstance(value, str) and value.startswith("mixed_"):
                out[key] = "float32"
            else:
                out[key] = _float32_config(value)
        return out
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config


def needs_copy(model) -> bool:
    """Whether ``model`` computes in anything but float32 somewhere, or holds a backend-only option."""
    import keras

    return _float32_config(keras.saving.serialize_keras_object(model)) != keras.saving.serialize_keras_object(model)


def float32_copy(model, weights: list | None = None):
    """A new, uncompiled ``model`` computing in float32, with ``weights`` (default: ``model``'s).

    Build it outside any distribution (:meth:`transfer.training.devices.Distribution.outside`) to get a copy on
    this process's own device.
    """
    import keras

    import transfer.models.layers  # noqa: F401  registers the custom layers the config names

    config = _float32_config(keras.saving.serialize_keras_object(model))
    config.pop("compile_config", None)  # the copy scores and is saved; it never trains
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights() if weights is None else weights)
    return copy
