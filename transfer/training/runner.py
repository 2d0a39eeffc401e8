"""The one runner: a planned run trained, evaluated and written into its run folder.

A run is first planned (:mod:`transfer.training.plan`: a frozen :class:`~transfer.training.plan.RunPlan`,
every check done), then :func:`run_plan` builds its model, trains it in its stages
(:mod:`transfer.training.stages`), fits the matched baseline, scores the validation and test splits and writes
the run folder through :mod:`transfer.run_folder` and :mod:`transfer.evaluation.report`. Cross-validation
(``folds``) and the training-set-size scan (``train_fraction``) are several plans run into one folder plus a
summary (:func:`run_plans`); :func:`transfer.experiments.run_experiment` picks the right one.

Example (a notebook)::

    from transfer.config import TrainConfig
    from transfer.training.runner import run_training
    result = run_training(TrainConfig(data="images/", backbone="vgg19", optimizer="rmsprop",
                                      out="runs/vgg19-rmsprop"))
    result.metrics["test"]["accuracy"]
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from imgen._version import __version__
from transfer import run_folder
from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.errors import OptionError
from transfer.evaluation.health import input_warnings
from transfer.evaluation.metrics import SplitScores
from transfer.evaluation.plot_style import plot_style
from transfer.evaluation.report import write_run_report
from transfer.files import staged_folder
from transfer.training.devices import hardware, keras_session, open_distribution, start_backend, writes_results
from transfer.training.features import feature_key
from transfer.training.inputs import augmented_stages, resolve_class_weight
from transfer.training.plan import ExperimentPlan, RunPlan, output_folder, plan_run
from transfer.training.stages import Stages
from transfer.weights import ResolvedWeights

log = logging.getLogger(__name__)


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
        return self.out_dir / run_folder.MODEL_FILE

    def summary_lines(self) -> list[str]:
        """What the CLI prints after a run."""
        m = self.metrics
        lines = [f"run folder: {self.out_dir}",
                 f"backbone {m['backbone']}, weights used: {m['weights_used']}"
                 + (f" ({m['weights_reason']})" if m.get("weights_reason") else "")
                 + (f", pretrained on {m['weights_pretrained_on']}" if m.get("weights_pretrained_on") else "")]
        from transfer.evaluation.report import console_lines

        return lines + console_lines(m)


def _has_batch_norm(model) -> bool:
    from transfer.models.freezing import is_batch_norm

    return any(is_batch_norm(layer) for layer in getattr(model, "layers", []))


def run_training(config: TrainConfig) -> RunResult:
    """Train, evaluate and report one configuration; write its run folder.

    Every input problem (data, options, weights, sizes, channels,
    ``--unfreeze``) raises :class:`~transfer.errors.TransferError` before
    training starts. ``folds`` and ``train_fraction`` run several trainings:
    use :func:`transfer.experiments.run_experiment` for those.
    """
    if config.folds or config.train_fraction:
        raise OptionError("folds and train_fraction run several trainings: call "
                          "transfer.experiments.run_experiment(config) (or transfer.experiments.crossval.run_folds, "
                          "transfer.experiments.scan.run_train_fraction_scan)")
    start_backend(config)
    out = output_folder(config)
    with open_data(config) as source:
        return run_plan(plan_run(config, source.view(), out))


def run_plan(plan: RunPlan, into: Path | None = None) -> RunResult:
    """Train ``plan`` and write its run folder ``plan.out``: the one runner of every training.

    The folder is staged and renamed into place, unless ``into`` is given: an
    already staged folder to write into directly (experiments stage their
    whole output folder, :func:`run_plans`). In a multi-process job every
    process trains and only process 0 writes (the others return a result
    without metrics).
    """
    start_backend(plan.config)
    with keras_session(plan.config), open_distribution(plan.config) as distribution:
        if not distribution.chief:
            return _train_in(None, plan, distribution)
        if into is not None:
            Path(into).mkdir(parents=True, exist_ok=False)
            return _train_in(Path(into), plan, distribution)
        with staged_folder(plan.out, plan.config.overwrite) as staging:
            return _train_in(staging, plan, distribution)


def run_plans(plan: ExperimentPlan, summarize: Callable) -> tuple[list[RunResult], object]:
    """Run every plan of an experiment into one staged folder, then ``summarize(staging, plan, runs)``.

    The experiment's ``config.yaml`` (which reproduces all of it) is written
    beside the runs and the summary; the folder appears only when all are done.
    Returns the runs' results and what ``summarize`` returned (None on the
    processes of a multi-process job that do not write).
    """
    if plan.runs and not writes_results(plan.runs[0].config):
        return [run_plan(run) for run in plan.runs], None
    with staged_folder(plan.out, plan.overwrite) as staging:
        runs = [run_plan(run, into=staging / run.name) for run in plan.runs]
        summary = summarize(staging, plan, runs)
        run_folder.write_config(staging, plan.record, run_folder.run_facts(plan.weights))
    return runs, summary


def build_parts(plan: RunPlan, distribution=None, normalization: dict | None = None):
    """The :class:`~transfer.models.classifier.TransferModel` for the plan's inputs (checks ``--unfreeze``).

    ``normalization`` (per-channel ``mean`` and ``variance`` lists of the
    training inputs) standardises the inputs inside networks trained from scratch.
    """
    from transfer.models.classifier import build_transfer_model
    from transfer.models.freezing import layers_to_unfreeze

    config, spec, view = plan.config, plan.spec, plan.view
    if plan.weights.record is not None:  # weights of one of our runs: their channels and style must fit these data
        from transfer.weights.run import check_fits

        check_fits(spec, plan.weights.record, view, plan.image_size, config.weights)
    value_range = view.value_range() if spec.pretrained and view.input_dtype != "uint8" else None
    with distribution.scope() if distribution is not None else nullcontext():
        parts = build_transfer_model(spec, view.input_shape, len(view.class_names), plan.image_size,
                                     plan.weights.keras_arg, config.head_units, config.dropout,
                                     input_dtype=view.input_dtype, value_range=value_range,
                                     normalization=normalization, from_scratch=plan.from_scratch)
    if not plan.from_scratch:
        layers_to_unfreeze(parts.backbone, config.fine_tune, config.unfreeze)  # checks --unfreeze
    return parts


def _normalization(stats: list[dict]) -> dict:
    return {"mean": [s["mean"] for s in stats], "variance": [max(s["variance"], 1e-12) for s in stats]}


def build_run_model(plan: RunPlan, distribution=None):
    """The model a run trains, with the run's recipe; returns ``(parts, input statistics)``.

    Networks trained from scratch get their inputs standardised with the
    training events' statistics (:meth:`DataView.input_statistics`), measured here.
    Training and ``lr-find`` both build through this, so that they test the same network.
    """
    stats = plan.view.input_statistics(plan.config.seed)
    normalization = _normalization(stats) if not plan.spec.pretrained else None
    return build_parts(plan, distribution, normalization), stats


@dataclass
class _Trained:
    """What training and evaluation leave for the run folder (:func:`_write_run`)."""

    model: object  # keras.Model
    splits: dict  # split -> SplitScores
    history: object  # pandas.DataFrame
    info: dict  # metrics.json entries besides the scores
    baseline: object = None  # transfer.evaluation.baseline.BaselineResult
    health_inputs: dict = field(default_factory=dict)


def _train_in(staging: Path | None, plan: RunPlan, distribution) -> RunResult:
    """Train, evaluate and write the run of ``plan`` into the (staged) folder ``staging``; with ``staging``
    None (a process of a multi-process job that does not write), train only."""
    import keras

    config, spec, view, weights = plan.config, plan.spec, plan.view, plan.weights
    started = time.perf_counter()
    timing: dict[str, float] = {}
    keras.utils.set_random_seed(config.seed)
    from_scratch = plan.from_scratch
    parts, stats = build_run_model(plan, distribution)
    warnings = input_warnings(stats)
    for warning in warnings:
        log.warning("%s", warning)
    normalized = not spec.pretrained
    class_weight = resolve_class_weight(config.class_weight, view.labels("train"), len(view.class_names),
                                        view.weights("train"))
    augment = augmented_stages(config.augment_on_the_fly, view, from_scratch)
    context = {"num_classes": len(view.class_names), "data_kind": view.kind, "scale": getattr(config, "scale", None),
               "optimizer": config.optimizer, "lr": config.lr, "batch_norm": _has_batch_norm(parts.backbone),
               "random_frozen_backbone": False}
    stages = Stages(config, spec, parts, distribution, view, augment, timing, class_weight, context)
    if from_scratch:
        if spec.pretrained:
            log.info("%s with random initialisation: training the whole network from the start (a frozen "
                     "random backbone would give the head little to learn from)", spec.name)
            stages.adapt_head(view)
        stages.train_from_scratch()
        opened = []
    else:
        # grid: frozen-stage features shared across runs on disk (transfer.training.features; a no-op for one run)
        stages.feature_key = lambda split: feature_key(spec, weights, plan.image_size, view, split)
        stages.train_head(view, weights.used)
        opened = stages.fine_tune()
    history = history_frame(stages.rows)
    if staging is None:
        log.info("process %d of %d: trained; process 0 writes %s", distribution.process_index,
                 distribution.processes, plan.out)
        return RunResult(out_dir=plan.out, metrics={}, history=history, class_names=view.class_names,
                         weights=weights, opened_layers=opened)
    baseline = None
    if config.baseline != "none":
        from transfer.evaluation.baseline import run_baseline

        baseline = run_baseline(view, config.seed, class_weight)

    stage_start = time.perf_counter()
    final = saved_model(parts.model, distribution)
    splits = {}
    for split in ("validation", "test"):
        with distribution.outside():
            scores = final.predict(view.dataset(split, config.batch_size), verbose=0)
        splits[split] = SplitScores(paths=view.ids(split), y_true=view.labels(split),
                                    scores=np.asarray(scores, np.float64), weights=view.weights(split))
    timing["evaluation_s"] = time.perf_counter() - stage_start
    timing["total_s"] = time.perf_counter() - started
    described = view.describe()
    info = {
        "backbone": spec.name, "weights_used": weights.used, "weights_reason": weights.reason,
        "weights_file": weights.file, "weights_pretrained_on": weights.pretrained_on,
        "training": "from scratch" if from_scratch else "two-stage transfer",
        "training_reason": ("no pretrained weights: the whole network is trained from the start, not "
                            "transfer learning") if from_scratch and spec.pretrained else None,
        "fine_tune": "none (from scratch)" if from_scratch else config.fine_tune, "optimizer": config.optimizer,
        "lr": config.lr, "fine_tune_lr": config.lr * config.fine_tune_lr_factor,
        "lr_schedule": dict(stages.schedules),
        "backend": config.backend, "hardware": hardware().describe(), "distribution": distribution.describe(),
        "dtype_policy": keras.config.dtype_policy().name, "batch_size": config.batch_size,
        "image_shape": list(view.input_shape), "image_size": list(plan.image_size),
        "input_normalization": "per-channel standardisation inside the model (training-split mean and std)"
                               if normalized else None,
        "input_statistics": stats,
        "feature_cache": stages.uses_feature_cache and not from_scratch,
        "augment_on_the_fly": bool(augment), "augmented_stages": list(augment),
        "class_weight": None if class_weight is None else {view.class_names[k]: w for k, w in class_weight.items()},
        "event_weight": config.event_weight,
        "opened_layers": opened, "parameters": int(parts.model.count_params()), "best": stages.best,
        "split_source": described.pop("split_source"),
        "events_per_class": view.counts(), **described, **plan.info, "timing": timing,
        "hepvision_version": __version__,
    }
    if view.weights("train") is not None:
        from transfer.data.event_weights import describe

        info["event_weights"] = describe(view, config.event_weight)
    health_inputs = {"monitor_events": stages.monitor_events, "input_warnings": warnings}
    metrics = _write_run(staging, plan, _Trained(final, splits, history, info, baseline, health_inputs))
    log.info("run written to %s (test accuracy %.3f)", plan.out, metrics["test"]["accuracy"])
    for warning in metrics["health"]["warnings"]:
        log.warning("%s", warning)
    return RunResult(out_dir=plan.out, metrics=metrics, history=history, class_names=view.class_names,
                     weights=weights, opened_layers=opened)


def saved_model(model, distribution):
    """What is evaluated and saved: ``model`` itself, or its float32 copy on this process's device when it
    trained in 16 bits or data-parallel (:func:`transfer.models.precision.float32_copy`)."""
    from transfer.models.precision import float32_copy, needs_copy

    if not distribution.distributed and not needs_copy(model):
        return model
    with distribution.outside():
        return float32_copy(model)


def history_frame(rows: list[dict]):
    """history.csv as a DataFrame: a global ``epoch`` column first, then the per-epoch records."""
    import pandas as pd

    history = pd.DataFrame(rows)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return history


def _write_run(staging: Path, plan: RunPlan, trained: _Trained) -> dict:
    """Everything of a run folder: model, classes, split, resolved config, report files; returns the metrics."""
    view = plan.view
    run_folder.save_model(staging, trained.model)
    run_folder.write_classes(staging, view)
    for name, text in view.run_files().items():
        (staging / name).write_text(text, encoding="utf-8")
    run_folder.write_config(staging, plan.record, run_folder.run_facts(plan.weights, **plan.facts))
    with plot_style(plan.config.plot_style, plan.config.plot_energy):
        return write_run_report(staging, view.class_names, trained.splits, trained.history, trained.info,
                                plan.config.signal, trained.baseline, trained.health_inputs, seed=plan.config.seed)
