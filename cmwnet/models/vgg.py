"""VGG-19 with batch norm (Simonyan & Zisserman, ICLR 2015; BN variant as in torchvision), the
ANIMAL-10N classifier of the paper (Table 6), and the VGG-16 feature stack the bilinear CNN uses.

Layout and initialisation follow torchvision's VGG (configuration E; kaiming-normal fan-out convs, BN
weight 1 / bias 0, N(0, 0.01) linears), which is what the authors' `vgg_mwn.py` builds, with the last
linear layer named `fc` so the bi-level step can move only the head. A torchvision checkpoint loads
as it is (`classifier.6.*` becomes `fc.*`). `width` and `hidden` shrink the net for CPU tests.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import MODELS
from .pretrained import load_pretrained

CONFIGS = {
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],                                                                    # VGG-19
}


def make_vgg_layers(config: str, batch_norm: bool, in_channels: int = 3, width: float = 1.0) -> nn.Sequential:
    """The convolutional stack of a VGG configuration (torchvision's module indices)."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in CONFIGS[config]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        out = max(1, int(round(v * width)))
        layers.append(nn.Conv2d(c, out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        c = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    head_name = "fc"   # `classifier` is torchvision's MLP minus its last layer; the head is that last layer alone

    def __init__(self, config: str = "E", num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True,
                 width: float = 1.0, hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        self.features = make_vgg_layers(config, batch_norm, in_channels, width)
        last = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(last * 49, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout))
        self.fc = nn.Linear(hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.fc(self.classifier(x))


@MODELS.register("vgg19_bn")
def vgg19_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, hidden: int = 4096,
             dropout: float = 0.5, pretrained: str | None = None) -> VGG:
    """VGG-19-BN from scratch (the paper's ANIMAL-10N model), or from a local torchvision checkpoint."""
    model = VGG("E", num_classes, in_channels, True, width, hidden, dropout)
    if pretrained:
        load_pretrained(model, pretrained, rename={"classifier.6.": "fc."})
    return model
