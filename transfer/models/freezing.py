"""Which backbone layers train: frozen, the top N weighted layers, or all (``--fine-tune``, ``--unfreeze``);
pretrained BatchNorm layers always stay frozen (see :mod:`transfer.models.classifier`)."""
from __future__ import annotations

import keras

from transfer.errors import TransferError

#: ``--unfreeze`` not given: the top 4 layers with weights (VGG19's block 5), or all of a network with fewer.
DEFAULT_UNFREEZE = 4


def is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def weighted_layers(backbone: keras.Model, freeze_batch_norm: bool = True) -> list:
    """Layers of ``backbone`` with trainable parameters, bottom to top (BatchNorm excluded by default).

    These are what ``--unfreeze N`` counts: the top N of them are opened.
    """
    was_trainable = [layer.trainable for layer in backbone.layers]
    for layer in backbone.layers:  # trainable_weights is empty for a frozen layer
        layer.trainable = True
    found = [layer for layer in backbone.layers
             if layer.trainable_weights and not (freeze_batch_norm and is_batch_norm(layer))]
    for layer, trainable in zip(backbone.layers, was_trainable):
        layer.trainable = trainable
    return found


def layers_to_unfreeze(backbone: keras.Model, mode: str, unfreeze: int | None = None,
                       freeze_batch_norm: bool = True) -> list:
    """The layers a fine-tuning ``mode`` (frozen, partial, full) opens; checks ``unfreeze`` (``None``: the
    default, :data:`DEFAULT_UNFREEZE` or every layer of a smaller network; a number given must fit)."""
    if mode == "frozen":
        return []
    candidates = weighted_layers(backbone, freeze_batch_norm)
    if mode == "full":
        return candidates
    if unfreeze is None:
        return candidates[-DEFAULT_UNFREEZE:]
    if unfreeze > len(candidates):
        raise TransferError(f"--unfreeze {unfreeze}: backbone {backbone.name!r} has only "
                            f"{len(candidates)} layers with weights"
                            + (" (BatchNorm not counted)" if freeze_batch_norm else "")
                            + f"; use --unfreeze {len(candidates)} or --fine-tune full")
    return candidates[-unfreeze:]


def set_trainable(backbone: keras.Model, mode: str, unfreeze: int | None = None,
                  freeze_batch_norm: bool = True) -> list[str]:
    """Freeze ``backbone`` except what ``mode`` opens; BatchNorm stays frozen unless told otherwise.

    ``mode``: ``"frozen"`` (nothing), ``"partial"`` (the top ``unfreeze``
    layers with weights, see :func:`weighted_layers`; ``None``: the default) or ``"full"`` (every
    layer but BatchNorm). ``freeze_batch_norm=False`` (backbones trained from
    scratch) counts and opens BatchNorm layers like the others. Returns the
    names of the opened layers. Recompile the model afterwards.
    """
    opened = layers_to_unfreeze(backbone, mode, unfreeze, freeze_batch_norm)
    opened_ids = {id(layer) for layer in opened}
    backbone.trainable = bool(opened)
    # Layer by layer as well: Keras' TensorFlow backend skips assigning an
    # attribute the value it already has (its `self.x = self.x` short cut), so
    # the model-level assignment does not always reach the layers.
    for layer in backbone.layers:
        layer.trainable = id(layer) in opened_ids
    return [layer.name for layer in opened]
