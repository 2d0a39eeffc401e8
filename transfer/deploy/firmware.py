"""hls4ml firmware: the model as plain Keras layers hls4ml converts, fixed-point precision, the HLS project and
its C++ emulation (compact networks only; ImageNet backbones do not fit an FPGA)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.deploy.runtimes import require, single_input_model
from transfer.errors import TransferError
from transfer.files import write_text_atomic
from transfer.run_folder import read_config

log = logging.getLogger(__name__)


DEFAULT_PRECISION = "ap_fixed<16,6>"
HLS_BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("io_parallel", "io_stream")
#: hls4ml 1.3's default softmax ("stable"; "latency" as well) indexes its exp and 1/sum tables by the
#: top bits of wide automatic types: with two classes every event came out 0.5, 0.5 in the emulation.
#: "legacy" reproduced the float scores to about 0.05.
SOFTMAX_IMPLEMENTATION = "legacy"


@dataclass(frozen=True)
class HlsOptions:
    """hls4ml settings: fixed-point ``precision`` for weights and activations, ``reuse_factor``
    (multipliers shared over that many clock cycles), ``io_type``, vendor ``backend`` and FPGA ``part``."""

    precision: str = DEFAULT_PRECISION
    reuse_factor: int = 1
    io_type: str = "io_parallel"
    backend: str = "Vitis"
    part: str | None = None


#: Keras layers hls4ml (1.3) cannot convert, with the reason: refused before hls4ml is even imported.
HLS4ML_UNSUPPORTED = {
    "Conv3D": "hls4ml has no 3D convolution (its Keras converters take Conv1D and Conv2D only), so the "
              "layers-as-depth network cnn3d cannot become firmware",
    "TimeDistributed": "hls4ml's Keras 3 converter cannot read a TimeDistributed layer around a model (rcnn's "
                       "encoder shared across layers; its Keras 2 fallback fails on the nested weights), so rcnn "
                       "cannot become firmware",
}


def _all_layers(layer):
    """``layer`` and every layer inside it: nested models and wrapped layers included."""
    yield layer
    for inner in getattr(layer, "layers", None) or []:
        yield from _all_layers(inner)
    wrapped = getattr(layer, "layer", None)
    if wrapped is not None:
        yield from _all_layers(wrapped)


def check_fits_fpga(model_path: Path, model) -> None:
    """Refuse what hls4ml cannot make firmware of, saying why: pretrained ImageNet backbones (millions of
    weights do not fit an FPGA at trigger latency) and layers it has no converter for
    (:data:`HLS4ML_UNSUPPORTED`: the 3D and recurrent CNNs over calorimeter layers)."""
    from transfer.models.backbones import BACKBONES, LAYER_NETWORKS
    from transfer.models.layers import InferenceMode

    name = read_config(model_path, missing_ok=True).get("backbone")
    spec = BACKBONES.get(name)
    pretrained = (spec.pretrained if spec else False) or any(isinstance(l, InferenceMode) for l in model.layers)
    if pretrained:
        compact = ", ".join(sorted(n for n, s in BACKBONES.items() if not s.pretrained and n not in LAYER_NETWORKS))
        raise TransferError(
            f"--format hls4ml: {model_path} holds the ImageNet backbone {name or 'of a pretrained model'} "
            f"({model.count_params():,} parameters). hls4ml turns every multiplication into FPGA logic; a "
            "network of this size needs orders of magnitude more DSPs and memory than a trigger FPGA has, "
            "and could not meet a trigger's microsecond latency. Train a compact network from scratch "
            f"({compact}; --weights none) for firmware, and export this model as onnx, savedmodel or tflite")
    for layer in _all_layers(model):
        reason = HLS4ML_UNSUPPORTED.get(type(layer).__name__)
        if reason:
            raise TransferError(
                f"--format hls4ml: {model_path} holds layer {layer.name!r} ({type(layer).__name__}): {reason}. "
                "Train smallcnn or cnn (the layers as channels) for firmware, and export this model as onnx, "
                "savedmodel or tflite")


def _dense_with_scaling(dense, mean, scale):
    """Weights of ``dense`` applied to ``(x - mean) * scale``: W' = scale W, b' = b - scale mean W."""
    kernel, *rest = dense.get_weights()
    bias = rest[0] if rest else np.zeros(kernel.shape[1], kernel.dtype)
    return [kernel * scale, bias - scale * (mean @ kernel)]


def plain_keras_model(model):
    """``model`` as one flat graph of built-in Keras layers, for hls4ml.

    Nested models are inlined; dropout (off at inference) and hepvision's
    input preprocessing (done before the FPGA, see ``preprocessing.json``)
    are left out; :class:`transfer.models.layers.FeatureScaling` is folded into the
    Dense layer after it, and the input standardisation of networks trained
    from scratch (:class:`transfer.models.layers.InputStandardization`) becomes a
    BatchNormalization. Anything else that is not a built-in Keras layer is
    refused, naming the layer.
    """
    import keras

    from transfer.models.layers import BackbonePreprocessing, FeatureScaling, InputStandardization

    pending: dict = {}

    def passthrough(x, **kwargs):
        return x

    def substitute(op):
        if isinstance(op, keras.Model):
            return lambda x, **kwargs: op._run_through_graph(x, operation_fn=substitute)
        if isinstance(op, (BackbonePreprocessing, keras.layers.Dropout)):
            return passthrough
        if isinstance(op, FeatureScaling):
            pending["scaling"] = (op.mean.numpy(), float(op.scale.numpy()), op.name)
            return passthrough
        if isinstance(op, InputStandardization):  # the input standardisation of networks from scratch
            return _as_batch_norm(op)
        if not type(op).__module__.startswith("keras."):
            raise TransferError(f"--format hls4ml: layer {op.name!r} ({type(op).__name__}) is not a Keras "
                                "layer hls4ml can convert")
        if "scaling" in pending and not isinstance(op, keras.layers.Dense):
            raise TransferError(f"--format hls4ml: feature scaling {pending['scaling'][2]!r} is followed by "
                                f"{op.name!r} ({type(op).__name__}), not by a Dense layer it can be folded into")
        clone = type(op).from_config(op.get_config())

        def call(x, **kwargs):
            y = clone(x)
            if isinstance(op, keras.layers.Dense) and "scaling" in pending:
                mean, scale, _ = pending.pop("scaling")
                clone.set_weights(_dense_with_scaling(op, mean, scale))
            else:
                clone.set_weights(op.get_weights())
            return y

        return call

    source = single_input_model(model)
    inputs = keras.Input(source.inputs[0].shape[1:], name="image")
    outputs = source._run_through_graph([inputs], operation_fn=substitute)
    return keras.Model(inputs, outputs, name=f"{model.name}_hls")


def _as_batch_norm(op):
    """:class:`transfer.models.layers.InputStandardization`, (x - mean) / std, as the BatchNormalization that hls4ml
    converts (inference: gamma 1, beta 0, moving mean and variance the training statistics)."""
    import keras

    mean = np.asarray(keras.ops.convert_to_numpy(op.mean), dtype=np.float32)
    variance = np.asarray(keras.ops.convert_to_numpy(op.std), dtype=np.float32) ** 2
    clone = keras.layers.BatchNormalization(epsilon=1e-6, name=op.name)

    def call(x, **kwargs):
        y = clone(x)
        clone.set_weights([np.ones_like(mean), np.zeros_like(mean), mean, variance])
        return y

    return call


def hls_inputs(model, inputs: np.ndarray) -> np.ndarray:
    """What the FPGA model takes: ``inputs`` after the in-model preprocessing (none for arrays)."""
    from transfer.models.layers import find_preprocessing_layer

    layer = find_preprocessing_layer(model)
    x = np.asarray(layer(inputs)) if layer is not None else inputs
    return np.ascontiguousarray(x, dtype=np.float32)


def _resource_estimate(hls_model, options: HlsOptions) -> dict:
    """Multipliers (DSPs) and weight memory per layer, by the rule of hls4ml's DSP-aware pruning
    estimator (multiplications / reuse factor; BRAM only for the Resource strategy)."""
    layers, total_dsp, total_bits = [], 0, 0
    for layer in hls_model.get_layers():
        weight = layer.weights.get("weight") if hasattr(layer, "weights") else None
        if weight is None:
            continue
        n = int(np.prod(weight.shape))
        width = int(getattr(weight.type.precision, "width", 16))
        reuse = int(layer.get_attr("reuse_factor", options.reuse_factor))
        dsp = n // reuse if width >= 9 else 0  # narrower products go to LUTs
        total_dsp += dsp
        total_bits += n * width
        layers.append({"layer": layer.name, "multiplications": n, "weight_bits": width, "reuse_factor": reuse,
                       "dsp_estimate": dsp})
    return {"method": "hls4ml DSP-aware-pruning rule: DSP = multiplications / reuse factor (weights of 9 bits "
                      "or more); no vendor tool run",
            "dsp_estimate": total_dsp, "weight_memory_kbit": round(total_bits / 1024, 1), "layers": layers,
            "latency": None,
            "latency_note": "hls4ml gives latency and LUT/FF counts only from C synthesis "
                            f"({'vitis_hls' if options.backend == 'Vitis' else 'vivado_hls'}); "
                            f"the initiation interval is about the reuse factor ({options.reuse_factor}) "
                            "clock cycles for io_parallel"}


def relocate_hls_project(staged: Path, final: Path) -> None:
    """Point the project's ``OutputDir`` at where it will live, so that
    ``hls4ml.converters.link_existing_project(final)`` finds it after the staging folder is renamed."""
    config = staged / "hls4ml_config.yml"
    text = config.read_text(encoding="utf-8")
    write_text_atomic(config, text.replace(str(staged.resolve()), str(final.resolve())))


def _write_hls4ml(model, path: Path, options: HlsOptions) -> dict:
    hls4ml = require("hls4ml", "hls4ml")
    plain = plain_keras_model(model)
    config = hls4ml.utils.config_from_keras_model(plain, granularity="name", backend=options.backend,
                                                  default_precision=options.precision,
                                                  default_reuse_factor=options.reuse_factor)
    for layer in config["LayerName"].values():
        if "exp_table" in layer.get("Precision", {}):
            layer["Implementation"] = SOFTMAX_IMPLEMENTATION
    extra = {"part": options.part} if options.part else {}
    try:
        hls_model = hls4ml.converters.convert_from_keras_model(
            plain, hls_config=config, output_dir=str(path.resolve()), backend=options.backend, io_type=options.io_type,
            allow_da_fallback=False, **extra)
        started = time.perf_counter()
        hls_model.compile()  # writes the project, builds the C++ emulation with the system g++
    except TransferError:
        raise
    except Exception as exc:
        raise TransferError(f"--format hls4ml: hls4ml could not convert or build {model.name} "
                            f"({type(exc).__name__}: {exc})") from exc
    log.info("hls4ml: C++ emulation built in %.0f s", time.perf_counter() - started)
    precision = {layer.name: {k: str(v.precision) for k, v in layer.get_layer_precision().items()}
                 for layer in hls_model.get_layers()}
    return {"hls_model": hls_model, "backend": options.backend, "io_type": options.io_type,
            "part": hls_model.config.get_config_value("Part"), "precision": options.precision,
            "reuse_factor": options.reuse_factor, "softmax_implementation": SOFTMAX_IMPLEMENTATION,
            "layer_precision": precision,
            "resources": _resource_estimate(hls_model, options),
            "synthesis": f"not run here; the next step, with the vendor tools: cd {path.name} && "
                         f"{'vitis_hls' if options.backend == 'Vitis' else 'vivado_hls'} -f build_prj.tcl"}
