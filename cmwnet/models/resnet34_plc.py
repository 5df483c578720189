"""ResNet-34 for 32x32 images, the two variants the feature-dependent-noise experiments use.

- `resnet34`: the classifier of the authors' Tables 4-5 code (their file calls it WideResNet-28-10,
  it is a ResNet-34): basic blocks [3, 4, 6, 3] at 64/128/256/512 channels, 1x1-conv + BN
  shortcuts, **first conv 3x3 with stride 1 and no padding** (so the first map is 30x30),
  adaptive average pooling, PyTorch's default init.
- `plc_resnet34`: the network PLC (Zhang et al., ICLR 2021) trains on the clean 45k split to get the
  class posteriors that define Type-I/II/III noise. PLC names it `preact_resnet34`, but its blocks
  are post-activation (conv-BN-ReLU), the same as above except the first conv is padded (32x32 map).

Both follow He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MODELS
from .resnet_cifar import BasicBlock


class ResNet34(nn.Module):
    """Basic-block ResNet with 4 stages; `stem_padding` 0 is the authors' Tables 4-5 net, 1 PLC's."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, stem_padding: int = 0,
                 blocks: tuple[int, ...] = (3, 4, 6, 3), width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, in_planes = [], width
        for i, n in enumerate(blocks):
            planes = width * 2 ** i
            layers = []
            for s in [1 if i == 0 else 2] + [1] * (n - 1):
                layers.append(BasicBlock(in_planes, planes, s, shortcut="conv"))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("resnet34")
def resnet34(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> ResNet34:
    """The authors' Tables 4-5 classifier (first conv unpadded)."""
    return ResNet34(num_classes, in_channels, stem_padding=0, width=width)


@MODELS.register("plc_resnet34")
def plc_resnet34(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> ResNet34:
    """PLC's posterior network for generating feature-dependent noise (first conv padded)."""
    return ResNet34(num_classes, in_channels, stem_padding=1, width=width)
