"""Gradients of a class's log-odds with respect to a model's inputs, under whichever Keras backend runs.

Keras 3 runs one model on TensorFlow, JAX or PyTorch but leaves differentiation to the backend (gradient
visualisation is outside its scope), so this is the one place that knows the backends:
:func:`input_gradients` dispatches on ``keras.backend.backend()`` through :data:`GRADIENTS`. Everything
else of ``python -m transfer explain`` (:mod:`transfer.evaluation.attribution`) calls it and is backend-free.

What is differentiated is :func:`class_log_odds`, ln[p_c / sum of the other p], the discriminant the run
reports (``discriminant.png``), not the probability p_c: a softmax saturates, so the gradient of p_c is
nearly zero for every event the network is sure of, and an average over correctly classified events
would come from the few doubtful ones. The log-odds do not saturate.

A run trained on PNGs takes uint8 images, and Keras casts whatever a model is called with to its input's
dtype, which cuts the gradient. :func:`differentiable` gives such a model a float32 input sharing the
same layers (and weights); the casts inside the model are then from float to float.
"""
from __future__ import annotations

import weakref
from typing import Callable

import numpy as np

from transfer.errors import TransferError

#: Probabilities below this count as this in the log-odds (a softmax far below it has no usable gradient).
TINY = 1e-30


def class_log_odds(scores, classes, num_classes: int):
    """ln[p_c / sum_{j != c} p_j] per event (``keras.ops``, so every backend differentiates it).

    ``scores`` (n, K) softmax outputs, ``classes`` (n,) integer class per event.
    """
    from keras import ops

    chosen = ops.one_hot(ops.convert_to_tensor(classes, "int32"), num_classes, dtype=scores.dtype)
    own = ops.sum(scores * chosen, axis=1)
    others = ops.sum(scores * (1.0 - chosen), axis=1)
    return ops.log(ops.maximum(own, TINY)) - ops.log(ops.maximum(others, TINY))


def differentiable(model):
    """``model`` with a float32 input where it takes integers (uint8 images), sharing its layers."""
    import keras

    source = model.inputs[0]
    if "float" in str(source.dtype):
        return model
    inputs = keras.Input(tuple(source.shape[1:]), dtype="float32", name="image_float")
    if isinstance(model.input, (list, tuple)):  # a loaded model.keras keeps its input in a list
        inputs = [inputs]
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=lambda layer: layer)


def _tensorflow(model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(class_log_odds(model(x, training=False), classes, model.output_shape[-1]))
    return tape.gradient(total, x).numpy()


#: model -> its compiled JAX gradient (compiled once, reused for every batch of the same shape).
_JAX_GRADIENTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _jax(model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    gradient = _JAX_GRADIENTS.get(model)
    if gradient is None:
        def total(inputs, chosen, trainable, frozen):
            scores, _ = model.stateless_call(trainable, frozen, inputs, training=False)
            return jnp.sum(class_log_odds(scores, chosen, model.output_shape[-1]))

        gradient = _JAX_GRADIENTS[model] = jax.jit(jax.grad(total))
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]
    return np.asarray(gradient(jnp.asarray(x, jnp.float32), jnp.asarray(classes), trainable, frozen))


#: Keras backend -> ``gradient(model, x, classes)``: d log-odds of ``classes[i]`` / d ``x[i]`` per event.
GRADIENTS: dict[str, Callable] = {"tensorflow": _tensorflow, "jax": _jax}


def input_gradients(model, x: np.ndarray, classes) -> np.ndarray:
    """d ln[p_c / sum_{j != c} p_j] / d x for every event, c = ``classes[i]``: float32 of ``x``'s shape.

    Events are independent (inference mode: no batch statistics), so one backward pass over the sum gives
    every event's own gradient.

    Raises:
        TransferError: a Keras backend without an entry in :data:`GRADIENTS`.
    """
    import keras

    backend = keras.backend.backend()
    try:
        gradient = GRADIENTS[backend]
    except KeyError:
        raise TransferError(f"explain: input gradients are implemented for the Keras backends "
                            f"{', '.join(GRADIENTS)}, not {backend!r} (KERAS_BACKEND)") from None
    x = np.asarray(x, dtype=np.float32)
    classes = np.broadcast_to(np.asarray(classes, dtype=np.int32), (len(x),))
    return np.asarray(gradient(differentiable(model), x, classes), dtype=np.float32)
