"""``--weights toy-cms``: backbones pretrained on the bundled generator's events, kept in the Keras cache.

A toy-cms backbone is ``python -m transfer pretrain`` with its defaults (:mod:`transfer.experiments.pretrain`,
which also builds one on first use: :func:`~transfer.experiments.pretrain.ensure_toy_cms`), stored as a run
folder under ``$KERAS_HOME/models/hepvision-toy-cms/<backbone>-<size>px-<events>ev-<epochs>ep-seed<seed>-gen<v>``;
this module names that folder and finds what is there.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from transfer.errors import TransferError
from transfer.run_folder import BACKBONE_WEIGHTS, PRETRAINED_RECORD
from transfer.weights.run import resolve_run_weights

log = logging.getLogger(__name__)


#: ``--weights toy-cms``: a backbone pretrained on the bundled generator's events (:mod:`transfer.experiments.pretrain`).
TOY_CMS = "toy-cms"
#: pretrain's defaults, which toy-cms uses: 2000 events per process (6000 images), 64 px, 30 epochs, seed 42.
#: 30, not 5: at 32 px MobileNetV2's own test accuracy went 0.64 -> 0.74 -> 0.78 after 5, 15, 30 epochs, and
#: fine-tuned on 245 events of another sample its test AUC 0.845 -> 0.894 -> 0.916, against 0.902 for the
#: same network trained by hand with the from-scratch recipe on 6,000 rendered events; at 64 px 0.875 -> 0.956
#: (README). 10 minutes on 2 CPU cores at 32 px, 25 at 64 px; minutes on a GPU.
DEFAULT_EVENTS = 2000
DEFAULT_IMAGE_SIZE = 64
DEFAULT_EPOCHS = 30
DEFAULT_SEED = 42
#: Subfolder of the Keras weights cache ($KERAS_HOME/models) that holds the toy-cms backbones.
TOY_CMS_FOLDER = "hepvision-toy-cms"
TOY_CMS_EVENTS_ENV = "HEPVISION_TOY_CMS_EVENTS"
TOY_CMS_EPOCHS_ENV = "HEPVISION_TOY_CMS_EPOCHS"
#: How long a run waits for another process that is building the same toy-cms backbone (seconds).
TOY_CMS_WAIT_ENV = "HEPVISION_TOY_CMS_WAIT"
DEFAULT_TOY_CMS_WAIT = 3600


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise TransferError(f"${name}={value!r}: expected a whole number") from None
    if number < minimum:
        raise TransferError(f"${name}={value!r}: must be at least {minimum}")
    return number


def toy_cms_folder(backbone: str, size: int, events: int | None = None, epochs: int | None = None,
                   seed: int = DEFAULT_SEED) -> Path:
    """Where the toy-cms backbone of ``backbone`` at ``size`` px lives in the Keras cache."""
    from imgen.synth import GENERATOR_VERSION
    from transfer.weights.cache import weights_cache_dir

    events = events or _env_int(TOY_CMS_EVENTS_ENV, DEFAULT_EVENTS)
    epochs = epochs or _env_int(TOY_CMS_EPOCHS_ENV, DEFAULT_EPOCHS)
    name = f"{backbone}-{size}px-{events}ev-{epochs}ep-seed{seed}-gen{GENERATOR_VERSION}"
    return weights_cache_dir() / TOY_CMS_FOLDER / name


def toy_cms_size(image_size: tuple | None) -> int:
    """The square size of a toy-cms backbone for ``--image-size`` (default 64 px)."""
    size = tuple(image_size) if image_size else (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    if size[0] != size[1]:
        raise TransferError(f"--weights {TOY_CMS} with --image-size {size[0]}x{size[1]}: toy-cms backbones are "
                            "pretrained on square images; pass --image-size N")
    return int(size[0])


def toy_cms_built(folder: Path) -> bool:
    return (folder / PRETRAINED_RECORD).is_file() and (folder / BACKBONE_WEIGHTS).is_file()


def cached_toy_cms(spec, image_size: tuple | None):
    """``--weights toy-cms`` once built: the cached backbone of ``spec`` at ``image_size``.

    Building it means training a network, which needs the runner that needs
    these weights; so the commands build it first (:func:`transfer.experiments.pretrain.ensure_toy_cms`)
    and this only finds it, or says how to build it.
    """
    size = toy_cms_size(image_size)
    folder = toy_cms_folder(spec.name, size)
    if not toy_cms_built(folder):
        raise TransferError(f"--weights {TOY_CMS}: no {spec.name} backbone pretrained at {size} px in {folder} yet; "
                            f"python -m transfer and transfer.experiments.run_experiment build it on first use, "
                            f"or build it now with transfer.experiments.pretrain.ensure_toy_cms({spec.name!r}, {size})")
    log.info("--weights %s: using the cached %s backbone in %s", TOY_CMS, spec.name, folder)
    return resolve_run_weights(spec, str(folder), used=TOY_CMS)
