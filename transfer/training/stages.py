"""The stages of one training run: the head on a frozen backbone and fine-tuning (two-stage transfer), or
one stage from scratch; each fits with its optimizer, learning-rate rule and callbacks, and records its epochs,
its best validation loss and its time.

Stage 1 ("head"): the backbone is frozen and runs in inference mode; unless images are augmented on the fly its
outputs are computed once (the feature cache, :mod:`transfer.training.features`) and the head trains on them
alone. Stage 2 ("fine-tune", unless ``fine_tune="frozen"``): the chosen backbone layers are opened (BatchNorm
stays frozen, in inference mode) and the whole model trains at ``lr * fine_tune_lr_factor`` with a fresh
optimizer. Networks trained from scratch have one stage ("from-scratch"): every layer at ``lr`` for ``epochs``.
Every stage stops early on a validation-loss plateau (``patience``); the weights with the lowest validation loss
over all stages are kept.
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Callable

import numpy as np

from transfer.config import TrainConfig
from transfer.data import DataView
from transfer.data.event_weights import loss_weights
from transfer.errors import OptionError
from transfer.models.backbones import BackboneSpec
from transfer.optimizers import LR_SCHEDULES, resolve_lr_schedule
from transfer.training.callbacks import keras_callbacks, stage_callbacks
from transfer.training.devices import jit_compile
from transfer.training.features import extract_features, feature_dataset
from transfer.training.scoring import Scorer

log = logging.getLogger(__name__)


LOSS = "sparse_categorical_crossentropy"
#: A last training batch of fewer events than this fraction of --batch-size is left out of each epoch (the shuffle
#: changes which events every epoch), so that BatchNorm never averages in the statistics of a handful of events.
SMALL_LAST_BATCH = 0.5


def drops_small_last_batch(n_train: int, batch_size: int) -> bool:
    """Whether an epoch of ``n_train`` events leaves out its last batch: fewer than :data:`SMALL_LAST_BATCH` of
    ``batch_size`` events (and at least one whole batch)."""
    remainder = n_train % batch_size
    return n_train >= batch_size and 0 < remainder < batch_size * SMALL_LAST_BATCH


def _warn_if_constant(features: np.ndarray, backbone: str, weights_used: str) -> None:
    """Warn when the backbone's outputs hardly differ between images: the head cannot learn then.

    The head rescales features whatever their size, so what matters is their
    spread relative to their magnitude (float rounding), not their absolute size.
    """
    features = np.asarray(features, dtype=np.float64)
    spread = float(np.sqrt(features.var(axis=0).mean())) if len(features) > 1 else 1.0
    magnitude = float(np.sqrt(np.mean(features ** 2)))
    if spread <= 1e-4 * magnitude or spread == 0.0:
        log.warning("the %s features hardly vary between images (spread %.2g, magnitude %.2g): the head "
                    "cannot learn from them%s", backbone, spread, magnitude,
                    " (a randomly initialised backbone whose BatchNorm layers keep their initial "
                    "statistics; use ImageNet weights, or vgg16/vgg19 when training from random "
                    "initialisation)" if weights_used == "none" else "")


def start_head_stage(parts, train_features: Callable[[], np.ndarray], distribution=None) -> np.ndarray:
    """Freeze the backbone and scale the head's inputs with its features on the training events (which
    ``train_features()`` computes, after freezing); returns those features. Training and ``lr-find`` both start
    the head stage here."""
    from transfer.models.classifier import adapt_head
    from transfer.models.freezing import set_trainable

    set_trainable(parts.backbone, "frozen")
    features = train_features()
    with distribution.scope() if distribution is not None else nullcontext():
        adapt_head(parts.head, features)
    return features


class Stages:
    """The training stages of one run, and what they leave: epoch records, best val_loss, timing.

    ``view`` gives the batches: the training split shuffled every epoch (with the on-the-fly symmetries in the
    stages named in ``augment``, see :func:`transfer.training.inputs.augmented_stages`), split between the
    processes of a data-parallel job, and the validation split whole.
    """

    def __init__(self, config: TrainConfig, spec: BackboneSpec, parts, distribution, view: DataView,
                 augment: tuple[str, ...], timing: dict, class_weight: dict | None = None,
                 context: dict | None = None):
        self.config, self.spec, self.parts, self.distribution = config, spec, parts, distribution
        self.view, self.timing, self.class_weight = view, timing, class_weight
        self.n_train = len(view.labels("train"))
        # --event-weight: per-event loss weights |w| x class weight (mean 1), which replace Keras' class_weight;
        # the validation loss the stages monitor weighs its events by |w| (transfer.data.event_weights)
        events, val_events = view.weights("train"), view.weights("validation")
        self.train_weights = None if events is None else loss_weights(events, view.labels("train"), class_weight)
        self.fit_class_weight = class_weight if self.train_weights is None else None
        self.val_weights = None if val_events is None else np.abs(val_events)
        self.augment = tuple(augment)
        self._train_sets = {}   # augmented? -> the training batches
        self.val_images = view.dataset("validation", config.batch_size)
        self.KeepBest, self.EpochRecorder, self.Validation = keras_callbacks()
        self.val_labels, self.context = view.labels("validation"), dict(context or {})
        self.monitor_events: list[dict] = []
        self.rows: list[dict] = []
        self.keeper = None
        self.schedules: dict[str, str] = {}   # stage -> --lr-schedule used
        # what a schedule counts in (the same for either kind of batches); built now, so that a batch size too
        # large or augmentation the data cannot have stops the run before training
        self.steps_per_epoch = len(self._train_set(augmented=bool(self.augment)))
        self.best: dict = {}
        #: ``feature_key(split)`` for features shared across runs (transfer.training.features), or None.
        self.feature_key = None

    @property
    def uses_feature_cache(self) -> bool:
        """The head stage trains on the frozen backbone's outputs computed once (``--feature-cache``), unless
        its events are augmented on the fly."""
        return self.config.feature_cache and "head" not in self.augment

    def train_batches(self, stage: str):
        """The shuffled training batches of ``stage``: augmented on the fly if it is one of ``self.augment``."""
        return self._train_set(augmented=stage in self.augment)

    def _train_set(self, augmented: bool):
        """The shuffled training batches, with or without augmentation, each kind made once."""
        if augmented in self._train_sets:
            return self._train_sets[augmented]
        dist = self.distribution
        batch = self.config.batch_size
        # a last batch of a few events gives BatchNorm's moving statistics (momentum 0.9) a tenth of a
        # two-event estimate just before every validation: 1,602 training events in batches of 32 left 2, and
        # the validation loss jumped at random epochs (0.28 -> 3.7 at the last one, accuracy 0.90 -> 0.51)
        small_last = drops_small_last_batch(self.n_train, batch)
        batches = self.view.dataset("train", batch, shuffle=True, seed=self.config.seed, augment=augmented,
                                    shard=dist.shard, drop_remainder=dist.drop_remainder or small_last,
                                    sample_weight=self.train_weights)
        if not len(batches):
            raise OptionError(f"--batch-size {self.config.batch_size}: larger than the {self.n_train} training "
                              f"events, and data-parallel training ({dist.describe()}) uses whole batches only")
        self._train_sets[augmented] = batches
        return batches

    def _features(self, split: str, dataset):
        """The frozen backbone's outputs on ``split``, shared through the active feature store if any."""
        from transfer.training.features import active_store, shared_features

        shared = self.feature_key is not None and active_store() is not None  # the key costs a pass over the files
        return shared_features(self.feature_key(split) if shared else None,
                               lambda: extract_features(Scorer(self.parts.features, self.distribution), dataset))

    def _fit(self, target, learning_rate: float, stage: str, train_data, val_data, epochs: int, keeper):
        import keras

        from transfer.optimizers import make_optimizer

        recorder = self.EpochRecorder(stage)
        name = resolve_lr_schedule(self.config.lr_schedule, stage == "from-scratch")
        self.schedules[stage] = name
        schedule = LR_SCHEDULES[name]
        validation = self.Validation(Scorer(target, self.distribution), val_data, self.val_labels,
                                     self.context["num_classes"], self.context, stage, self.val_weights)
        callbacks = [validation, *stage_callbacks(self.config, keeper, recorder, schedule),
                     keras.callbacks.TerminateOnNaN()]
        self.distribution.synchronise_batch_norm(target)
        with self.distribution.scope():
            rate = schedule.rate(learning_rate, epochs, self.steps_per_epoch)
            target.compile(optimizer=make_optimizer(self.config.optimizer, rate), loss=LOSS,
                           metrics=["accuracy"], jit_compile=jit_compile(self.config.xla))
        target.fit(train_data, epochs=epochs, verbose=self.config.verbose, shuffle=False, callbacks=callbacks,
                   class_weight=self.fit_class_weight)
        self.monitor_events += validation.events
        self.rows += recorder.rows
        self.keeper = keeper
        return len(recorder.rows)

    def adapt_head(self, view: DataView) -> None:
        """Set the head's feature scaling from the (randomly initialised) backbone's training features.

        Measured in training mode, the mode the network is then trained in: a random backbone with
        BatchNorm layers (MobileNetV2, ResNet50...) gives features orders of magnitude smaller with its
        initial moving statistics than with batch statistics, and a scale fitted to those would multiply
        the features of the first training step into logits of 1e10.
        """
        from transfer.models.classifier import adapt_head

        features_model = Scorer(self.parts.features, self.distribution).current()
        with self.distribution.outside():
            features = np.concatenate([np.asarray(features_model(x, training=True), dtype=np.float32)
                                       for x, _ in view.dataset("train", self.config.batch_size)])
        with self.distribution.scope():
            adapt_head(self.parts.head, features)

    def train_from_scratch(self) -> None:
        """The one stage of a network trained from scratch: every layer, at ``lr``, for ``epochs``.

        BatchNorm moving averages get the compact networks' momentum (0.9): Keras' MobileNetV2 uses
        0.999, whose averages still hold half their initial values after 700 steps, so a few thousand
        events trained from scratch were evaluated with wrong statistics (validation at chance while
        the training accuracy rose).
        """
        from transfer.models.compact import BN_MOMENTUM
        from transfer.models.freezing import is_batch_norm

        config = self.config
        started = time.perf_counter()
        self.parts.backbone.trainable = True
        for layer in self.parts.backbone.layers:  # BatchNorm included: nothing pretrained to keep
            layer.trainable = True
            if is_batch_norm(layer) and layer.momentum > BN_MOMENTUM:
                layer.momentum = BN_MOMENTUM
        epochs = self._fit(self.parts.model, config.lr, "from-scratch", self.train_batches("from-scratch"),
                           self.val_images, config.epochs, self.KeepBest())
        self.timing["from_scratch_stage_s"] = time.perf_counter() - started
        self.timing["from_scratch_events_per_s"] = self.n_train * epochs / self.timing["from_scratch_stage_s"]
        self.best = {"stage": "from-scratch", "epoch": (self.keeper.where or 0) + 1, "val_loss": self.keeper.best}

    def train_head(self, view: DataView, weights_used: str) -> None:
        """Stage 1: the head on the frozen backbone, on cached features unless augmenting on the fly."""
        config, parts, dist = self.config, self.parts, self.distribution
        started = time.perf_counter()
        y_train, y_val = view.labels("train"), view.labels("validation")
        unshuffled = view.dataset("train", config.batch_size)
        train_features = start_head_stage(parts, lambda: self._features("train", unshuffled), dist)
        _warn_if_constant(train_features, self.spec.name, weights_used)
        self.context["random_frozen_backbone"] = weights_used == "none"
        if self.uses_feature_cache:
            val_features = self._features("validation", self.val_images)
            self.timing["feature_extraction_s"] = time.perf_counter() - started
            target = parts.head
            train_data = feature_dataset(train_features, y_train, config.batch_size, True, config.seed,
                                         shard=dist.shard, drop_remainder=dist.drop_remainder,
                                         sample_weight=self.train_weights)
            val_data = feature_dataset(val_features, y_val, config.batch_size, False, config.seed)
        else:
            target, train_data, val_data = parts.model, self.train_batches("head"), self.val_images
        epochs = self._fit(target, config.lr, "head", train_data, val_data, config.epochs, self.KeepBest())
        self.timing["head_stage_s"] = time.perf_counter() - started
        self.timing["head_stage_images_per_s"] = len(y_train) * epochs / self.timing["head_stage_s"]
        self.best = {"stage": "head", "epoch": (self.keeper.where or 0) + 1, "val_loss": self.keeper.best}

    def fine_tune(self) -> list[str]:
        """Stage 2 (unless frozen): open the chosen layers, train everything at the lower rate.

        Starts from the best head-stage weights; if no fine-tuning epoch beats
        their validation loss, they are what the run keeps.
        """
        from transfer.models.freezing import is_batch_norm, set_trainable

        config, parts = self.config, self.parts
        if config.fine_tune == "frozen" or not config.fine_tune_epochs:
            return []
        started = time.perf_counter()
        keeper = self.KeepBest(best=self.keeper.best, weights=parts.model.get_weights())
        opened = set_trainable(parts.backbone, config.fine_tune, config.unfreeze)  # pretrained: BatchNorm stays
        rate = config.lr * config.fine_tune_lr_factor
        shown = ", ".join(opened) if len(opened) <= 4 else f"{opened[0]}, ..., {opened[-1]}"
        frozen_bn = any(is_batch_norm(layer) for layer in parts.backbone.layers)
        log.info("fine-tuning %d backbone layer(s) (%s) at learning rate %g%s%s", len(opened), shown, rate,
                 ", BatchNorm layers frozen in inference mode" if frozen_bn else "",
                 ", training events augmented on the fly" if "fine-tune" in self.augment else "")
        self._fit(parts.model, rate, "fine-tune", self.train_batches("fine-tune"), self.val_images,
                  config.fine_tune_epochs, keeper)
        self.timing["fine_tune_stage_s"] = time.perf_counter() - started
        if keeper.where is not None:
            self.best = {"stage": "fine-tune", "epoch": keeper.where + 1, "val_loss": keeper.best}
        return opened
