"""A small, independent PyTorch TSM, written from docs/reference.md (the shift, where it goes, the checkpoints).

It knows nothing of tsm_keras: NCHW tensors with the frames of each clip folded into the
batch, temporal modules that wrap the module they precede as `.net` (so the state dict
has the official names: layer1.0.conv1.net.weight, features.3.conv.0.net.weight, ...),
the classifier as `new_fc`, and `save_official` saves what the official training code
saves. `StreamingMobileNetV2` is the streaming demo's model: a bare state dict, and a
per-frame step that keeps its own shift buffers.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def shift_time(x, num_segments, fold_div, bidirectional):
    """(N*T, C, H, W): bidirectional: [0, f) from t+1, [f, 2f) from t-1; else [0, f) from t-1."""
    nt, c, h, w = x.shape
    clips = x.reshape(nt // num_segments, num_segments, c, h, w)
    fold = c // fold_div
    out = clips.clone()
    out[:, :, :fold] = 0
    if bidirectional:
        out[:, :-1, :fold] = clips[:, 1:, :fold]
        out[:, :, fold : 2 * fold] = 0
        out[:, 1:, fold : 2 * fold] = clips[:, :-1, fold : 2 * fold]
    else:
        out[:, 1:, :fold] = clips[:, :-1, :fold]
    return out.reshape(nt, c, h, w)


class Shift(nn.Module):
    def __init__(self, net, num_segments, fold_div=8, bidirectional=True):
        super().__init__()
        self.net = net
        self.num_segments, self.fold_div, self.bidirectional = num_segments, fold_div, bidirectional

    def forward(self, x):
        return self.net(shift_time(x, self.num_segments, self.fold_div, self.bidirectional))


class TimePool(nn.Module):
    """Max over time, kernel 3, stride 2, padding 1 (TSM+TP), then the wrapped stage."""

    def __init__(self, net, num_segments):
        super().__init__()
        self.net = net
        self.num_segments = num_segments

    def forward(self, x):
        nt, c, h, w = x.shape
        clips = x.reshape(nt // self.num_segments, self.num_segments, c, h, w).transpose(1, 2)
        pooled = F.max_pool3d(clips, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        return self.net(pooled.transpose(1, 2).reshape(nt // 2, c, h, w))


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for index, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            stage = []
            for i in range(count):
                stage.append(Bottleneck(inplanes, planes, 2 if i == 0 and index > 1 else 1))
                inplanes = planes * 4
            setattr(self, f"layer{index}", nn.Sequential(*stage))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return x.mean(dim=(2, 3))


class NonLocal3d(nn.Module):
    """The embedded-Gaussian non-local block on (N, C, T, H, W), from docs/reference.md.

    Queries theta(x) at every position; keys phi(x) and values g(x) max-pooled 2x2 in space;
    attention = softmax over the keys of the unscaled dot products; the result back to C
    channels by W (conv + BN, the BN starting at zero) and added to x.
    """

    def __init__(self, channels):
        super().__init__()
        inter = channels // 2
        self.theta = nn.Conv3d(channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv3d(channels, inter, 1), nn.MaxPool3d((1, 2, 2)))
        self.g = nn.Sequential(nn.Conv3d(channels, inter, 1), nn.MaxPool3d((1, 2, 2)))
        self.W = nn.Sequential(nn.Conv3d(inter, channels, 1), nn.BatchNorm3d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x):
        queries = self.theta(x).flatten(2)  # (N, inter, T*H*W)
        keys, values = self.phi(x).flatten(2), self.g(x).flatten(2)  # (N, inter, T*h*w)
        attention = torch.softmax(torch.einsum("nci,ncj->nij", queries, keys), dim=-1)
        y = torch.einsum("nij,ncj->nci", attention, values)
        return x + self.W(y.reshape((x.shape[0], -1) + x.shape[2:]))


class WithNonLocal(nn.Module):
    """A ResNet block (`.block`) followed by a non-local block (`.nl`) over each clip's frames."""

    def __init__(self, block, channels, num_segments):
        super().__init__()
        self.block = block
        self.nl = NonLocal3d(channels)
        self.num_segments = num_segments

    def forward(self, x):
        x = self.block(x)
        nt, c, h, w = x.shape
        clips = x.reshape(nt // self.num_segments, self.num_segments, c, h, w).transpose(1, 2)  # N, C, T, H, W
        return self.nl(clips).transpose(1, 2).reshape(nt, c, h, w)


def tsm_resnet(depth, num_segments, place="blockres", bidirectional=True, tpool=False, fold_div=8, non_local=False):
    """torchvision-style ResNet with shifts inserted as the official code does: before conv1 of
    each residual branch (`blockres`; every other block when layer3 has 23 or more blocks) or on
    the whole block (`block`); for `non_local` (ResNet-50), non-local blocks after the whole
    blocks layer2[0, 2] and layer3[0, 2, 4] (docs/reference.md)."""
    net = ResNet({50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth])
    segments = [num_segments] + [num_segments // 2 if tpool else num_segments] * 3
    every = 2 if place == "blockres" and len(net.layer3) >= 23 else 1
    for index, stage_segments in enumerate(segments, start=1):
        stage = getattr(net, f"layer{index}")
        for i in range(len(stage)):
            if place == "blockres" and i % every == 0:
                stage[i].conv1 = Shift(stage[i].conv1, stage_segments, fold_div, bidirectional)
            elif place == "block":
                stage[i] = Shift(stage[i], stage_segments, fold_div, bidirectional)
    if tpool:
        net.layer2 = TimePool(net.layer2, num_segments)
    if non_local:
        for stage, indices, channels in ((net.layer2, (0, 2), 512), (net.layer3, (0, 2, 4), 1024)):
            for i in indices:
                stage[i] = WithNonLocal(stage[i], channels, num_segments)
    return net


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expansion):
        super().__init__()
        hidden = inp * expansion
        self.use_residual = stride == 1 and inp == oup
        layers = []
        if expansion != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.shifted = False  # streaming: this block takes a shift buffer

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)

    def step(self, x, buffer):
        """Streaming: the first c//8 channels come from the previous frame (the buffer)."""
        fold = x.shape[1] // 8
        return x + self.conv(torch.cat([buffer, x[:, fold:]], dim=1)), x[:, :fold]


def conv_bn_relu6(inp, oup, kernel, stride):
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(),
    )


SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=None):
        super().__init__()
        features, inp = [conv_bn_relu6(3, 32, 3, 2)], 32
        for expansion, channels, repeats, stride in SETTINGS:
            for i in range(repeats):
                features.append(InvertedResidual(inp, channels, stride if i == 0 else 1, expansion))
                inp = channels
        features.append(conv_bn_relu6(inp, 1280, 1, 1))
        self.features = nn.Sequential(*features)
        if num_classes:
            self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        return self.features(x).mean(dim=(2, 3))

    def shift_blocks(self):
        return [m for m in self.features if isinstance(m, InvertedResidual) and m.use_residual and len(m.conv) == 8]


def tsm_mobilenet_v2(num_segments, bidirectional=True, fold_div=8):
    net = MobileNetV2()
    for block in net.shift_blocks():
        block.conv[0] = Shift(block.conv[0], num_segments, fold_div, bidirectional)
    return net


class TSN(nn.Module):
    """Clips (B, T, 3, H, W), normalised -> clip logits: the official TSN wrapper's layout."""

    def __init__(self, base_model, num_classes, feature_dim, num_segments, out_segments=None):
        super().__init__()
        self.base_model = base_model
        self.new_fc = nn.Linear(feature_dim, num_classes)
        self.out_segments = out_segments or num_segments

    def forward(self, clips):
        b, t = clips.shape[:2]
        features = self.base_model(clips.reshape((b * t,) + clips.shape[2:]))
        logits = self.new_fc(features)
        return logits.reshape(b, self.out_segments, -1).mean(dim=1)


class StreamingMobileNetV2(MobileNetV2):
    """The streaming demo's model: bare names (features.*, classifier.*), 10 shift buffers."""

    def __init__(self, num_classes=27):
        super().__init__(num_classes)
        for block in self.shift_blocks():
            block.shifted = True

    def zero_buffers(self, frame):
        buffers, x = [], frame
        with torch.no_grad():
            for module in self.features:
                if getattr(module, "shifted", False):
                    buffers.append(torch.zeros_like(x[:, : x.shape[1] // 8]))
                x = module(x)
        return buffers

    def step(self, frame, buffers):
        """One normalised frame (N, 3, H, W) and the buffers -> (logits, new buffers)."""
        x, new, i = frame, [], 0
        for module in self.features:
            if getattr(module, "shifted", False):
                x, kept = module.step(x, buffers[i])
                new.append(kept)
                i += 1
            else:
                x = module(x)
        return self.classifier(x.mean(dim=(2, 3))), new

    def run(self, frames):
        """(N, T, 3, H, W) -> per-frame logits (N, T, K), from zero buffers."""
        buffers = self.zero_buffers(frames[:, 0])
        outputs = []
        for t in range(frames.shape[1]):
            logits, buffers = self.step(frames[:, t], buffers)
            outputs.append(logits)
        return torch.stack(outputs, dim=1)


def normalize(clips_uint8_range):
    """(B, T, H, W, 3) RGB in [0, 255] (NumPy) -> (B, T, 3, H, W) float tensor, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(clips_uint8_range, dtype=np.float32)) / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(0, 1, 4, 2, 3).contiguous()


def randomize(model, seed, calibrate):
    """Random weights and non-trivial BN statistics.

    BN affine parameters are drawn at random, then the running statistics are measured on
    random data (`calibrate()` runs the model in train mode), so mean and variance are far
    from 0 and 1 while activations stay moderate through the depth. As in trained networks,
    the last BN of a residual branch has a small scale (0.1 to 0.4): otherwise the residual
    stream grows block after block, and float32 rounding alone (in any framework) exceeds
    1e-4 on the logits. The output BN of a non-local block counts as one (it starts at zero,
    which would make the block the identity and the test blind to it).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the calibration passes
            elif isinstance(module, nn.Linear):
                module.weight.copy_(0.05 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        for module in model.modules():
            last = (
                module.bn3
                if hasattr(module, "bn3")  # a bottleneck (this file's, or torch_blvnet's)
                else module.W[1]
                if isinstance(module, NonLocal3d)
                else (module.conv[-1] if isinstance(module, InvertedResidual) and module.use_residual else None)
            )
            if last is not None:
                last.weight.copy_(0.1 + 0.3 * torch.rand(last.weight.shape, generator=generator))
        model.train()
        calibrate()
        model.eval()
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.momentum = 0.1
    return model


def save_official(model, path, arch, epoch=50, best_prec1=71.2):
    """What the official training code saves: DataParallel names and the optimizer state."""
    parallel = nn.DataParallel(model)
    optimizer = torch.optim.SGD(parallel.parameters(), lr=0.01, momentum=0.9)
    for parameter in parallel.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # zero gradients: creates momentum buffers, leaves the weights as they are
    torch.save(
        {
            "epoch": epoch,
            "arch": arch,
            "state_dict": parallel.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_prec1": best_prec1,
        },
        path,
    )
