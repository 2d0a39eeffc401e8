"""Where a run computes: devices, float policy (``--mixed-precision``), distribution (``--distribute``) and XLA
(``--xla``); the one module that asks the backend about its hardware."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from transfer.config import TrainConfig

log = logging.getLogger(__name__)



def mixed_precision_policy(mode: str) -> str:
    """``"mixed_float16"`` or ``"float32"`` for ``--mixed-precision auto|on|off`` (auto: on with a GPU)."""
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if mode == "on" and not has_gpu:
        log.warning("--mixed-precision on without a GPU: float16 is slow on CPUs")
    return "mixed_float16" if mode == "on" or (mode == "auto" and has_gpu) else "float32"


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``--distribute none|mirrored|multiworker``.

    ``multiworker`` reads the cluster from ``TF_CONFIG`` (one local worker
    without it). ``batch_size`` is the global batch, split across replicas.
    """
    import tensorflow as tf

    strategies = {
        "none": tf.distribute.get_strategy,
        "mirrored": tf.distribute.MirroredStrategy,
        "multiworker": tf.distribute.MultiWorkerMirroredStrategy,
    }
    return strategies[name]()


def jit_compile(mode: str):
    return {"auto": "auto", "on": True, "off": False}[mode]


@contextmanager
def keras_session(config: TrainConfig):
    """A fresh Keras session with ``config``'s float policy (``--mixed-precision``), restored afterwards.

    Earlier runs of this process (folds, scans, notebooks) free their memory.
    """
    import keras

    previous_policy = keras.config.dtype_policy().name
    keras.backend.clear_session()
    try:
        keras.config.set_dtype_policy(mixed_precision_policy(config.mixed_precision))
        yield
    finally:
        keras.config.set_dtype_policy(previous_policy)
