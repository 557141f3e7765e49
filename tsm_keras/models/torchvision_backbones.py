"""Keras backbones that are layer-for-layer twins of the PyTorch ones of the released TSM models.

The official TSM checkpoints were trained on torchvision's ResNet-50/101 and on a
MobileNetV2 in the 'features.N.conv.M' layout. Their Keras counterparts differ in ways
that change the numbers, so porting needs these twins:

- ResNet v1.5 (torchvision): the stride of a downsampling bottleneck is on the 3x3 conv
  (keras.applications ResNet is v1: stride on the first 1x1), convolutions have no bias.
- BatchNormalization epsilon 1e-5 (PyTorch's default; Keras uses 1e-3, its ResNet 1.001e-5).
- Explicit symmetric zero padding + 'valid' convolutions: PyTorch pads k // 2 on every
  side, while Keras 'same' with stride 2 pads only right/bottom on even inputs.

Layer names follow keras.applications (conv{stage}_block{i}_{1,2,3}_conv, block_{i}_expand,
...), so that `find_insertion_points` finds the TSM insertion points in them, and so that
`tsm_keras.port` can map every PyTorch tensor to a layer by name.

BatchNormalization momentum is 0.9, PyTorch's 0.1 in Keras' convention, so fine-tuning a
ported model updates its statistics at the rate it was trained with.
"""

import keras
from keras import layers

BN_EPSILON = 1e-5  # PyTorch's default
BN_MOMENTUM = 0.9  # PyTorch momentum=0.1

RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

# MobileNetV2 inverted residual settings: expansion t, output channels c, repeats n, stride s.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _batch_norm(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _conv(filters, kernel, stride, name, x):
    """A PyTorch-style ResNet conv: pad k // 2 on every side, then a 'valid' conv without bias."""
    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=name.removesuffix("_conv") + "_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _bottleneck(x, width, stride, name):
    """torchvision Bottleneck (v1.5): 1x1 -> 3x3 (stride here) -> 1x1 (4 * width), + shortcut."""
    filters = 4 * width
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f"{name}_0_conv", x)
        shortcut = _batch_norm(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    y = _conv(width, 1, 1, f"{name}_1_conv", x)
    y = _batch_norm(f"{name}_1_bn")(y)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv(width, 3, stride, f"{name}_2_conv", y)
    y = _batch_norm(f"{name}_2_bn")(y)
    y = layers.ReLU(name=f"{name}_2_relu")(y)
    y = _conv(filters, 1, 1, f"{name}_3_conv", y)
    y = _batch_norm(f"{name}_3_bn")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def torchvision_resnet(depth, input_shape=(224, 224, 3), name=None):
    """ResNet-50/101 as torchvision builds it (v1.5), without its classifier.

    Example:

    >>> model = torchvision_resnet(50, (32, 32, 3))
    >>> model.output_shape
    (None, 1, 1, 2048)
    >>> model.get_layer("conv3_block1_2_conv").strides  # stride on the 3x3 conv
    (2, 2)

    Args:
        depth: 50 or 101.
        input_shape: (H, W, 3).

    Output: the stage-5 feature map `(B, H / 32, W / 32, 2048)`.
    """
    if depth not in RESNET_BLOCKS:
        raise ValueError(f"`depth` must be one of {sorted(RESNET_BLOCKS)}. Received: depth={depth!r}")
    inputs = keras.Input(input_shape, name="input")
    x = _conv(64, 7, 2, "conv1_conv", inputs)
    x = _batch_norm("conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    # Zero padding before the max pool is exact here: its input is a ReLU output (>= 0),
    # where PyTorch's -inf padding can never win either.
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (blocks, width) in enumerate(zip(RESNET_BLOCKS[depth], (64, 128, 256, 512)), start=2):
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck(x, width, stride, f"conv{stage}_block{block}")
    return keras.Model(inputs, x, name=name or f"resnet{depth}_tv")


def _inverted_residual(x, expansion, filters, stride, block_id):
    """MobileNetV2 block: [1x1 expand] -> 3x3 depthwise (stride) -> 1x1 project, + input if it fits."""
    prefix = "expanded_conv_" if block_id == 0 else f"block_{block_id}_"
    channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(channels * expansion, 1, use_bias=False, name=f"{prefix}expand")(y)
        y = _batch_norm(f"{prefix}expand_BN")(y)
        y = layers.ReLU(6.0, name=f"{prefix}expand_relu")(y)
    y = layers.ZeroPadding2D(1, name=f"{prefix}pad")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="valid", use_bias=False, name=f"{prefix}depthwise")(y)
    y = _batch_norm(f"{prefix}depthwise_BN")(y)
    y = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(y)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}project")(y)
    y = _batch_norm(f"{prefix}project_BN")(y)
    if stride == 1 and channels == filters:
        y = layers.Add(name=f"{prefix}add")([x, y])
    return y


def torchvision_mobilenet_v2(input_shape=(224, 224, 3), name="mobilenet_v2_tv"):
    """MobileNetV2 (width 1.0) in the layout of the TSM checkpoints, without its classifier.

    The PyTorch model is `features` = [3x3 conv, 17 inverted residual blocks, 1x1 conv to
    1280], all convolutions without bias, ReLU6, BatchNormalization epsilon 1e-5. Block
    `features.N` (N = 1..17) is Keras' `expanded_conv` (N = 1) or `block_{N-1}`.

    Example:

    >>> model = torchvision_mobilenet_v2((64, 64, 3))
    >>> model.output_shape
    (None, 2, 2, 1280)

    Output: `(B, H / 32, W / 32, 1280)`.
    """
    inputs = keras.Input(input_shape, name="input")
    x = layers.ZeroPadding2D(1, name="Conv1_pad")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=False, name="Conv1")(x)
    x = _batch_norm("bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for expansion, filters, repeats, stride in MOBILENET_V2_SETTINGS:
        for i in range(repeats):
            x = _inverted_residual(x, expansion, filters, stride if i == 0 else 1, block_id)
            block_id += 1
    x = layers.Conv2D(1280, 1, use_bias=False, name="Conv_1")(x)
    x = _batch_norm("Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    return keras.Model(inputs, x, name=name)
