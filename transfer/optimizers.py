"""The optimizer registry (``--optimizer`` name -> Keras optimizer factory) and
the learning-rate schedules (``--lr-schedule`` name -> how a stage's rate moves).

Each factory takes the learning rate (a number or a Keras schedule) and
returns a fresh optimizer; the fine-tuning stage gets its own instance at a
lower rate. Keras is imported only when a factory is called.
"""
from __future__ import annotations

from dataclasses import dataclass
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


def make_optimizer(name: str, learning_rate):
    """A new Keras optimizer ``name`` at ``learning_rate`` (a number or a Keras schedule)."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise TransferError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}") from None
    return factory(learning_rate)


# --------------------------------------------------------------------------
# Learning-rate schedules: ``--lr-schedule`` name -> how a stage's rate moves
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class LRSchedule:
    """How the learning rate of one stage moves over its epochs.

    ``rate(peak, epochs, steps_per_epoch)`` gives what the optimizer takes as
    ``learning_rate`` (a number or a Keras schedule); ``halves_on_plateau``
    says whether the rate is halved after half the patience without a lower
    validation loss (Keras' ReduceLROnPlateau, which can only set a number).
    """

    rate: Callable[[float, int, int], Any]
    halves_on_plateau: bool


def _constant(peak: float, epochs: int, steps_per_epoch: int) -> float:
    return peak


def _cosine(peak: float, epochs: int, steps_per_epoch: int):
    """A linear warm-up from peak/10 over the first epoch (at most a tenth of the stage), then a cosine to 0."""
    import keras

    total = max(1, epochs * steps_per_epoch)
    warmup = min(steps_per_epoch, total // 10)
    return keras.optimizers.schedules.CosineDecay(peak / 10 if warmup else peak, decay_steps=max(1, total - warmup),
                                                  warmup_target=peak if warmup else None, warmup_steps=warmup)


#: name -> schedule. ``auto`` (the default of ``--lr-schedule``) is resolved by :func:`resolve_lr_schedule`.
LR_SCHEDULES: dict[str, LRSchedule] = {
    "plateau": LRSchedule(_constant, halves_on_plateau=True),
    "cosine": LRSchedule(_cosine, halves_on_plateau=False),
}
LR_SCHEDULE_CHOICES = ("auto", *LR_SCHEDULES)


def resolve_lr_schedule(mode: str, from_scratch: bool) -> str:
    """``auto``: cosine for a network trained from scratch, plateau for the stages of a pretrained one.

    Why: trained from scratch on a few thousand augmented images, a network's validation loss is noisy
    enough that a plateau rule halves the rate and stops on noise while the network is still learning
    (on the bundled toy sample it stopped at epoch 22 of 40; see :data:`transfer.config.RECIPE_DEFAULTS`).
    A pretrained head converges in a few epochs, where waiting for a plateau is cheaper than a fixed budget.
    """
    if mode == "auto":
        return "cosine" if from_scratch else "plateau"
    if mode not in LR_SCHEDULES:
        raise TransferError(f"unknown learning-rate schedule {mode!r}; choose one of: {', '.join(LR_SCHEDULE_CHOICES)}")
    return mode
