"""Attribution maps (where a class's score comes from, cell by cell) and the check that they mean anything.

Four methods, one entry each in :data:`METHODS`, all built on :func:`transfer.evaluation.gradients.input_gradients`
(the log-odds ln[p_c / sum of the other p] of class c, differentiated with respect to the model's input):

* ``saliency`` (Simonyan et al. 2013): |gradient|, how strongly the log-odds respond to each cell;
* ``smoothgrad`` (Smilkov et al. 2017): |gradient| averaged over copies of the event with Gaussian noise
  of 15 % of each channel's range, which removes the cell-to-cell speckle of a ReLU network's gradient;
* ``integrated_gradients`` (Sundararajan et al. 2017): (x - x0) times the gradient averaged along the
  straight path from a baseline x0 to x. Signed (evidence for the class is positive, against negative) and
  complete: the map sums to the log-odds at x minus those at x0, which :func:`completeness` checks. The
  baseline is the value most cells hold (per channel, the median over the events): an empty detector
  whatever the scaling (0 MeV, its log, its standardised value), the background of a rendered image;
* ``gradcam`` (Selvaraju et al. 2017), for networks whose convolutional trunk ends in global average
  pooling (the ImageNet backbones, resnet15): the last feature maps weighted by their mean gradient, as
  coarse as those maps (7x7 for a 224-pixel ImageNet backbone, one cell at 32 pixels).

The sanity check of Adebayo et al. 2018 ("Sanity checks for saliency maps"): an explanation must depend on
what the network learned, so the maps of the same network with its weights re-initialised
(:func:`randomized_copy`) must look different. :func:`sanity_check` measures it on the class-averaged maps
(what ``explain`` draws) and event by event (the paper's rank correlation); a method at or above
:data:`SANITY_LIMIT` in either draws the inputs or the architecture, not the network, and is flagged
instead of shown. On sparse calorimeter cells this is a real test: with global max pooling, a random
network's gradient also lands on the energetic cells, and |integrated gradients| event by event is mostly
|x - x0|, which is why the signed maps are compared for a signed method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from transfer.evaluation.gradients import input_gradients

#: Events per gradient call (times the noise copies or path steps of a method).
BATCH_EVENTS = 16
#: SmoothGrad: noisy copies per event and noise level (fraction of each channel's range over the events).
SMOOTHGRAD_SAMPLES, SMOOTHGRAD_NOISE = 16, 0.15
#: Integrated gradients: steps along the path (midpoint rule) to start with, and at most. A network whose
#: log-odds move by 15-20 units along the path, steeply near the baseline (rcnn on showers in GeV), needs
#: 128 for the map to sum to the change within a few per cent; :func:`path_steps` doubles until it does.
IG_STEPS, IG_MAX_STEPS = 32, 256
#: The completeness (relative error of the map's sum) :func:`path_steps` aims for.
IG_TOLERANCE = 0.05
#: Rank correlation with the randomised network's maps above which a method fails the sanity check.
SANITY_LIMIT = 0.5
#: Events the sanity check compares maps on.
SANITY_EVENTS = 64


@dataclass(frozen=True)
class Inputs:
    """What every method needs besides the model and the events: the explained events' statistics."""

    baseline: np.ndarray  # per channel: the integrated-gradients starting point
    spread: np.ndarray  # per channel: max - min over the events (SmoothGrad's noise scale)
    seed: int = 0
    steps: int = 0  # integrated gradients' path steps (0: IG_STEPS)

    @classmethod
    def of(cls, x: np.ndarray, seed: int = 0) -> "Inputs":
        flat = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
        spread = flat.max(axis=0) - flat.min(axis=0)
        return cls(np.median(flat, axis=0), np.where(spread > 0, spread, 1.0).astype(np.float32), seed)


@dataclass(frozen=True)
class Method:
    """One attribution method: ``compute(model, x, classes, inputs) -> maps`` of ``x``'s shape.

    ``signed``: the map has a sign (drawn on a diverging scale centred on zero); otherwise it is a
    magnitude (drawn from zero up).
    """

    name: str
    title: str
    compute: Callable
    signed: bool
    description: str
    applies: Callable = lambda model: True  # whether it can explain ``model`` (``--methods all`` takes those)


def _batches(x: np.ndarray, classes: np.ndarray):
    for start in range(0, len(x), BATCH_EVENTS):
        yield slice(start, start + BATCH_EVENTS), x[start:start + BATCH_EVENTS], classes[start:start + BATCH_EVENTS]


def saliency(model, x, classes, inputs: Inputs) -> np.ndarray:
    out = np.empty(x.shape, np.float32)
    for where, xb, cb in _batches(x, classes):
        out[where] = np.abs(input_gradients(model, xb, cb))
    return out


def smoothgrad(model, x, classes, inputs: Inputs) -> np.ndarray:
    rng = np.random.default_rng(inputs.seed)
    out = np.empty(x.shape, np.float32)
    n = SMOOTHGRAD_SAMPLES
    for where, xb, cb in _batches(x, classes):
        noisy = np.repeat(xb, n, axis=0)
        noisy = noisy + rng.standard_normal(noisy.shape).astype(np.float32) * SMOOTHGRAD_NOISE * inputs.spread
        grads = np.abs(input_gradients(model, noisy, np.repeat(cb, n)))
        out[where] = grads.reshape(len(xb), n, *x.shape[1:]).mean(axis=1)
    return out


def integrated_gradients(model, x, classes, inputs: Inputs) -> np.ndarray:
    steps = inputs.steps or IG_STEPS
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    out = np.empty(x.shape, np.float32)
    for where, xb, cb in _batches(x, classes):
        delta = xb - inputs.baseline
        path = inputs.baseline + alphas[None, :, *([None] * (x.ndim - 1))] * delta[:, None]
        grads = input_gradients(model, path.reshape(-1, *x.shape[1:]), np.repeat(cb, steps))
        out[where] = delta * grads.reshape(len(xb), steps, *x.shape[1:]).mean(axis=1)
    return out


def _gradcam_parts(model):
    """What Grad-CAM needs of a classifier of this package: the layers before its backbone, the backbone's
    convolutional trunk up to its last feature maps, and those maps -> scores (global average pooling and
    the head). Only a trunk that ends in global average pooling has maps whose average is what the head
    sees: the ImageNet backbones, and resnet15.

    Raises:
        TransferError: any other network, naming the methods that work for it.
    """
    import keras

    from transfer.errors import TransferError
    from transfer.models.layers import InferenceMode

    head = next((layer for layer in model.layers if layer.name == "head"), None)
    position, inner = next(((i, layer.layer if isinstance(layer, InferenceMode) else layer)
                            for i, layer in enumerate(model.layers)
                            if layer is not head and (isinstance(layer, (InferenceMode, keras.Model)))), (None, None))
    if head is None or inner is None or not isinstance(inner.layers[-1], keras.layers.GlobalAveragePooling2D):
        raise TransferError(f"--methods gradcam: {model.name} has no convolutional trunk ending in global average "
                            "pooling (Grad-CAM weighs those last feature maps: ImageNet backbones, resnet15); use "
                            "saliency, smoothgrad or integrated_gradients")
    maps = inner.layers[-2].output
    trunk = keras.Model(inner.inputs, maps, name="gradcam_trunk")
    pooled = keras.Input(tuple(maps.shape[1:]), name="feature_maps")
    tail = keras.Model(pooled, head(keras.layers.GlobalAveragePooling2D()(pooled)), name="gradcam_tail")
    return model.layers[1:position], trunk, tail


def _has_pooled_trunk(model) -> bool:
    from transfer.errors import TransferError

    try:
        _gradcam_parts(model)
    except TransferError:
        return False
    return True


def gradcam(model, x, classes, inputs: Inputs) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum over the last feature maps A_k of mean(dD/dA_k) A_k),
    upsampled (bilinear) onto the input grid; spread evenly over the channels, so that it sums to the map."""
    from keras import ops

    front, trunk, tail = _gradcam_parts(model)
    out = np.empty(x.shape, np.float32)
    for where, xb, cb in _batches(x, classes):
        h = ops.convert_to_tensor(xb, "float32")
        for layer in front:
            h = layer(h)
        maps = np.asarray(ops.convert_to_numpy(trunk(h, training=False)), np.float32)
        weights = input_gradients(tail, maps, cb).mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * maps).sum(axis=-1, keepdims=True), 0.0)
        cam = ops.convert_to_numpy(ops.image.resize(cam, x.shape[1:3], interpolation="bilinear"))
        out[where] = np.repeat(np.maximum(cam, 0.0) / x.shape[-1], x.shape[-1], axis=-1)
    return out


#: Method name -> :class:`Method`; ``python -m transfer explain --methods`` chooses from these.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("saliency", "gradient saliency |∂D/∂x|", saliency, False,
           "|gradient| of the class's log-odds D = ln[p_c / Σ p_other] (Simonyan et al. 2013)"),
    Method("smoothgrad", "SmoothGrad", smoothgrad, False,
           f"|gradient| averaged over {SMOOTHGRAD_SAMPLES} noisy copies, noise {SMOOTHGRAD_NOISE:.0%} of each "
           "channel's range (Smilkov et al. 2017)"),
    Method("integrated_gradients", "integrated gradients", integrated_gradients, True,
           f"(x - x0) · mean gradient on {IG_STEPS}-{IG_MAX_STEPS} steps (until the map sums to D(x) - D(x0) "
           f"within {IG_TOLERANCE:.0%}) from the empty-detector baseline x0; signed (Sundararajan et al. 2017)"),
    Method("gradcam", "Grad-CAM", gradcam, False,
           "the last feature maps weighted by their mean gradient, ReLU, upsampled (Selvaraju et al. 2017); networks "
           "whose trunk ends in global average pooling: ImageNet backbones, resnet15", _has_pooled_trunk),
)}
DEFAULT_METHODS = ("saliency", "integrated_gradients")


def log_odds(model, x: np.ndarray, classes) -> np.ndarray:
    """The explained quantity itself, ln[p_c / Σ p_other], per event (float64, from the model's scores)."""
    scores = np.asarray(model.predict(x, batch_size=64, verbose=0), np.float64)
    classes = np.broadcast_to(np.asarray(classes), (len(x),))
    own = scores[np.arange(len(x)), classes]
    return np.log(np.maximum(own, 1e-30)) - np.log(np.maximum(scores.sum(axis=1) - own, 1e-30))


def completeness(model, x, classes, maps: np.ndarray, inputs: Inputs) -> float:
    """How far integrated gradients are from exact: sum over events of |sum of the map - (D(x) - D(x0))|
    over the sum of |D(x) - D(x0)| (a per-event ratio would blow up on events whose log-odds hardly move)."""
    base = np.broadcast_to(inputs.baseline, x.shape).astype(np.float32)
    target = log_odds(model, x, classes) - log_odds(model, base, classes)
    error = np.abs(maps.reshape(len(x), -1).sum(axis=1) - target)
    return float(error.sum() / max(np.abs(target).sum(), 1e-12))


def path_steps(model, x, classes, inputs: Inputs, events: int = 16) -> tuple[int, float]:
    """The integrated-gradients steps for ``model``: :data:`IG_STEPS`, doubled while the maps of the first
    ``events`` events miss the change of the log-odds by more than :data:`IG_TOLERANCE`, up to
    :data:`IG_MAX_STEPS`; returns the steps and the completeness they reach."""
    import dataclasses

    steps = IG_STEPS
    while True:
        trial = dataclasses.replace(inputs, steps=steps)
        error = completeness(model, x[:events], classes[:events],
                            integrated_gradients(model, x[:events], classes[:events], trial), trial)
        if error <= IG_TOLERANCE or steps >= IG_MAX_STEPS:
            return steps, error
        steps *= 2


# --------------------------------------------------------------------------
# The sanity check (Adebayo et al. 2018)
# --------------------------------------------------------------------------

def _fitted_layer_types():
    from transfer.models.layers import FeatureScaling, InputStandardization

    return (InputStandardization, FeatureScaling)


def randomized_copy(model, seed: int = 0):
    """The same network with every learned weight drawn again from its initialiser (a fresh clone).

    The fitted input and feature statistics (:class:`~transfer.models.layers.InputStandardization`,
    :class:`~transfer.models.layers.FeatureScaling`) are copied over: they are measured on the data, not
    learned, and without them the random network would see inputs of another scale, which would make
    its maps differ for the wrong reason.
    """
    import keras

    from transfer.models.layers import all_layers

    keras.utils.set_random_seed(seed)
    clone = keras.models.clone_model(model)
    fitted = {id(v) for layer in all_layers(model) if isinstance(layer, _fitted_layer_types())
              for v in layer.weights}
    if len(clone.weights) != len(model.weights):
        raise ValueError(f"clone of {model.name} has {len(clone.weights)} weights, the model {len(model.weights)}")
    for old, new in zip(model.weights, clone.weights):
        if tuple(old.shape) != tuple(new.shape):
            raise ValueError(f"clone of {model.name}: weight {new.path} {new.shape} against {old.path} {old.shape}")
        if id(old) in fitted:
            new.assign(old)
    return clone


def _per_channel(values: np.ndarray) -> np.ndarray:
    """(n, ..., C) -> (n, C, cells): each channel of each event apart."""
    values = np.asarray(values, np.float64)
    return np.moveaxis(values.reshape(len(values), -1, values.shape[-1]), -1, 1)


def rank_correlation(a: np.ndarray, b: np.ndarray, signed: bool = False) -> np.ndarray:
    """Spearman rank correlation of two maps (n, ..., C) per event, the mean over channels (ties share their
    mean rank), as Adebayo et al.: of |a| and |b| for magnitudes, of a and b for signed maps (their sign is
    part of what they say).

    Channel by channel, because both networks share the input standardisation, which scales the gradient
    of each channel by 1 / its standard deviation: across channels the ranks would order the channels by
    that shared scale and agree whatever the weights.
    """
    from scipy.stats import rankdata

    a, b = _per_channel(a), _per_channel(b)
    if not signed:
        a, b = np.abs(a), np.abs(b)
    ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
    ra -= ra.mean(axis=-1, keepdims=True)
    rb -= rb.mean(axis=-1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(axis=-1) * (rb * rb).sum(axis=-1))
    rho = np.where(norm > 0, (ra * rb).sum(axis=-1) / np.maximum(norm, 1e-300), 1.0)
    return rho.mean(axis=1)


def averaged_correlation(own: np.ndarray, other: np.ndarray) -> float:
    """Pearson correlation of two sets of class-averaged maps (classes, ..., C), channel by channel (see
    :func:`rank_correlation`), averaged over classes and channels; a constant map counts as identical to
    the other (there is nothing in it to tell apart)."""
    values = []
    for a_class, b_class in zip(_per_channel(own), _per_channel(other)):
        for a, b in zip(a_class, b_class):
            values.append(1.0 if a.std() == 0 or b.std() == 0 else float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values))


@dataclass(frozen=True)
class Sanity:
    """The randomisation check of one method (Adebayo et al. 2018), on the maps of the network and of the
    same network with re-initialised weights, for the same events.

    Attributes:
        correlation: of the class-averaged maps (Pearson, mean over classes): what the figures show.
            Averaging removes what is particular to one set of weights, so this is where a map that
            follows the inputs or the architecture shows up, and where an untrained network's maps look
            like any random network's.
        per_event: the paper's measure, the rank correlation event by event (mean over the first
            :data:`SANITY_EVENTS` events), with its standard deviation ``per_event_spread``.
        passed: both below ``limit``.
    """

    method: str
    correlation: float
    per_event: float
    per_event_spread: float
    events: int
    limit: float = SANITY_LIMIT

    @property
    def passed(self) -> bool:
        return self.correlation < self.limit and self.per_event < self.limit

    def text(self) -> str:
        verdict = ("passes" if self.passed else
                   "FAILS: its maps hardly change when the weights are drawn again, so they show the inputs or "
                   "the architecture, not what this network learned; not shown as an explanation")
        return (f"{self.method}: correlation with the maps of the same network re-initialised {self.correlation:.2f} "
                f"for the class averages, {self.per_event:.2f} ± {self.per_event_spread:.2f} event by event "
                f"(limit {self.limit:.2f}): {verdict}")

    def as_dict(self) -> dict:
        return {"averaged_maps_correlation": self.correlation, "per_event_rank_correlation": self.per_event,
                "per_event_spread": self.per_event_spread, "events": self.events, "limit": self.limit,
                "passed": self.passed}


def class_means(values: np.ndarray, labels: np.ndarray, mask: np.ndarray, classes: int) -> np.ndarray:
    """(classes, ...) mean of ``values`` over the events of each class where ``mask`` holds (zeros if none)."""
    out = np.zeros((classes, *values.shape[1:]), np.float32)
    for c in range(classes):
        chosen = (labels == c) & mask
        if chosen.any():
            out[c] = values[chosen].mean(axis=0)
    return out


def sanity_check(method: Method, own: np.ndarray, other: np.ndarray, labels: np.ndarray, classes: int) -> Sanity:
    """Compare ``method``'s maps of a network (``own``) with those of its re-initialised copy (``other``,
    :func:`randomized_copy`) on the same events with true ``labels``."""
    everything = np.ones(len(labels), bool)
    n = min(len(labels), SANITY_EVENTS)
    per_event = rank_correlation(own[:n], other[:n], signed=method.signed)
    averaged = averaged_correlation(class_means(own, labels, everything, classes),
                                    class_means(other, labels, everything, classes))
    return Sanity(method.name, averaged, float(per_event.mean()), float(per_event.std()), n)
