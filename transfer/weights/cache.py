"""Where Keras keeps weights, and what a run's backbone is initialised with.

What every ``--weights`` source needs (:mod:`transfer.weights`): the Keras cache folder, where ImageNet
files, toy-cms backbones and backbones extracted from runs live, and the :class:`ResolvedWeights` they
all return.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ResolvedWeights:
    """What a run initialises its backbone with.

    Attributes:
        keras_arg: the ``weights`` argument for the backbone builder:
            ``"imagenet"``, ``None`` (random initialisation) or a file path.
        used: ``"imagenet"``, ``"none"`` or ``"file"``, as recorded in
            ``config.yaml`` and ``metrics.json``.
        file: the weights file loaded, if any.
        reason: why no pretrained weights are used although they were asked
            for (``--on-missing-weights random``), else ``None``.
        pretrained_on: what the backbone was pretrained on, one line (weights
            from a run folder or ``toy-cms``), else ``None``.
        record: that run's record (:mod:`transfer.weights.run`), checked
            against the new run's data before training.
    """

    keras_arg: Optional[str]
    used: str
    file: Optional[str] = None
    reason: Optional[str] = None
    pretrained_on: Optional[str] = None
    record: Optional[dict] = None


def keras_home() -> Path:
    """Keras' home folder (``$KERAS_HOME``, default ``~/.keras``), as Keras itself resolves it."""
    if "keras" in sys.modules:  # Keras fixed it at import time: ask it
        from keras.src.backend import config

        return Path(config.keras_home())
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return Path(home if os.access(home, os.W_OK) else "/tmp") / ".keras"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` can be written, or created (Keras creates ``$KERAS_HOME`` when it is imported)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK)
    return False


def weights_cache_dir() -> Path:
    """The folder ``keras.utils.get_file(..., cache_subdir="models")`` reads and writes.

    The same before and after Keras is imported: a ``$KERAS_HOME`` that does not exist yet but can be
    created is where Keras will put it (it creates the folder on import), not ``/tmp/.keras``.
    """
    base = keras_home().expanduser()
    if not _writable(base):  # get_file falls back to /tmp/.keras
        base = Path("/tmp") / ".keras"
    return base / "models"
