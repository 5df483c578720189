"""Bilinear CNN (Lin, RoyChowdhury & Maji, ICCV 2015) on VGG-16 features: the WebFG-496 classifier
(Table 8), as the authors' `bcnn_mwn_v1.py` builds it.

VGG-16's convolutional stack (with its last max-pool: 512 x 14 x 14 at 448 pixels), the bilinear
pool X X^T / (h w) of the feature map, signed square root sign(z) sqrt(|z| + 1e-5), L2
normalisation, and a linear classifier `fc` on the 512^2 features (kaiming-normal weights).

Two-step training (the authors' `--step 1/2`): step 1 starts the features from ImageNet VGG-16
(`pretrained`, a local torchvision checkpoint) and freezes them (`freeze_features`: only `fc` trains
and moves in the virtual step); step 2 trains everything from the step-1 model (`init`: a finished
run's `checkpoint.pt` or a state dict file).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MODELS
from .pretrained import load_pretrained
from .vgg import make_vgg_layers


class BCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        self.features = make_vgg_layers("D", False, in_channels, width)
        c = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.fc = nn.Linear(c * c, num_classes)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        z = torch.bmm(f, f.transpose(1, 2)).reshape(b, c * c) / (h * w)
        z = torch.sign(z) * torch.sqrt(z.abs() + 1e-5)
        return self.fc(F.normalize(z, dim=1))


@MODELS.register("bcnn")
def bcnn(num_classes: int = 200, in_channels: int = 3, width: float = 1.0, pretrained: str | None = None,
         freeze_features: bool = False, init: str | None = None) -> BCNN:
    model = BCNN(num_classes, in_channels, width)
    if pretrained:  # ImageNet VGG-16: only `features.*` fit
        load_pretrained(model.features, pretrained, rename={"features.": ""}, min_fraction=1.0)
    if init:
        load_pretrained(model, init, strict=True)
    if freeze_features:
        model.features.requires_grad_(False)
    return model
