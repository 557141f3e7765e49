"""The published bLVNet-TAM checkpoints (IBM's, Something-Something V1/V2 and Kinetics) to Keras.

Their state dict is the reference's `bLVNet_TAM` module: the network under 'baseline_model.'
and the classifier as 'new_fc' ('baseline_model.fc' when trained without dropout). A training
checkpoint holds it under 'state_dict' with DataParallel's 'module.'; the released files are
the bare state dict. Canonical names here drop 'module.' and 'baseline_model.':

    conv1, bn1, tam.{prev,curr,next}, b_conv0, bn_b0, l_conv{0,1,2}, bn_l{0,1,2}, bl_init, bn_bl_init
    layer{1,2,3}.tam, .big.{i}, .little.{i}, .little_e.{0,1}, .fusion.0     (bL modules)
    layer4.{i}.tam, layer4.{i}.conv{1,2,3}, .bn{1,2,3}, .downsample.{1,2}   (stage 4)

A block's downsample is [AvgPool (when strided), 1x1 conv, BN], so its conv and BN sit at 1
and 2 behind the pool (big branches, stage 4) and at 0 and 1 without it (little branches).
A TAM's three depthwise 1x1 weights `(C, 1, 1, 1)`, one per frame offset (-1, 0, +1), become
one canonical `tam.weight` `(3, C)`: the Keras `TemporalAggregation` kernel. The clip length
(2T) does not show in the tensors: it comes from the name (`...-f8x2` is 16 frames) or
`segments`.
"""

import re

import numpy as np

from tsm_keras.models.backbones import BACKBONES
from tsm_keras.port.checkpoint import PortError
from tsm_keras.port.layout import HEAD, Layout

FAMILY = "blresnet"
TAM_PARTS = ("prev", "curr", "next")  # offsets -1, 0, +1: the kernel rows of TemporalAggregation
_PREFIXES = ("module.", "baseline_model.")


def is_big_little(state):
    """Whether a state dict (names as saved) is a bLVNet's."""
    return any(_strip(name).startswith(("layer1.big.", "b_conv0.")) for name in state)


def _strip(name):
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    return name


def read_big_little_layout(state):
    """Canonical names (TAM weights joined), the preset and the classes of a bLVNet state dict."""
    tensors, original = {}, {}
    parts = {}
    for name, value in state.items():
        canonical = _strip(name)
        if canonical.split(".")[0] in ("new_fc", "fc") and canonical.count(".") == 1:
            canonical = f"{HEAD}.{canonical.split('.')[1]}"
        if ".blending_layers." in f".{canonical}":
            raise PortError(
                f"{name}: a TAM with blending_frames other than 3 is not supported (the published models blend 3)"
            )
        match = re.match(r"^(.*\btam)\.(prev|curr|next)\.weight$", canonical)
        if match:
            parts.setdefault(match[1], {})[match[2]] = (name, value)
            continue
        if canonical in tensors:
            raise PortError(f"tensors {original[canonical]!r} and {name!r} both hold {canonical!r}")
        tensors[canonical], original[canonical] = value, name
    for module, found in parts.items():
        absent = [part for part in TAM_PARTS if part not in found]
        if absent:
            raise PortError(f"the TAM {module!r} lacks its {absent} weights")
        weights = [np.asarray(found[part][1]) for part in TAM_PARTS]
        if any(w.ndim != 4 or w.shape[1:] != (1, 1, 1) or w.shape != weights[0].shape for w in weights):
            raise PortError(f"the TAM {module!r} has weights of shapes {[list(w.shape) for w in weights]}")
        tensors[f"{module}.weight"] = np.stack([w[:, 0, 0, 0] for w in weights])
        original[f"{module}.weight"] = f"{found['prev'][0].removesuffix('.prev.weight')}.{{prev,curr,next}}.weight"
    head = tensors.get(f"{HEAD}.weight")
    if head is None or head.ndim != 2:
        raise PortError("no classifier found: expected 'new_fc.weight' of shape [num_classes, 2048]")
    first = tensors.get("conv1.weight")
    if first is None or first.ndim != 4 or first.shape[1] != 3:
        raise PortError("the first convolution 'conv1.weight' is missing or does not take RGB (Flow is not supported)")
    return Layout(
        tensors=tensors,
        original=original,
        wrapped=set(),
        non_local=set(),
        family=FAMILY,
        backbone=_preset(tensors),
        num_classes=int(head.shape[0]),
        in_base_model=True,
    )


def _preset(tensors):
    """The tsm_keras preset whose blocks and widths the tensors have."""

    def count(pattern):
        return len({m[1] for name in tensors if (m := re.match(pattern, name))})

    found = (
        tuple(count(rf"^layer{s}\.big\.(\d+)\.") for s in (1, 2, 3)),
        tuple(count(rf"^layer{s}\.little\.(\d+)\.") for s in (1, 2, 3)),
        count(r"^layer4\.(\d+)\."),
        int(tensors["conv1.weight"].shape[0]),
        int(tensors["layer1.little_e.0.weight"].shape[1]) if "layer1.little_e.0.weight" in tensors else None,
    )
    for name, preset in BACKBONES.items():
        config = preset.big_little
        if config is None:
            continue
        blocks = config.blocks
        stem = int(64 * config.width)
        expected = (
            tuple(n - 1 for n in blocks[:3]),
            tuple(max(1, n // config.beta - 1) for n in blocks[:3]),
            blocks[3],
            stem,
            int(256 * config.width) // config.alpha,
        )
        if found == expected:
            return name
    raise PortError(
        f"not a bLResNet-50/101 (alpha 2, beta 4) state dict: big blocks {list(found[0])}, little blocks "
        f"{list(found[1])}, {found[2]} stage-4 blocks, {found[3]} stem channels, little width {found[4]}"
    )


def torch_module(layer_name):
    """Canonical module path of a Keras layer of `tsm_keras.models.blvnet`, or None.

    >>> torch_module("stage2_big_block1_0_conv"), torch_module("stage1_little_block1_0_bn")
    ('layer2.big.0.downsample.1', 'layer1.little.0.downsample.1')
    >>> torch_module("stage4_block3_tam"), torch_module("stage0_little_2_bn")
    ('layer4.2.tam', 'bn_l1')
    """
    stage0 = {
        "conv1_conv": "conv1",
        "conv1_bn": "bn1",
        "stage0_tam": "tam",
        "stage0_big_conv": "b_conv0",
        "stage0_big_bn": "bn_b0",
        "stage0_fusion_conv": "bl_init",
        "stage0_fusion_bn": "bn_bl_init",
    }
    if layer_name in stage0:
        return stage0[layer_name]
    if match := re.match(r"^stage0_little_(\d)_(conv|bn)$", layer_name):
        index = int(match[1]) - 1
        return f"l_conv{index}" if match[2] == "conv" else f"bn_l{index}"
    if match := re.match(r"^stage(\d)_tam$", layer_name):
        return f"layer{match[1]}.tam"
    if match := re.match(r"^stage(\d)_little_expand_(conv|bn)$", layer_name):
        return f"layer{match[1]}.little_e.{0 if match[2] == 'conv' else 1}"
    if match := re.match(r"^stage4_block(\d+)_tam$", layer_name):
        return f"layer4.{int(match[1]) - 1}.tam"
    match = re.match(r"^stage(\d)_(?:(big|little|fusion)_)?block(\d+)_(\d)_(conv|bn)$", layer_name)
    if not match:
        return None
    stage, branch, block, index, kind = match[1], match[2], int(match[3]) - 1, int(match[4]), match[5]
    prefix = f"layer{stage}.{branch}.{block}" if branch else f"layer{stage}.{block}"
    if index == 0:
        pooled = branch != "little"  # strided first blocks: AvgPool at downsample.0
        return f"{prefix}.downsample.{(1 if kind == 'conv' else 2) if pooled else (0 if kind == 'conv' else 1)}"
    return f"{prefix}.{kind}{index}"
