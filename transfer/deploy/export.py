"""Export a trained run where physicists deploy it: ONNX, TF SavedModel, TFLite, hls4ml firmware.

Example::

    from transfer.deploy.export import export_model_files
    check = export_model_files("runs/cnn/model.keras", ["onnx", "hls4ml"], "deploy/cnn")
    check["formats"]["onnx"]["max_abs_diff"]

``python -m transfer export --model RUN/model.keras --format onnx,savedmodel,tflite,hls4ml --out DIR``
writes into ``DIR``:

* ``model.onnx`` (ONNX Runtime in CMSSW/Athena/C++), ``saved_model/`` (TensorFlow
  Serving, ``tf.saved_model.load``), ``model.tflite`` (LiteRT / the TFLite
  interpreter): the whole Keras model, its preprocessing included, so each takes
  exactly what ``model.keras`` takes (raw uint8 images, or float32 arrays after
  the run's ``arrays.json`` transform) and needs no hepvision to run;
* ``hls4ml/``: an HLS project of a compact network for an FPGA (fixed point),
  ready for C synthesis with Vitis HLS or Vivado HLS, which is the user's next step;
* ``preprocessing.json``: what must happen to an event before the exported
  model sees it (the array transform with its training statistics, or nothing
  for images; for hls4ml also the in-model preprocessing it cannot hold);
* ``README.md``: how to run each exported model, in about ten lines each;
* ``export_check.json``: each export run in its own runtime on the run's test
  events (the ``predictions.csv`` rows) against Keras: largest score
  difference, test ROC AUC of both, and for hls4ml the precision per layer and
  the resource estimate.

ONNX, SavedModel and TFLite must reproduce the Keras scores to
:data:`FLOAT_TOLERANCE`, or the export fails and ``DIR`` is not written. The
fixed-point hls4ml model differs by design; its AUC next to the float one's is
the number to judge it by.

The libraries come with the ``export`` extra (``pip install 'hepvision[export]'``),
not with the base install; a missing one is named with that hint before any work.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from transfer.deploy.firmware import (PROFILE_EVENTS, HlsOptions, _write_hls4ml, agreement_line, check_fits_fpga,
                                      emulate, fixed_point_agreement, hls_inputs, relocate_hls_project)
from transfer.deploy.runtimes import (_run_onnx, _run_saved_model, _run_tflite, _write_onnx, _write_saved_model,
                                      _write_tflite, require, single_input_model)
from transfer.errors import TransferError
from transfer.files import check_output_folder, output_lock, staged_folder, write_text_atomic
from transfer.run_folder import (CLASSES_FILE, PREDICTIONS_FILE, SPLIT_FILE, data_kind, load_model,
                                 read_arrays_info, read_classes, read_config, require_model)

log = logging.getLogger(__name__)

#: ONNX, SavedModel and TFLite scores must agree with Keras to this, in every score.
FLOAT_TOLERANCE = 1e-4
CHECK_FILE = "export_check.json"
PREPROCESSING_FILE = "preprocessing.json"


@dataclass(frozen=True)
class TestEvents:
    """The run's test events as ``model.keras`` takes them, with their labels and ids."""

    inputs: np.ndarray
    labels: np.ndarray
    ids: list


# --------------------------------------------------------------------------
# The run: model, classes, test events
# --------------------------------------------------------------------------


def parse_formats(formats) -> list[str]:
    """``"onnx,tflite"`` or a list -> known format names, in the order given, without repeats."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [item.strip().lower() for item in items if item.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise TransferError(f"--format {','.join(names) or '(none)'}: choose from {', '.join(FORMATS)}"
                            + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return list(dict.fromkeys(names))


def _read_predictions(model_path: Path):
    import pandas as pd

    path = model_path.with_name(PREDICTIONS_FILE)
    try:
        table = pd.read_csv(path)
    except OSError:
        raise TransferError(f"{path}: not found; export checks every format on the run's test events, "
                            "which training lists there") from None
    if table.empty or not {"path", "true_class"} <= set(table.columns):
        raise TransferError(f"{path}: expected the test events with columns path, true_class")
    return table


def _labels(table, class_names: list[str], where: Path) -> np.ndarray:
    ids = {name: k for k, name in enumerate(class_names)}
    unknown = sorted(set(table["true_class"]) - set(ids))
    if unknown:
        raise TransferError(f"{where}: true_class {', '.join(map(str, unknown))} not among the classes "
                            f"{', '.join(class_names)} of {CLASSES_FILE}")
    return table["true_class"].map(ids).to_numpy(np.int64)


def _image_events(model_path: Path, table, info: dict) -> np.ndarray:
    """The test PNGs as uint8 (N, H, W, C), decoded as in training: paths are relative to the run's data folder."""
    from transfer.data.batches import decode_png

    data = read_config(model_path).get("data")
    root = Path(data[0] if isinstance(data, list) else data) if data else Path(".")
    shape = tuple(info["image_shape"])
    images = []
    for name in table["path"]:
        path = Path(name) if Path(name).is_absolute() else root / name
        try:
            image = decode_png(str(path), shape[2])
        except (OSError, ValueError) as exc:
            raise TransferError(f"{path}: cannot read this test image of {model_path.with_name(PREDICTIONS_FILE)} "
                                f"({exc}); the run's data folder ({root}) must still be there") from None
        if image.shape != shape:
            raise TransferError(f"{path}: {image.shape}, but the model takes {shape}")
        images.append(image)
    return np.stack(images).astype(np.uint8)


def _array_events(model_path: Path, table, info: dict) -> np.ndarray:
    """The test events (``file#row``) read and transformed as the run's ``arrays.json`` says."""
    from imgen.arrays import ArrayTransform, open_arrays
    from imgen.errors import ImgenError
    saved = read_arrays_info(model_path)
    transform = ArrayTransform.from_dict(saved["transform"])
    files, rows = zip(*(str(p).rsplit("#", 1) for p in table["path"]))
    order = list(dict.fromkeys(files))
    try:
        with open_arrays(order, tuple(saved["arrays"]["x_keys"]), unlabeled=True, classes=info["classes"],
                         grid=tuple(saved["arrays"]["grid"])) as dataset:
            offsets = dict(zip(order, np.concatenate([[0], np.cumsum(dataset.counts)[:-1]])))
            index = np.array([offsets[f] + int(r) for f, r in zip(files, rows)], dtype=np.int64)
            sort = np.argsort(index, kind="stable")
            x, _ = dataset.read_batch(index[sort])
    except ImgenError as exc:
        raise TransferError(f"{model_path.with_name(PREDICTIONS_FILE)}: cannot read its test events ({exc})") from None
    events = np.empty_like(x)
    events[sort] = x
    return transform(events)


#: classes.json ``data_kind`` -> reader of the test events as model.keras takes them.
EVENT_READERS: dict[str, Callable] = {"images": _image_events, "arrays": _array_events}


def read_test_events(model_path: str | os.PathLike, max_events: int | None = None) -> TestEvents:
    """The test events of the run beside ``model_path`` (first ``max_events`` of ``predictions.csv``)."""
    model_path = require_model(model_path)
    info = read_classes(model_path)
    kind = data_kind(model_path, EVENT_READERS)
    table = _read_predictions(model_path)
    if max_events:
        table = table.iloc[:max_events]
    labels = _labels(table, info["classes"], model_path.with_name(PREDICTIONS_FILE))
    return TestEvents(EVENT_READERS[kind](model_path, table, info), labels, list(table["path"]))


def read_training_events(model_path: str | os.PathLike, max_events: int = PROFILE_EVENTS, seed: int = 0) -> np.ndarray:
    """Up to ``max_events`` training events of the run (``split.csv``), as ``model.keras`` takes them: what
    the firmware's fixed-point ranges are measured on. Raises :class:`TransferError` if they cannot be read."""
    import pandas as pd

    model_path = require_model(model_path)
    path = model_path.with_name(SPLIT_FILE)
    try:
        table = pd.read_csv(path, dtype={"path": str, "class": str, "split": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TransferError(f"{path}: cannot read the run's split ({exc})") from None
    table = table[table["split"] == "train"]
    if table.empty:
        raise TransferError(f"{path}: lists no training events")
    if len(table) > max_events:
        table = table.sample(max_events, random_state=seed).sort_index()
    info = read_classes(model_path)
    return EVENT_READERS[data_kind(model_path, EVENT_READERS)](model_path, table.reset_index(drop=True), info)


@dataclass
class ExportContext:
    """What a format's writer may need besides the model: the run's events (read once, when asked for)."""

    model_path: Path
    test: TestEvents
    _profile: tuple | None = None

    def profile_inputs(self) -> tuple[np.ndarray, str]:
        """``(inputs, description)``: the run's training events (the test events when those cannot be read)."""
        if self._profile is None:
            try:
                events = read_training_events(self.model_path)
                self._profile = (events, f"{len(events)} training events of the run")
            except TransferError as exc:
                log.warning("hls4ml: the training events cannot be read (%s); the ranges are measured on the "
                            "test events instead", exc)
                self._profile = (self.test.inputs, f"the {len(self.test.inputs)} test events (no training events)")
        return self._profile


def check_not_collapsed(model_path: Path, allow: bool) -> None:
    """Refuse a run whose network collapsed (metrics.json, health): it learned nothing worth deploying."""
    from transfer.run_folder import read_metrics

    try:
        health = read_metrics(model_path).get("health", {})
    except TransferError:
        return  # a run without metrics.json: nothing to go by
    if health.get("collapsed") and not allow:
        reason = next((w for w in health.get("warnings", []) if w.startswith("COLLAPSED")),
                      "COLLAPSED: the network learned nothing")
        raise TransferError(f"--model {model_path}: {reason} ({model_path.with_name('metrics.json')}, health); an "
                            "export would deploy that. Train it again, or pass --allow-collapsed to export it anyway")


def preprocessing_info(model_path: Path, model) -> dict:
    """What ``preprocessing.json`` records: the input the exports take and what comes before it."""
    info = read_classes(model_path)
    kind = info.get("data_kind", "images")
    out = {"data_kind": kind, "classes": info["classes"], "input_shape": list(model.input_shape[1:]),
           "input_dtype": str(model.inputs[0].dtype), "channel_names": info.get("channel_names")}
    if kind == "arrays":
        saved = read_arrays_info(model_path)
        out["before_the_model"] = {
            "reader": {k: saved["arrays"].get(k) for k in ("x_keys", "grid", "channel_names")},
            "transform": saved["transform"],
            "steps": ["keep the channels `channels` (indices; null: all)",
                      "values below `min_value` become 0 (null: none)",
                      "keep rows row0:row1, columns col0:col1 of `crop` (null: all)",
                      "scale: none; log: sign(x) * log(1 + |x|); standardize: (x - mean) / std per channel"]}
    else:
        out["before_the_model"] = None
    from transfer.models.layers import find_preprocessing_layer

    layer = find_preprocessing_layer(model)
    out["inside_the_model"] = None if layer is None else {
        k: layer.get_config().get(k) for k in ("preprocess", "image_size", "rgb", "pixels", "value_range")}
    return out


# --------------------------------------------------------------------------
# The registry and the command
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFormat:
    """One target: its artifact in DIR, how to write it, how to run it, the libraries it needs."""

    name: str
    artifact: str
    write: Callable
    run: Callable | None
    modules: tuple[str, ...]
    tolerance: float | None
    runtime: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", "model.onnx", _write_onnx, _run_onnx, ("onnx", "onnxruntime", "tf2onnx"),
                 FLOAT_TOLERANCE, "onnxruntime"),
    ExportFormat("savedmodel", "saved_model", _write_saved_model, _run_saved_model, (), FLOAT_TOLERANCE,
                 "tensorflow (tf.saved_model.load)"),
    ExportFormat("tflite", "model.tflite", _write_tflite, _run_tflite, (), FLOAT_TOLERANCE,
                 "TFLite interpreter (tf.lite.Interpreter)"),
    ExportFormat("hls4ml", "hls4ml", _write_hls4ml, None, ("hls4ml",), None,
                 "hls4ml C++ emulation (fixed point, built with g++)"),
)}


def _auc(labels, scores, class_names):
    from transfer.evaluation.metrics import roc_auc

    auc = roc_auc(labels, np.asarray(scores, np.float64), class_names)
    return auc.get("macro") if isinstance(auc, dict) else auc


def _compare(reference, scores, labels, class_names) -> dict:
    scores = np.asarray(scores, np.float64).reshape(reference.shape)
    diff = np.abs(scores - reference)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "same_predicted_class": float(np.mean(scores.argmax(1) == reference.argmax(1))),
            "test_auc": _auc(labels, scores, class_names)}


def export_model_files(model_path: str | os.PathLike, formats, out: str | os.PathLike,
                       hls: HlsOptions | None = None, max_events: int | None = None, batch_size: int = 256,
                       overwrite: bool = False, allow_collapsed: bool = False, progress: bool = True) -> dict:
    """Export ``model_path`` (a run's ``model.keras`` or its folder) in ``formats`` into ``out``, check each in
    its runtime; returns export_check.json.

    For hls4ml, ``check["formats"]["hls4ml"]["agreement"]`` says whether the
    firmware's test AUC is within ``hls.auc_margin`` of the float model's
    (the command fails when it is not, unless ``hls.accept_auc_loss``).

    Raises:
        TransferError: an unknown format, a missing library (with the install
            hint), a pretrained backbone for hls4ml, a run that collapsed
            (unless ``allow_collapsed``), a run folder missing its files, or a
            float export that differs from Keras by more than
            :data:`FLOAT_TOLERANCE` (``out`` is then left as it was).
    """
    model_path = require_model(model_path)   # a run folder names its model.keras
    names = parse_formats(formats)
    hls = hls or HlsOptions()
    if hls.reuse_factor < 1:
        raise TransferError(f"--reuse-factor {hls.reuse_factor}: must be 1 or more")
    if not 0 <= hls.auc_margin <= 1:
        raise TransferError(f"--auc-margin {hls.auc_margin:g}: an AUC difference, between 0 and 1")
    with output_lock(Path(out), "export"):   # one export per folder, from the start (an hls4ml build takes minutes)
        check_output_folder(out, overwrite)
        return _export(model_path, names, out, hls, max_events, batch_size, overwrite, allow_collapsed, progress)


def _export(model_path: Path, names: list[str], out, hls: HlsOptions, max_events, batch_size: int, overwrite: bool,
            allow_collapsed: bool, progress: bool) -> dict:
    model = single_input_model(load_model(model_path))
    if "hls4ml" in names:  # before the libraries: installing hls4ml would not help here
        check_fits_fpga(model_path, model)
    check_not_collapsed(model_path, allow_collapsed)
    for name in names:  # every library before any export
        for module in FORMATS[name].modules:
            require(module, name)
    class_names = read_classes(model_path)["classes"]
    events = read_test_events(model_path, max_events)
    reference = np.asarray(model.predict(events.inputs, batch_size=batch_size, verbose=0), np.float64)
    keras_auc = _auc(events.labels, reference, class_names)
    check = {"model": str(model_path), "n_test_events": len(events.labels), "classes": class_names,
             "keras_test_auc": keras_auc, "float_tolerance": FLOAT_TOLERANCE, "formats": {}}
    context = ExportContext(model_path, events)
    with staged_folder(out, overwrite, "export") as staging:
        for name in names:
            fmt = FORMATS[name]
            started = time.perf_counter()
            target = staging / fmt.artifact
            facts = fmt.write(model, target, hls, context)
            if name == "hls4ml":
                hls_model = facts.pop("hls_model")
                log.info("hls4ml: emulating the firmware on %d test events", len(events.inputs))
                scores = emulate(hls_model, hls_inputs(model, events.inputs), progress=progress)
            else:
                run = fmt.run(target)
                scores = np.concatenate([run(events.inputs[i:i + batch_size])
                                         for i in range(0, len(events.inputs), batch_size)])
            result = {"artifact": fmt.artifact, "runtime": fmt.runtime, **facts,
                      **_compare(reference, scores, events.labels, class_names)}
            result["seconds"] = round(time.perf_counter() - started, 1)
            if fmt.tolerance is not None and not result["max_abs_diff"] <= fmt.tolerance:
                raise TransferError(f"--format {name}: {fmt.runtime} scores differ from Keras by up to "
                                    f"{result['max_abs_diff']:.3g} on the test events (tolerance "
                                    f"{fmt.tolerance:g}); nothing written")
            if name == "hls4ml":
                result["float_test_auc"] = keras_auc
                result["fixed_point_test_auc"] = result.pop("test_auc")
                result["agreement"] = fixed_point_agreement(result, hls)
            check["formats"][name] = result
            log.info("%s: %s, max |score - Keras| %.3g", name, fmt.artifact, result["max_abs_diff"])
        if "hls4ml" in names:
            relocate_hls_project(staging / FORMATS["hls4ml"].artifact, Path(out) / FORMATS["hls4ml"].artifact)
        prep = preprocessing_info(model_path, model)
        write_text_atomic(staging / PREPROCESSING_FILE, json.dumps(prep, indent=2) + "\n")
        write_text_atomic(staging / "README.md", readme_text(names, prep))
        write_text_atomic(staging / CHECK_FILE, json.dumps(check, indent=2) + "\n")
    return check


def summary_lines(check: dict, out) -> list[str]:
    """The console summary of ``export_check.json``; for hls4ml it ends with the fixed-point agreement."""
    lines = [f"exported {check['model']} to {out} (checked on {check['n_test_events']} test events, "
             f"Keras test AUC {_fmt(check['keras_test_auc'])})"]
    for name, r in check["formats"].items():
        lines.append(f"  {name}: {r['artifact']}  max |score - Keras| {r['max_abs_diff']:.2g}, "
                     f"same class {r['same_predicted_class']:.1%}")
        if name == "hls4ml":
            res = r["resources"]
            fits = "" if res.get("fits_part") is None else (
                f", {'within' if res['fits_part'] else 'BEYOND'} the {res['part']}")
            lines.append(f"    fixed point {r['precision_rule']}, reuse factor {r['reuse_factor']}: about "
                         f"{res['dsp_estimate']:,} DSPs, {res['weight_memory_kbit']} kbit of weights (hls4ml's "
                         f"estimate, no synthesis{fits})")
            lines += [f"    WARNING: {warning}" for warning in res.get("warnings", [])]
            lines.append(f"    per-layer precision in export_check.json; synthesis {r['synthesis']}")
    lines.append(f"  how to run them: {Path(out) / 'README.md'}")
    if "hls4ml" in check["formats"]:
        lines.append(agreement_line(check["formats"]["hls4ml"]["agreement"], check["n_test_events"]))
    return lines


def firmware_failure(check: dict) -> str | None:
    """The error line when the firmware's test AUC is beyond the margin and not accepted, else None."""
    agreement = check["formats"].get("hls4ml", {}).get("agreement")
    if not agreement or agreement["within_margin"] is not False or agreement["accepted"]:
        return None
    return (f"hls4ml: the firmware's test AUC {agreement['fixed_point_test_auc']:.3f} is "
            f"{agreement['auc_loss']:.3f} below the float model's {agreement['float_test_auc']:.3f}, more than the "
            f"margin {agreement['margin']:g}: it does not compute what the model computes. The export is in the "
            "folder for inspection (export_check.json: each layer's precision and range); try a wider --precision, "
            "or pass --accept-auc-loss (or a larger --auc-margin) to accept it")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------
# README.md in DIR
# --------------------------------------------------------------------------

_ARRAY_PREP = '''import json, numpy as np
prep = json.load(open("preprocessing.json"))["before_the_model"]["transform"]
def transform(x):                      # x: (N, rows, cols, channels) float32, read like the training files
    if prep["channels"] is not None: x = x[..., prep["channels"]]
    if prep["min_value"] is not None: x = np.where(x < prep["min_value"], 0, x)
    if prep["crop"] is not None: r0, r1, c0, c1 = prep["crop"]; x = x[:, r0:r1, c0:c1]
    if prep["scale"] == "log":           # sign(x) log(1 + |x| / knee), the knee fitted per channel
        knee = np.float32(prep.get("log_knee") or 1.0); x = np.copysign(np.log1p(np.abs(x / knee)), x)
    if prep["scale"] == "standardize": x = (x - np.float32(prep["mean"])) / np.float32(prep["std"])
    return x.astype(np.float32)
'''

_RUNNERS = {
    "onnx": '''import onnxruntime as ort
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
scores = session.run(None, {session.get_inputs()[0].name: x})[0]   # (N, classes), softmax''',
    "savedmodel": '''import tensorflow as tf
model = tf.saved_model.load("saved_model")
scores = model.serve(x).numpy()                                    # (N, classes), softmax''',
    "tflite": '''import tensorflow as tf                 # or: from ai_edge_litert.interpreter import Interpreter
interpreter = tf.lite.Interpreter(model_path="model.tflite")
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
interpreter.resize_tensor_input(inp["index"], x.shape); interpreter.allocate_tensors()
interpreter.set_tensor(inp["index"], x); interpreter.invoke()
scores = interpreter.get_tensor(out["index"])                      # (N, classes), softmax''',
    "hls4ml": '''import hls4ml                            # C++ emulation of the firmware (fixed point)
model = hls4ml.converters.link_existing_project("hls4ml")
model.compile()                                                    # g++, no vendor tools
scores = model.predict(np.ascontiguousarray(x_fpga))               # x_fpga: see "inside_the_model"''',
}


def readme_text(names: list[str], prep: dict) -> str:
    """README.md for DIR: what each file is and a short example per runtime."""
    arrays = prep["data_kind"] == "arrays"
    shape = "x".join(map(str, prep["input_shape"]))
    lines = ["# Exported model", "",
             f"Classes, in score order: {', '.join(prep['classes'])}. Every model here takes a batch of "
             f"{shape} {prep['input_dtype']} inputs `x` ({'events after the transform below' if arrays else 'raw uint8 images, exactly as the PNGs of the run'}) "
             "and returns one softmax score per class. None of them needs hepvision.", "",
             "`export_check.json` holds the check of each file in its own runtime against the Keras model on "
             "the run's test events; `preprocessing.json` what comes before the model.", ""]
    if arrays:
        lines += ["## Before the model: the run's array preprocessing", "",
                  "The models take events after the transform fitted on the training split (`preprocessing.json`, "
                  "`before_the_model`): read the same keys on the same grid, then", "", "```python",
                  _ARRAY_PREP.rstrip(), "x = transform(x_raw)", "```", ""]
    for name in names:
        fmt = FORMATS[name]
        lines += [f"## {name}: `{fmt.artifact}` ({fmt.runtime})", "", "```python", "import numpy as np",
                  _RUNNERS[name], "```", ""]
        if name == "hls4ml":
            lines += ["The HLS project for an FPGA. `inside_the_model` of `preprocessing.json` is the "
                      "preprocessing the float models hold but the firmware does not (for arrays into a compact "
                      "network: none, `pixels: false`; for images: pixels / 255). The firmware is fixed point: "
                      "compare `fixed_point_test_auc` with `float_test_auc` in `export_check.json`.", "",
                      "Synthesis is the next step and needs the vendor tools: `cd hls4ml && vitis_hls -f "
                      "build_prj.tcl` (Vitis) or `vivado_hls -f build_prj.tcl` (Vivado). Its reports give the "
                      "latency and resources that the estimate in `export_check.json` only approximates.", ""]
    return "\n".join(lines)
