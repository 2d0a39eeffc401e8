"""Run options: one dataclass, read from YAML, written beside every run.

Example::

    from transfer.config import TrainConfig
    config = TrainConfig(data="images/", backbone="vgg19", optimizer="rmsprop",
                         out="runs/vgg19-rmsprop")

``python -m transfer --config FILE`` reads the options from a YAML file (flags
given on the command line win), and every run writes its fully resolved
options to ``config.yaml`` in its output folder, so that
``python -m transfer --config runs/x/config.yaml --out runs/x-again``
reproduces it. ``config.yaml`` also records facts about the run
(:data:`RECORDED_KEYS`, e.g. ``weights_used``); reading it back ignores them.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from imgen.split import DEFAULT_SEED
from transfer.errors import OptionError
from transfer.evaluation.plot_style import DEFAULT_ENERGY_TEV, PLOT_STYLE_NAMES, check_energy
from transfer.files import write_text_atomic
from transfer.optimizers import LR_SCHEDULE_CHOICES
from transfer.training.devices import BACKENDS, backend_of, check_distribution

FINE_TUNE_MODES = ("frozen", "partial", "full")
#: ``--scale`` choices: the keys of ``imgen.arrays.SCALES`` (a test checks they agree).
SCALES = ("none", "log", "standardize")
CLASS_WEIGHTS = ("auto", "none", "balanced")
#: ``--baseline`` choices: gradient-boosted trees on the same events (transfer.evaluation.baseline), or none.
BASELINES = ("trees", "none")
ON_MISSING_WEIGHTS = ("error", "random")
AUTO_ON_OFF = ("auto", "on", "off")
#: ``--mixed-precision``: ``on`` is the former name of fp16.
PRECISIONS = ("auto", "bf16", "fp16", "off", "on")
DISTRIBUTE = ("none", "mirrored", "multiworker")
#: Options that may be a list in a YAML file (several values); every other option takes one value.
LIST_OPTIONS = ("data", "image_size", "classes", "split", "train_fraction", "x_key", "channels")
#: Options whose ``None`` means "decided later": augmentation by the data kind, the layers opened by the network.
AUTO_WHEN_NONE = ("augment_on_the_fly", "unfreeze")
#: Keys a run writes into config.yaml as a record; ignored when read back.
RECORDED_KEYS = ("weights_used", "weights_reason", "weights_file", "hepvision_version", "created", "fold",
                 "train_fraction_run")


#: Groups of ``python -m transfer --help``, in the order shown: key (a field's ``group``) -> title.
OPTION_GROUPS = {
    "data": "data",
    "arrays": "HDF5 arrays (float32 all the way; fitted on the training split only)",
    "model": "model and weights",
    "training": "training",
    "evaluation": "evaluation and experiments",
    "hardware": "hardware",
    "output": "output",
}


def option(default: Any = dataclasses.MISSING, *, group: str, help: str, metavar: str | None = None,
           choices: tuple | None = None, nargs: str | None = None):
    """A :class:`TrainConfig` field that is also the command-line flag ``--name-with-dashes``.

    ``help`` may name ``{default}`` (the field's default, as ``default: X``),
    ``{recipe}`` (the per-kind default of :data:`RECIPE_DEFAULTS`),
    ``{backbones}``, ``{compact}`` and ``{optimizers}`` (the registries'
    names); the flag's type follows the field's annotation (``bool``: an
    ``--x/--no-x`` pair, ``int``, ``float``, else text). See :func:`cli_options`.
    """
    return dataclasses.field(default=default, metadata={
        "group": group, "help": help, "metavar": metavar, "choices": choices, "nargs": nargs})


@dataclass
class TrainConfig:
    """Every option of a training run (the CLI flags, with ``-`` as ``_``).

    Each field declares its flag too (:func:`option`): ``python -m transfer
    --help`` is generated from these fields, so a new option is one field. The
    defaults here are the CLI's defaults. Values are checked and normalised on
    construction (``image_size="64x48"`` becomes ``(64, 48)``, ``split``
    may be ``"0.8,0.1,0.1"``, ``classes`` may be ``"a,b"``,
    ``train_fraction`` may be ``"0.1,0.3,1"``). ``data`` is one string (an
    image folder, an HDF5 file) or a list of them (HDF5 files, folders, globs,
    ``class=...`` items); see :mod:`transfer.data` for how it is read.
    """

    data: Any = option(
        group="data", metavar="DIR|FILE|CLASS=FILE", nargs="+",
        help="an image folder: with manifest.csv (its train/validation/test split is used) or with one "
             "subfolder of PNGs per class (split by the hash of (seed, class, event)); or HDF5 arrays (when --x-key is given "
             "or the values are .h5/.hdf5 files): CLASS=FILE|FOLDER|GLOB per class (the class from the file), "
             "FILE(s) with --y-key and --classes (labels from a key), or a folder of class folders or files "
             "(default: ./images when it holds manifest.csv, i.e. the output of python -m imgen)")
    out: Optional[str] = option(
        None, group="output", metavar="DIR",
        help="run folder to create (default: runs/<backbone>-<optimizer>-<fine-tune>)")
    backbone: str = option(
        "vgg19", group="model", metavar="NAME",
        help="one of {backbones} ({default}); {compact} are compact networks trained from scratch (one stage, "
             "all layers, --lr and --epochs; any input size and channel count; --weights none); see "
             "--list-backbones")
    weights: str = option(
        "auto", group="model", metavar="auto|imagenet|none|toy-cms|RUN|PATH",
        help="backbone initialisation: auto (imagenet for pretrained backbones, none for networks trained from "
             "scratch), ImageNet weights through Keras' cache ($KERAS_HOME/models, default ~/.keras/models; "
             "downloaded when missing), none (random), toy-cms (this network pretrained on the bundled "
             "generator's events at --image-size, built into the Keras cache on first use: no download), RUN (a "
             "run folder or RUN/model.keras, e.g. of pretrain: its backbone, refused when its backbone, channels "
             "or rendering style do not fit), or a weights file for this backbone. Pretrained weights are "
             "fine-tuned in two stages with BatchNorm in inference mode, also for compact networks ({default})")
    on_missing_weights: str = option(
        "error", group="model", choices=ON_MISSING_WEIGHTS,
        help="when ImageNet weights cannot be had: error (stop, naming the file to seed the cache with) or "
             "random (train from random initialisation, with a warning, recorded as weights_used: none) "
             "({default})")
    fine_tune: str = option(
        "partial", group="training", choices=FINE_TUNE_MODES,
        help="after training the head on the frozen backbone: stop (frozen), open the top --unfreeze layers "
             "(partial) or all layers (full) and train on at the lower learning rate; the BatchNorm layers of "
             "pretrained backbones stay frozen and in inference mode ({default})")
    unfreeze: Optional[int] = option(
        None, group="training", metavar="N",
        help="partial: number of top backbone layers with weights to open, counted from the output down, "
             "BatchNorm layers not counted (VGG19: 4 = block5) (default: 4, or every one of a network that has "
             "fewer, such as mlp or rcnn; a larger N given is refused)")
    fine_tune_lr_factor: float = option(
        0.1, group="training", metavar="F", help="fine-tuning learning rate = --lr x F ({default})")
    optimizer: str = option("adam", group="training", metavar="NAME", help="one of {optimizers} ({default})")
    lr: Optional[float] = option(
        None, group="training", metavar="RATE",
        help="learning rate of the head stage, or of the whole network trained from scratch ({recipe})")
    epochs: Optional[int] = option(
        None, group="training", metavar="N",
        help="maximum epochs of the head stage, or of training from scratch ({recipe})")
    fine_tune_epochs: int = option(
        10, group="training", metavar="N", help="maximum epochs of the fine-tuning stage ({default})")
    lr_schedule: str = option(
        "auto", group="training", choices=LR_SCHEDULE_CHOICES,
        help="how the learning rate moves within a stage: plateau (halved after --patience/2 epochs without a "
             "lower validation loss) or cosine (decayed from --lr to 0 over the stage's --epochs); auto: cosine "
             "for networks trained from scratch, plateau for the stages of a pretrained backbone ({default})")
    batch_size: int = option(32, group="training", metavar="N", help="global batch size ({default})")
    image_size: Optional[tuple] = option(
        None, group="data", metavar="N|HxW",
        help="size the backbone sees, in pixels: images (and arrays) are resized on the fly inside the model, "
             "which still takes inputs of their own size; sizes below the backbone's minimum (see "
             "--list-backbones) are refused with the size to pass here (default: the inputs' own size)")
    head_units: int = option(
        256, group="model", metavar="N",
        help="units of the head's hidden dense layer, 0 for none; not for compact networks, which keep their "
             "own classifier layers ({default})")
    dropout: float = option(
        0.3, group="model", metavar="P", help="dropout rate in the head; not for compact networks ({default})")
    patience: Optional[int] = option(
        None, group="training", metavar="N",
        help="stop a stage after N epochs without a lower validation loss, and halve the learning rate after "
             "N/2; 0 turns both off. The weights with the lowest validation loss over both stages are kept "
             "({recipe})")
    classes: Optional[list] = option(
        None, group="data", metavar="A,B,...",
        help="class names, in label order (may be a subset for images; for HDF5 labels from --y-key: the "
             "names of ids 0, 1, ...); default: all, sorted. For two classes the second is the signal class "
             "unless --signal says otherwise")
    split: tuple = option(
        (0.8, 0.1, 0.1), group="data", metavar="TRAIN,VAL,TEST",
        help="fractions of the split made when there is no manifest.csv, by the one split rule of imgen: a "
             "hash of (seed, class, event; for HDF5 file#row), so python -m imgen arrays gives every row the "
             "same split; recorded in the run folder as split.csv ({default})")
    seed: int = option(
        DEFAULT_SEED, group="training",
        help="seed of the split, shuffling, augmentation and initialisation ({default})")
    feature_cache: bool = option(
        True, group="training",
        help="frozen stage: compute the backbone's outputs once and train the head on them (not where the head "
             "stage is augmented on the fly) (default: on)")
    augment_on_the_fly: Optional[bool] = option(
        None, group="data",
        help="light physics augmentation of training images, drawn on the fly: random roll along phi, flips "
             "eta->-eta and phi->-phi; on: in every stage (a pretrained backbone's head stage then trains on images, "
             "not cached features: slower). HDF5 arrays: on the axes their dims attribute names (e.g. event, eta, "
             "phi), the roll only along a periodic phi kept whole (default, on eta-phi images rendered by imgen or "
             "arrays whose files name a periodic phi axis: every stage from scratch and, for a pretrained "
             "backbone, every stage up to 2000 training events, the fine-tuning stage above; off on other data)")
    backend: Optional[str] = option(
        None, group="hardware", choices=tuple(BACKENDS),
        help="the Keras backend: tensorflow, jax (GPU nodes without TensorFlow; several processes) or torch "
             "(default: $KERAS_BACKEND, else tensorflow; recorded in config.yaml)")
    mixed_precision: str = option(
        "auto", group="hardware", choices=PRECISIONS,
        help="16-bit compute with float32 weights: bf16, fp16 or off (auto: bf16 on GPUs with compute capability "
             "8.0 or newer, fp16 on older GPUs, off on CPUs); the saved model computes in float32 ({default})")
    xla: str = option(
        "auto", group="hardware", choices=AUTO_ON_OFF,
        help="XLA compilation of the training step (jit_compile; JAX always compiles unless off) ({default})")
    distribute: str = option(
        "none", group="hardware", choices=DISTRIBUTE,
        help="data-parallel training, --batch-size being the global batch: mirrored (every local GPU: TensorFlow "
             "MirroredStrategy with synchronised BatchNorm, or JAX DataParallel) or multiworker (several "
             "processes or nodes, JAX: the cluster from KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, "
             "_PROCESS_ID or a Slurm allocation; process 0 writes the run folder) ({default})")
    overwrite: bool = option(
        False, group="output", help="replace an existing run folder (default: refuse)")
    verbose: int = option(
        2, group="output", metavar="0|1|2", choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 bars, 2 one line per epoch ({default})")
    x_key: Optional[str] = option(
        None, group="arrays", metavar="KEY[,KEY...]",
        help="dataset key of the images (N, rows, cols[, channels]); several keys (e.g. "
             "layer_0,layer_1,layer_2) are resampled onto a common grid, conserving each cell's energy, and "
             "stacked as channels")
    y_key: Optional[str] = option(
        None, group="arrays", metavar="KEY", help="dataset key of the integer labels (needs --classes)")
    channels: Optional[str] = option(
        None, group="arrays", metavar="I|NAME,...",
        help="channels to keep, by index or name (e.g. 0 or energy); default: all")
    scale: str = option(
        "none", group="arrays", choices=SCALES,
        help="value scale: none, log (sign(x) log(1 + |x| / s), s the standard deviation of the training values: "
             "linear below s, logarithmic above, whatever the unit) or standardize (per channel, mean and std "
             "of the training split); the statistics are saved with the model so that predict applies the same "
             "({default})")
    min_value: Optional[float] = option(
        None, group="arrays", metavar="V", help="zero suppression: values below V become 0 (default: none)")
    crop: bool = option(
        False, group="arrays",
        help="drop the outer rows and columns that are zero in every training event (default: off)")
    class_weight: str = option(
        "auto", group="training", choices=CLASS_WEIGHTS,
        help="balanced: weight each training event by n / (classes x n_class) (scikit-learn "
             "compute_class_weight), in every stage; auto: balanced when the largest class has over 1.5x the "
             "smallest's training events; with --event-weight, n are the summed |weights| and the loss weight is "
             "|w| x class weight ({default})")
    event_weight: str = option(
        "none", group="training", metavar="genWeight|xsec|KEY|none",
        help="per-event weights of simulated samples: genWeight (NanoAOD's generator weight) or xsec (the JSON "
             "sample's cross section), as python -m imgen records them in manifest.csv and images.h5; KEY: a "
             "per-event dataset of the HDF5 files (or a manifest column). Every figure (accuracy, loss, ROC AUC, "
             "rejection, confusion matrix, baseline, intervals, roc.png, discriminant.png) uses the signed "
             "weights; the loss |w| x class weight, "
             "normalised to a mean of 1 over the training events (README: Event weights) ({default})")
    signal: Optional[str] = option(
        None, group="evaluation", metavar="CLASS",
        help="two classes: the signal class of the background rejection at 50/80/90 %% signal efficiency, the "
             "ROC and the discriminant (default: the second class); more classes: each class in turn, one vs "
             "rest")
    folds: int = option(
        0, group="evaluation", metavar="K",
        help="stratified K-fold cross-validation: OUT/fold-1 ... OUT/fold-K, every event tested once, plus "
             "OUT/folds_summary.json/.md with mean and std of every metric (default: off)")
    train_fraction: Optional[tuple] = option(
        None, group="evaluation", metavar="F[,F...]",
        help="training-set-size scan: one run per fraction of the training split (stratified subsets, same "
             "validation and test events) in OUT/fraction-F, plus OUT/train_fraction_scan.csv/.png (e.g. "
             "0.1,0.3,1.0)")
    baseline: str = option(
        "trees", group="evaluation", choices=BASELINES,
        help="trees: also fit gradient-boosted trees on the same train/validation/test events (physics objects "
             "of imgen's source events, pooled cells of arrays, else downsampled pixels) and report them "
             "beside the network; none: skip ({default})")
    plot_style: str = option(
        "plain", group="output", choices=PLOT_STYLE_NAMES,
        help="look of every figure the run writes (ROC, rejection, confusion matrix, discriminant, training "
             "curves, scans, grid summary, explain maps): plain (matplotlib's) or the cms, atlas or lhcb style "
             "of mplhep with that experiment's label, marked Simulation, and --plot-energy; recorded in "
             "config.yaml ({default})")
    plot_energy: float = option(
        DEFAULT_ENERGY_TEV, group="output", metavar="TEV",
        help="centre-of-mass energy in TeV written in the experiment label of --plot-style cms|atlas|lhcb "
             "(imgen's bundled toy events are 7 TeV-like) ({default})")
    strict: bool = option(
        False, group="data",
        help="refuse data whose validation or test split lacks a class (by default a warning: that class's "
             "figures are reported as n/a) (default: off)")

    def __post_init__(self):
        from transfer.models.backbones import get_backbone
        from transfer.optimizers import OPTIMIZERS

        self.data = parse_data(self.data)
        spec = get_backbone(self.backbone)
        for name, value in recipe_defaults(spec.pretrained, spec.recipe).items():  # per network, not a fallback
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.out = None if self.out in (None, "") else str(self.out)
        for name in ("unfreeze", "epochs", "fine_tune_epochs", "batch_size", "head_units",
                     "patience", "seed", "verbose", "folds"):
            if self._decided(name):
                setattr(self, name, _as_int(name, getattr(self, name)))
        for name in ("fine_tune_lr_factor", "lr", "dropout"):
            setattr(self, name, _as_float(name, getattr(self, name)))
        for name in ("feature_cache", "augment_on_the_fly", "overwrite", "crop", "strict"):
            if self._decided(name):
                setattr(self, name, _as_bool(name, getattr(self, name)))
        self.weights = "none" if self.weights is None else str(self.weights)
        self.image_size = parse_image_size(self.image_size)
        self.split = parse_split(self.split)
        self.classes = parse_classes(self.classes)
        for name in ("x_key", "y_key", "channels", "signal"):
            setattr(self, name, _as_text(name, getattr(self, name)))
        self.event_weight = _as_text("event_weight", self.event_weight) or "none"
        if self.min_value is not None:
            self.min_value = _as_float("min_value", self.min_value)
        self.train_fraction = parse_train_fraction(self.train_fraction)
        _check_choice("scale", self.scale, SCALES)
        _check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _check_choice("baseline", self.baseline, BASELINES)
        _check_choice("plot_style", self.plot_style, PLOT_STYLE_NAMES)
        self.plot_energy = check_energy(self.plot_energy)
        if self.folds == 1 or self.folds < 0:
            raise OptionError(f"folds {self.folds}: cross-validation needs at least 2 folds (0 turns it off)")
        if self.folds and self.train_fraction:
            raise OptionError("folds and train_fraction cannot be combined: run the training-set-size "
                                "scan and the cross-validation separately")
        _check_choice("fine_tune", self.fine_tune, FINE_TUNE_MODES)
        _check_choice("on_missing_weights", self.on_missing_weights, ON_MISSING_WEIGHTS)
        self.backend = backend_of(self.backend)
        _check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        _check_choice("distribute", self.distribute, DISTRIBUTE)
        check_distribution(self.backend, self.distribute)
        _check_choice("xla", self.xla, AUTO_ON_OFF)
        _check_choice("distribute", self.distribute, DISTRIBUTE)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULE_CHOICES)
        if self.optimizer not in OPTIMIZERS:
            raise OptionError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.weights == "auto":  # a default per kind of network, not a fallback
            self.weights = "imagenet" if spec.pretrained else "none"
        _check_range("lr", self.lr, low=0.0, low_open=True)
        _check_range("fine_tune_lr_factor", self.fine_tune_lr_factor, low=0.0, low_open=True)
        _check_range("dropout", self.dropout, low=0.0, high=1.0)
        for name, low in (("unfreeze", 1), ("epochs", 1), ("fine_tune_epochs", 0), ("batch_size", 1),
                          ("head_units", 0), ("patience", 0)):
            if self._decided(name):
                _check_range(name, getattr(self, name), low=low)

    def _decided(self, name: str) -> bool:
        """Whether option ``name`` has a value to check: every option but those left to later (``None`` in
        :data:`AUTO_WHEN_NONE`)."""
        return name not in AUTO_WHEN_NONE or getattr(self, name) is not None

    @property
    def data_items(self) -> list[str]:
        """``data`` as a list of strings (one folder, or HDF5 files, folders, globs, ``class=...``)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    def default_out(self) -> str:
        """``runs/<backbone>-<optimizer>-<fine_tune>``, used when ``out`` is not given."""
        return str(Path("runs") / f"{self.backbone}-{self.optimizer}-{self.fine_tune}")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-friendly values (tuples as lists), in field order."""
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


#: Defaults that depend on the kind of network (``None`` in TrainConfig means "this"): a pretrained
#: backbone's head on cached features, or a network trained from scratch. The latter, with its inputs
#: standardised and eta-phi images augmented, keeps improving for long: on the bundled toy sample smallcnn's
#: best epoch was always among the last. Accuracy on 4,500 independent events (trees: 0.855): 0.78-0.81
#: after 40 epochs with the rate halved on plateaus (stopped at epoch 22 by a noisy validation loss), 0.828
#: after 60 epochs warmed up to 3e-3 and decayed on a cosine (``--lr-schedule auto``), 0.842 after 100.
#: The warm-up is what makes 3e-3 safe: without it 3e-3 had collapsed on a small log-scaled array sample.
#: Patience 20 only stops a run going nowhere.
RECIPE_DEFAULTS = {
    True: {"lr": 1e-3, "epochs": 20, "patience": 5},
    False: {"lr": 3e-3, "epochs": 100, "patience": 20},
}


def recipe_defaults(pretrained: bool, own: dict | None = None) -> dict:
    """``lr``, ``epochs`` and ``patience`` when not given, for a pretrained backbone or a network from scratch,
    with a network's ``own`` measured exceptions (``BackboneSpec.recipe``) on top."""
    return {**RECIPE_DEFAULTS[bool(pretrained)], **(own or {})}


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


@dataclass(frozen=True)
class CliOption:
    """One flag of the training command: ``parser.add_argument_group(OPTION_GROUPS[group])
    .add_argument(flag, **arguments)``; its value lands in ``TrainConfig.<name>``."""

    name: str
    flag: str
    group: str
    arguments: dict


#: How a field's annotation (``T`` or ``Optional[T]``) becomes a flag: T -> add_argument arguments (else: text).
FLAG_KINDS = {"bool": {"action": argparse.BooleanOptionalAction}, "int": {"type": int}, "float": {"type": float}}


def _default_text(value) -> str:
    if isinstance(value, tuple):
        value = ",".join(f"{v:g}" for v in value)
    return f"default: {value}"


def _recipe_text(name: str) -> str:
    """The per-kind default of lr, epochs, patience (:data:`RECIPE_DEFAULTS`)."""
    if name not in RECIPE_DEFAULTS[True]:
        return ""
    from transfer.models.backbones import COMPACT_RECIPES

    own = "".join(f"; {recipe[name]:g} for {net}" for net, recipe in COMPACT_RECIPES.items() if name in recipe)
    return (f"default: {RECIPE_DEFAULTS[True][name]:g} for pretrained backbones, {RECIPE_DEFAULTS[False][name]:g} "
            f"for networks trained from scratch{own}")


def _base_type(annotation) -> str:
    """``"int"`` for ``int``, ``"int"``, ``Optional[int]`` or ``"Optional[int]"``."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.removeprefix("typing.").removeprefix("Optional[").removesuffix("]")


def cli_options(config_class: type | None = None) -> list[CliOption]:
    """The flags of ``python -m transfer`` (and ``lr-find``), one per :class:`TrainConfig` field, in field order.

    Help, metavar, choices and nargs come from the field's :func:`option`
    metadata, the type from its annotation; no default is set (a flag that is
    not given leaves the value of ``--config`` or TrainConfig's default).
    ``config_class``: another dataclass of :func:`option` fields (default TrainConfig).
    """
    from transfer.models.backbones import BACKBONES
    from transfer.optimizers import OPTIMIZERS

    names = {"backbones": ", ".join(sorted(BACKBONES)), "optimizers": ", ".join(OPTIMIZERS),
             "compact": ", ".join(sorted(name for name, spec in BACKBONES.items() if not spec.pretrained))}
    options = []
    for f in dataclasses.fields(config_class or TrainConfig):
        meta = f.metadata
        kind = FLAG_KINDS.get(_base_type(f.type), {})
        arguments = {**kind, "help": meta["help"].format(default=_default_text(f.default),
                                                         recipe=_recipe_text(f.name), **names)}
        arguments.update({key: meta[key] for key in ("metavar", "choices", "nargs") if meta.get(key) is not None})
        options.append(CliOption(f.name, "--" + f.name.replace("_", "-"), meta["group"], arguments))
    return options


def parse_data(value) -> str | list[str]:
    """``--data``: one value stays a string, several become a list of strings."""
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value or [])
    items = [str(item) for item in items if str(item).strip()]
    if not items:
        raise OptionError("--data is required: an image folder with manifest.csv or class subfolders, "
                            "or HDF5 files (CLASS=FILE ... or FILE --y-key KEY --classes A,B) with --x-key")
    return items[0] if len(items) == 1 else items


def parse_train_fraction(value) -> tuple[float, ...] | None:
    """``"0.1,0.3,1"`` or a sequence -> distinct fractions in (0, 1], ascending."""
    if value is None or value == "":
        return None
    try:
        parts = [float(p) for p in (value.split(",") if isinstance(value, str) else
                                    (value if isinstance(value, (list, tuple)) else [value]))]
    except (TypeError, ValueError):
        parts = []
    if not parts or any(not 0 < p <= 1 for p in parts) or len(set(parts)) != len(parts):
        raise OptionError(f"train_fraction {value!r}: expected distinct fractions in (0, 1] separated by "
                            "commas, e.g. 0.1,0.3,1.0")
    return tuple(sorted(parts))


def parse_image_size(value) -> tuple[int, int] | None:
    """``None``, ``64``, ``"64"``, ``"64x48"`` or ``[64, 48]`` -> ``(height, width)``."""
    if value is None or value == "" or value == "native":
        return None
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().replace(",", "x").split("x")]
        elif isinstance(value, (list, tuple)):
            parts = [int(p) for p in value]
        elif isinstance(value, int) and not isinstance(value, bool):
            parts = [value]
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(f"image_size {value!r}: expected N or HEIGHTxWIDTH in pixels, e.g. 64 or 64x48") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise OptionError(f"image_size {value!r}: expected N or HEIGHTxWIDTH in pixels, e.g. 64 or 64x48")
    return tuple(parts)


def parse_split(value) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` or a sequence -> fractions (train, validation, test) summing to 1."""
    try:
        parts = [float(p) for p in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-6:
        raise OptionError(f"split {value!r}: expected three positive fractions train,validation,test "
                            "that sum to 1, e.g. 0.8,0.1,0.1")
    return tuple(parts)


def parse_classes(value) -> list[str] | None:
    if value is None or value == "":
        return None
    names = [c.strip() for c in value.split(",")] if isinstance(value, str) else [str(c) for c in value]
    if any(not c for c in names) or len(set(names)) != len(names):
        raise OptionError(f"classes {value!r}: expected distinct, non-empty class names separated by commas")
    return names


def _check_choice(name, value, choices):
    if value not in choices:
        raise OptionError(f"{name} {value!r}: choose one of {', '.join(choices)}")


def _check_range(name, value, low=None, high=None, low_open=False):
    if low is not None and (value <= low if low_open else value < low):
        raise OptionError(f"{name} {value!r}: must be {'>' if low_open else '>='} {low}")
    if high is not None and value >= high:
        raise OptionError(f"{name} {value!r}: must be < {high}")


def _as_text(name, value) -> str | None:
    """Optional text options; a YAML list (e.g. channels: [0, 1]) becomes ``"0,1"``."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _as_int(name, value) -> int:
    if isinstance(value, bool):
        raise OptionError(f"{name} {value!r}: expected an integer")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} {value!r}: expected an integer") from None
    if number != int(number):
        raise OptionError(f"{name} {value!r}: expected an integer")
    return int(number)


def _as_float(name, value) -> float:
    if isinstance(value, bool):
        raise OptionError(f"{name} {value!r}: expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} {value!r}: expected a number") from None


def _as_bool(name, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise OptionError(f"{name} {value!r}: expected true or false")


def read_config_file(path: str | os.PathLike, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Options from a YAML file; unknown keys are an error, recorded keys are dropped (see :func:`check_options`)."""
    import yaml

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except OSError as exc:
        raise OptionError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise OptionError(f"--config {path}: not valid YAML ({exc})") from None
    return check_options(values, path, extra)


def check_options(values, path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options of a YAML mapping read from ``path``; unknown keys (besides ``extra``) are an error,
    recorded keys are dropped, ``extra`` keys are kept as they are (``python -m transfer grid``'s axes)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise OptionError(f"--config {path}: expected a mapping of option: value")
    grid_keys = {k: values.pop(k) for k in extra if k in values}
    known = set(option_names())
    unknown = sorted(k for k in values if k not in known and k not in RECORDED_KEYS)
    if unknown:
        raise OptionError(f"--config {path}: unknown option(s) {', '.join(map(str, unknown))}; "
                            f"valid options: {', '.join(option_names())}")
    for key, value in values.items():
        if isinstance(value, dict) or (isinstance(value, list) and key not in LIST_OPTIONS):
            kind = "a mapping" if isinstance(value, dict) else "a list"
            raise OptionError(f"--config {path}: {key}: expected a single value, got {kind} ({value!r}); "
                                f"write e.g. `{key}: {_example(value)}`")
    return {**{k: v for k, v in values.items() if k in known}, **grid_keys}


def _example(value) -> str:
    """The first element of a list (or mapping) a single value was expected in place of."""
    items = list(value.values() if isinstance(value, dict) else value)
    return str(items[0]) if items else "VALUE"


def load_config(path: str | os.PathLike | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file, with ``overrides`` (e.g. CLI flags) on top."""
    values = read_config_file(path) if path else {}
    values.update(overrides)
    values.setdefault("data", None)  # TrainConfig names what is missing
    return TrainConfig(**values)


def save_config(config: TrainConfig, path: str | os.PathLike, recorded: dict[str, Any] | None = None) -> Path:
    """Write ``config`` (and the run's ``recorded`` facts) as YAML, atomically."""
    import yaml

    path = Path(path)
    text = ("# hepvision transfer run: the fully resolved options. Reproduce with\n"
            "#   python -m transfer --config THIS_FILE --out NEW_FOLDER\n"
            + yaml.safe_dump(config.to_dict(), sort_keys=False))
    if recorded:
        text += ("# Recorded by the run (ignored when this file is read back as options):\n"
                 + yaml.safe_dump(recorded, sort_keys=False))
    write_text_atomic(path, text)
    return path
