"""hls4ml firmware: the model as plain Keras layers hls4ml converts, fixed-point precision, the HLS project and
its C++ emulation (compact networks only; ImageNet backbones do not fit an FPGA).

Fixed point only holds what its integer bits allow: a value outside wraps round to the other end, and one
``ap_fixed<16,6>`` for everything (range -32..32) turns pixels of 0..255 and the larger activations into noise
(a smallcnn's firmware AUC fell from 0.83 to 0.54). So by default (``precision="auto"``) every type is chosen
from the data the model sees: the network is run in Keras on the run's training events
(:func:`layer_ranges`), and every layer's input, output and pre-activation gets the integer bits its largest
value needs, with one bit of headroom, and :data:`FRACTION_BITS` fractional bits; weights and biases get the
integer bits of their largest value (:func:`auto_precision_config`). The export then runs the C++ emulation on
the test events and compares it with the float model (:func:`fixed_point_agreement`); the command fails, with
the numbers, when the firmware's test AUC falls more than a margin below the float model's.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.deploy.runtimes import require, single_input_model
from transfer.errors import TransferError
from transfer.files import write_text_atomic
from transfer.run_folder import read_config

log = logging.getLogger(__name__)


#: ``--precision auto``: every type chosen from the training events' ranges (module docstring).
AUTO_PRECISION = "auto"
DEFAULT_PRECISION = AUTO_PRECISION
#: Fractional bits of the types chosen from the data (a resolution of about 0.001).
FRACTION_BITS = 10
#: Width of the weight and bias types chosen from their values (at least 8 fractional bits).
WEIGHT_BITS = 16
#: The largest value seen on the training events is doubled (one more integer bit): test events may go further.
HEADROOM = 2.0
#: Training events the ranges are measured on.
PROFILE_EVENTS = 2000
#: The firmware's test AUC may fall this far below the float model's before the export fails.
DEFAULT_AUC_MARGIN = 0.01
#: Seconds between the "still compiling" lines of the C++ build.
HEARTBEAT_SECONDS = 30
#: DSP slices and block RAM (kbit) of FPGA parts, by the device name that starts the part number (data sheets).
PART_RESOURCES = {
    "xcvu13p": {"dsp": 12288, "bram_kbit": 96768},   # hls4ml's default part; Alveo U250/U55C class
    "xcu250": {"dsp": 12288, "bram_kbit": 96768},
    "xcvu9p": {"dsp": 6840, "bram_kbit": 77760},     # CMS/ATLAS trigger boards (e.g. Serenity, APx)
    "xcku115": {"dsp": 5520, "bram_kbit": 77760},
    "xczu9eg": {"dsp": 2520, "bram_kbit": 32832},    # ZCU102
    "xc7z020": {"dsp": 220, "bram_kbit": 5040},      # PYNQ-Z2, Zedboard
}
HLS_BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("io_parallel", "io_stream")
#: hls4ml 1.3's default softmax ("stable"; "latency" as well) indexes its exp and 1/sum tables by the
#: top bits of wide automatic types: with two classes every event came out 0.5, 0.5 in the emulation.
#: "legacy" reproduced the float scores to about 0.05.
SOFTMAX_IMPLEMENTATION = "legacy"


@dataclass(frozen=True)
class HlsOptions:
    """hls4ml settings: fixed-point ``precision`` (``"auto"``: chosen per layer from the training events, or
    one ``ap_fixed<W,I>`` for every weight and activation), ``reuse_factor`` (multipliers shared over that many
    clock cycles), ``io_type``, vendor ``backend`` and FPGA ``part``; ``auc_margin``: how far the firmware's test
    AUC may fall below the float model's, ``accept_auc_loss``: accept any fall (the export then succeeds)."""

    precision: str = DEFAULT_PRECISION
    reuse_factor: int = 1
    io_type: str = "io_parallel"
    backend: str = "Vitis"
    part: str | None = None
    auc_margin: float = DEFAULT_AUC_MARGIN
    accept_auc_loss: bool = False


#: Keras layers hls4ml (1.3) cannot convert, with the reason: refused before hls4ml is even imported.
HLS4ML_UNSUPPORTED = {
    "Conv3D": "hls4ml has no 3D convolution (its Keras converters take Conv1D and Conv2D only), so the "
              "layers-as-depth network cnn3d cannot become firmware",
    "TimeDistributed": "hls4ml's Keras 3 converter cannot read a TimeDistributed layer around a model (rcnn's "
                       "encoder shared across layers; its Keras 2 fallback fails on the nested weights), so rcnn "
                       "cannot become firmware",
}


def check_fits_fpga(model_path: Path, model) -> None:
    """Refuse what hls4ml cannot make firmware of, saying why: pretrained ImageNet backbones (millions of
    weights do not fit an FPGA at trigger latency) and layers it has no converter for
    (:data:`HLS4ML_UNSUPPORTED`: the 3D and recurrent CNNs over calorimeter layers)."""
    from transfer.models.backbones import BACKBONES, LAYER_NETWORKS
    from transfer.models.layers import InferenceMode, all_layers

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
    for layer in all_layers(model):
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


def part_resources(part: str | None) -> dict | None:
    """DSPs and block RAM of ``part`` (:data:`PART_RESOURCES`, by its device name), or None if not known here."""
    name = (part or "").lower()
    return next((dict(r, device=device) for device, r in PART_RESOURCES.items() if name.startswith(device)), None)


def _resource_estimate(hls_model, options: HlsOptions, part: str | None) -> dict:
    """Multipliers (DSPs) and weight memory per layer, by the rule of hls4ml's DSP-aware pruning
    estimator (multiplications / reuse factor; BRAM only for the Resource strategy), against what ``part`` has."""
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
    available = part_resources(part)
    warnings = []
    if available is not None:
        if total_dsp > available["dsp"]:
            needed = math.ceil(total_dsp * options.reuse_factor / available["dsp"])
            warnings.append(f"about {total_dsp:,} DSPs (hls4ml's estimate at reuse factor {options.reuse_factor}), but "
                            f"the part {part} has {available['dsp']:,}: the design does not fit; raise "
                            f"--reuse-factor (to {needed} or more) or choose a larger --part")
        if total_bits / 1024 > available["bram_kbit"]:
            warnings.append(f"{total_bits / 1024:,.0f} kbit of weights, but the part {part} has "
                            f"{available['bram_kbit']:,} kbit of block RAM: the weights do not fit on the chip")
    return {"method": "hls4ml DSP-aware-pruning rule: DSP = multiplications / reuse factor (weights of 9 bits "
                      "or more); no vendor tool run",
            "dsp_estimate": total_dsp, "weight_memory_kbit": round(total_bits / 1024, 1), "layers": layers,
            "part": part, "part_resources": available,
            "fits_part": None if available is None else not warnings, "warnings": warnings,
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


# --------------------------------------------------------------------------
# Precision from the data
# --------------------------------------------------------------------------

def integer_bits(largest: float, headroom: float = HEADROOM) -> int:
    """Integer bits, the sign included, of a signed fixed-point type holding ``±largest * headroom``."""
    largest = float(largest) * headroom
    if not math.isfinite(largest) or largest <= 0:
        return 1
    return max(1, math.floor(math.log2(largest)) + 2)


def fixed_type(largest: float, fraction: int = FRACTION_BITS, headroom: float = HEADROOM) -> str:
    """``ap_fixed<W,I>`` holding ``±largest * headroom`` with ``fraction`` fractional bits."""
    whole = integer_bits(largest, headroom)
    return f"ap_fixed<{whole + fraction},{whole}>"


def weight_type(values) -> str:
    """The type of a weight or bias array: the integer bits of its largest value, :data:`WEIGHT_BITS` wide."""
    largest = float(np.max(np.abs(values))) if np.size(values) else 0.0
    whole = integer_bits(largest, 1.0)
    return f"ap_fixed<{max(WEIGHT_BITS, whole + 8)},{whole}>"


def _activation_name(layer) -> str | None:
    """The name of a layer's own non-linear activation (which hls4ml splits off as ``<layer>_<name>``)."""
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return None if name in (None, "linear") else name


def layer_ranges(plain, inputs: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """The largest absolute value of the input and of every layer's output of ``plain`` on ``inputs``.

    A layer with its own activation (Dense, Conv2D) gives two: ``name`` before the activation (hls4ml's
    linear part) and ``name_<activation>`` after it, the names hls4ml gives the two layers it makes.
    """
    import keras

    def largest(outputs) -> list[float]:
        outputs = outputs if isinstance(outputs, list) else [outputs]
        return [float(np.max(np.abs(o))) if np.size(o) else 0.0 for o in outputs]

    layers = [layer for layer in plain.layers if not isinstance(layer, keras.layers.InputLayer)]
    ranges = {plain.layers[0].name: float(np.max(np.abs(inputs))) if np.size(inputs) else 0.0}
    probe = keras.Model(plain.inputs, [layer.output for layer in layers])
    after = largest(probe.predict(inputs, batch_size=batch_size, verbose=0))
    split = [layer for layer in layers if _activation_name(layer)]
    names = {layer.name: _activation_name(layer) for layer in split}
    for layer, value in zip(layers, after):
        ranges[f"{layer.name}_{names[layer.name]}" if layer.name in names else layer.name] = value
    if split:
        saved = {layer.name: layer.activation for layer in split}
        try:
            for layer in split:               # one pass without them: the outputs of hls4ml's linear parts
                layer.activation = keras.activations.linear
            probe = keras.Model(plain.inputs, [layer.output for layer in split])
            before = largest(probe.predict(inputs, batch_size=batch_size, verbose=0))
        finally:
            for layer in split:
                layer.activation = saved[layer.name]
        ranges.update({layer.name: value for layer, value in zip(split, before)})
    return ranges


def _weight_values(layer) -> dict[str, np.ndarray]:
    """The arrays hls4ml stores for ``layer``: ``weight``/``bias``, or BatchNorm's ``scale``/``bias``."""
    import keras

    values = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):
        gamma = values[0] if layer.scale else np.ones_like(values[-1])
        beta = values[1] if layer.center and layer.scale else values[0] if layer.center else np.zeros_like(values[-1])
        mean, variance = values[-2], values[-1]
        scale = gamma / np.sqrt(variance + layer.epsilon)
        return {"scale": scale, "bias": beta - mean * scale}
    if not values or not hasattr(layer, "kernel"):
        return {}
    return {"weight": values[0], **({"bias": values[1]} if len(values) > 1 else {})}


def auto_precision_config(config: dict, plain, ranges: dict[str, float]) -> dict:
    """Set every ``result`` type of hls4ml's per-layer ``config`` from ``ranges`` (:func:`layer_ranges`) and
    every weight, bias and scale type from its values; what is not measured stays ``auto`` (hls4ml infers
    it exactly from its inputs). Returns ``{layer: {type: precision}}`` of what was set."""
    chosen: dict[str, dict[str, str]] = {}
    by_name = {layer.name: layer for layer in plain.layers}
    for name, entry in config["LayerName"].items():
        precision = entry.setdefault("Precision", {})
        if "result" in precision and name in ranges and not name.endswith("_softmax"):
            precision["result"] = fixed_type(ranges[name])
            chosen.setdefault(name, {})["result"] = precision["result"]
        layer = by_name.get(name)
        if layer is None:
            continue
        for key, values in _weight_values(layer).items():
            if key in precision:
                precision[key] = weight_type(values)
                chosen.setdefault(name, {})[key] = precision[key]
    return chosen


# --------------------------------------------------------------------------
# Building the firmware and judging it
# --------------------------------------------------------------------------

@contextmanager
def heartbeat(what: str, every: float = HEARTBEAT_SECONDS):
    """Log ``what: still running (N s)`` every ``every`` seconds while the block runs (a long C++ build)."""
    stop = threading.Event()
    started = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            log.info("%s: still running (%.0f s so far)", what, time.perf_counter() - started)

    thread = threading.Thread(target=beat, name="hls4ml-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _write_hls4ml(model, path: Path, options: HlsOptions, context=None) -> dict:
    """Convert ``model`` and build its C++ emulation in ``path``; ``context.profile_inputs()`` gives the
    training events the ranges of ``precision="auto"`` are measured on."""
    from imgen.cli_guard import is_disk_full

    hls4ml = require("hls4ml", "hls4ml")
    plain = plain_keras_model(model)
    auto = options.precision == AUTO_PRECISION
    config = hls4ml.utils.config_from_keras_model(
        plain, granularity="name", backend=options.backend,
        default_precision=f"ap_fixed<{WEIGHT_BITS},6>" if auto else options.precision,
        default_reuse_factor=options.reuse_factor)
    for layer in config["LayerName"].values():
        if "exp_table" in layer.get("Precision", {}):
            layer["Implementation"] = SOFTMAX_IMPLEMENTATION
    chosen, profiled = {}, None
    if auto:
        inputs, profiled = context.profile_inputs()
        log.info("hls4ml (1/3): measuring the range of every layer on %s, to choose its fixed-point type",
                 profiled)
        chosen = auto_precision_config(config, plain, layer_ranges(plain, hls_inputs(model, inputs)))
    extra = {"part": options.part} if options.part else {}
    try:
        log.info("hls4ml (2/3): converting %s (%d layers) into an HLS project for the %s backend",
                 model.name, len(plain.layers), options.backend)
        hls_model = hls4ml.converters.convert_from_keras_model(
            plain, hls_config=config, output_dir=str(path.resolve()), backend=options.backend, io_type=options.io_type,
            allow_da_fallback=False, **extra)
        started = time.perf_counter()
        log.info("hls4ml (3/3): compiling the C++ emulation with g++ (minutes for a convolutional network)")
        with heartbeat("hls4ml: compiling the C++ emulation"):
            hls_model.compile()  # writes the project, builds the C++ emulation with the system g++
    except TransferError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise
        raise TransferError(f"--format hls4ml: hls4ml could not convert or build {model.name} "
                            f"({type(exc).__name__}: {exc})") from exc
    log.info("hls4ml: C++ emulation built in %.0f s", time.perf_counter() - started)
    precision = {layer.name: {k: str(v.precision) for k, v in layer.get_layer_precision().items()}
                 for layer in hls_model.get_layers()}
    part = hls_model.config.get_config_value("Part")
    resources = _resource_estimate(hls_model, options, part)
    for warning in resources["warnings"]:
        log.warning("hls4ml: %s", warning)
    return {"hls_model": hls_model, "backend": options.backend, "io_type": options.io_type,
            "part": part, "precision": options.precision,
            "precision_rule": (f"per layer from the largest values on {profiled} (x{HEADROOM:g} headroom), "
                               f"{FRACTION_BITS} fractional bits; weights from their largest values"
                               if auto else f"{options.precision} for every weight and activation"),
            "chosen_precision": chosen,
            "reuse_factor": options.reuse_factor, "softmax_implementation": SOFTMAX_IMPLEMENTATION,
            "layer_precision": precision,
            "resources": resources,
            "synthesis": f"not run here; the next step, with the vendor tools: cd {path.name} && "
                         f"{'vitis_hls' if options.backend == 'Vitis' else 'vivado_hls'} -f build_prj.tcl"}


def emulate(hls_model, inputs: np.ndarray, batch: int = 256, progress: bool = True) -> np.ndarray:
    """The C++ emulation's scores on ``inputs`` (the FPGA's inputs), in batches with a progress bar."""
    from tqdm import tqdm

    scores = []
    with tqdm(total=len(inputs), unit="event", desc="hls4ml emulation", disable=not progress,
              leave=False) as bar:
        for start in range(0, len(inputs), batch):
            chunk = np.ascontiguousarray(inputs[start:start + batch])
            scores.append(np.asarray(hls_model.predict(chunk), np.float64).reshape(len(chunk), -1))
            bar.update(len(chunk))
    return np.concatenate(scores) if scores else np.empty((0, 0))


def fixed_point_agreement(result: dict, options: HlsOptions) -> dict:
    """How the firmware's test scores compare with the float model's, and whether that is acceptable:
    ``auc_loss`` (float AUC - fixed-point AUC) against ``margin``."""
    float_auc, fixed_auc = result.get("float_test_auc"), result.get("fixed_point_test_auc")
    loss = None if None in (float_auc, fixed_auc) else float(float_auc - fixed_auc)
    within = None if loss is None else loss <= options.auc_margin
    return {"float_test_auc": float_auc, "fixed_point_test_auc": fixed_auc, "auc_loss": loss,
            "margin": options.auc_margin, "within_margin": within, "accepted": bool(options.accept_auc_loss),
            "same_predicted_class": result["same_predicted_class"], "max_abs_diff": result["max_abs_diff"]}


def agreement_line(agreement: dict, n_events: int) -> str:
    """One line: the firmware against the float model on the test events."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    loss = agreement["auc_loss"]
    verdict = ("not judged (no AUC)" if loss is None else
               f"{'within' if agreement['within_margin'] else 'BEYOND'} the margin {agreement['margin']:g}"
               + (", accepted (--accept-auc-loss)" if not agreement["within_margin"] and agreement["accepted"] else ""))
    return (f"hls4ml fixed-point agreement on {n_events} test events: test AUC {fmt(agreement['fixed_point_test_auc'])} "
            f"against {fmt(agreement['float_test_auc'])} in float ("
            + ("n/a" if loss is None else f"{loss:.3f} lower" if loss >= 0 else f"{-loss:.3f} higher")
            + f", {verdict}); same predicted class for {agreement['same_predicted_class']:.1%}; largest score "
              f"difference {agreement['max_abs_diff']:.3g}")
