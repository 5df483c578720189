"""ResNet-32 for CIFAR with option-A (zero-padding) shortcuts, as in He et al. 2016, Sec. 4.2.

The layout the LDAM-DRW and Meta-Weight-Net code use for CIFAR-LT: 3 stages x 5 basic blocks,
16/32/64 channels, global average pooling, Kaiming-normal init of conv and linear weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MODELS


class _PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class NormedLinear(nn.Module):
    """Cosine classifier: logits are cos(feature, class vector), in [-1, 1] (the head LDAM-DRW uses;
    the LDAM loss multiplies by its scale s). Class vectors start random with unit norm."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1))
        with torch.no_grad():
            self.weight.div_(self.weight.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + shortcut, ReLU. A shortcut that changes the shape is option A (zero
    padding, no parameters: the CIFAR ResNets) or option B (1x1 conv + BN: the ImageNet-style ones)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "pad"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _PadShortcut(planes) if shortcut == "pad" else nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, num_blocks: int, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 normed_fc: bool = False):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1 = self._stage(w, w, num_blocks, 1)
        self.layer2 = self._stage(w, 2 * w, num_blocks, 2)
        self.layer3 = self._stage(2 * w, 4 * w, num_blocks, 2)
        self.fc = NormedLinear(4 * w, num_classes) if normed_fc else nn.Linear(4 * w, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride)]
        blocks += [BasicBlock(planes, planes, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("resnet32")
def resnet32(num_classes: int = 10, in_channels: int = 3, normed_fc: bool = False) -> ResNetCifar:
    """`normed_fc: true`: cosine classifier, for the LDAM loss (Cao et al. 2019)."""
    return ResNetCifar(5, num_classes, in_channels, normed_fc=normed_fc)


@MODELS.register("resnet8")
def resnet8(num_classes: int = 10, in_channels: int = 3, normed_fc: bool = False, width: int = 8) -> ResNetCifar:
    """One block per stage: the same code path as ResNet-32 at a size CPU tests can afford (width 8:
    19k parameters; `model.args: {width: 16}` gives 77k, for CPU-scale experiments on real data)."""
    return ResNetCifar(1, num_classes, in_channels, width=width, normed_fc=normed_fc)
