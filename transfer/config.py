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

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from transfer.errors import TransferError
from transfer.files import write_text_atomic

FINE_TUNE_MODES = ("frozen", "partial", "full")
#: ``--scale`` choices: the keys of ``imgen.arrays.SCALES`` (a test checks they agree).
SCALES = ("none", "log", "standardize")
CLASS_WEIGHTS = ("auto", "none", "balanced")
#: ``--baseline`` choices: gradient-boosted trees on the same events (transfer.baseline), or none.
BASELINES = ("trees", "none")
ON_MISSING_WEIGHTS = ("error", "random")
AUTO_ON_OFF = ("auto", "on", "off")
DISTRIBUTE = ("none", "mirrored", "multiworker")
#: Keys a run writes into config.yaml as a record; ignored when read back.
#: Options that may be a list in a YAML file (several values); every other option takes one value.
LIST_OPTIONS = ("data", "image_size", "classes", "split", "train_fraction", "x_key", "channels")
RECORDED_KEYS = ("weights_used", "weights_reason", "weights_file", "hepvision_version", "created", "fold",
                 "train_fraction_run")


@dataclass
class TrainConfig:
    """Every option of a training run (the CLI flags, with ``-`` as ``_``).

    See ``python -m transfer --help`` for what each one does; the defaults
    here are the CLI's defaults. Values are checked and normalised on
    construction (``image_size="64x48"`` becomes ``(64, 48)``, ``split``
    may be ``"0.8,0.1,0.1"``, ``classes`` may be ``"a,b"``,
    ``train_fraction`` may be ``"0.1,0.3,1"``). ``data`` is one string (an
    image folder, an HDF5 file) or a list of them (HDF5 files, folders, globs,
    ``class=...`` items); see :mod:`transfer.sources` for how it is read.
    """

    data: Any
    out: Optional[str] = None
    backbone: str = "vgg19"
    weights: str = "auto"
    on_missing_weights: str = "error"
    fine_tune: str = "partial"
    unfreeze: int = 4
    fine_tune_lr_factor: float = 0.1
    optimizer: str = "adam"
    lr: Optional[float] = None
    epochs: Optional[int] = None
    fine_tune_epochs: int = 10
    batch_size: int = 32
    image_size: Optional[tuple] = None
    head_units: int = 256
    dropout: float = 0.3
    patience: Optional[int] = None
    classes: Optional[list] = None
    split: tuple = (0.8, 0.1, 0.1)
    seed: int = 42
    feature_cache: bool = True
    augment_on_the_fly: Optional[bool] = None
    mixed_precision: str = "auto"
    xla: str = "auto"
    distribute: str = "none"
    overwrite: bool = False
    verbose: int = 2
    x_key: Optional[str] = None
    y_key: Optional[str] = None
    channels: Optional[str] = None
    scale: str = "none"
    min_value: Optional[float] = None
    crop: bool = False
    class_weight: str = "auto"
    signal: Optional[str] = None
    folds: int = 0
    train_fraction: Optional[tuple] = None
    baseline: str = "trees"
    strict: bool = False

    def __post_init__(self):
        from transfer.backbones import get_backbone
        from transfer.optimizers import OPTIMIZERS

        self.data = parse_data(self.data)
        spec = get_backbone(self.backbone)
        for name, value in recipe_defaults(spec.pretrained).items():  # per kind of network, not a fallback
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.out = None if self.out in (None, "") else str(self.out)
        for name in ("unfreeze", "epochs", "fine_tune_epochs", "batch_size", "head_units",
                     "patience", "seed", "verbose", "folds"):
            setattr(self, name, _as_int(name, getattr(self, name)))
        for name in ("fine_tune_lr_factor", "lr", "dropout"):
            setattr(self, name, _as_float(name, getattr(self, name)))
        for name in ("feature_cache", "augment_on_the_fly", "overwrite", "crop", "strict"):
            if name != "augment_on_the_fly" or self.augment_on_the_fly is not None:  # None: auto
                setattr(self, name, _as_bool(name, getattr(self, name)))
        self.weights = "none" if self.weights is None else str(self.weights)
        self.image_size = parse_image_size(self.image_size)
        self.split = parse_split(self.split)
        self.classes = parse_classes(self.classes)
        for name in ("x_key", "y_key", "channels", "signal"):
            setattr(self, name, _as_text(name, getattr(self, name)))
        if self.min_value is not None:
            self.min_value = _as_float("min_value", self.min_value)
        self.train_fraction = parse_train_fraction(self.train_fraction)
        _check_choice("scale", self.scale, SCALES)
        _check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _check_choice("baseline", self.baseline, BASELINES)
        if self.folds == 1 or self.folds < 0:
            raise TransferError(f"folds {self.folds}: cross-validation needs at least 2 folds (0 turns it off)")
        if self.folds and self.train_fraction:
            raise TransferError("folds and train_fraction cannot be combined: run the training-set-size "
                                "scan and the cross-validation separately")
        _check_choice("fine_tune", self.fine_tune, FINE_TUNE_MODES)
        _check_choice("on_missing_weights", self.on_missing_weights, ON_MISSING_WEIGHTS)
        _check_choice("mixed_precision", self.mixed_precision, AUTO_ON_OFF)
        _check_choice("xla", self.xla, AUTO_ON_OFF)
        _check_choice("distribute", self.distribute, DISTRIBUTE)
        if self.optimizer not in OPTIMIZERS:
            raise TransferError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.weights == "auto":  # a default per kind of network, not a fallback
            self.weights = "imagenet" if spec.pretrained else "none"
        _check_range("lr", self.lr, low=0.0, low_open=True)
        _check_range("fine_tune_lr_factor", self.fine_tune_lr_factor, low=0.0, low_open=True)
        _check_range("dropout", self.dropout, low=0.0, high=1.0)
        for name, low in (("unfreeze", 1), ("epochs", 1), ("fine_tune_epochs", 0), ("batch_size", 1),
                          ("head_units", 0), ("patience", 0)):
            _check_range(name, getattr(self, name), low=low)

    @property
    def uses_feature_cache(self) -> bool:
        """The frozen stage trains the head on cached backbone outputs (never with augmentation)."""
        return self.feature_cache and not self.augment_on_the_fly  # auto (None) never augments a frozen stage

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
#: backbone's head on cached features, or a network trained from scratch (which, with its inputs standardised
#: and eta-phi images augmented, keeps improving for longer; 3e-3 was a little better on the toy images and
#: collapsed on a small log-scaled array sample, so both start at 1e-3).
RECIPE_DEFAULTS = {
    True: {"lr": 1e-3, "epochs": 20, "patience": 5},
    False: {"lr": 1e-3, "epochs": 40, "patience": 8},
}


def recipe_defaults(pretrained: bool) -> dict:
    """``lr``, ``epochs`` and ``patience`` when not given, for a pretrained backbone or a network from scratch."""
    return dict(RECIPE_DEFAULTS[bool(pretrained)])


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def parse_data(value) -> str | list[str]:
    """``--data``: one value stays a string, several become a list of strings."""
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value or [])
    items = [str(item) for item in items if str(item).strip()]
    if not items:
        raise TransferError("--data is required: an image folder with manifest.csv or class subfolders, "
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
        raise TransferError(f"train_fraction {value!r}: expected distinct fractions in (0, 1] separated by "
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
        raise TransferError(f"image_size {value!r}: expected N or HEIGHTxWIDTH in pixels, e.g. 64 or 64x48") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise TransferError(f"image_size {value!r}: expected N or HEIGHTxWIDTH in pixels, e.g. 64 or 64x48")
    return tuple(parts)


def parse_split(value) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` or a sequence -> fractions (train, validation, test) summing to 1."""
    try:
        parts = [float(p) for p in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-6:
        raise TransferError(f"split {value!r}: expected three positive fractions train,validation,test "
                            "that sum to 1, e.g. 0.8,0.1,0.1")
    return tuple(parts)


def parse_classes(value) -> list[str] | None:
    if value is None or value == "":
        return None
    names = [c.strip() for c in value.split(",")] if isinstance(value, str) else [str(c) for c in value]
    if any(not c for c in names) or len(set(names)) != len(names):
        raise TransferError(f"classes {value!r}: expected distinct, non-empty class names separated by commas")
    return names


def _check_choice(name, value, choices):
    if value not in choices:
        raise TransferError(f"{name} {value!r}: choose one of {', '.join(choices)}")


def _check_range(name, value, low=None, high=None, low_open=False):
    if low is not None and (value <= low if low_open else value < low):
        raise TransferError(f"{name} {value!r}: must be {'>' if low_open else '>='} {low}")
    if high is not None and value >= high:
        raise TransferError(f"{name} {value!r}: must be < {high}")


def _as_text(name, value) -> str | None:
    """Optional text options; a YAML list (e.g. channels: [0, 1]) becomes ``"0,1"``."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _as_int(name, value) -> int:
    if isinstance(value, bool):
        raise TransferError(f"{name} {value!r}: expected an integer")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TransferError(f"{name} {value!r}: expected an integer") from None
    if number != int(number):
        raise TransferError(f"{name} {value!r}: expected an integer")
    return int(number)


def _as_float(name, value) -> float:
    if isinstance(value, bool):
        raise TransferError(f"{name} {value!r}: expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TransferError(f"{name} {value!r}: expected a number") from None


def _as_bool(name, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise TransferError(f"{name} {value!r}: expected true or false")


def read_config_file(path: str | os.PathLike, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Options from a YAML file; unknown keys are an error, recorded keys are dropped (see :func:`check_options`)."""
    import yaml

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except OSError as exc:
        raise TransferError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise TransferError(f"--config {path}: not valid YAML ({exc})") from None
    return check_options(values, path, extra)


def check_options(values, path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options of a YAML mapping read from ``path``; unknown keys (besides ``extra``) are an error,
    recorded keys are dropped, ``extra`` keys are kept as they are (``python -m transfer grid``'s axes)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise TransferError(f"--config {path}: expected a mapping of option: value")
    grid_keys = {k: values.pop(k) for k in extra if k in values}
    known = set(option_names())
    unknown = sorted(k for k in values if k not in known and k not in RECORDED_KEYS)
    if unknown:
        raise TransferError(f"--config {path}: unknown option(s) {', '.join(map(str, unknown))}; "
                            f"valid options: {', '.join(option_names())}")
    for key, value in values.items():
        if isinstance(value, dict) or (isinstance(value, list) and key not in LIST_OPTIONS):
            kind = "a mapping" if isinstance(value, dict) else "a list"
            raise TransferError(f"--config {path}: {key}: expected a single value, got {kind} ({value!r}); "
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
