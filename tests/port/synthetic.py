"""Official-looking TSM state dicts as NumPy arrays, written from docs/reference.md ("The published checkpoints").

No PyTorch needed: names and shapes follow what the official code saves (DataParallel's
'module.', the TSN wrapper's 'base_model.', '.net' on the modules a temporal module wraps,
the classifier 'new_fc'); values are random.
"""

import numpy as np

# MobileNetV2's published block table, written here again on purpose: the test data must not be
# derived from the library it checks (tsm_keras/models/torchvision_backbones.py has its own copy).
MOBILENET_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
RESNET_BLOCKS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# The non-local models (docs/reference.md): after blocks layer2[0, 2] and layer3[0, 2, 4].
NON_LOCAL_BLOCKS = {(2, 0), (2, 2), (3, 0), (3, 2), (3, 4)}


class _Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.state = {}

    def conv(self, name, out, inp, kernel):
        shape = (out, inp, kernel, kernel)
        scale = (2.0 / (inp * kernel * kernel)) ** 0.5
        self.state[f"{name}.weight"] = scale * self.rng.standard_normal(shape, dtype=np.float32)

    def bn(self, name, channels):
        self.state[f"{name}.weight"] = self.rng.uniform(0.5, 1.5, channels).astype("float32")
        self.state[f"{name}.bias"] = self.rng.normal(0, 0.1, channels).astype("float32")
        self.state[f"{name}.running_mean"] = self.rng.normal(0, 0.1, channels).astype("float32")
        self.state[f"{name}.running_var"] = self.rng.uniform(0.5, 2.0, channels).astype("float32")
        self.state[f"{name}.num_batches_tracked"] = np.array(1000, "int64")

    def conv3d(self, name, out, inp):
        """A 1x1x1 Conv3d with bias, as in the non-local blocks."""
        self.state[f"{name}.weight"] = self.rng.normal(0, inp**-0.5, (out, inp, 1, 1, 1)).astype("float32")
        self.state[f"{name}.bias"] = self.rng.normal(0, 0.1, out).astype("float32")

    def non_local(self, name, channels):
        inter = channels // 2
        self.conv3d(f"{name}.theta", inter, channels)
        self.conv3d(f"{name}.phi.0", inter, channels)
        self.conv3d(f"{name}.g.0", inter, channels)
        self.conv3d(f"{name}.W.0", channels, inter)
        self.bn(f"{name}.W.1", channels)

    def linear(self, name, out, inp):
        self.state[f"{name}.weight"] = self.rng.normal(0, 0.01, (out, inp)).astype("float32")
        self.state[f"{name}.bias"] = np.zeros(out, "float32")


def mobilenet_v2_state(num_classes=5, shifted=True, base="module.base_model.", head="module.new_fc", seed=0):
    """The TSM MobileNetV2 ('features.N.conv.M'); shifted blocks get 'conv.0.net'."""
    b = _Builder(seed)
    b.conv(f"{base}features.0.0", 32, 3, 3)
    b.bn(f"{base}features.0.1", 32)
    index, inp = 1, 32
    for expansion, channels, repeats, stride in MOBILENET_SETTINGS:
        for i in range(repeats):
            f = f"{base}features.{index}.conv"
            hidden = inp * expansion
            residual = (stride if i == 0 else 1) == 1 and inp == channels
            if expansion == 1:
                b.state[f"{f}.0.weight"] = b.rng.standard_normal((hidden, 1, 3, 3), dtype=np.float32)
                b.bn(f"{f}.1", hidden)
                b.conv(f"{f}.3", channels, hidden, 1)
                b.bn(f"{f}.4", channels)
            else:
                b.conv(f"{f}.0.net" if shifted and residual else f"{f}.0", hidden, inp, 1)
                b.bn(f"{f}.1", hidden)
                b.state[f"{f}.3.weight"] = b.rng.standard_normal((hidden, 1, 3, 3), dtype=np.float32)
                b.bn(f"{f}.4", hidden)
                b.conv(f"{f}.6", channels, hidden, 1)
                b.bn(f"{f}.7", channels)
            index, inp = index + 1, channels
    b.conv(f"{base}features.18.0", 1280, 320, 1)
    b.bn(f"{base}features.18.1", 1280)
    b.linear(head, num_classes, 1280)
    return b.state


def resnet_state(
    depth=50, num_classes=5, place="blockres", tpool=False, non_local=False, base="module.base_model.", seed=0
):
    """torchvision ResNet (bottleneck, or basic blocks for depth 18) with TSM wrappers.

    place: 'blockres' (layer{s}.{i}.conv1.net), 'block' (layer{s}.{i}.net.*) or None.
    tpool: layer2 wrapped by the temporal pool (layer2.net.*).
    non_local: blocks layer2[0, 2] and layer3[0, 2, 4] wrapped as layer{s}.{i}.block.*, each
        with its non-local block layer{s}.{i}.nl.*.
    """
    b = _Builder(seed)
    b.conv(f"{base}conv1", 64, 3, 7)
    b.bn(f"{base}bn1", 64)
    blocks = RESNET_BLOCKS[depth]
    expansion = 1 if depth == 18 else 4
    every = 2 if place == "blockres" and blocks[2] >= 23 else 1
    inp = 64
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        stage_name = f"{base}layer{stage}" + (".net" if tpool and stage == 2 else "")
        for i in range(count):
            wrapped = non_local and (stage, i) in NON_LOCAL_BLOCKS
            block = f"{stage_name}.{i}" + (".block" if wrapped else "") + (".net" if place == "block" else "")
            shift = ".net" if place == "blockres" and i % every == 0 else ""
            out = width * expansion
            if depth == 18:
                b.conv(f"{block}.conv1{shift}", width, inp, 3)
                b.bn(f"{block}.bn1", width)
                b.conv(f"{block}.conv2", width, width, 3)
                b.bn(f"{block}.bn2", width)
            else:
                b.conv(f"{block}.conv1{shift}", width, inp, 1)
                b.bn(f"{block}.bn1", width)
                b.conv(f"{block}.conv2", width, width, 3)
                b.bn(f"{block}.bn2", width)
                b.conv(f"{block}.conv3", out, width, 1)
                b.bn(f"{block}.bn3", out)
            if i == 0 and (stage > 1 or inp != out):
                b.conv(f"{block}.downsample.0", out, inp, 1)
                b.bn(f"{block}.downsample.1", out)
            if wrapped:
                b.non_local(f"{stage_name}.{i}.nl", out)
            inp = out
    b.linear("module.new_fc", num_classes, inp)
    return b.state
