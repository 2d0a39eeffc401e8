"""A training run decided before it starts: the frozen :class:`RunPlan`, and the planners that make it.

Everything that can stop a run is decided here, before any training: the
output folder, the view's inputs against the backbone (size, channels,
``--signal``), the weights. The runner (:func:`transfer.training.runner.run_plan`) then
only executes. A single run is one plan; cross-validation and the
training-set-size scan are an :class:`ExperimentPlan`: several plans written
into one staged folder, plus a summary (:func:`transfer.training.runner.run_plans`).

Example: many runs over one data source and one split (a grid)::

    from transfer.config import TrainConfig
    from transfer.training.plan import output_folder, plan_run
    from transfer.data import open_data
    from transfer.training.runner import run_plan

    base = TrainConfig(data="images/", backbone="smallcnn", weights="none")
    with open_data(base) as source:
        view = source.view()                       # one split, fitted once
        for lr in (1e-3, 3e-4):
            config = TrainConfig(**{**base.to_dict(), "lr": lr, "out": f"runs/lr-{lr:g}"})
            result = run_plan(plan_run(config, view, output_folder(config)))

(The data options of every config must be those ``view`` was made with.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

from transfer.config import TrainConfig
from transfer.errors import OptionError
from transfer.files import check_output_folder
from transfer.models.backbones import BackboneSpec, check_channels, check_image_size, get_backbone
from transfer.weights import ResolvedWeights, resolve_weights

if TYPE_CHECKING:
    from transfer.data import DataView


@dataclass(frozen=True)
class RunPlan:
    """One training run, fully decided: what :func:`transfer.training.runner.run_plan` executes.

    Attributes:
        config: the options the network is trained with.
        view: the run's events (a :class:`~transfer.data.DataView`, fitted on its training split).
        spec: the backbone.
        weights: how the backbone is initialised (resolved: a file that exists, or none).
        image_size: (height, width) the backbone sees, checked against its minimum.
        out: the run folder, where it ends up.
        record: the options its ``config.yaml`` records (classes and image size resolved).
        facts: extra facts ``config.yaml`` records (e.g. ``fold``), read-only.
        info: extra entries of ``metrics.json`` (e.g. ``fold``, ``folds``), read-only.
        name: the run's sub-folder inside an experiment's folder; ``None`` for a run of its own.
    """

    config: TrainConfig
    view: "DataView"
    spec: BackboneSpec
    weights: ResolvedWeights
    image_size: tuple[int, int]
    out: Path
    record: TrainConfig
    facts: Mapping = field(default_factory=dict)
    info: Mapping = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self):
        for name in ("facts", "info"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def from_scratch(self) -> bool:
        """One stage, every layer trained (:func:`trains_from_scratch`)."""
        return trains_from_scratch(self.spec, self.weights)


@dataclass(frozen=True)
class ExperimentPlan:
    """Several runs written into one folder (``out/<name>/`` each), plus a summary beside them.

    Attributes:
        out: the experiment's folder.
        record: the options its ``config.yaml`` records (they reproduce the whole experiment).
        weights: the weights every run starts from (resolved once).
        runs: the runs, in order; each has a ``name``.
        overwrite: replace an existing ``out``.
    """

    out: Path
    record: TrainConfig
    weights: ResolvedWeights
    runs: tuple[RunPlan, ...]
    overwrite: bool = False


@dataclass(frozen=True)
class Part:
    """One run of an experiment before it is planned: its sub-folder, events, and what it records."""

    name: str
    view: "DataView"
    facts: Mapping = field(default_factory=dict)
    info: Mapping = field(default_factory=dict)


def trains_from_scratch(spec: BackboneSpec, weights: ResolvedWeights) -> bool:
    """One stage, every layer trained: any backbone without pretrained weights (``--weights none``).

    A frozen stage on a randomly initialised backbone trains a head on
    features that carry little information; with no weights to keep, the
    whole network is trained from the start instead (and the report says so).
    With pretrained weights (ImageNet, a weights file, a run folder, toy-cms),
    compact networks too are fine-tuned in two stages with BatchNorm in inference mode.
    """
    return weights.used == "none"


def resolve_image_size(spec: BackboneSpec, image_shape: tuple, requested: tuple | None) -> tuple[int, int]:
    """The (height, width) the backbone sees: ``requested``, or the images' own size.

    Either way, a size below the backbone's minimum is an error that says to
    pass a larger ``--image-size`` (the images are then resized inside the model).
    """
    size = tuple(requested) if requested else tuple(image_shape[:2])
    check_image_size(spec, size)
    return size


def check_view(spec: BackboneSpec, view: "DataView", config: TrainConfig) -> tuple[int, int]:
    """Everything about the data that can stop a run, before training; returns the size the backbone sees."""
    image_size = resolve_image_size(spec, view.input_shape, config.image_size)
    check_channels(spec, view.input_shape[2], view.channel_names)
    if config.signal is not None and config.signal not in view.class_names:
        raise OptionError(f"--signal {config.signal}: not one of the classes {', '.join(view.class_names)}")
    return image_size


def output_folder(config: TrainConfig, default: str | Path | None = None) -> Path:
    """``config.out`` (else ``default``, else :meth:`TrainConfig.default_out`), refused if it holds a run
    and ``overwrite`` is off: checked before the data are opened."""
    return check_output_folder(Path(config.out or default or config.default_out()), config.overwrite)


def recorded_config(config: TrainConfig, out: Path, **resolved) -> TrainConfig:
    """``config`` as a ``config.yaml`` records it: with ``out`` and ``resolved`` values, never ``overwrite``
    (re-running the file must never replace this run)."""
    return TrainConfig(**{**config.to_dict(), "out": str(out), **resolved, "overwrite": False})


def plan_run(config: TrainConfig, view: "DataView", out: Path, *, weights: ResolvedWeights | None = None,
             record: TrainConfig | None = None, name: str | None = None, facts: Mapping | None = None,
             info: Mapping | None = None) -> RunPlan:
    """Check ``view`` against ``config``'s backbone and resolve the weights (unless given): one run.

    ``record`` is the configuration ``config.yaml`` starts from (default:
    ``config`` with ``out``); the run's classes and image size are filled in.
    """
    spec = get_backbone(config.backbone)
    image_size = check_view(spec, view, config)
    if weights is None:
        weights = resolve_weights(spec, config.weights, image_size, config.on_missing_weights)
    base = record if record is not None else recorded_config(config, out)
    return RunPlan(config=config, view=view, spec=spec, weights=weights, image_size=image_size, out=Path(out),
                   record=recorded_config(base, Path(base.out), classes=list(view.class_names),
                                          image_size=list(image_size)),
                   facts=facts or {}, info=info or {}, name=name)


def plan_experiment(config: TrainConfig, out: Path, parts: list[Part]) -> ExperimentPlan:
    """Plan every part of an experiment (each checked, all before any training) into ``out/<part.name>``.

    The weights are resolved once, for the first part's image size, and shared.
    """
    record = recorded_config(config, out)
    runs: list[RunPlan] = []
    for part in parts:
        runs.append(plan_run(config, part.view, out / part.name, weights=runs[0].weights if runs else None,
                             record=record, name=part.name, facts=part.facts, info=part.info))
    return ExperimentPlan(out=out, record=record, weights=runs[0].weights, runs=tuple(runs),
                          overwrite=config.overwrite)
