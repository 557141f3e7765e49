"""The tensor names of the official TSM checkpoints and the Keras layers they belong to.

Official names (docs/reference.md, "The published checkpoints"), after the DataParallel prefix 'module.':

    base_model.conv1.weight, base_model.bn1.{weight,bias,running_mean,running_var,...}
    base_model.layer{1..4}.{i}.conv{1,2,3}.weight, .bn{1,2,3}.*, .downsample.{0,1}.*
    base_model.features.{0..18}...                            (MobileNetV2)
    new_fc.{weight,bias}                                      (the classifier)

The temporal modules of the official code wrap the module they precede and keep it as
`.net`, which shows in the names:

    layer1.0.conv1.net.weight     shift on the residual branch ('blockres')
    layer1.0.net.conv1.weight     shift of the whole block ('block')
    layer2.net.0.conv1.weight     temporal pooling before layer2 (TSM+TP)
    features.3.conv.0.net.weight  shift in a MobileNetV2 block

The non-local models (`_nl`) wrap whole ResNet-50 blocks as `.block` and keep the non-local
block beside it as `.nl` (a 3-D block: Conv3d weights (out, in, 1, 1, 1), BatchNorm3d):

    layer2.0.block.conv1.net.weight   the wrapped block (shifted on its residual branch)
    layer2.0.nl.theta.weight, layer2.0.nl.phi.0.*, layer2.0.nl.g.0.*, layer2.0.nl.W.{0,1}.*

Here a name is made *canonical* by dropping 'module.', 'base_model.' and every '.net' and
'.block', and the wrapped module paths are kept aside: they say where the checkpoint shifts,
pools and has non-local blocks.
"""

import dataclasses
import re

from tsm_keras.models.torchvision_backbones import MOBILENET_V2_SETTINGS, RESNET_BLOCKS
from tsm_keras.port.checkpoint import PortError

WRAPPER = "net"  # attribute under which TemporalShift / TemporalPool keep the wrapped module
NON_LOCAL_WRAPPER = "block"  # attribute under which the non-local wrapper keeps its ResNet block
NON_LOCAL = "nl"  # ... and its non-local block
HEAD = "head"  # canonical module name of the classifier
_HEAD_NAMES = ("new_fc", "fc", "classifier")  # new_fc; fc / classifier when trained with dropout 0

RESNET = "resnet"
MOBILENET_V2 = "mobilenet_v2"
BACKBONE_PRESETS = {
    (RESNET, 50): "resnet50_tv",
    (RESNET, 101): "resnet101_tv",
    (MOBILENET_V2, 1): "mobilenet_v2_tv",
}
ARCH_NAMES = {"resnet50": "resnet50_tv", "resnet101": "resnet101_tv", "mobilenetv2": "mobilenet_v2_tv"}

# MobileNetV2: features.N (N = 1..17) is Keras' expanded_conv (N = 1) or block_{N-1}; the
# positions of the layers in the flat 'conv' Sequential, with and without expansion.
_MOBILENET_CONV_INDEX = {
    "expand": 0,
    "expand_BN": 1,
    "depthwise": 3,
    "depthwise_BN": 4,
    "project": 6,
    "project_BN": 7,
}
_MOBILENET_CONV_INDEX_NO_EXPANSION = {"depthwise": 0, "depthwise_BN": 1, "project": 3, "project_BN": 4}
_MOBILENET_BLOCKS = sum(repeats for _, _, repeats, _ in MOBILENET_V2_SETTINGS)  # 17
_LAST_FEATURE = _MOBILENET_BLOCKS + 1  # features.18: the 1x1 conv to 1280


@dataclasses.dataclass
class Layout:
    """What the names and shapes of a state dict say.

    Attributes:
        tensors: canonical name -> array.
        original: canonical name -> the name in the file (for messages).
        wrapped: canonical paths of the modules wrapped by a temporal module (`.net`).
        non_local: canonical paths of the blocks followed by a non-local block (`.block`,
            with the non-local block's tensors under `<path>.nl.`), e.g. {'layer2.0'}.
        family: RESNET or MOBILENET_V2.
        backbone: the tsm_keras preset that is its twin ('resnet50_tv', ...).
        num_classes: outputs of the classifier.
        in_base_model: names were under 'base_model.' (the TSN wrapper of the official
            training code); False for the streaming demo's bare MobileNetV2.
    """

    tensors: dict
    original: dict
    wrapped: set
    non_local: set
    family: str
    backbone: str
    num_classes: int
    in_base_model: bool


def read_layout(state):
    """Canonical names, temporal wrappers and architecture of a state dict (name -> array)."""
    tensors, original, wrapped, non_local, in_base_model = _canonicalize(state)
    _check_non_local(tensors, original, non_local)
    family, depth = _architecture(tensors)
    head = tensors.get(f"{HEAD}.weight")
    if head is None or head.ndim != 2:
        raise PortError(
            "no classifier found: expected 'new_fc.weight' (or 'fc.weight' / 'classifier.weight') "
            "of shape [num_classes, features]"
        )
    return Layout(
        tensors=tensors,
        original=original,
        wrapped=wrapped,
        non_local=non_local,
        family=family,
        backbone=BACKBONE_PRESETS[family, depth],
        num_classes=int(head.shape[0]),
        in_base_model=in_base_model,
    )


def _canonicalize(state):
    tensors, original, wrapped, non_local = {}, {}, set(), set()
    in_base_model = any(name.removeprefix("module.").startswith("base_model.") for name in state)
    for name, value in state.items():
        parts = name.removeprefix("module.").split(".")
        if parts[0] == "base_model":
            parts = parts[1:]
            if parts[0] in ("fc", "classifier") and parts[-1] in ("weight", "bias") and len(parts) == 2:
                parts = [HEAD, parts[-1]]
        elif parts[0] in _HEAD_NAMES and len(parts) == 2:
            parts = [HEAD, parts[-1]]
        kept = []
        for part in parts[:-1]:
            if part == WRAPPER and kept:
                wrapped.add(".".join(kept))
            elif part == NON_LOCAL_WRAPPER and kept:
                non_local.add(".".join(kept))
            else:
                kept.append(part)
        canonical = ".".join(kept + parts[-1:])
        if canonical in tensors:
            raise PortError(f"tensors {original[canonical]!r} and {name!r} both hold {canonical!r}")
        tensors[canonical], original[canonical] = value, name
    return tensors, original, wrapped, non_local, in_base_model


def _check_non_local(tensors, original, wrapped_blocks):
    """Each non-local block (`<path>.nl.*`) sits beside the block it follows (`<path>.block.*`)."""
    with_tensors = {name.split(f".{NON_LOCAL}.")[0] for name in tensors if f".{NON_LOCAL}." in name}
    alone, empty = sorted(with_tensors - wrapped_blocks), sorted(wrapped_blocks - with_tensors)
    if alone:
        example = next(original[n] for n in tensors if n.startswith(f"{alone[0]}.{NON_LOCAL}."))
        raise PortError(
            f"non-local tensors without the '.{NON_LOCAL_WRAPPER}' wrapper of their block at {alone[:3]} "
            f"(e.g. {example!r}): not the layout of the official _nl models"
        )
    if empty:
        raise PortError(
            f"blocks wrapped as '.{NON_LOCAL_WRAPPER}' without non-local tensors ('.{NON_LOCAL}.*'): {empty[:3]}"
        )


def _architecture(tensors):
    """(family, depth or width) from the names and shapes; PortError for anything else."""
    names = list(tensors)
    if "conv1.weight" in tensors and any(name.startswith("layer") for name in names):
        _check_rgb(tensors, "conv1.weight")
        blocks = []
        for stage in range(1, 5):
            indices = {int(m[1]) for n in names if (m := re.match(rf"layer{stage}\.(\d+)\.", n))}
            blocks.append(len(indices))
        if "layer1.0.conv3.weight" not in tensors:
            raise PortError(
                f"a ResNet with basic blocks (ResNet-18/34: {blocks} blocks, no conv3) is not "
                "supported: ResNet-50 and ResNet-101 are"
            )
        for depth, expected in RESNET_BLOCKS.items():
            if tuple(blocks) == expected:
                return RESNET, depth
        raise PortError(
            f"a ResNet with {blocks} bottleneck blocks per stage is not supported: ResNet-50 "
            f"{list(RESNET_BLOCKS[50])} and ResNet-101 {list(RESNET_BLOCKS[101])} are"
        )
    if any(name.startswith("features.") for name in names):
        nested = [n for n in names if re.match(r"features\.\d+\.conv\.\d+\.\d+\.", n)]
        if nested:
            raise PortError(
                "torchvision's own MobileNetV2 layout (features.N.conv.M.K, e.g. "
                f"{nested[0]!r}) is not the TSM MobileNetV2 layout (features.N.conv.M)"
            )
        _check_rgb(tensors, "features.0.0.weight")
        first, last = tensors["features.0.0.weight"], tensors.get(f"features.{_LAST_FEATURE}.0.weight")
        if first.shape[0] != 32 or last is None or last.shape[0] != 1280:
            raise PortError(
                "only MobileNetV2 of width 1.0 is supported (32 stem channels, "
                f"features.{_LAST_FEATURE} with 1280): found {first.shape[0]} stem channels"
                + ("" if last is None else f" and {last.shape[0]} last channels")
            )
        return MOBILENET_V2, 1
    raise PortError(
        "not a TSM ResNet-50/101 or MobileNetV2 state dict: no 'conv1.weight' + 'layer*' or "
        f"'features.*' tensors (first names: {names[:3]})"
    )


def _check_rgb(tensors, name):
    if name not in tensors:
        raise PortError(f"the first convolution {name!r} is missing")
    weight = tensors[name]
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise PortError(
            f"the first convolution {name!r} takes {weight.shape[1] if weight.ndim == 4 else '?'} "
            "input channels: only RGB models are supported (not Flow or RGBDiff)"
        )


def torch_module(layer_name, family):
    """Canonical PyTorch module path of a Keras backbone layer with weights, or None.

    >>> torch_module("conv3_block2_1_conv", RESNET), torch_module("block_2_expand", MOBILENET_V2)
    ('layer2.1.conv1', 'features.3.conv.0')
    >>> torch_module("conv3_block1_nl", RESNET)  # a NonLocalBlock
    'layer2.0.nl'
    """
    if family == RESNET:
        if layer_name in ("conv1_conv", "conv1_bn"):
            return "conv1" if layer_name == "conv1_conv" else "bn1"
        match = re.match(r"^conv(\d)_block(\d+)_nl$", layer_name)
        if match:
            return f"layer{int(match[1]) - 1}.{int(match[2]) - 1}.{NON_LOCAL}"
        match = re.match(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$", layer_name)
        if not match:
            return None
        stage, block, index, kind = int(match[1]), int(match[2]), int(match[3]), match[4]
        prefix = f"layer{stage - 1}.{block - 1}"
        if index == 0:
            return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
        return f"{prefix}.{kind}{index}"
    if layer_name in ("Conv1", "bn_Conv1"):
        return f"features.0.{0 if layer_name == 'Conv1' else 1}"
    if layer_name in ("Conv_1", "Conv_1_bn"):
        return f"features.{_LAST_FEATURE}.{0 if layer_name == 'Conv_1' else 1}"
    match = re.match(
        r"^(?:expanded_conv|block_(\d+))_(expand|expand_BN|depthwise|depthwise_BN|project|project_BN)$", layer_name
    )
    if not match:
        return None
    block = int(match[1] or 0)
    index = (_MOBILENET_CONV_INDEX if block else _MOBILENET_CONV_INDEX_NO_EXPANSION)[match[2]]
    return f"features.{block + 1}.conv.{index}"


def wrapped_module(temporal_layer_name, family, place):
    """Canonical path of the module that the official code wraps for a Keras temporal layer.

    >>> wrapped_module("conv2_block1_shift", RESNET, "blockres")
    'layer1.0.conv1'
    >>> wrapped_module("block_2_shift", MOBILENET_V2, "blockres")
    'features.3.conv.0'
    """
    if temporal_layer_name == "temporal_pool":
        return "layer2"
    if family == RESNET:
        match = re.match(r"^conv(\d)_block(\d+)_shift$", temporal_layer_name)
        block = f"layer{int(match[1]) - 1}.{int(match[2]) - 1}"
        return f"{block}.conv1" if place == "blockres" else block
    match = re.match(r"^block_(\d+)_shift$", temporal_layer_name)
    return f"features.{int(match[1]) + 1}.conv.0"


def placement(layout):
    """('blockres' | 'block' | None, temporal pooling) from where the checkpoint has `.net`."""
    pooled = "layer2" in layout.wrapped
    shifted = layout.wrapped - {"layer2"}
    if layout.family == MOBILENET_V2:
        return ("blockres" if shifted else None), pooled
    residual = {path for path in shifted if path.endswith(".conv1")}
    whole = {path for path in shifted if re.match(r"^layer\d\.\d+$", path)}
    odd = sorted(shifted - residual - whole)
    if odd:
        raise PortError(f"temporal modules in unexpected places: {odd[:3]} (wrapped as '.net')")
    if residual and whole:
        raise PortError(
            "the checkpoint shifts both residual branches and whole blocks "
            f"(e.g. {sorted(residual)[0]!r} and {sorted(whole)[0]!r})"
        )
    return ("blockres" if residual else "block" if whole else None), pooled


def file_arch_preset(arch):
    """The preset of an official 'arch' string ('resnet50', 'mobilenetv2'), or None."""
    return ARCH_NAMES.get(str(arch).lower().replace("_", ""))
