"""Where a training stops for Ctrl-C or SIGTERM: between two batches.

A signal that arrives while TensorFlow (or JAX) runs a step is only recorded (:mod:`imgen.cli_guard`: an
exception raised inside their C++ callbacks ends in a ``SystemError``); the callback here raises it after the
step, so an interrupted training ends with the command's one line, whatever the size of the network.
"""
from __future__ import annotations


def interrupt_callback():
    """A Keras callback that raises a pending Ctrl-C or SIGTERM at the end of every batch."""
    import keras

    from imgen.cli_guard import raise_if_interrupted

    class StopBetweenBatches(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise_if_interrupted()

        def on_test_batch_end(self, batch, logs=None):
            raise_if_interrupted()

        def on_predict_batch_end(self, batch, logs=None):
            raise_if_interrupted()

    return StopBetweenBatches()
