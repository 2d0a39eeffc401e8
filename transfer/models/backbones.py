"""The backbone registry: one table from a name to everything ``transfer`` needs.

A backbone is a feature extractor: it takes a batch of images that are already
preprocessed for it and returns one pooled feature vector per image. The
classification head sits on top (see :mod:`transfer.models.classifier`). Each entry of
:data:`BACKBONES` is a :class:`BackboneSpec`; adding a backbone is one call to
:func:`register_backbone`, and the CLI's ``--backbone`` choices and
``--list-backbones`` come from the table itself.

Importing this module does not import TensorFlow or Keras: builders import
them when they are called.

Example::

    from transfer.models.backbones import get_backbone
    spec = get_backbone("vgg19")
    features = spec.builder((64, 64, 3), None)   # random initialisation

Compact networks trained from scratch are registered with ``pretrained=False``
(the six of :data:`transfer.models.compact.COMPACT_NETWORKS`: cnn, resnet15, smallcnn,
mlp, and cnn3d and rcnn over calorimeter layers); :func:`classifier_as_backbone` turns a builder of a whole classifier
(``build(input_shape, num_classes) -> keras.Model`` ending in a softmax layer)
into a backbone builder::

    register_backbone(BackboneSpec(
        name="smallcnn", builder=classifier_as_backbone(build_smallcnn),
        preprocess=None, min_size=1, default_size=32, pretrained=False, channels=None))

Input scaling, the same rule everywhere (see :mod:`transfer.models.classifier`):

* uint8 images: pretrained backbones get their own ``preprocess_input``;
  networks trained from scratch get pixels / 255, i.e. [0, 1];
* HDF5 arrays (float32, as ``--scale`` leaves them): networks trained from
  scratch take them as they are; pretrained backbones get each channel mapped
  linearly onto 0..255 (the training split's minimum and maximum), then their
  own ``preprocess_input``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from transfer.errors import TransferError

#: ``builder(input_shape, weights) -> keras.Model``: ``input_shape`` is
#: ``(height, width, channels)`` after preprocessing; ``weights`` is ``None``
#: (random initialisation), ``"imagenet"`` or a path to a weights file.
Builder = Callable[[tuple, Optional[str]], Any]

_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class BackboneSpec:
    """What ``transfer`` knows about one backbone.

    Attributes:
        name: the registry key, used by ``--backbone``.
        builder: ``builder(input_shape, weights)`` returning a Keras model that
            maps preprocessed images to one pooled feature vector each.
        preprocess: name of the ``keras.applications`` submodule whose
            ``preprocess_input`` the backbone expects (``"vgg19"``,
            ``"inception_v3"``...); ``None`` scales pixels to [0, 1].
        min_size: smallest height or width the architecture accepts.
        default_size: the resolution the ImageNet weights were trained at.
        pretrained: whether ImageNet weights exist for it.
        weights_file: ``weights_file((height, width))`` is the name of the
            no-top ImageNet weights file Keras looks for in its cache
            (``$KERAS_HOME/models``); ``None`` when there is none.
        weights_url: folder URL Keras downloads ``weights_file`` from.
        weights_hash: the hash Keras checks the file against (md5 or sha256;
            ``None`` where Keras checks none).
        channels: input channels the builder needs (3 for ImageNet
            backbones: grayscale images are repeated into RGB); ``None``
            takes the images' own channel count.
        max_channels: with ``channels=None``, the most channels the network
            takes (``None``: any number); the networks over calorimeter layers
            have one.
        max_channels_reason: why, for the refusal.
        recipe: this network's own defaults of ``lr``, ``epochs``, ``patience``
            where the shared ones (:data:`transfer.config.RECIPE_DEFAULTS`)
            measured worse for it.
    """

    name: str
    builder: Builder
    preprocess: Optional[str]
    min_size: int
    default_size: int
    pretrained: bool = True
    weights_file: Optional[Callable[[tuple], str]] = None
    weights_url: Optional[str] = None
    weights_hash: Optional[str] = None
    channels: Optional[int] = 3
    max_channels: Optional[int] = None
    max_channels_reason: str = ""
    recipe: Mapping[str, float] = field(default_factory=dict, hash=False, compare=False)

    def weights_file_for(self, image_size: tuple | None = None) -> str | None:
        """The ImageNet file name Keras loads at ``image_size`` (height, width)."""
        if self.weights_file is None:
            return None
        size = tuple(image_size) if image_size else (self.default_size, self.default_size)
        return self.weights_file(size)


#: name -> spec; add entries with :func:`register_backbone`.
BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, replace: bool = False) -> BackboneSpec:
    """Add ``spec`` to :data:`BACKBONES` (``replace=True`` to redefine a name)."""
    if not spec.name or spec.name != spec.name.lower() or any(c.isspace() for c in spec.name):
        raise TransferError(f"backbone name {spec.name!r}: use a lower-case name without spaces")
    if spec.name in BACKBONES and not replace:
        raise TransferError(f"backbone {spec.name!r} is already registered (pass replace=True to redefine it)")
    if spec.min_size < 1 or spec.default_size < spec.min_size:
        raise TransferError(f"backbone {spec.name!r}: need 1 <= min_size <= default_size, "
                            f"got {spec.min_size} and {spec.default_size}")
    BACKBONES[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    """The spec registered as ``name``; an unknown name lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise TransferError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))} "
                            "(python -m transfer --list-backbones)") from None


def check_image_size(spec: BackboneSpec, image_size: tuple) -> None:
    """Refuse a (height, width) below the backbone's minimum, with what to do instead."""
    if min(image_size) < spec.min_size:
        why = (f"{spec.default_size} is the size its ImageNet weights were trained at" if spec.pretrained
               else "its 3x3 convolutions would see padding, not cells")
        raise TransferError(
            f"image size {image_size[0]}x{image_size[1]} is below the minimum of backbone {spec.name!r} "
            f"({spec.min_size}x{spec.min_size}); pass --image-size {spec.min_size} or more (images are "
            f"resized inside the model; {why})")


#: How many input channels a 3-channel (RGB) backbone takes, and how they become three
#: (inside the model, so a saved model takes the data's own channels).
RGB_MAPPINGS = {1: "repeated three times", 2: "(c0, c1, (c0 + c1) / 2)", 3: "as they are"}


def check_channels(spec: BackboneSpec, channels: int, names=None) -> None:
    """Refuse a channel count a backbone cannot take, saying what to do instead."""
    named = f" ({', '.join(map(str, names))})" if names else ""
    if spec.channels == 3 and channels not in RGB_MAPPINGS:
        any_number = ", ".join(sorted(n for n, s in BACKBONES.items() if s.channels is None and s.max_channels is None))
        raise TransferError(
            f"backbone {spec.name!r} takes 3 channels (1 is repeated, 2 become (c0, c1, mean)), but the "
            f"input has {channels}{named}: choose up to three with --channels, or use a compact network "
            f"trained from scratch ({any_number}), which takes any number")
    if spec.channels is None and spec.max_channels is not None and channels > spec.max_channels:
        raise TransferError(
            f"backbone {spec.name!r} reads at most {spec.max_channels} calorimeter layers (channels), but the "
            f"input has {channels}{named}: {spec.max_channels_reason}. Choose layers with --channels, or use "
            "smallcnn, which mixes any number of channels in its first convolution")


def keras_application(class_name: str) -> Builder:
    """Builder for ``keras.applications.<class_name>`` without its top, average-pooled."""

    def build(input_shape, weights=None):
        import keras

        application = getattr(keras.applications, class_name)
        return application(include_top=False, weights=weights, input_shape=tuple(input_shape),
                           pooling="avg")

    build.__name__ = build.__qualname__ = f"keras.applications.{class_name}"
    return build


def classifier_as_backbone(build_classifier: Callable[..., Any]) -> Builder:
    """Builder from ``build_classifier(input_shape, num_classes)`` (a model ending in softmax).

    The returned backbone is the classifier without its final layer, so the
    usual head of :mod:`transfer.models.classifier` sits where the softmax layer was.
    ``weights`` may be ``None`` or a path to a weights file of that backbone.
    """

    def build(input_shape, weights=None):
        import keras

        classifier = build_classifier(tuple(input_shape), 2)
        features = keras.Model(classifier.inputs, classifier.layers[-1].input,
                               name=f"{classifier.name}_features")
        if weights is not None:
            features.load_weights(weights)
        return features

    build.__name__ = build.__qualname__ = f"classifier_as_backbone({build_classifier.__name__})"
    return build


def _fixed(name: str) -> Callable[[tuple], str]:
    return lambda size: name


def _mobilenet_v2_file(size: tuple) -> str:
    # keras.applications.MobileNetV2 loads the file of the input size when it
    # is square and one of these, and the 224 file otherwise.
    rows = size[0] if size[0] == size[1] and size[0] in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def _keras_spec(name, class_name, preprocess, min_size, default_size, file, folder, file_hash):
    return BackboneSpec(
        name=name, builder=keras_application(class_name), preprocess=preprocess,
        min_size=min_size, default_size=default_size, pretrained=True,
        weights_file=file if callable(file) else _fixed(file), weights_url=folder,
        weights_hash=file_hash, channels=3)


# File names and hashes are those of keras/src/applications/*.py (Keras 3),
# for include_top=False; tests/transfer/weights/test_weights.py checks them against
# the installed Keras.
for _spec in (
    _keras_spec("vgg16", "VGG16", "vgg16", 32, 224,
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "vgg16/", "6d6bbae143d832006294945121d1f1fc"),
    _keras_spec("vgg19", "VGG19", "vgg19", 32, 224,
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "vgg19/", "253f8cb515780f3b799900260a226db6"),
    _keras_spec("resnet50", "ResNet50", "resnet", 32, 224,
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "resnet/", "4d473c1dd8becc155b73f8504c6f6626"),
    _keras_spec("inceptionv3", "InceptionV3", "inception_v3", 75, 299,
                "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "inception_v3/", "bcbd6486424b2319ff4ef7d526e38f63"),
    _keras_spec("inceptionresnetv2", "InceptionResNetV2", "inception_resnet_v2", 75, 299,
                "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "inception_resnet_v2/", "d19885ff4a710c122648d3b5c3b684e4"),
    _keras_spec("xception", "Xception", "xception", 71, 299,
                "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_WEIGHTS_URL + "xception/", "b0042744bf5b25fce3cb969f33bebb97"),
    _keras_spec("mobilenetv2", "MobileNetV2", "mobilenet_v2", 32, 224, _mobilenet_v2_file,
                _KERAS_WEIGHTS_URL + "mobilenet_v2/", None),
    _keras_spec("efficientnetb0", "EfficientNetB0", "efficientnet", 32, 224,
                "efficientnetb0_notop.h5",
                "https://storage.googleapis.com/keras-applications/",
                "50bc09e76180e00e4465e1a485ddc09d"),
):
    register_backbone(_spec)
del _spec


#: Smallest height or width a compact network can use: its first 3x3 convolution must see a
#: neighbourhood of real cells, not padding (2x2 inputs train on padding); the mlp takes any size.
COMPACT_MIN_SIZE = {"mlp": 1}
COMPACT_CONV_MIN_SIZE = 3
#: The networks over calorimeter layers (cnn3d, rcnn) run every layer through every convolution at full
#: resolution, so their time and memory grow with the layer count. 64 is above any calorimeter's
#: longitudinal segmentation (CaloGAN 3, ATLAS 4-7 samplings, CMS HGCAL 47): more channels are not layers.
MAX_LAYERS = 64
LAYER_NETWORKS = {
    "cnn3d": "its time and memory grow with every layer (each passes through every 3D convolution at full "
             "resolution), and no calorimeter has more longitudinal layers",
    "rcnn": "its time and memory grow with every layer (each passes through the shared encoder, and the "
            "GRU is unrolled over them), and no calorimeter has more longitudinal layers",
}


#: Defaults of compact networks that differ from those of every network trained from scratch. ``cnn`` (no
#: BatchNorm, four dense layers) collapsed at the shared 3e-3 on realistic towers (``--scale log``, 2,000
#: events, seed 1: test AUC 0.751, training accuracy 0.50) and reached 0.966 at 1e-3 on two generator seeds;
#: on the toy towers 1e-3 measured 0.994 against 0.988 at 3e-3 (benchmarks/quality.py data, seed 1).
COMPACT_RECIPES: dict[str, dict[str, float]] = {"cnn": {"lr": 1e-3}}


def _register_compact_networks() -> None:
    """cnn, resnet15, smallcnn, mlp (any channel count), cnn3d and rcnn (up to :data:`MAX_LAYERS`
    layers), all trained from scratch; convolutional ones need 3x3 cells."""
    from transfer.models.compact import COMPACT_NETWORKS

    for name, build in COMPACT_NETWORKS.items():
        register_backbone(BackboneSpec(
            name=name, builder=classifier_as_backbone(build), preprocess=None,
            min_size=COMPACT_MIN_SIZE.get(name, COMPACT_CONV_MIN_SIZE), default_size=32,
            pretrained=False, channels=None, max_channels=MAX_LAYERS if name in LAYER_NETWORKS else None,
            max_channels_reason=LAYER_NETWORKS.get(name, ""), recipe=COMPACT_RECIPES.get(name, {})))


_register_compact_networks()


def _channels_text(spec: BackboneSpec) -> str:
    """The ``channels`` column of ``--list-backbones``: what the network does with the input channels."""
    if spec.channels is not None:
        return f"{spec.channels} (fewer mapped)" if spec.channels == 3 else str(spec.channels)
    if spec.max_channels is not None:
        return f"1-{spec.max_channels}, as layers"
    return "any"


def format_backbone_table(keras_cache: str | None = None) -> str:
    """The ``--list-backbones`` table: input size limits and weights files; compact networks marked from scratch."""
    from pathlib import Path

    rows = [("name", "min size", "channels", "ImageNet size", "input scaling", "ImageNet weights file (no top)")]
    for spec in sorted(BACKBONES.values(), key=lambda s: (not s.pretrained, s.name)):
        file = spec.weights_file_for() or "-"
        if keras_cache and spec.weights_file and (Path(keras_cache) / file).is_file():
            file += "  [cached]"
        if spec.pretrained:
            scaling = f"keras.applications.{spec.preprocess}" if spec.preprocess else "scale to [0, 1]"
        else:
            scaling = "standardised inside the model (training mean, std)"
        rows.append((spec.name, str(spec.min_size), _channels_text(spec),
                     str(spec.default_size) if spec.pretrained else "-",
                     scaling, file if spec.pretrained else "- (from scratch: --weights none)"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
