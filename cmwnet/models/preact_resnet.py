"""PreAct ResNet-18 as the authors' Tables 2-3 code has it (`PreResNet_MWN.py`, DivideMix's layout).

3x3 conv 64 (no bias) -> BN-ReLU -> pre-activation blocks [2,2,2,2] at 64/128/256/512 channels ->
4x4 average pool -> linear; PyTorch's default initialisation everywhere (the authors apply none).

Two blocks, which differ only on the identity shortcut:
- `preact_resnet18` (the authors'): out = relu(bn1(x)) and the shortcut always takes that `out`, so an
  identity shortcut adds relu(bn1(x)). With the same weights its logits differ from the textbook
  block's, and so does every meta-gradient: the Table 2-3 configs use this one.
- `preact_resnet18_he` (He et al., "Identity Mappings in Deep Residual Networks", 2016): an identity
  shortcut adds x itself. Kept for comparison and for runs made before the authors' block was adopted.
Both take a projection shortcut (1x1 conv, no BN) of relu(bn1(x)) where the shape changes, and have the
same 11,171,274 parameters (CIFAR-10).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MODELS


class PreActBlock(nn.Module):
    """The authors' (DivideMix's) pre-activation block: every shortcut starts from relu(bn1(x))."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def _identity(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = self.shortcut(pre) if self.shortcut is not None else self._identity(x, pre)
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + shortcut


class PreActBlockHe(PreActBlock):
    """The textbook pre-activation block (He et al. 2016): an identity shortcut adds x, not relu(bn1(x))."""

    def _identity(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return x


class PreActResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int = 10, in_channels: int = 3, width: int = 64,
                 block: type[PreActBlock] = PreActBlock):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        planes, layers, in_planes = [w, 2 * w, 4 * w, 8 * w], [], w
        for i, (p, n) in enumerate(zip(planes, num_blocks)):
            stride = 1 if i == 0 else 2
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(block(in_planes, p, s))
                in_planes = p
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(8 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # the authors use avg_pool2d(4) on the 4x4 map of 32x32 inputs; adaptive pooling is the same there
        # and also accepts other input sizes
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> PreActResNet:
    """The authors' PreAct ResNet-18 (identity shortcuts add relu(bn1(x)))."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width, PreActBlock)


@MODELS.register("preact_resnet18_he")
def preact_resnet18_he(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> PreActResNet:
    """The same network with He et al.'s textbook blocks (identity shortcuts add x)."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width, PreActBlockHe)
