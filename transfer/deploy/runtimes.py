"""The deployment runtimes that run a Keras model's float graph: ONNX (onnxruntime), TF SavedModel and TFLite;
for each, how to write the file and how to score with it (to check it against Keras)."""
from __future__ import annotations

import importlib
from pathlib import Path

from transfer.errors import TransferError

INSTALL_HINT = "pip install 'hepvision[export]'"


def require(module: str, fmt: str):
    """Import ``module`` for ``--format fmt``, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TransferError(f"--format {fmt} needs the Python package {module.split('.')[0]!r}, which is not "
                            f"installed ({exc}); install the export libraries with: {INSTALL_HINT}") from None


def single_input_model(model):
    """The same layers as a model of one input tensor and one output (what the runtimes are given)."""
    import keras

    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def _write_onnx(model, path: Path, options, context=None) -> dict:
    require("tf2onnx", "onnx")
    onnx = require("onnx", "onnx")
    model.export(str(path), format="onnx", verbose=False)
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return {"opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "input": proto.graph.input[0].name,
            "batch_dimension": dims[0].dim_param or dims[0].dim_value or "dynamic"}


def _run_onnx(path: Path):
    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _write_saved_model(model, path: Path, options, context=None) -> dict:
    model.export(str(path), format="tf_saved_model", verbose=False)
    return {"signature": "serve", "serving_default": True}


def _run_saved_model(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(x).numpy()


def _write_tflite(model, path: Path, options, context=None) -> dict:
    model.export(str(path), format="litert", verbose=False)
    return {"batch_dimension": "dynamic (resize_tensor_input)"}


def _run_tflite(path: Path):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": still the interpreter TF ships
        interpreter = tf.lite.Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x):
        interpreter.resize_tensor_input(source["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return run
