"""A small, independent PyTorch bLVNet-TAM, written from the paper and docs/blvnet.md ("The network as built").

It knows nothing of tsm_keras. NCHW frames with each clip's 2T frames folded into the batch;
the module names give the state-dict names of the published checkpoints (baseline_model.*,
new_fc.*; tsm_keras/port/big_little.py lists them). The pairing is written with index lists
(frame 2k to the little branch, 2k+1 to the big one) and an explicit write of each fused map
to both frames of its pair, not with the reshapes of the Keras model.
"""

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = {50: (3, 4, 6, 3), 101: (4, 8, 18, 3)}


class TAM(nn.Module):
    """y_t = ReLU(prev * x_{t-1} + curr * x_t + next * x_{t+1}), depthwise 1x1 weights, zero ends."""

    def __init__(self, channels, frames):
        super().__init__()
        self.frames = frames
        for part in ("prev", "curr", "next"):
            setattr(self, part, nn.Conv2d(channels, channels, 1, groups=channels, bias=False))

    def forward(self, x):
        n = x.shape[0] // self.frames
        out = torch.zeros_like(x).reshape(n, self.frames, *x.shape[1:])
        prev, curr, nxt = (getattr(self, p)(x).reshape(out.shape) for p in ("prev", "curr", "next"))
        for t in range(self.frames):
            out[:, t] = curr[:, t]
            if t > 0:
                out[:, t] = out[:, t] + prev[:, t - 1]
            if t < self.frames - 1:
                out[:, t] = out[:, t] + nxt[:, t + 1]
        return F.relu(out.reshape(x.shape))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 to `planes`, inner planes / 4; [TAM first]; shortcut as the reference."""

    def __init__(self, inplanes, planes, stride=1, relu=True, tam_frames=None):
        super().__init__()
        inner = planes // 4
        self.conv1 = nn.Conv2d(inplanes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = relu
        self.tam = TAM(inplanes, tam_frames) if tam_frames else None
        parts = []
        if stride != 1:
            parts.append(nn.AvgPool2d(3, stride=2, padding=1))  # count_include_pad: zeros count
        if inplanes != planes:
            parts += [nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)]
        self.downsample = nn.Sequential(*parts) if parts else None

    def forward(self, x):
        identity = x
        if self.tam is not None:
            x = self.tam(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        # The projection reads the TAM output; an identity shortcut the block input.
        y = y + (identity if self.downsample is None else self.downsample(x))
        return F.relu(y) if self.relu else y


def pair_indices(batch, frames):
    little = [c * frames + t for c in range(batch) for t in range(0, frames, 2)]
    return little, [i + 1 for i in little]


def to_both_frames(fused, batch, frames):
    """One map per pair -> a tensor of all frames where frames 2k and 2k+1 both hold pair k's map."""
    little, big = pair_indices(batch, frames)
    out = torch.zeros((batch * frames,) + fused.shape[1:], dtype=fused.dtype)
    out[little] = fused
    out[big] = fused
    return out


class BLModule(nn.Module):
    def __init__(self, inplanes, planes, blocks, stride, frames, alpha=2, beta=4):
        super().__init__()
        self.frames = frames
        self.tam = TAM(inplanes, frames)
        big = [Bottleneck(inplanes, planes, 2)]  # no ReLU only after the last of several
        big += [Bottleneck(planes, planes, relu=i < blocks - 2) for i in range(1, blocks - 1)]
        self.big = nn.Sequential(*big)
        width = planes // alpha
        little = [Bottleneck(inplanes if i == 0 else width, width) for i in range(max(1, blocks // beta - 1))]
        self.little = nn.Sequential(*little)
        self.little_e = nn.Sequential(nn.Conv2d(width, planes, 1, bias=False), nn.BatchNorm2d(planes))
        self.fusion = nn.Sequential(Bottleneck(planes, planes, stride))

    def forward(self, x):
        batch = x.shape[0] // self.frames
        x = self.tam(x)
        little_frames, big_frames = pair_indices(batch, self.frames)
        little = self.little_e(self.little(x[little_frames]))
        big = self.big(x[big_frames])
        big = F.interpolate(big, size=little.shape[2:], mode="nearest")
        fused = self.fusion(F.relu(big + little))
        return fused, to_both_frames(fused, batch, self.frames)


class BLResNet(nn.Module):
    def __init__(self, depth, frames, alpha=2, beta=4):
        super().__init__()
        self.frames = frames
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.tam = TAM(64, frames)
        self.b_conv0 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn_b0 = nn.BatchNorm2d(64)
        self.l_conv0 = nn.Conv2d(64, 64 // alpha, 3, padding=1, bias=False)
        self.bn_l0 = nn.BatchNorm2d(64 // alpha)
        self.l_conv1 = nn.Conv2d(64 // alpha, 64 // alpha, 3, stride=2, padding=1, bias=False)
        self.bn_l1 = nn.BatchNorm2d(64 // alpha)
        self.l_conv2 = nn.Conv2d(64 // alpha, 64, 1, bias=False)
        self.bn_l2 = nn.BatchNorm2d(64)
        self.bl_init = nn.Conv2d(64, 64, 1, bias=False)
        self.bn_bl_init = nn.BatchNorm2d(64)
        blocks = BLOCKS[depth]
        inplanes = 64
        for index, (planes, stride) in enumerate(zip((256, 512, 1024), (2, 2, 1)), start=1):
            setattr(self, f"layer{index}", BLModule(inplanes, planes, blocks[index - 1], stride, frames, alpha, beta))
            inplanes = planes
        stage4 = [Bottleneck(1024, 2048, 2, tam_frames=frames // 2)]
        stage4 += [Bottleneck(2048, 2048, tam_frames=frames // 2) for _ in range(blocks[3] - 1)]
        self.layer4 = nn.Sequential(*stage4)

    def forward(self, x):
        batch = x.shape[0] // self.frames
        x = self.tam(F.relu(self.bn1(self.conv1(x))))
        little_frames, big_frames = pair_indices(batch, self.frames)
        big = self.bn_b0(self.b_conv0(x[big_frames]))
        little = F.relu(self.bn_l0(self.l_conv0(x[little_frames])))
        little = F.relu(self.bn_l1(self.l_conv1(little)))
        little = self.bn_l2(self.l_conv2(little))
        fused = F.relu(self.bn_bl_init(self.bl_init(F.relu(big + little))))
        x = to_both_frames(fused, batch, self.frames)
        for index in (1, 2, 3):
            _, x = getattr(self, f"layer{index}")(x)
        # Stage 4 on the big (odd) frame of each pair: after the write to both, pair k's map.
        x = self.layer4(x[pair_indices(batch, self.frames)[1]])
        return x.mean(dim=(2, 3))


class BLVNetTAM(nn.Module):
    """Clips (B, 2T, 3, H, W), normalised -> clip logits: the reference's wrapper names."""

    def __init__(self, depth, frames, num_classes):
        super().__init__()
        self.baseline_model = BLResNet(depth, frames)
        self.new_fc = nn.Linear(2048, num_classes)

    def forward(self, clips):
        b, frames = clips.shape[:2]
        features = self.baseline_model(clips.reshape((b * frames,) + clips.shape[2:]))
        return self.new_fc(features).reshape(b, frames // 2, -1).mean(dim=1)
