"""The optimizer registry: ``--optimizer`` name -> Keras optimizer factory.

Each factory takes the learning rate and returns a fresh optimizer; the
fine-tuning stage gets its own instance at a lower rate. Keras is imported
only when a factory is called.
"""
from __future__ import annotations

from typing import Any, Callable

from transfer.errors import TransferError


def _keras_optimizer(class_name: str, **options) -> Callable[[float], Any]:
    def make(learning_rate: float):
        import keras

        return getattr(keras.optimizers, class_name)(learning_rate=learning_rate, **options)

    make.__name__ = f"keras.optimizers.{class_name}"
    return make


#: name -> factory(learning_rate) -> keras optimizer.
OPTIMIZERS: dict[str, Callable[[float], Any]] = {
    "adam": _keras_optimizer("Adam"),
    "rmsprop": _keras_optimizer("RMSprop"),
    "sgd": _keras_optimizer("SGD", momentum=0.9, nesterov=True),
    "adamw": _keras_optimizer("AdamW"),
    "nadam": _keras_optimizer("Nadam"),
}


def make_optimizer(name: str, learning_rate: float):
    """A new Keras optimizer ``name`` at ``learning_rate``."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise TransferError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}") from None
    return factory(learning_rate)
