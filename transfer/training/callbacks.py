"""The Keras callbacks of a training stage: validation (with the collapse checks of
:mod:`transfer.evaluation.health`), early stopping, the learning-rate rule, the best weights kept and the epoch
records of ``history.csv``.

The callback classes subclass ``keras.callbacks.Callback``, so they are defined on first use
(:func:`keras_callbacks`): importing this module does not import Keras.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np

from transfer.config import TrainConfig
from transfer.evaluation.health import (CHANCE_EPOCHS, CHANCE_TOLERANCE, MIN_EVENTS_FOR_CHANCE, chance_loss,
                                        likely_causes, symptoms)
from transfer.evaluation.metrics import cross_entropy
from transfer.optimizers import LRSchedule

log = logging.getLogger(__name__)


def stage_callbacks(config: TrainConfig, keeper, recorder, schedule: LRSchedule):
    """The callbacks of one stage: ``keeper`` and ``recorder``, then early stopping and the plateau rule."""
    import keras

    from transfer.training.safe_points import interrupt_callback

    callbacks = [keeper, recorder, interrupt_callback()]   # Ctrl-C and SIGTERM stop between batches
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience))
        if schedule.halves_on_plateau:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=max(1, config.patience // 2), min_lr=1e-7))
    return callbacks


def keras_callbacks():
    """``(KeepBest, EpochRecorder, Validation)``, defined on first use."""
    import keras

    class KeepBest(keras.callbacks.Callback):
        """Keep the weights with the lowest val_loss, starting from a given best; restore them at the end."""

        def __init__(self, best: float = np.inf, weights=None, where=None):
            super().__init__()
            self.best, self.best_weights, self.where = best, weights, where

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            if loss is not None and loss < self.best:
                self.best, self.best_weights, self.where = float(loss), self.model.get_weights(), epoch

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class EpochRecorder(keras.callbacks.Callback):
        """Per-epoch logs plus learning rate and seconds, for history.csv."""

        def __init__(self, stage: str):
            super().__init__()
            self.stage, self.rows = stage, []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"stage": self.stage, "stage_epoch": epoch + 1}
            row.update({k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"})
            row["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
            row["seconds"] = time.perf_counter() - self._start
            self.rows.append(row)

    class Validation(keras.callbacks.Callback):
        """Scores the validation events at the end of every epoch and puts ``val_loss`` and ``val_accuracy``
        into the epoch's logs for the callbacks after it (early stopping, the plateau rule, the best weights,
        history.csv); warns once, with the likely causes, at the epoch the predictions collapse.

        ``score`` is the stage's :class:`~transfer.training.scoring.Scorer`: the model itself, or its float32
        copy on this device when the model trains data-parallel, so every validation event counts whatever
        the batch size and the number of devices. Must come first among the callbacks.
        """

        def __init__(self, score, val_data, val_labels, num_classes: int, context: dict, stage: str,
                     val_weights=None):
            super().__init__()
            self.score, self.val_data, self.val_labels = score, val_data, np.asarray(val_labels)
            #: --event-weight: |w| of the validation events, which val_loss and val_accuracy weigh them by
            self.val_weights = val_weights
            self.num_classes, self.context, self.stage = num_classes, context, stage
            self.chance = chance_loss(val_labels, num_classes, val_weights)
            self.at_chance = 0
            self.events: list[dict] = []
            self.left: int | None = None

        def on_epoch_end(self, epoch, logs=None):
            scores = np.asarray(self.score(self.val_data), dtype=np.float64)
            loss = cross_entropy(scores, self.val_labels, sample_weight=self.val_weights)
            if logs is not None:
                logs["val_loss"] = loss
                logs["val_accuracy"] = float(np.average(scores.argmax(axis=1) == self.val_labels,
                                                        weights=self.val_weights))
            if math.isfinite(loss) and loss >= self.chance * (1 - CHANCE_TOLERANCE):
                self.at_chance += 1
            else:
                self.at_chance = 0
            found = [s for s in symptoms(scores, self.val_labels, self.num_classes) if "loss" not in s]
            if not math.isfinite(loss):
                found.append("the validation loss is not finite: training diverged")
            if self.at_chance >= CHANCE_EPOCHS and len(self.val_labels) >= MIN_EVENTS_FOR_CHANCE:
                found.append(f"the validation loss has stayed at the chance value {self.chance:.3f} for "
                             f"{self.at_chance} epochs")
            if found and not self.events:
                log.warning("COLLAPSE at %s epoch %d: %s. Likely causes: %s", self.stage, epoch + 1,
                            "; ".join(found), "; ".join(likely_causes(self.context)))
            if found:
                self.events.append({"stage": self.stage, "epoch": epoch + 1, "symptoms": found})
                self.left = None
            elif self.events and self.left is None:
                self.left = epoch + 1
                log.warning("the collapse of %s epoch %d is left at epoch %d: the validation predictions vary "
                            "again (a transient collapse, unless it comes back)", self.stage,
                            self.events[-1]["epoch"], epoch + 1)

    return KeepBest, EpochRecorder, Validation
