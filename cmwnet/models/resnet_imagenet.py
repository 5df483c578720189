"""ResNet-50 (He et al., CVPR 2016) with the ImageNet stem, torchvision's implementation: the paper's
mini-WebVision classifier (Table 7).

The authors start every copy of it from a self-supervised WebVision checkpoint (C2D's; "CMW-Net-SL+C2D"
in Table 7). Nothing is downloaded here: `pretrained` is the path of such a file (C2D's `{'model':
...}` with `module.`/`encoder.` prefixes and SupContrast's `shortcut` names are understood) or of
torchvision's ImageNet weights; tensors of another shape (the classifier) are skipped. `layers` and
`width_per_group` (torchvision's own arguments) shrink the net for CPU smoke runs only.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .pretrained import load_pretrained


@MODELS.register("resnet50")
def resnet50(num_classes: int = 50, in_channels: int = 3, pretrained: str | None = None,
             layers: list | tuple = (3, 4, 6, 3), width_per_group: int = 64) -> nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet  # imported here: torchvision adds ~1 s to every launch

    model = ResNet(Bottleneck, list(layers), num_classes=num_classes, width_per_group=width_per_group)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    if pretrained:
        load_pretrained(model, pretrained, rename={".shortcut.": ".downsample.", "head.": "fc."})
    return model
