"""A backbone from an earlier run: ``--weights RUN_FOLDER`` or ``--weights RUN/model.keras``.

Warm starts and transfer between our own runs (weaver-core's
``--load-model-weights``): the backbone is dug out of the run's saved
classifier (:class:`transfer.models.layers.InferenceMode` wraps it in runs with
pretrained weights; runs from scratch call it directly) and its weights are
loaded into the new run's backbone before any training, which then fine-tunes
in two stages exactly as from ImageNet weights.

What the backbone was trained on travels with it as a *record*:
``pretrained.json`` where ``python -m transfer pretrain`` wrote one (with the
weights in ``backbone.weights.h5`` beside it), otherwise read from the run's
``config.yaml`` and ``classes.json`` (and the rendering style from its image
folder's ``imgen-config.json``, when that is still there). A run whose backbone,
input channels or rendering style do not fit the new run is refused, naming both
sides (:func:`check_fits`); the image size may differ (convolution weights do not
depend on it), which is logged.

Weights of a run without ``backbone.weights.h5`` are extracted once into the
Keras cache (``$KERAS_HOME/models/hepvision-runs/<hash of model.keras>.weights.h5``),
so the run folder itself is never written to.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from transfer.errors import TransferError
from transfer.run_folder import BACKBONE_WEIGHTS, CLASSES_FILE, CONFIG_FILE, MODEL_FILE, PRETRAINED_RECORD

log = logging.getLogger(__name__)

#: Subfolder of the Keras weights cache for backbones extracted from run folders.
EXTRACTED_FOLDER = "hepvision-runs"


def is_run_reference(value: str) -> bool:
    """``value`` names a run folder, a run's ``model.keras``, or a ``backbone.weights.h5`` with its record."""
    path = Path(value).expanduser()
    if path.is_dir():
        return True
    if path.is_file() and path.suffix == ".keras":
        return any((path.parent / name).is_file() for name in (CLASSES_FILE, CONFIG_FILE))
    return path.is_file() and (path.parent / PRETRAINED_RECORD).is_file() \
        and _read_json(path.parent / PRETRAINED_RECORD).get("weights_file") == path.name


def run_folder_of(value: str) -> Path:
    path = Path(value).expanduser()
    folder = path if path.is_dir() else path.parent
    if not (folder / MODEL_FILE).is_file() and not (folder / PRETRAINED_RECORD).is_file():
        raise TransferError(f"--weights {value}: {folder} is not a run folder (it has no {MODEL_FILE}); "
                            "expected imagenet, none, toy-cms, a run folder, RUN/model.keras or a weights file")
    return folder


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TransferError(f"{path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise TransferError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise TransferError(f"{path}: expected a JSON object")
    return value


def style_of_images(root) -> str | None:
    """The rendering style of an image folder written by ``imgen`` (its imgen-config.json), else ``None``."""
    from imgen.features import read_imgen_config

    try:
        return ((read_imgen_config(root) or {}).get("render") or {}).get("style")
    except (ValueError, OSError):
        return None


#: data kind -> the rendering style of a view of it (``None``: unknown, not checked).
DATA_STYLES = {
    "images": lambda view: style_of_images(view.images.root),
    "arrays": lambda view: "arrays",
    "generated": lambda view: view.sample.record["render"]["style"],
}


def data_style(view) -> str | None:
    """How a run's inputs were made: ``physics``/``outline`` (imgen renderings), ``arrays``, or ``None``."""
    style = DATA_STYLES.get(view.kind)
    return style(view) if style else None


def read_run_record(folder: Path, shown: Path | None = None) -> dict:
    """What a run's backbone was trained on: its ``pretrained.json``, or one built from config.yaml and classes.json.

    ``shown`` is the folder the description names (the run's final folder while it is read from staging)."""
    if (folder / PRETRAINED_RECORD).is_file():
        return _read_json(folder / PRETRAINED_RECORD)
    import yaml

    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except OSError:
        raise TransferError(f"--weights {folder}: the run has no readable config.yaml (which backbone it "
                            "trained is recorded there)") from None
    classes = _read_json(folder / CLASSES_FILE) if (folder / CLASSES_FILE).is_file() else {}
    shape = classes.get("image_shape")
    kind = classes.get("data_kind")
    data = config.get("data")
    style = "arrays" if kind == "arrays" else (style_of_images(data) if isinstance(data, str) else None)
    size = config.get("image_size") or (shape[:2] if shape else None)
    return {"backbone": config.get("backbone"), "image_size": size, "input_shape": shape,
            "channels": shape[2] if shape else None, "channel_names": classes.get("channel_names"),
            "style": style, "classes": classes.get("classes"), "data": data,
            "description": f"the run {shown or folder} (data {data}, {kind or 'images'}, weights {config.get('weights_used')})"}


def describe_record(record: dict, folder: Path | None = None) -> str:
    """One line: what the backbone was trained on (for the report and the log)."""
    data = record.get("data")
    if isinstance(data, dict) and data.get("generator"):
        size = "x".join(map(str, record.get("image_size") or []))
        text = (f"{data['generator']} v{data['generator_version']} events (seed {data['seed']}, "
                f"{data['events_per_class']} per process, task {data['task']}), {record.get('style')} style, "
                f"{size} px, {record.get('channels')} channels")
    else:
        text = record.get("description") or f"data {data}"
    return text + (f"; pretrained in {folder}" if folder is not None else "")


def extract_backbone(model_path: Path):
    """The backbone inside a saved classifier (unwrapped from InferenceMode)."""
    import keras

    import transfer.models.layers  # noqa: F401  registers the hepvision layers model.keras holds
    from transfer.models.layers import InferenceMode

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # a damaged or foreign file: say which
        raise TransferError(f"--weights {model_path}: cannot load it ({type(exc).__name__}: {exc})") from exc
    wrapped = [layer.layer for layer in model.layers if isinstance(layer, InferenceMode)]
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != "head"]
    found = wrapped or nested
    if len(found) != 1:
        raise TransferError(f"--weights {model_path}: expected one backbone inside the saved classifier, found "
                            f"{len(found)} ({', '.join(layer.name for layer in found) or 'none'})")
    return found[0]


def save_backbone_weights(backbone, path: Path) -> Path:
    """``backbone``'s weights as a Keras ``.weights.h5`` file, written atomically."""
    from imgen.atomic import atomic_path

    with atomic_path(path, suffix=".weights.h5") as tmp:
        backbone.save_weights(str(tmp), overwrite=True)
    return path


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:20]


def backbone_weights_file(folder: Path, record: dict) -> Path:
    """The run's backbone weights: its own ``backbone.weights.h5``, or extracted into the Keras cache once."""
    own = record.get("weights_file")
    if own and (folder / own).is_file():
        return folder / own
    from transfer.weights.cache import weights_cache_dir

    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise TransferError(f"--weights {folder}: neither {BACKBONE_WEIGHTS} nor {MODEL_FILE} is there")
    target = weights_cache_dir() / EXTRACTED_FOLDER / f"{record.get('backbone')}-{_file_hash(model_path)}.weights.h5"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        save_backbone_weights(extract_backbone(model_path), target)
        log.info("extracted the backbone of %s into %s", model_path, target)
    return target


def resolve_run_weights(spec, value: str, used: str = "run"):
    """``--weights RUN`` -> :class:`transfer.weights.cache.ResolvedWeights` with the run's record; checks the backbone."""
    from transfer.weights.cache import ResolvedWeights

    folder = run_folder_of(value)
    record = read_run_record(folder)
    if record.get("backbone") != spec.name:
        raise TransferError(f"--weights {value}: that run trained backbone {record.get('backbone')!r}, this run "
                            f"uses {spec.name!r}; pretrain {spec.name} (python -m transfer pretrain --backbone "
                            f"{spec.name}) or choose --backbone {record.get('backbone')}")
    path = backbone_weights_file(folder, record)
    return ResolvedWeights(keras_arg=str(path), used=used, file=str(path),
                           pretrained_on=describe_record(record, folder), record=record)


def check_fits(spec, record: dict, view, image_size: tuple, origin: str) -> None:
    """Refuse pretrained weights whose input channels or rendering style do not fit ``view``, naming both."""
    channels = int(view.input_shape[2])
    theirs = record.get("channels")
    if theirs is not None and int(theirs) != channels:
        raise TransferError(
            f"--weights {origin}: the backbone was trained on {theirs}-channel inputs "
            f"({', '.join(record.get('channel_names') or []) or '?'}), this run's data have {channels} "
            f"({', '.join(view.channel_names)}); use weights pretrained on data like these")
    mine, style = data_style(view), record.get("style")
    if style and mine and style != mine:
        raise TransferError(
            f"--weights {origin}: the backbone was trained on {style} inputs, this run's data are {mine} "
            f"({view.describe().get('data', 'the data')}); render the data in the {style} style "
            f"(python -m imgen --style {style}) or pretrain on {mine} inputs")
    if not (style and mine):
        log.warning("--weights %s: the rendering style of %s is not recorded: it cannot be checked against "
                    "the backbone's (%s)", origin, "these data" if not mine else "the pretrained run",
                    style or "unknown")
    size = record.get("image_size")
    if size and list(size) != list(image_size):
        log.info("--weights %s: the backbone was trained at %s px, this run shows it %s px", origin,
                 "x".join(map(str, size)), "x".join(map(str, image_size)))


