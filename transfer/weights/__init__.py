"""Resolving ``--weights``: what a run's backbone starts from.

:data:`WEIGHT_SOURCES` is the table of what ``--weights`` can name, asked in order; the first source that
claims the value resolves it into a :class:`~transfer.weights.cache.ResolvedWeights`:

=========  ==============================================================  =================================
source     ``--weights``                                                   module
=========  ==============================================================  =================================
none       ``none``: random initialisation                                 here
imagenet   ``imagenet``: Keras' cached (or downloaded) ImageNet file       :mod:`transfer.weights.imagenet`
toy-cms    a backbone pretrained on the bundled generator's events         :mod:`transfer.weights.toy_cms`
run        a run folder, its ``model.keras`` or ``backbone.weights.h5``    :mod:`transfer.weights.run`
file       any other Keras weights file                                    here
=========  ==============================================================  =================================

``auto`` is decided before (by the backbone: imagenet when it has ImageNet weights, else none), in
:mod:`transfer.config`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transfer.errors import TransferError
from transfer.models.backbones import BackboneSpec
from transfer.weights.cache import ResolvedWeights
from transfer.weights.imagenet import resolve_imagenet
from transfer.weights.run import is_run_reference, resolve_run_weights
from transfer.weights.toy_cms import TOY_CMS, cached_toy_cms


@dataclass(frozen=True)
class WeightSource:
    """One kind of ``--weights`` value: whether it ``claims`` a value, and how to ``resolve`` it."""

    name: str
    claims: Callable[[str | None], bool]
    resolve: Callable[[BackboneSpec, str, tuple | None, str], ResolvedWeights]


def _random(spec, value, image_size, on_missing) -> ResolvedWeights:
    return ResolvedWeights(keras_arg=None, used="none")


def _weights_file(spec, value, image_size, on_missing) -> ResolvedWeights:
    path = Path(value).expanduser()
    if not path.is_file():
        raise TransferError(f"--weights {value}: no such file or run folder (expected 'imagenet', 'none', "
                            f"'{TOY_CMS}', a run folder or the path of a weights file for backbone {spec.name!r})")
    if not path.name.endswith((".h5", ".hdf5", ".keras")):
        raise TransferError(f"--weights {value}: Keras reads weights from .weights.h5, .h5, .hdf5 or .keras files")
    return ResolvedWeights(keras_arg=str(path), used="file", file=str(path))


#: What ``--weights`` can name, asked in order (the last claims anything).
WEIGHT_SOURCES = (
    WeightSource("none", lambda value: value in (None, "none"), _random),
    WeightSource("imagenet", lambda value: value == "imagenet",
                 lambda spec, value, size, on_missing: resolve_imagenet(spec, size, on_missing)),
    # built by transfer.experiments.pretrain.ensure_toy_cms, which the commands call first
    WeightSource(TOY_CMS, lambda value: value == TOY_CMS, lambda spec, value, size, _: cached_toy_cms(spec, size)),
    WeightSource("run", is_run_reference, lambda spec, value, size, _: resolve_run_weights(spec, value)),
    WeightSource("file", lambda value: True, _weights_file),
)


def resolve_weights(spec: BackboneSpec, weights: str | None, image_size: tuple | None = None,
                    on_missing: str = "error") -> ResolvedWeights:
    """Turn ``--weights none|imagenet|toy-cms|RUN|PATH`` into what the backbone is built with.

    ``on_missing="random"`` turns unavailable ImageNet weights into a random initialisation with exactly one
    WARNING log line; ``"error"`` raises :class:`~transfer.errors.WeightsUnavailable`.
    """
    source = next(source for source in WEIGHT_SOURCES if source.claims(weights))
    return source.resolve(spec, weights, image_size, on_missing)
