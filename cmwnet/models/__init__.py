"""Classifiers by name: `create_model("resnet32", num_classes=10)`.

The bi-level step can move only the head of a large backbone (`virtual_params: head`); `head_name`
finds that head the way timm and torchvision name it, so outside models work without changes.
"""
from __future__ import annotations

import torch.nn as nn

from ..errors import CmwnetError
from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered model; unknown names list the valid ones."""
    check_model_args(name, kwargs)
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels, **kwargs)


def check_model_args(name: str, args: dict) -> None:
    """`model.args` keys the model's builder does not take: refused with the closest valid name."""
    from ..errors import check_builder_args

    check_builder_args("model.args", MODELS.get(name), args, ("num_classes", "in_channels"), f"model {name}")


HEAD_ATTRIBUTES = ("classifier", "fc", "head")   # torchvision / timm conventions, in this order


def _has_params(module: object) -> bool:
    return isinstance(module, nn.Module) and next(module.parameters(), None) is not None


def head_name(model: nn.Module) -> str:
    """Module name of the model's classifier (every parameter under it is "the head", e.g. all of an
    `nn.Sequential(Dropout, Linear)`).

    Looked up as: an explicit `model.head_name` (it overrides the conventions), timm's `get_classifier()`
    (the module it returns, found among `named_modules()`), then the attributes `classifier`, `fc`, `head`.
    """
    explicit = getattr(model, "head_name", None)
    if isinstance(explicit, str):
        return explicit
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        if _has_params(head):
            name = next((n for n, m in model.named_modules() if m is head and n), None)
            if name is not None:
                return name
    for attr in HEAD_ATTRIBUTES:
        if _has_params(getattr(model, attr, None)):
            return attr
    raise CmwnetError(f"cannot find the classifier head of {type(model).__name__} (no get_classifier(), classifier, "
                      "fc or head with parameters): set model.head_name = '<module>'")


# importing the modules registers their models
from . import resnet_cifar, preact_resnet, small, sade_resnet, resnet34_plc  # noqa: E402,F401
from . import vgg, resnet_imagenet, inception_resnet_v2, bcnn  # noqa: E402,F401  large models (Sec. 5-6)

