"""bLVNet-TAM's Big-Little video network (bLResNet-50/101; Fan et al., NeurIPS 2019).

A clip carries 2T frames, which form T pairs (2k, 2k+1). The stem runs on all 2T frames;
stages 0-3 are "bL modules": frame 2k+1 of each pair goes through the deep, half-resolution
big branch, frame 2k through the narrow (1 / alpha), full-resolution little branch; the big
output is upsampled (nearest) to the little one's size, added to it, and a fusion block
follows; the fused map is written to both frames of the pair (`PairRepeat`), so that the
next temporal module sees 2T frames again. Stage 4 runs on the T pair positions. A temporal
module (TAM by default) sits before every bL module (over 2T frames) and on the residual
branch of every stage-4 block (over T frames).

Layer names, and the reference's modules they correspond to (what tsm_keras.port maps):

    conv1_conv, conv1_bn                      conv1, bn1 (the stem)
    stage0_tam                                tam
    stage0_big_conv, stage0_big_bn            b_conv0, bn_b0
    stage0_little_{1,2,3}_conv, _bn           l_conv{0,1,2}, bn_l{0,1,2}
    stage0_fusion_conv, stage0_fusion_bn      bl_init, bn_bl_init
    stage{s}_tam                              layer{s}.tam                    (s = 1, 2, 3)
    stage{s}_{big,little}_block{i}_{j}_conv   layer{s}.{big,little}.{i-1}.conv{j}  (and _bn: bn{j})
    stage{s}_{big,little}_block1_0_conv, _bn  layer{s}.{big,little}.0.downsample (projection)
    stage{s}_little_expand_conv, _bn          layer{s}.little_e.{0,1}
    stage{s}_fusion_block1_{j}_conv, _bn      layer{s}.fusion.0.conv{j}, bn{j}
    stage4_block{i}_tam                       layer4.{i-1}.tam
    stage4_block{i}_{j}_conv, _bn             layer4.{i-1}.conv{j}, bn{j}  (block 1: _0_ the projection)

The temporal modules are named `_tam` (TAM) or `_shift` (TSM in the same places).
"""

import keras
from keras import layers

from tsm_keras.layers.big_little import PairRepeat, PairSplit
from tsm_keras.layers.temporal_aggregation import OFFLINE_OFFSETS, TemporalAggregation
from tsm_keras.layers.temporal_shift import BIDIRECTIONAL, TemporalShift
from tsm_keras.models.torchvision_backbones import _batch_norm, _conv

STEM_CHANNELS = 64
STAGE_CHANNELS = (256, 512, 1024, 2048)
FUSION_STRIDES = (2, 2, 1)  # stages 1-3; stage 3 keeps the little branch's resolution
INPUT_MULTIPLE = 32  # every big map is then exactly half its little map (a 2x upsampling)
# 'tam': the reference; 'tsm': a bidirectional shift in the same places; 'none': plain bLResNet.
TEMPORAL = ("tam", "tsm", "none")


def check_big_little(num_segments, input_size, temporal, shift_place="blockres", width=1.0):
    """ValueError, in one line, for settings a Big-Little network cannot take."""
    if not isinstance(num_segments, int) or num_segments < 2 or num_segments % 2:
        raise ValueError(
            "bLVNet takes frame pairs: `num_segments` (the frames a clip carries, 2T) must be an even "
            f"integer >= 2. Received: num_segments={num_segments!r}"
        )
    if not isinstance(input_size, int) or input_size < INPUT_MULTIPLE or input_size % INPUT_MULTIPLE:
        raise ValueError(
            f"bLVNet needs `input_size` to be a multiple of {INPUT_MULTIPLE} (its big branch is upsampled "
            f"2x onto the little one). Received: input_size={input_size!r}"
        )
    if temporal not in TEMPORAL:
        raise ValueError(
            f"bLVNet's temporal module must be one of {TEMPORAL} ('tam' is the reference). Its frame pairing "
            "reads the next frame, so a causal module would not make it stream. "
            f"Received: temporal={temporal!r}"
        )
    if shift_place != "blockres":
        raise ValueError(
            "bLVNet places its temporal modules itself (before each bL module, on the residual branch of "
            f"stage 4): `shift_place` must be 'blockres'. Received: shift_place={shift_place!r}"
        )
    if width != 1.0:
        raise ValueError(f"bLVNet has no width multiplier. Received: width={width!r}")


def _temporal_module(temporal, prefix, num_segments, shift_div):
    if temporal == "tam":
        # The reference's TAM (frames t-1, t, t+1, ReLU after the sum); it starts as the
        # TSM shift (the project's TAM start, docs/tam.md) where the reference draws it at random.
        return TemporalAggregation(
            num_segments, OFFLINE_OFFSETS, "relu", "shift", shift_div=shift_div, name=f"{prefix}_tam"
        )
    if temporal == "tsm":
        return TemporalShift(num_segments, shift_div, BIDIRECTIONAL, name=f"{prefix}_shift")
    return None


def _bottleneck(x, filters, stride, name, relu=True, module=None):
    """The reference's bottleneck: [module ->] 1x1 -> 3x3 (stride) -> 1x1 to `filters`, inner
    width filters / 4, BN after each conv; + shortcut, then ReLU unless `relu` is False.

    The projection shortcut (first block of a branch) is AvgPool 3x3 / 2 with zero padding 1
    (zeros counted, as PyTorch's default) when strided, then 1x1 conv + BN when the channels
    change, and it reads the temporal module's output, as in the reference; an identity
    shortcut reads the block input.
    """
    branch = x if module is None else module(x)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = branch
        if stride != 1:
            shortcut = layers.ZeroPadding2D(1, name=f"{name}_0_pool_pad")(shortcut)
            shortcut = layers.AveragePooling2D(3, strides=stride, name=f"{name}_0_pool")(shortcut)
        if x.shape[-1] != filters:
            shortcut = _conv(filters, 1, 1, f"{name}_0_conv", shortcut)
            shortcut = _batch_norm(f"{name}_0_bn")(shortcut)
    y = branch
    for index, (width, kernel, step) in enumerate(
        ((filters // 4, 1, 1), (filters // 4, 3, stride), (filters, 1, 1)), 1
    ):
        y = _conv(width, kernel, step, f"{name}_{index}_conv", y)
        y = _batch_norm(f"{name}_{index}_bn")(y)
        if index < 3:
            y = layers.ReLU(name=f"{name}_{index}_relu")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y) if relu else y


def _merge(big, little, prefix):
    """Big (upsampled to the little size, nearest) + little, pair by pair, then ReLU."""
    if big.shape[1] != little.shape[1]:
        big = layers.UpSampling2D(little.shape[1] // big.shape[1], interpolation="nearest", name=f"{prefix}_upsample")(
            big
        )
    y = layers.Add(name=f"{prefix}_merge")([big, little])
    return layers.ReLU(name=f"{prefix}_merge_relu")(y)


def _stage0(x, stem, alpha, num_segments, make):
    """The first bL module: one conv in the big branch, three in the little one, a 1x1 fusion."""
    module = make("stage0", num_segments)
    x = x if module is None else module(x)
    little, big = PairSplit(num_segments, name="stage0_pairs")(x)
    big = _conv(stem, 3, 2, "stage0_big_conv", big)
    big = _batch_norm("stage0_big_bn")(big)
    narrow = stem // alpha
    for index, (filters, kernel, stride) in enumerate(((narrow, 3, 1), (narrow, 3, 2), (stem, 1, 1)), 1):
        little = _conv(filters, kernel, stride, f"stage0_little_{index}_conv", little)
        little = _batch_norm(f"stage0_little_{index}_bn")(little)
        if index < 3:
            little = layers.ReLU(name=f"stage0_little_{index}_relu")(little)
    y = _merge(big, little, "stage0")
    y = _conv(stem, 1, 1, "stage0_fusion_conv", y)
    y = _batch_norm("stage0_fusion_bn")(y)
    y = layers.ReLU(name="stage0_fusion_relu")(y)
    return PairRepeat(num_segments // 2, name="stage0_repeat")(y)


def _bl_module(x, stage, blocks, filters, fusion_stride, config, num_segments, make, repeat):
    """Stages 1-3: n - 1 big blocks (the first strided, no ReLU after the last), little
    blocks at 1 / alpha width then a 1x1 expansion, the merge, and one fusion block."""
    prefix = f"stage{stage}"
    module = make(prefix, num_segments)
    x = x if module is None else module(x)
    little, big = PairSplit(num_segments, name=f"{prefix}_pairs")(x)
    big_blocks = blocks - 1
    for i in range(big_blocks):
        last = i == big_blocks - 1 and big_blocks > 1
        big = _bottleneck(big, filters, 2 if i == 0 else 1, f"{prefix}_big_block{i + 1}", relu=not last)
    for i in range(max(1, blocks // config.beta - 1)):
        little = _bottleneck(little, filters // config.alpha, 1, f"{prefix}_little_block{i + 1}")
    little = _conv(filters, 1, 1, f"{prefix}_little_expand_conv", little)
    little = _batch_norm(f"{prefix}_little_expand_bn")(little)
    y = _bottleneck(_merge(big, little, prefix), filters, fusion_stride, f"{prefix}_fusion_block1")
    return PairRepeat(num_segments // 2, name=f"{prefix}_repeat")(y) if repeat else y


def big_little_resnet(config, num_segments, input_size, temporal="tam", shift_div=8, name="backbone"):
    """bLResNet with its temporal modules: normalised frames `(B * 2T, S, S, 3)` -> `(B * T, S / 32, S / 32, 2048)`
    (2048 * width channels).

    Example:

    >>> from tsm_keras.models.backbones import BigLittle
    >>> net = big_little_resnet(BigLittle(blocks=(3, 4, 6, 3)), num_segments=4, input_size=64)
    >>> net.input_shape, net.output_shape
    ((None, 64, 64, 3), (None, 2, 2, 2048))
    >>> [layer.name for layer in net.layers if layer.name.endswith("_tam")][:3]
    ['stage0_tam', 'stage1_tam', 'stage2_tam']

    Args:
        config: a `BigLittle` (blocks per stage, alpha, beta, width).
        num_segments: the frames a clip carries, 2T (even): T pairs (2k, 2k+1).
        input_size: frame side S, a multiple of 32.
        temporal: 'tam' (the reference), 'tsm' (a bidirectional shift in the same places)
            or 'none' (the plain bLResNet).
        shift_div: channel split of TSM, and of TAM's shift-like start.

    After stage 3 the fused map of each pair goes straight to stage 4: the reference writes
    it to both frames and keeps the odd one, which is the same tensor.
    """
    check_big_little(num_segments, input_size, temporal)

    def make(prefix, segments):
        return _temporal_module(temporal, prefix, segments, shift_div)

    stem = int(STEM_CHANNELS * config.width)
    channels = [int(c * config.width) for c in STAGE_CHANNELS]
    frames = keras.Input((input_size, input_size, 3), name="input")
    x = _conv(stem, 7, 2, "conv1_conv", frames)
    x = _batch_norm("conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = _stage0(x, stem, config.alpha, num_segments, make)
    for stage in (1, 2, 3):
        blocks, filters = config.blocks[stage - 1], channels[stage - 1]
        x = _bl_module(x, stage, blocks, filters, FUSION_STRIDES[stage - 1], config, num_segments, make, stage < 3)
    pairs = num_segments // 2
    for i in range(config.blocks[3]):
        block = f"stage4_block{i + 1}"
        x = _bottleneck(x, channels[3], 2 if i == 0 else 1, block, module=make(block, pairs))
    return keras.Model(frames, x, name=name)
