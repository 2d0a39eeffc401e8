"""A run folder: the name of every file a run writes, and reading them back.

Training writes a run folder through this module; ``predict``, ``ensemble``,
``export`` (and anything else that takes a finished run) read it through this
module, so a file's name and format are decided in one place::

    RUN/model.keras        the trained network, preprocessing inside (load_model)
    RUN/classes.json       class names in score order, input shape, dtype, data kind (read_classes)
    RUN/arrays.json        HDF5 runs: how to read and scale new files (read_arrays_info)
    RUN/config.yaml        the resolved options, plus recorded facts (write_config, read_config)
    RUN/metrics.json       every figure of the run (write_metrics, read_metrics)
    RUN/split.csv, predictions.csv, history.csv, confusion_matrix.csv/.png, roc.png,
    discriminant.png, training_curves.png, report.md
    RUN/pretrained.json, backbone.weights.h5   python -m transfer pretrain: the record and the backbone alone
    RUN/explain/                               python -m transfer explain: attribution maps (PNG), their
                                               arrays (explain.npz) and the sanity check (explain.json)
    OUT/folds_summary.json, .md                --folds: the summary beside OUT/fold-K/ run folders

Functions that read take the path of ``model.keras`` (the files are found
beside it) and raise :class:`~transfer.errors.RunFolderError` naming the file
and what is missing. Example::

    from transfer.run_folder import load_model, read_classes
    model = load_model("runs/cnn/model.keras")
    read_classes("runs/cnn/model.keras")["classes"]
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from imgen._version import __version__
from transfer.errors import RunFolderError
from transfer.files import read_run_json

MODEL_FILE = "model.keras"
CLASSES_FILE = "classes.json"
ARRAYS_FILE = "arrays.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
SPLIT_FILE = "split.csv"
PREDICTIONS_FILE = "predictions.csv"
HISTORY_FILE = "history.csv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc.png"
DISCRIMINANT_PNG = "discriminant.png"
CURVES_PNG = "training_curves.png"
REPORT_FILE = "report.md"
#: ``python -m transfer pretrain`` adds what the backbone was pretrained on, and its weights alone.
PRETRAINED_RECORD = "pretrained.json"
BACKBONE_WEIGHTS = "backbone.weights.h5"
#: An experiment's folder (``--folds``) holds one run folder per fold and these summaries.
FOLDS_SUMMARY_JSON = "folds_summary.json"
FOLDS_SUMMARY_MD = "folds_summary.md"
#: ``python -m transfer explain`` writes into this sub-folder of the run: the maps of every method as arrays,
#: the numbers (sanity check, counts, what was explained), and the figures.
EXPLAIN_DIR = "explain"
EXPLAIN_ARRAYS = "explain.npz"
EXPLAIN_SUMMARY = "explain.json"
EXPLAIN_SANITY_PNG = "sanity.png"
#: Per-event figures: the most confidently right and the most confidently wrong events.
EXPLAIN_EVENTS_PNG = {"right": "events_right.png", "wrong": "events_wrong.png"}


def explain_class_maps_png(method: str) -> str:
    """``explain/class_maps_<method>.png``: one method's maps per class, beside the class's mean input."""
    return f"class_maps_{method}.png"


#: Every file of a training run's folder (``arrays.json`` only for HDF5 data).
RUN_FILES = (MODEL_FILE, CLASSES_FILE, CONFIG_FILE, METRICS_FILE, SPLIT_FILE, PREDICTIONS_FILE, HISTORY_FILE,
             CONFUSION_CSV, CONFUSION_PNG, ROC_PNG, DISCRIMINANT_PNG, CURVES_PNG, REPORT_FILE)


def model_file(run: str | os.PathLike) -> Path:
    """``RUN/model.keras`` for a run folder; a path to the model itself is returned as it is."""
    run = Path(run)
    return run / MODEL_FILE if run.is_dir() else run


# --------------------------------------------------------------------------
# Writing (into the staged folder of a run)
# --------------------------------------------------------------------------

def write_json(folder: str | os.PathLike, name: str, content: dict) -> Path:
    """``folder/name`` as indented JSON with a final newline (the format of every JSON file of a run)."""
    path = Path(folder) / name
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return path


def classes_info(class_names: list[str], image_shape, data_kind: str, input_dtype: str,
                 channel_names) -> dict:
    """The content of ``classes.json``: names and ids in score order, and what the model takes."""
    return {"classes": list(class_names), "ids": {c: i for i, c in enumerate(class_names)},
            "image_shape": list(image_shape), "data_kind": data_kind, "input_dtype": input_dtype,
            "channel_names": list(channel_names)}


def write_classes(folder: str | os.PathLike, view) -> Path:
    """``classes.json`` of a run trained on ``view`` (a :class:`~transfer.data.DataView`)."""
    return write_json(folder, CLASSES_FILE, classes_info(view.class_names, view.input_shape, view.kind,
                                                         view.input_dtype, view.channel_names))


def write_metrics(folder: str | os.PathLike, metrics: dict) -> Path:
    return write_json(folder, METRICS_FILE, metrics)


def run_facts(weights, **extra) -> dict:
    """What ``config.yaml`` records about a run besides its options: the weights it used, version, time.

    ``weights`` is a :class:`~transfer.weights.cache.ResolvedWeights`; ``extra``
    adds facts such as the fold (keys of :data:`transfer.config.RECORDED_KEYS`).
    """
    return {"weights_used": weights.used, "weights_reason": weights.reason, "weights_file": weights.file,
            "hepvision_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def write_config(folder: str | os.PathLike, config, facts: dict | None = None) -> Path:
    """``config.yaml``: ``config`` (a TrainConfig) and the run's ``facts``, ignored when read back."""
    from transfer.config import save_config

    return save_config(config, Path(folder) / CONFIG_FILE, facts)


def save_model(folder: str | os.PathLike, model) -> Path:
    """``model.keras``: the model without its optimizer state, as predict and export load it."""
    from transfer.models.classifier import export_model

    path = Path(folder) / MODEL_FILE
    export_model(model).save(path)
    return path


# --------------------------------------------------------------------------
# Reading (beside a run's model.keras)
# --------------------------------------------------------------------------

def require_model(model_path: str | os.PathLike) -> Path:
    """The ``model.keras`` that ``--model`` names (the file, or a run folder holding it, as ``--weights RUN``
    takes one); else the error every command gives for a missing ``--model``."""
    given = Path(model_path)
    model_path = model_file(given)
    if given.is_dir() and not model_path.is_file():
        raise RunFolderError(f"--model {given}: a folder without {MODEL_FILE}; give a run folder (written by "
                             f"python -m transfer) or its {MODEL_FILE}")
    if not model_path.is_file():
        raise RunFolderError(f"--model {given}: no such file or run folder")
    return model_path


def read_classes(model_path: str | os.PathLike) -> dict:
    """``classes.json`` beside ``model_path``: class names in score order and the image shape."""
    info = read_run_json(model_path, CLASSES_FILE, ("classes",))
    if not isinstance(info["classes"], list):
        raise RunFolderError(f"{Path(model_path).with_name(CLASSES_FILE)}: expected \"classes\" to be a list")
    return info


def data_kind(model_path: str | os.PathLike, known) -> str:
    """The ``data_kind`` of ``classes.json`` (``images`` for runs that predate it), checked against ``known``."""
    kind = read_classes(model_path).get("data_kind", "images")
    if kind not in known:
        raise RunFolderError(f"{Path(model_path).with_name(CLASSES_FILE)}: unknown data_kind {kind!r}")
    return kind


def read_arrays_info(model_path: str | os.PathLike) -> dict:
    """``arrays.json`` beside ``model_path``: the reader's configuration and the fitted transform."""
    return read_run_json(model_path, ARRAYS_FILE, ("arrays", "transform"))


def read_metrics(run: str | os.PathLike) -> dict:
    """``metrics.json`` of a run folder (or of the folder of a ``model.keras``)."""
    return read_run_json(model_file(run), METRICS_FILE, ())


def recorded_class_names(run: str | os.PathLike) -> list[str] | None:
    """The class names a run folder records (``classes.json``, else ``metrics.json``); ``None`` if neither says.

    For readers that can fall back on other evidence (the score columns of ``predictions.csv``).
    """
    for name in (CLASSES_FILE, METRICS_FILE):
        try:
            names = json.loads((Path(run) / name).read_text(encoding="utf-8")).get("classes")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        return list(names) if names else None
    return None


def read_config(model_path: str | os.PathLike, missing_ok: bool = False) -> dict:
    """The options in ``config.yaml`` beside ``model_path`` (recorded facts left out); ``{}`` if
    ``missing_ok`` and there is none."""
    from transfer.config import read_config_file

    path = Path(model_path).with_name(CONFIG_FILE)
    if missing_ok and not path.is_file():
        return {}
    return read_config_file(path)


def check_keras_archive(model_path: Path) -> None:
    """A ``.keras`` file is a zip archive: say so when it is truncated or damaged.

    (Keras itself reports a damaged archive as "File not found".)
    """
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RunFolderError(f"--model {model_path}: not a readable Keras model: the .keras zip archive is "
                             f"truncated or damaged ({exc}); copy or save it again") from None
    if damaged is not None:
        raise RunFolderError(f"--model {model_path}: not a readable Keras model: member {damaged} of the .keras "
                             "zip archive is damaged; copy or save it again")


def load_model(model_path: str | os.PathLike):
    """Load a run's ``model.keras`` (safe mode: no arbitrary code); a missing or damaged file is
    named before TensorFlow is imported."""
    model_path = require_model(model_path)
    check_keras_archive(model_path)
    import keras

    import transfer.models.layers  # noqa: F401  registers the custom layers for deserialisation

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as exc:
        raise RunFolderError(f"--model {model_path}: not a readable Keras model ({exc})") from exc
