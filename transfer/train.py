"""Two-stage transfer training: the head on a frozen backbone, then fine-tuning.

Stage 1 ("head"): the backbone is frozen and runs in inference mode. Its
outputs do not change between epochs, so unless images are augmented on the
fly they are computed once per image (the *feature cache*) and the head is
trained on them alone; the head's layers are the full model's, so the full
model is trained too.

Stage 2 ("fine-tune", unless ``fine_tune="frozen"``): the chosen backbone
layers are opened (BatchNorm stays frozen and in inference mode) and the whole
model is trained at ``lr * fine_tune_lr_factor`` with a fresh optimizer.
Backbones registered with ``pretrained=False`` (trained from scratch) are the
exception: they follow the training flag and their BatchNorm layers learn.

Compact networks trained from scratch (``cnn``, ``resnet15``, ``smallcnn``,
``mlp``; ``pretrained=False``) have nothing to keep frozen: they are trained
in one stage ("from-scratch"), every layer at ``lr`` for ``epochs``, with no
extra head (the fine-tuning options do not apply).

Every stage stops early on a validation-loss plateau (``patience``) and the
weights with the lowest validation loss over all stages are the ones kept and
saved. The learning rate follows ``lr_schedule`` (:data:`transfer.optimizers.LR_SCHEDULES`):
by default halved on a shorter plateau in the stages of a pretrained backbone,
and decayed to 0 on a cosine over ``epochs`` when training from scratch.
``class_weight="balanced"`` weights each training event by
n_events / (n_classes * n_events_of_its_class) (scikit-learn's
``compute_class_weight``) in every stage.

Data come from :func:`transfer.sources.open_data`: image folders or HDF5
arrays, behind one interface. A run is first planned (:mod:`transfer.plan`:
a frozen :class:`~transfer.plan.RunPlan`, every check done), then executed by
:func:`run_plan`, the one runner; the run folder's files are written through
:mod:`transfer.run_folder`. Cross-validation (``folds``) and the
training-set-size scan (``train_fraction``) are several plans run into one
folder plus a summary (:func:`run_plans`): see :mod:`transfer.crossval` and
:mod:`transfer.scan`, or :func:`transfer.experiments.run_experiment`, which
picks the right one.

Example (a notebook)::

    from transfer.config import TrainConfig
    from transfer.train import run_training
    result = run_training(TrainConfig(data="images/", backbone="vgg19", optimizer="rmsprop",
                                      out="runs/vgg19-rmsprop"))
    result.metrics["test"]["accuracy"]
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from imgen._version import __version__
from transfer import run_folder
from transfer.backbones import BackboneSpec, get_backbone
from transfer.config import TrainConfig
from transfer.errors import OptionError
from transfer.files import staged_folder
from transfer.feature_store import feature_key
from transfer.health import input_warnings
from transfer.optimizers import LR_SCHEDULES, LRSchedule, resolve_lr_schedule
# check_view and trains_from_scratch are also names of this module (callers from before the plans)
from transfer.plan import (ExperimentPlan, RunPlan, check_view, output_folder, plan_run,  # noqa: F401
                           trains_from_scratch)
from transfer.report import SplitScores, write_run_report
from transfer.sources import DataView, open_data
from transfer.weights import ResolvedWeights

log = logging.getLogger(__name__)

LOSS = "sparse_categorical_crossentropy"


@dataclass
class RunResult:
    """What :func:`run_training` returns; everything is also in ``out_dir``.

    Attributes:
        out_dir: the run folder.
        metrics: the content of ``metrics.json``.
        history: one row per epoch of both stages (``history.csv``).
        class_names: class names in label order.
        weights: how the backbone was initialised.
        opened_layers: backbone layers trained in the fine-tuning stage.
    """

    out_dir: Path
    metrics: dict
    history: "object"  # pandas.DataFrame
    class_names: list[str]
    weights: ResolvedWeights
    opened_layers: list[str] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        return self.out_dir / "model.keras"

    def summary_lines(self) -> list[str]:
        """What the CLI prints after a run."""
        m = self.metrics
        lines = [f"run folder: {self.out_dir}",
                 f"backbone {m['backbone']}, weights used: {m['weights_used']}"
                 + (f" ({m['weights_reason']})" if m.get("weights_reason") else "")
                 + (f", pretrained on {m['weights_pretrained_on']}" if m.get("weights_pretrained_on") else "")]
        from transfer.report import console_lines

        return lines + console_lines(m)


#: ``--class-weight auto`` weights the classes (balanced) when the largest has this many times the smallest's events.
AUTO_CLASS_WEIGHT_RATIO = 1.5


def resolve_class_weight(mode: str, labels, num_classes: int) -> dict[int, float] | None:
    """The class weights for ``--class-weight none|balanced|auto`` (auto: balanced for unequal classes)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    unequal = counts.max() > AUTO_CLASS_WEIGHT_RATIO * max(counts.min(), 1)
    if mode == "balanced" or (mode == "auto" and unequal):
        return balanced_class_weights(labels, num_classes)
    return None


def resolve_augment(requested: bool | None, view: DataView, from_scratch: bool) -> bool:
    """``--augment-on-the-fly``; unset (auto): on for a network trained from scratch on full-azimuth eta-phi
    images that ``imgen`` rendered (phi rotations and eta, phi flips are symmetries of those events, and
    they are what lets a small network trained from scratch generalise from a few thousand images)."""
    if requested is not None:
        return bool(requested)
    return from_scratch and bool(getattr(view, "is_event_image", False))


def _has_batch_norm(model) -> bool:
    from transfer.model import is_batch_norm

    return any(is_batch_norm(layer) for layer in getattr(model, "layers", []))


def balanced_class_weights(labels, num_classes: int) -> dict[int, float]:
    """``{class id: n_events / (num_classes * n_events of the class)}`` (scikit-learn's "balanced")."""
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return {k: float(w) for k, w in enumerate(weights)}


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


def _jit_compile(mode: str):
    return {"auto": "auto", "on": True, "off": False}[mode]


def _callbacks(config: TrainConfig, keeper, recorder, schedule: LRSchedule):
    import keras

    callbacks = [keeper, recorder]
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience))
        if schedule.halves_on_plateau:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=max(1, config.patience // 2), min_lr=1e-7))
    return callbacks


def _keras_callbacks():
    """Callback classes (defined lazily: they subclass keras.callbacks.Callback)."""
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

    return KeepBest, EpochRecorder


def extract_features(feature_model, dataset) -> np.ndarray:
    """Backbone outputs for every image of ``dataset`` (inference mode, one pass)."""
    return np.asarray(feature_model.predict(dataset, verbose=0), dtype=np.float32)


def feature_dataset(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    """``tf.data`` of cached (features, label) batches, shuffled like the image pipeline."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, np.asarray(labels, dtype=np.int64)))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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


def run_training(config: TrainConfig) -> RunResult:
    """Train, evaluate and report one configuration; write its run folder.

    Every input problem (data, options, weights, sizes, channels,
    ``--unfreeze``) raises :class:`~transfer.errors.TransferError` before
    training starts. ``folds`` and ``train_fraction`` run several trainings:
    use :func:`transfer.experiments.run_experiment` for those.
    """
    if config.folds or config.train_fraction:
        raise OptionError("folds and train_fraction run several trainings: call "
                          "transfer.experiments.run_experiment(config) (or transfer.crossval.run_folds, "
                          "transfer.scan.run_train_fraction_scan)")
    out = output_folder(config)
    with open_data(config) as source:
        return run_plan(plan_run(config, source.view(), out))


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


def run_plan(plan: RunPlan, into: Path | None = None) -> RunResult:
    """Train ``plan`` and write its run folder ``plan.out``: the one runner of every training.

    The folder is staged and renamed into place, unless ``into`` is given: an
    already staged folder to write into directly (experiments stage their
    whole output folder, :func:`run_plans`).
    """
    with keras_session(plan.config):
        if into is not None:
            Path(into).mkdir(parents=True, exist_ok=False)
            return _train_in(Path(into), plan)
        with staged_folder(plan.out, plan.config.overwrite) as staging:
            return _train_in(staging, plan)


def run_plans(plan: ExperimentPlan, summarize: Callable) -> tuple[list[RunResult], object]:
    """Run every plan of an experiment into one staged folder, then ``summarize(staging, plan, runs)``.

    The experiment's ``config.yaml`` (which reproduces all of it) is written
    beside the runs and the summary; the folder appears only when all are done.
    Returns the runs' results and what ``summarize`` returned.
    """
    with staged_folder(plan.out, plan.overwrite) as staging:
        runs = [run_plan(run, into=staging / run.name) for run in plan.runs]
        summary = summarize(staging, plan, runs)
        run_folder.write_config(staging, plan.record, run_folder.run_facts(plan.weights))
    return runs, summary


def train_view(config: TrainConfig, spec: BackboneSpec, view: DataView, weights: ResolvedWeights, out: Path,
               into: Path | None = None, record: TrainConfig | None = None, recorded: dict | None = None,
               extra_info: dict | None = None) -> RunResult:
    """Plan and run one model on ``view`` (the former entry point; new code builds a plan with
    :func:`transfer.plan.plan_run` and calls :func:`run_plan`). ``spec`` must be ``config.backbone``'s."""
    if spec.name != get_backbone(config.backbone).name:
        raise OptionError(f"train_view: spec {spec.name!r} is not the configuration's backbone {config.backbone!r}")
    return run_plan(plan_run(config, view, Path(out), weights=weights, record=record, facts=recorded,
                             info=extra_info), into)


def build_parts(plan: RunPlan, strategy=None, normalization: dict | None = None):
    """The :class:`~transfer.model.TransferModel` for the plan's inputs (checks ``--unfreeze``).

    ``normalization`` (per-channel ``mean`` and ``variance`` lists of the
    training inputs) standardises the inputs inside networks trained from scratch.
    """
    from transfer.model import build_transfer_model, layers_to_unfreeze

    config, spec, view = plan.config, plan.spec, plan.view
    if plan.weights.record is not None:  # weights of one of our runs: their channels and style must fit these data
        from transfer.run_weights import check_fits

        check_fits(spec, plan.weights.record, view, plan.image_size, config.weights)
    value_range = view.value_range() if spec.pretrained and view.input_dtype != "uint8" else None
    scope = strategy.scope() if strategy is not None else _nullcontext()
    with scope:
        parts = build_transfer_model(spec, view.input_shape, len(view.class_names), plan.image_size,
                                     plan.weights.keras_arg, config.head_units, config.dropout,
                                     input_dtype=view.input_dtype, value_range=value_range,
                                     normalization=normalization, from_scratch=plan.from_scratch)
    if not plan.from_scratch:
        layers_to_unfreeze(parts.backbone, config.fine_tune, config.unfreeze)  # checks --unfreeze
    return parts


def _normalization(stats: list[dict]) -> dict:
    return {"mean": [s["mean"] for s in stats], "variance": [max(s["variance"], 1e-12) for s in stats]}


def build_run_model(plan: RunPlan, strategy=None):
    """The model a run trains, with the run's recipe; returns ``(parts, input statistics)``.

    Networks trained from scratch get their inputs standardised with the
    training events' statistics (:meth:`DataView.input_statistics`), measured here.
    Training and ``lr-find`` both build through this, so that they test the same network.
    """
    stats = plan.view.input_statistics(plan.config.seed)
    normalization = _normalization(stats) if not plan.spec.pretrained else None
    return build_parts(plan, strategy, normalization), stats


def _nullcontext():
    from contextlib import nullcontext

    return nullcontext()


@dataclass
class _Trained:
    """What training and evaluation leave for the run folder (:func:`_write_run`)."""

    model: object  # keras.Model
    splits: dict  # split -> SplitScores
    history: object  # pandas.DataFrame
    info: dict  # metrics.json entries besides the scores
    baseline: object = None  # transfer.baseline.BaselineResult
    health_inputs: dict = field(default_factory=dict)


def _train_in(staging: Path, plan: RunPlan) -> RunResult:
    """Train, evaluate and write the run of ``plan`` into the (staged) folder ``staging``."""
    import keras

    config, spec, view, weights = plan.config, plan.spec, plan.view, plan.weights
    started = time.perf_counter()
    timing: dict[str, float] = {}
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.distribute)
    from_scratch = plan.from_scratch
    parts, stats = build_run_model(plan, strategy)
    warnings = input_warnings(stats)
    for warning in warnings:
        log.warning("%s", warning)
    normalized = not spec.pretrained
    class_weight = resolve_class_weight(config.class_weight, view.labels("train"), len(view.class_names))
    augment = resolve_augment(config.augment_on_the_fly, view, from_scratch)
    train_data = view.dataset("train", config.batch_size, shuffle=True, seed=config.seed, augment=augment)
    val_data = view.dataset("validation", config.batch_size)
    context = {"num_classes": len(view.class_names), "data_kind": view.kind, "scale": getattr(config, "scale", None), "optimizer": config.optimizer,
               "lr": config.lr, "batch_norm": _has_batch_norm(parts.backbone), "random_frozen_backbone": False}
    stages = _Stages(config, spec, parts, strategy, train_data, val_data, timing, class_weight,
                     view.labels("validation"), context, n_train=len(view.labels("train")))
    if from_scratch:
        if spec.pretrained:
            log.info("%s with random initialisation: training the whole network from the start (a frozen "
                     "random backbone would give the head little to learn from)", spec.name)
            stages.adapt_head(view)
        stages.train_from_scratch(len(view.labels("train")))
        opened = []
    else:
        # grid: frozen-stage features shared across runs on disk (transfer.feature_store; a no-op for one run)
        stages.feature_key = lambda split: feature_key(spec, weights, plan.image_size, view, split)
        stages.train_head(view, weights.used)
        opened = stages.fine_tune()
    history = history_frame(stages.rows)
    baseline = None
    if config.baseline != "none":
        from transfer.baseline import run_baseline

        baseline = run_baseline(view, config.seed, class_weight)

    stage_start = time.perf_counter()
    splits = {}
    for split in ("validation", "test"):
        data = val_data if split == "validation" else view.dataset("test", config.batch_size)
        splits[split] = SplitScores(paths=view.ids(split), y_true=view.labels(split),
                                    scores=np.asarray(parts.model.predict(data, verbose=0), np.float64))
    timing["evaluation_s"] = time.perf_counter() - stage_start
    timing["total_s"] = time.perf_counter() - started
    described = view.describe()
    info = {
        "backbone": spec.name, "weights_used": weights.used, "weights_reason": weights.reason,
        "weights_file": weights.file, "weights_pretrained_on": weights.pretrained_on, "training": "from scratch" if from_scratch else "two-stage transfer",
        "training_reason": ("no pretrained weights: the whole network is trained from the start, not "
                            "transfer learning") if from_scratch and spec.pretrained else None,
        "fine_tune": "none (from scratch)" if from_scratch else config.fine_tune, "optimizer": config.optimizer,
        "lr": config.lr, "fine_tune_lr": config.lr * config.fine_tune_lr_factor,
        "lr_schedule": dict(stages.schedules),
        "image_shape": list(view.input_shape), "image_size": list(plan.image_size),
        "input_normalization": "per-channel standardisation inside the model (training-split mean and std)"
                               if normalized else None,
        "input_statistics": stats,
        "feature_cache": config.uses_feature_cache and not from_scratch,
        "augment_on_the_fly": augment,
        "class_weight": None if class_weight is None else {view.class_names[k]: w for k, w in class_weight.items()},
        "opened_layers": opened, "parameters": int(parts.model.count_params()), "best": stages.best,
        "split_source": described.pop("split_source"),
        "events_per_class": view.counts(), **described, **plan.info, "timing": timing,
        "hepvision_version": __version__,
    }
    health_inputs = {"monitor_events": stages.monitor_events, "input_warnings": warnings}
    metrics = _write_run(staging, plan, _Trained(parts.model, splits, history, info, baseline, health_inputs))
    log.info("run written to %s (test accuracy %.3f)", plan.out, metrics["test"]["accuracy"])
    for warning in metrics["health"]["warnings"]:
        log.warning("%s", warning)
    return RunResult(out_dir=plan.out, metrics=metrics, history=history, class_names=view.class_names,
                     weights=weights, opened_layers=opened)


def history_frame(rows: list[dict]):
    """history.csv as a DataFrame: a global ``epoch`` column first, then the per-epoch records."""
    import pandas as pd

    history = pd.DataFrame(rows)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return history


class _Stages:
    """The two training stages of one run, and what they leave: epoch records, best val_loss, timing."""

    def __init__(self, config: TrainConfig, spec: BackboneSpec, parts, strategy, train_images, val_images,
                 timing: dict, class_weight: dict | None = None, val_labels=None, context: dict | None = None,
                 n_train: int = 0):
        from transfer.health import _keras_monitor

        self.config, self.spec, self.parts, self.strategy = config, spec, parts, strategy
        self.train_images, self.val_images, self.timing = train_images, val_images, timing
        self.class_weight = class_weight
        self.KeepBest, self.EpochRecorder = _keras_callbacks()
        self.CollapseMonitor = _keras_monitor()
        self.val_labels, self.context = val_labels, dict(context or {})
        self.monitor_events: list[dict] = []
        self.rows: list[dict] = []
        self.keeper = None
        self.schedules: dict[str, str] = {}   # stage -> --lr-schedule used
        self.steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))   # what a schedule counts in
        self.best: dict = {}
        #: ``feature_key(split)`` for features shared across runs (transfer.feature_store), or None.
        self.feature_key = None

    def _features(self, split: str, dataset):
        """The frozen backbone's outputs on ``split``, shared through the active feature store if any."""
        from transfer.feature_store import active_store, shared_features

        shared = self.feature_key is not None and active_store() is not None  # the key costs a pass over the files
        return shared_features(self.feature_key(split) if shared else None,
                               lambda: extract_features(self.parts.features, dataset))

    def _fit(self, target, learning_rate: float, stage: str, train_data, val_data, epochs: int, keeper):
        import keras

        from transfer.optimizers import make_optimizer

        recorder = self.EpochRecorder(stage)
        name = resolve_lr_schedule(self.config.lr_schedule, stage == "from-scratch")
        self.schedules[stage] = name
        schedule = LR_SCHEDULES[name]
        callbacks = _callbacks(self.config, keeper, recorder, schedule) + [keras.callbacks.TerminateOnNaN()]
        if self.val_labels is not None:
            monitor = self.CollapseMonitor(val_data, self.val_labels, self.context["num_classes"], self.context,
                                           stage)
            callbacks.append(monitor)
        with self.strategy.scope():
            rate = schedule.rate(learning_rate, epochs, self.steps_per_epoch)
            target.compile(optimizer=make_optimizer(self.config.optimizer, rate), loss=LOSS,
                           metrics=["accuracy"], jit_compile=_jit_compile(self.config.xla))
        target.fit(train_data, validation_data=val_data, epochs=epochs, verbose=self.config.verbose,
                   shuffle=False, callbacks=callbacks, class_weight=self.class_weight)
        if self.val_labels is not None:
            self.monitor_events += monitor.events
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
        from transfer.model import adapt_head

        features = np.concatenate([np.asarray(self.parts.features(x, training=True), dtype=np.float32)
                                   for x, _ in view.dataset("train", self.config.batch_size)])
        with self.strategy.scope():
            adapt_head(self.parts.head, features)

    def train_from_scratch(self, n_train: int) -> None:
        """The one stage of a network trained from scratch: every layer, at ``lr``, for ``epochs``.

        BatchNorm moving averages get the compact networks' momentum (0.9): Keras' MobileNetV2 uses
        0.999, whose averages still hold half their initial values after 700 steps, so a few thousand
        events trained from scratch were evaluated with wrong statistics (validation at chance while
        the training accuracy rose).
        """
        from transfer.compact import BN_MOMENTUM
        from transfer.model import is_batch_norm

        config = self.config
        started = time.perf_counter()
        self.parts.backbone.trainable = True
        for layer in self.parts.backbone.layers:  # BatchNorm included: nothing pretrained to keep
            layer.trainable = True
            if is_batch_norm(layer) and layer.momentum > BN_MOMENTUM:
                layer.momentum = BN_MOMENTUM
        epochs = self._fit(self.parts.model, config.lr, "from-scratch", self.train_images, self.val_images,
                           config.epochs, self.KeepBest())
        self.timing["from_scratch_stage_s"] = time.perf_counter() - started
        self.timing["from_scratch_events_per_s"] = n_train * epochs / self.timing["from_scratch_stage_s"]
        self.best = {"stage": "from-scratch", "epoch": (self.keeper.where or 0) + 1, "val_loss": self.keeper.best}

    def train_head(self, view: DataView, weights_used: str) -> None:
        """Stage 1: the head on the frozen backbone, on cached features unless augmenting on the fly."""
        from transfer.model import adapt_head, set_trainable

        config, parts = self.config, self.parts
        set_trainable(parts.backbone, "frozen")
        started = time.perf_counter()
        y_train, y_val = view.labels("train"), view.labels("validation")
        unshuffled = view.dataset("train", config.batch_size)
        train_features = self._features("train", unshuffled)
        _warn_if_constant(train_features, self.spec.name, weights_used)
        self.context["random_frozen_backbone"] = weights_used == "none"
        with self.strategy.scope():
            adapt_head(parts.head, train_features)
        if config.uses_feature_cache:
            val_features = self._features("validation", self.val_images)
            self.timing["feature_extraction_s"] = time.perf_counter() - started
            target = parts.head
            train_data = feature_dataset(train_features, y_train, config.batch_size, True, config.seed)
            val_data = feature_dataset(val_features, y_val, config.batch_size, False, config.seed)
        else:
            target, train_data, val_data = parts.model, self.train_images, self.val_images
        epochs = self._fit(target, config.lr, "head", train_data, val_data, config.epochs, self.KeepBest())
        self.timing["head_stage_s"] = time.perf_counter() - started
        self.timing["head_stage_images_per_s"] = len(y_train) * epochs / self.timing["head_stage_s"]
        self.best = {"stage": "head", "epoch": (self.keeper.where or 0) + 1, "val_loss": self.keeper.best}

    def fine_tune(self) -> list[str]:
        """Stage 2 (unless frozen): open the chosen layers, train everything at the lower rate.

        Starts from the best head-stage weights; if no fine-tuning epoch beats
        their validation loss, they are what the run keeps.
        """
        from transfer.model import is_batch_norm, set_trainable

        config, spec, parts = self.config, self.spec, self.parts
        if config.fine_tune == "frozen" or not config.fine_tune_epochs:
            return []
        started = time.perf_counter()
        keeper = self.KeepBest(best=self.keeper.best, weights=parts.model.get_weights())
        opened = set_trainable(parts.backbone, config.fine_tune, config.unfreeze)  # pretrained: BatchNorm stays
        rate = config.lr * config.fine_tune_lr_factor
        shown = ", ".join(opened) if len(opened) <= 4 else f"{opened[0]}, ..., {opened[-1]}"
        frozen_bn = any(is_batch_norm(layer) for layer in parts.backbone.layers)
        log.info("fine-tuning %d backbone layer(s) (%s) at learning rate %g%s", len(opened), shown, rate,
                 ", BatchNorm layers frozen in inference mode" if frozen_bn else "")
        self._fit(parts.model, rate, "fine-tune", self.train_images, self.val_images, config.fine_tune_epochs,
                  keeper)
        self.timing["fine_tune_stage_s"] = time.perf_counter() - started
        if keeper.where is not None:
            self.best = {"stage": "fine-tune", "epoch": keeper.where + 1, "val_loss": keeper.best}
        return opened


def _write_run(staging: Path, plan: RunPlan, trained: _Trained) -> dict:
    """Everything of a run folder: model, classes, split, resolved config, report files; returns the metrics."""
    view = plan.view
    run_folder.save_model(staging, trained.model)
    run_folder.write_classes(staging, view)
    for name, text in view.run_files().items():
        (staging / name).write_text(text, encoding="utf-8")
    run_folder.write_config(staging, plan.record, run_folder.run_facts(plan.weights, **plan.facts))
    return write_run_report(staging, view.class_names, trained.splits, trained.history, trained.info,
                            plan.config.signal, trained.baseline, trained.health_inputs, seed=plan.config.seed)
