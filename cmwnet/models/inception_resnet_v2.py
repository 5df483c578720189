"""Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017): the full-WebVision classifier of Table 10.

Our own implementation of the network as Google released it with the paper (TF-slim; also the
layout of the widely used PyTorch ports the authors' `InceptionResNetV2.py` follows):
- stem: 3x3/2 conv 32, 3x3 conv 32, 3x3 conv 64, 3x3/2 max-pool, 1x1 conv 80, 3x3 conv 192,
  3x3/2 max-pool, then the "Mixed 5b" Inception block (96 + 64 + 96 + 64 = 320 channels);
- 10 x Inception-ResNet-A (35x35 grid), residual scale 0.17;
- Reduction-A (k, l, m, n = 256, 256, 384, 384) -> 1088 channels;
- 20 x Inception-ResNet-B (17x17), scale 0.10;
- Reduction-B -> 2080 channels;
- 9 x Inception-ResNet-C (8x8), scale 0.20, and a last one without ReLU (scale 1.0);
- 1x1 conv to 1536, global average pool, linear classifier `fc`.
Every conv is conv (no bias) + BN (eps 1e-3) + ReLU, except the linear 1x1 "up" convs of the
residual branches (with bias, no BN), as in the paper's Fig. 16/17/19 blocks ("scaling of the
residuals", Sec. 3.3). The paper's stem figure (its Fig. 3) and its channel counts 1154/2048 differ
from the released network; we follow the released one. Input 299x299 (>= 75x75 works).
`blocks` shortens the three repeats and `width` scales every channel count, for CPU tests only.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import MODELS


def ch(n: int, width: float) -> int:
    """A channel count scaled by the width multiplier (1.0: the paper's)."""
    return max(1, int(round(n * width)))


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True))


class Mixed5b(nn.Module):
    """Inception-A style block closing the stem: 192 -> 320 channels on the 35x35 grid."""

    def __init__(self, cin: int = 192, w: float = 1.0):
        super().__init__()
        self.branch0 = ConvBN(cin, ch(96, w), 1)
        self.branch1 = nn.Sequential(ConvBN(cin, ch(48, w), 1), ConvBN(ch(48, w), ch(64, w), 5, padding=2))
        self.branch2 = nn.Sequential(ConvBN(cin, ch(64, w), 1), ConvBN(ch(64, w), ch(96, w), 3, padding=1),
                                     ConvBN(ch(96, w), ch(96, w), 3, padding=1))
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), ConvBN(cin, ch(64, w), 1))
        self.out_channels = ch(96, w) + ch(64, w) + ch(96, w) + ch(64, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class BlockA(nn.Module):
    """Inception-ResNet-A (35x35, 320 channels)."""

    def __init__(self, scale: float = 0.17, c: int = 320, w: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = ConvBN(c, ch(32, w), 1)
        self.branch1 = nn.Sequential(ConvBN(c, ch(32, w), 1), ConvBN(ch(32, w), ch(32, w), 3, padding=1))
        self.branch2 = nn.Sequential(ConvBN(c, ch(32, w), 1), ConvBN(ch(32, w), ch(48, w), 3, padding=1),
                                     ConvBN(ch(48, w), ch(64, w), 3, padding=1))
        self.up = nn.Conv2d(2 * ch(32, w) + ch(64, w), c, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.up(torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1))
        return self.relu(x + self.scale * r)


class ReductionA(nn.Module):
    """35x35 -> 17x17; 320 -> 320 + 384 + 384 = 1088 channels."""

    def __init__(self, cin: int = 320, w: float = 1.0):
        super().__init__()
        self.branch0 = ConvBN(cin, ch(384, w), 3, stride=2)
        self.branch1 = nn.Sequential(ConvBN(cin, ch(256, w), 1), ConvBN(ch(256, w), ch(256, w), 3, padding=1),
                                     ConvBN(ch(256, w), ch(384, w), 3, stride=2))
        self.branch2 = nn.MaxPool2d(3, stride=2)
        self.out_channels = cin + 2 * ch(384, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class BlockB(nn.Module):
    """Inception-ResNet-B (17x17, 1088 channels)."""

    def __init__(self, scale: float = 0.10, c: int = 1088, w: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = ConvBN(c, ch(192, w), 1)
        self.branch1 = nn.Sequential(ConvBN(c, ch(128, w), 1), ConvBN(ch(128, w), ch(160, w), (1, 7), padding=(0, 3)),
                                     ConvBN(ch(160, w), ch(192, w), (7, 1), padding=(3, 0)))
        self.up = nn.Conv2d(2 * ch(192, w), c, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.up(torch.cat([self.branch0(x), self.branch1(x)], 1))
        return self.relu(x + self.scale * r)


class ReductionB(nn.Module):
    """17x17 -> 8x8; 1088 -> 384 + 288 + 320 + 1088 = 2080 channels."""

    def __init__(self, cin: int = 1088, w: float = 1.0):
        super().__init__()
        self.branch0 = nn.Sequential(ConvBN(cin, ch(256, w), 1), ConvBN(ch(256, w), ch(384, w), 3, stride=2))
        self.branch1 = nn.Sequential(ConvBN(cin, ch(256, w), 1), ConvBN(ch(256, w), ch(288, w), 3, stride=2))
        self.branch2 = nn.Sequential(ConvBN(cin, ch(256, w), 1), ConvBN(ch(256, w), ch(288, w), 3, padding=1),
                                     ConvBN(ch(288, w), ch(320, w), 3, stride=2))
        self.branch3 = nn.MaxPool2d(3, stride=2)
        self.out_channels = cin + ch(384, w) + ch(288, w) + ch(320, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class BlockC(nn.Module):
    """Inception-ResNet-C (8x8, 2080 channels); the last one has no ReLU."""

    def __init__(self, scale: float = 0.20, relu: bool = True, c: int = 2080, w: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = ConvBN(c, ch(192, w), 1)
        self.branch1 = nn.Sequential(ConvBN(c, ch(192, w), 1), ConvBN(ch(192, w), ch(224, w), (1, 3), padding=(0, 1)),
                                     ConvBN(ch(224, w), ch(256, w), (3, 1), padding=(1, 0)))
        self.up = nn.Conv2d(ch(192, w) + ch(256, w), c, 1)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.up(torch.cat([self.branch0(x), self.branch1(x)], 1))
        return self.relu(x + self.scale * r)


class InceptionResNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, blocks: tuple = (10, 20, 10),
                 width: float = 1.0):
        super().__init__()
        a, b, c = blocks
        if min(a, b, c) < 1:
            raise ValueError("every block repeat must be >= 1")
        w = width
        mixed = Mixed5b(ch(192, w), w)
        self.stem = nn.Sequential(
            ConvBN(in_channels, ch(32, w), 3, stride=2), ConvBN(ch(32, w), ch(32, w), 3),
            ConvBN(ch(32, w), ch(64, w), 3, padding=1), nn.MaxPool2d(3, stride=2), ConvBN(ch(64, w), ch(80, w), 1),
            ConvBN(ch(80, w), ch(192, w), 3), nn.MaxPool2d(3, stride=2), mixed)
        c35 = mixed.out_channels                               # 320
        self.repeat_a = nn.Sequential(*[BlockA(0.17, c35, w) for _ in range(a)])
        self.reduction_a = ReductionA(c35, w)
        c17 = self.reduction_a.out_channels                    # 1088
        self.repeat_b = nn.Sequential(*[BlockB(0.10, c17, w) for _ in range(b)])
        self.reduction_b = ReductionB(c17, w)
        c8 = self.reduction_b.out_channels                     # 2080
        self.repeat_c = nn.Sequential(*[BlockC(0.20, True, c8, w) for _ in range(c - 1)], BlockC(1.0, False, c8, w))
        self.conv_final = ConvBN(c8, ch(1536, w), 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch(1536, w), num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.repeat_a(self.stem(x))
        x = self.repeat_b(self.reduction_a(x))
        x = self.repeat_c(self.reduction_b(x))
        return torch.flatten(self.pool(self.conv_final(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("inception_resnet_v2")
def inception_resnet_v2(num_classes: int = 1000, in_channels: int = 3, blocks: list | tuple = (10, 20, 10),
                        width: float = 1.0) -> InceptionResNetV2:
    """Inception-ResNet-v2 from scratch (Table 10 trains it from scratch on full WebVision)."""
    return InceptionResNetV2(num_classes, in_channels, tuple(blocks), width)
