"""Small networks trained from scratch on calorimeter arrays of any shape.

Pretrained ImageNet backbones want 3-channel images of 32+ pixels; calorimeter
arrays are often 12x6 or 28x32 with 1 or 2 physical channels (energy, time).
These builders take any ``(rows, cols, channels)`` and return an uncompiled
``keras.Model`` ending in a softmax over ``num_classes`` (softmax even for two
classes, so every model in ``transfer`` has the same output and loss). Pick
one by name from :data:`COMPACT_NETWORKS`.

Every builder has the signature ``build_<name>(input_shape, num_classes)``.
``cnn3d`` and ``rcnn`` read the channels as calorimeter layers in depth order
(a 3D CNN, and a shared 2D encoder read by a GRU); the others mix the channels
in their first layer. Inputs are expected already scaled (``imgen.arrays.ArrayTransform``: log or
standardize); the networks do no preprocessing of their own. Keras is imported
when a network is built, so listing :data:`COMPACT_NETWORKS` (``--help``,
choices) stays instant.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import keras

Shape = tuple[int, int, int]
#: BatchNorm moving-average momentum: 0.9, not Keras' 0.99, so that the
#: inference statistics settle within the few hundred steps a small physics
#: sample gives (with 0.99 they are still half the initial values after 70 steps).
BN_MOMENTUM = 0.9


def _layers():
    """Keras' layers module, imported on first use."""
    from keras import layers

    return layers


def _check(input_shape: Shape, num_classes: int) -> Shape:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (rows, cols, channels) of positive sizes, got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return shape  # type: ignore[return-value]


def _halving(size: int) -> int:
    """Pool or stride along an axis: 2, or 1 once the axis is down to one cell."""
    return 2 if size > 1 else 1


def _downsample(x):
    """2x2 max pooling (padding 'same': ceil), never below one cell; skipped at 1x1."""
    size = (_halving(x.shape[1]), _halving(x.shape[2]))
    if size == (1, 1):
        return x
    return _layers().MaxPooling2D(size, padding="same")(x)


def _softmax(x, num_classes: int):
    return _layers().Dense(num_classes, activation="softmax", name="probabilities")(x)


def build_cnn(input_shape: Shape, num_classes: int) -> keras.Model:
    """The electron/photon benchmark's reference CNN.

    [conv32, conv32, pool], [conv64, conv64, pool], [conv128, conv128, pool]
    (3x3, ReLU, padding 'same'), then dense 256, 128, 128, 64 with dropout 0.2.
    Pooling halves an axis only while it is longer than one cell, so a 12x6
    input goes 6x3 -> 3x2 -> 2x1 instead of failing.
    """
    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for filters in (32, 64, 128):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = _downsample(x)
    x = layers.Flatten()(x)
    for units in (256, 128, 128, 64):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="cnn")


def _residual_block(x, filters: int, downsample: bool):
    layers = _layers()
    strides = (_halving(x.shape[1]), _halving(x.shape[2])) if downsample else (1, 1)
    shortcut = x
    if strides != (1, 1) or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False)(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def build_resnet15(input_shape: Shape, num_classes: int) -> keras.Model:
    """A small ResNet: stem conv, 3 blocks of 32 filters, 4 of 64 (the first
    with stride 2), global average pooling: 15 convolutions of 3x3.

    No stem pooling, since calorimeter images are already small.
    """
    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    for _ in range(3):
        x = _residual_block(x, 32, downsample=False)
    for i in range(4):
        x = _residual_block(x, 64, downsample=(i == 0))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="resnet15")


#: smallcnn's filters per stage. The first stage works at full resolution, so its width sets the cost: 16
#: filters instead of 32 made an epoch 2.2x faster on 64 px images at the same accuracy (0.836 against
#: 0.836-0.839 on 4,500 independent toy events after 100 epochs), and the time saved buys epochs.
SMALLCNN_FILTERS = (16, 32, 64)
#: smallcnn's coarse map: at most this many cells along each axis, 8 maps each.
COARSE_CELLS, COARSE_MAPS = 4, 8


def _coarse_map(x):
    """The last feature maps squeezed to 8 maps by a 1x1 convolution and mean-pooled onto at most
    4x4 cells, flattened: where things are, coarsely, for a network that otherwise pools positions away."""
    import math

    layers = _layers()
    size = tuple(max(1, math.ceil(int(n) / COARSE_CELLS)) for n in x.shape[1:3])
    y = layers.Conv2D(COARSE_MAPS, 1, activation="relu", name="coarse_maps")(x)
    if size != (1, 1):
        y = layers.AveragePooling2D(size, padding="same", name="coarse_cells")(y)
    return layers.Flatten()(y)


def _smallcnn_features(x):
    """smallcnn's convolutional stages (BatchNorm, ReLU, pooling between stages), then its global max and mean
    pooling and coarse map side by side: the features of smallcnn's head and of rcnn's per-layer encoder."""
    layers = _layers()
    for i, filters in enumerate(SMALLCNN_FILTERS):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
        if i < len(SMALLCNN_FILTERS) - 1:
            x = _downsample(x)
    pooled = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    return layers.Concatenate()([pooled, _coarse_map(x)])  # two at a time: hls4ml concatenates two inputs only


def build_smallcnn(input_shape: Shape, num_classes: int) -> keras.Model:
    """Three [conv 3x3, BatchNorm, ReLU] stages (16, 32, 64 filters, 2x2 max pooling after the first two),
    then the global maximum and mean of every map beside a coarse map of at most 4x4 cells, dense 64,
    dropout 0.3.

    About 40k parameters whatever the image size; fast enough for K-fold
    cross-validation and learning-rate scans on a laptop. The global pooling
    makes it count and weigh objects wherever they sit in the picture (an
    event image is symmetric under phi rotations) instead of learning each
    position separately, which is what let the flattened version overfit
    small samples; the coarse map (8 maps of at most 4x4 cells) keeps where
    things are, roughly: central or forward in eta, apart or together. On
    the bundled toy events (64 px) the coarse map raised the accuracy on
    4,500 independent events from 0.800 to 0.829 (one seed each).
    """
    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="image")
    x = _smallcnn_features(inputs)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="smallcnn")


def build_mlp(input_shape: Shape, num_classes: int) -> keras.Model:
    """Fully connected baseline on the flattened image: dense 256, 128 (ReLU, dropout 0.2).

    What a CNN must beat to show that the spatial structure matters.
    """
    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Flatten()(inputs)
    for units in (256, 128):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="mlp")


# ------------------------------------------------------------------------------------------------
# Networks over calorimeter layers: the channels are read as a depth axis (layer_0, layer_1, ...),
# front to back, as the three-layer calorimeter study of Hartman and Mullane (CaloGAN e+/gamma/pi+)
# did. A layer count of 1 or 2 must work (other arrays): nothing pools along depth, and the depth
# kernel never reaches past the layers there are.

#: cnn3d's filters per stage (as smallcnn's: its first stage works at full resolution on every layer).
CNN3D_FILTERS = (16, 32, 64)
#: cnn3d's kernel along depth: three layers at most, fewer when there are fewer.
CNN3D_DEPTH_KERNEL = 3
#: rcnn: features per layer from the shared encoder, and the units of the recurrent cell that reads them.
RCNN_FEATURES, RCNN_UNITS = 64, 32


def _across_layers(x, pooling, size):
    """2D ``pooling`` of ``size`` across each layer of (rows, cols, layers, maps), none along depth.

    The layers are folded into the maps for it: the same numbers as a 3D pooling of depth one, but
    built from 2D pooling, which TFLite runs natively (its MaxPool3D and AvgPool3D need TensorFlow's
    Flex delegate, which the plain interpreter lacks).
    """
    layers = _layers()
    rows, cols, depth, maps = (int(n) for n in x.shape[1:])
    y = pooling(size, padding="same")(layers.Reshape((rows, cols, depth * maps))(x))
    return layers.Reshape((int(y.shape[1]), int(y.shape[2]), depth, maps))(y)


def _downsample_3d(x):
    """2x2 max pooling across each layer (padding 'same'), never along depth, never below one cell."""
    size = (_halving(x.shape[1]), _halving(x.shape[2]))
    if size == (1, 1):
        return x
    return _across_layers(x, _layers().MaxPooling2D, size)


def _per_layer_pooling(x):
    """(rows, cols, layers, maps) -> the global maximum and mean of every map in every layer, flattened.

    The layers are folded into the maps first, so that pooling runs across each layer and the network
    still knows which layer a feature came from (a shower's depth is what tells e+, gamma and pi+ apart).
    """
    layers = _layers()
    rows, cols, depth, maps = (int(n) for n in x.shape[1:])
    x = layers.Reshape((rows, cols, depth * maps))(x)
    return layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])


def build_cnn3d(input_shape: Shape, num_classes: int) -> keras.Model:
    """A 3D CNN over (rows, cols, layers): the channels are the calorimeter layers, stacked as depth.

    Three [Conv3D, BatchNorm, ReLU] stages (16, 32, 64 filters; kernel 3x3 across a layer and
    ``min(3, layers)`` along depth, padding 'same'; 2x2 pooling across after the first two, none along
    depth), then per layer the global maximum and mean of every map beside a coarse map of at most
    4x4 cells per layer, dense 64, dropout 0.3.

    A 3D kernel sees a shower's development from one layer into the next (a photon that starts late,
    a pion that starts later still) where a 2D network mixes the layers in its first convolution and
    sees them no more. Any layer count works: one layer is a 2D CNN with 3D kernels of depth one.
    About 110k parameters for the three layers on their 12x96 grid (the coarse map grows with the layers).
    """
    import math

    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    rows, cols, depth = shape
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Reshape((rows, cols, depth, 1))(inputs)
    kernel = (3, 3, min(CNN3D_DEPTH_KERNEL, depth))
    for i, filters in enumerate(CNN3D_FILTERS):
        x = layers.Conv3D(filters, kernel, padding="same", use_bias=False)(x)
        x = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
        if i < len(CNN3D_FILTERS) - 1:
            x = _downsample_3d(x)
    pooled = _per_layer_pooling(x)
    coarse = layers.Conv3D(COARSE_MAPS, 1, activation="relu", name="coarse_maps")(x)
    cells = tuple(max(1, math.ceil(int(n) / COARSE_CELLS)) for n in x.shape[1:3])
    if cells != (1, 1):
        coarse = _across_layers(coarse, layers.AveragePooling2D, cells)
    x = layers.Concatenate()([pooled, layers.Flatten()(coarse)])
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="cnn3d")


def _layer_encoder(rows: int, cols: int):
    """The 2D encoder every layer shares in :func:`build_rcnn`: smallcnn's stages on one layer, its global
    pooling and coarse map, then dense :data:`RCNN_FEATURES`."""
    import keras

    layers = _layers()
    inputs = keras.Input(shape=(rows, cols, 1), name="layer")
    x = _smallcnn_features(inputs)
    x = layers.Dense(RCNN_FEATURES, activation="relu")(x)
    return keras.Model(inputs, x, name="layer_encoder")


def build_rcnn(input_shape: Shape, num_classes: int) -> keras.Model:
    """A recurrent CNN: one 2D encoder shared by every layer, whose per-layer features a GRU reads in
    depth order (layer 0 first), then dense 64, dropout 0.3.

    The network of the three-layer calorimeter study that scored best (77.9 % on CaloGAN e+/gamma/pi+):
    the encoder learns what a shower looks like in any layer, the GRU how it develops from one layer
    to the next. Sharing the encoder keeps it at about 50k parameters whatever the layer count (one
    encoder per layer would triple it for three layers and learn each from a third of the views). The
    GRU is unrolled over the layers, which are few and fixed in number: a plain graph of matrix
    products that ONNX and TFLite take without a loop. Any layer count works; for one layer the GRU is
    a gated dense layer.
    """
    import keras

    layers = _layers()
    shape = _check(input_shape, num_classes)
    rows, cols, depth = shape
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Permute((3, 1, 2))(inputs)  # (layers, rows, cols): depth becomes the sequence
    x = layers.Reshape((depth, rows, cols, 1))(x)
    x = layers.TimeDistributed(_layer_encoder(rows, cols), name="shared_encoder")(x)
    x = layers.GRU(RCNN_UNITS, unroll=True, name="depth_gru")(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _softmax(x, num_classes), name="rcnn")


#: Name -> builder: ``--backbone`` choices for arrays come from this table.
COMPACT_NETWORKS: dict[str, Callable[[Shape, int], keras.Model]] = {
    "cnn": build_cnn,
    "resnet15": build_resnet15,
    "smallcnn": build_smallcnn,
    "mlp": build_mlp,
    "cnn3d": build_cnn3d,
    "rcnn": build_rcnn,
}


def build_compact(name: str, input_shape: Shape, num_classes: int) -> keras.Model:
    """Build a network of :data:`COMPACT_NETWORKS` by name."""
    try:
        builder = COMPACT_NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown compact network {name!r}; choose from {', '.join(COMPACT_NETWORKS)}") from None
    return builder(input_shape, num_classes)
