"""Small networks: the digits classifier of the embedded demo and tiny nets for CPU tests."""
from __future__ import annotations

import torch
import torch.nn as nn

from . import MODELS


class SmallCNN(nn.Module):
    """conv-BN-ReLU x2 (the second with stride 2), global pool, linear; sized for 8x8 digits."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class MLP(nn.Module):
    """Flatten -> (Linear-BN-ReLU) x depth -> linear. `batchnorm=False` gives a net whose
    per-sample gradients do not depend on the rest of the batch (needed by the DDP equivalence test)."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 256, depth: int = 2,
                 batchnorm: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers += [nn.Linear(d, hidden)] + ([nn.BatchNorm1d(hidden)] if batchnorm else []) + [nn.ReLU()]
            d = hidden
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


@MODELS.register("digits_cnn")
def digits_cnn(num_classes: int = 10, in_channels: int = 1) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, width=32)


@MODELS.register("digits_mlp")
def digits_mlp(num_classes: int = 10, in_channels: int = 1, image_size: int = 8) -> MLP:
    return MLP(num_classes, in_channels * image_size * image_size, hidden=256, depth=2)


@MODELS.register("tiny_cnn")
def tiny_cnn(num_classes: int = 10, in_channels: int = 3) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, width=4)


@MODELS.register("tiny_mlp")
def tiny_mlp(num_classes: int = 10, in_channels: int = 3, image_size: int = 8, batchnorm: bool = False) -> MLP:
    return MLP(num_classes, in_channels * image_size * image_size, hidden=16, depth=1, batchnorm=batchnorm)
