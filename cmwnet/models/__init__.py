"""Classifiers by name: `create_model("resnet32", num_classes=10)`.

Every model names its final linear layer `fc` (or sets `head_name`), so the bi-level step can move
only the head of a large backbone (`virtual_params: head`).
"""
from __future__ import annotations

import torch.nn as nn

from ..errors import CmwnetError
from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered model; unknown names list the valid ones."""
    import inspect

    params = inspect.signature(MODELS.get(name)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown and not takes_any:
        accepted = [p for p in params if p not in ("num_classes", "in_channels")]
        raise CmwnetError(f"model {name} has no argument {', '.join(unknown)} (model.args): its arguments are "
                          f"{', '.join(accepted) or 'none'}")
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels, **kwargs)


def head_name(model: nn.Module) -> str:
    """Attribute name of the model's final classifier layer."""
    return getattr(model, "head_name", "fc")


# importing the modules registers their models
from . import resnet_cifar, preact_resnet, small, sade_resnet, resnet34_plc  # noqa: E402,F401
from . import vgg, resnet_imagenet, inception_resnet_v2, bcnn  # noqa: E402,F401  large models (Sec. 5-6)

