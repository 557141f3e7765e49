"""2D backbones and their presets: input size, normalisation, default number of segments.

A preset is data, not a subclass: to add a backbone, add an entry to `BACKBONES`.
"""

import dataclasses
import functools
import os
from typing import Callable, Optional

import keras

from tsm_keras.models.torchvision_backbones import torchvision_mobilenet_v2, torchvision_resnet

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)  # [0.485, 0.456, 0.406] * 255
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)  # [0.229, 0.224, 0.225] * 255


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build a 2D backbone (without its classifier) and feed it.

    Attributes:
        build: `f(input_shape, weights, width) -> keras.Model`, a Functional 2D network
            (None for the Big-Little networks, which `big_little` describes).
        input_size: the input side it was designed for.
        num_segments: frames per clip used by default.
        mean, std: normalisation of raw RGB [0, 255] frames (RGB order).
        reverse_channels: the backbone expects BGR.
        min_input_size: smallest input side it accepts.
        has_width: whether `width` (a width multiplier) is supported.
        pool_before: the layer before which TSM+TP pools over time (None: not supported).
        signed_block_inputs: the inputs of the residual branches (where temporal modules
            go) can be negative: MobileNetV2's linear bottlenecks, unlike ResNet's post-ReLU
            block inputs. A module that ends in a ReLU (TAM's) would clip them.
        non_local_after: the block outputs after which `non_local=True` puts a non-local
            block (empty: not supported).
        big_little: for bLVNet's Big-Little network (a video network over frame pairs, built
            by tsm_keras.models.blvnet, not by `build`): its blocks and ratios.
    """

    build: Optional[Callable]
    input_size: int = 224
    num_segments: int = 8
    mean: tuple = IMAGENET_MEAN_RGB
    std: tuple = IMAGENET_STD_RGB
    reverse_channels: bool = False
    min_input_size: int = 32
    has_width: bool = False
    pool_before: Optional[str] = None
    signed_block_inputs: bool = False
    non_local_after: tuple = ()
    big_little: Optional["BigLittle"] = None


@dataclasses.dataclass(frozen=True)
class BigLittle:
    """bLResNet (bLVNet-TAM's backbone): ResNet bottleneck counts and the big/little ratios.

    Attributes:
        blocks: the ResNet block count n of stages 1-4. Stages 1-3 are bL modules: n - 1
            big blocks, max(1, n // beta - 1) little ones and one fusion block; stage 4
            has n ordinary blocks.
        alpha: the little branch is 1 / alpha as wide.
        beta: sets the depth of the little branch (above).
        width: channel multiplier of every layer (1.0: the reference's 64 stem and
            256 / 512 / 1024 / 2048 stage channels).
    """

    blocks: tuple
    alpha: int = 2
    beta: int = 4
    width: float = 1.0


def _mobilenet_v2(input_shape, weights, width):
    return keras.applications.MobileNetV2(input_shape=input_shape, alpha=width, include_top=False, weights=weights)


def _keras_resnet(constructor):
    def build(input_shape, weights, width):
        return constructor(input_shape=input_shape, include_top=False, weights=weights)

    return build


def _torchvision(constructor):
    """Twins of the PyTorch backbones of the released TSM models (random or ported weights)."""

    def build(input_shape, weights, width):
        if weights == "imagenet":
            raise ValueError(
                "The torchvision-compatible backbones have no Keras ImageNet weights to download: "
                "port a PyTorch checkpoint with `python -m tsm_keras.port`, or pass the path of "
                "a weights file saved from this backbone."
            )
        model = constructor(input_shape)
        if weights is not None:
            model.load_weights(weights)
        return model

    return build


# keras.applications ResNets (v1, caffe-style): BGR, mean subtracted, no scaling.
_KERAS_RESNET = dict(
    mean=(123.68, 116.779, 103.939),
    std=(1.0, 1.0, 1.0),
    reverse_channels=True,
    pool_before="conv3_block1_1_conv",
)
_TORCHVISION_RESNET = dict(
    mean=IMAGENET_MEAN_RGB,
    std=IMAGENET_STD_RGB,
    pool_before="conv3_block1_1_conv",
)

# The official non-local TSM wraps ResNet-50 blocks layer2[0, 2] and layer3[0, 2, 4]: the
# non-local block follows the output of the whole block (after its last ReLU).
_RESNET50_NON_LOCAL = tuple(
    f"conv{stage}_block{block}_out" for stage, blocks in ((3, (1, 3)), (4, (1, 3, 5))) for block in blocks
)

# bLVNet's presets: built by tsm_keras.models.blvnet (not by `build`), RGB with ImageNet mean/std.
_BIG_LITTLE = dict(build=None, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB)

BACKBONES = {
    # keras.applications.MobileNetV2: inputs scaled to [-1, 1].
    "mobilenet_v2": Backbone(
        build=_mobilenet_v2,
        mean=(127.5,) * 3,
        std=(127.5,) * 3,
        has_width=True,
        signed_block_inputs=True,
    ),
    "resnet50": Backbone(
        build=_keras_resnet(keras.applications.ResNet50), non_local_after=_RESNET50_NON_LOCAL, **_KERAS_RESNET
    ),
    "resnet101": Backbone(build=_keras_resnet(keras.applications.ResNet101), **_KERAS_RESNET),
    # Layer-for-layer twins of the PyTorch backbones of the released TSM checkpoints
    # (torchvision ResNet v1.5, the TSM MobileNetV2): RGB, ImageNet mean/std, as trained.
    "resnet50_tv": Backbone(
        build=_torchvision(functools.partial(torchvision_resnet, 50)),
        non_local_after=_RESNET50_NON_LOCAL,
        **_TORCHVISION_RESNET,
    ),
    "resnet101_tv": Backbone(build=_torchvision(functools.partial(torchvision_resnet, 101)), **_TORCHVISION_RESNET),
    "mobilenet_v2_tv": Backbone(
        build=_torchvision(torchvision_mobilenet_v2), mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB
    ),
    # bLVNet-TAM's Big-Little ResNets (alpha 2, beta 4): video networks over 2T frames (T
    # pairs), trained as the reference in RGB with ImageNet mean/std. 16 frames: "8x2".
    # The input side must be a multiple of 32 (the big branch is upsampled 2x to the little one).
    "blresnet50": Backbone(num_segments=16, big_little=BigLittle(blocks=(3, 4, 6, 3)), **_BIG_LITTLE),
    "blresnet101": Backbone(num_segments=16, big_little=BigLittle(blocks=(4, 8, 18, 3)), **_BIG_LITTLE),
    # A CPU-sized Big-Little network (not from the reference): two blocks per stage, a quarter
    # of the channels (16 stem, 64 / 128 / 256 / 512), for the built-in demo and the tests.
    "blresnet_cpu": Backbone(
        input_size=64,
        num_segments=8,
        **_BIG_LITTLE,
        big_little=BigLittle(blocks=(2, 2, 2, 2), width=0.25),
    ),
}


def get_backbone(name):
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Known: {sorted(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name, input_size, weights=None, width=1.0):
    """The 2D network of a preset, named 'backbone'.

    Args:
        weights: None (random), 'imagenet' (downloaded by keras.applications: needs
            internet), or the path of a weights file for this backbone without its top.
    """
    preset = get_backbone(name)
    if preset.big_little is not None:
        raise ValueError(
            f"{name!r} is a video network over frame pairs, not a 2D backbone: build it with "
            "build_video_classifier (or tsm_keras.models.blvnet.big_little_resnet)"
        )
    if width != 1.0 and not preset.has_width:
        raise ValueError(f"Backbone {name!r} has no width multiplier. Received: width={width}")
    if weights not in (None, "imagenet") and not os.path.exists(weights):
        raise FileNotFoundError(
            f"Backbone weights file not found: {weights!r} (weights must be None, 'imagenet' "
            "or the path of a weights file)"
        )
    input_shape = (input_size, input_size, 3)
    try:
        model = preset.build(input_shape, weights, width)
    except (ValueError, TypeError):
        raise
    except Exception as error:  # keras.utils.get_file raises a bare Exception on fetch errors
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not fetch the ImageNet weights of {name!r} ({error}). This needs internet "
            "access. Use weights=None to train from scratch, or download the weights file on "
            "a machine with internet and pass its path as weights."
        ) from error
    model.name = "backbone"
    return model
