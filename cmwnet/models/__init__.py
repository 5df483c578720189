"""Classifiers by name: `create_model("resnet32", num_classes=10)`.

Every model names its final linear layer `fc` (or sets `head_name`), so the bi-level step can move
only the head of a large backbone (`virtual_params: head`).
"""
from __future__ import annotations

import torch.nn as nn

from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered model; unknown names list the valid ones."""
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels, **kwargs)


def head_name(model: nn.Module) -> str:
    """Attribute name of the model's final classifier layer."""
    return getattr(model, "head_name", "fc")


# importing the modules registers their models
from . import resnet_cifar, preact_resnet, small, sade_resnet, resnet34_plc  # noqa: E402,F401
from . import vgg, resnet_imagenet, inception_resnet_v2, bcnn  # noqa: E402,F401  large models (Sec. 5-6)

