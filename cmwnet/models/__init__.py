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


def tail_names(model: nn.Module) -> list[str]:
    """Parameter names of the model's tail: its last block and everything after it, head included (what
    `meta_grad: tail` moves in the virtual step).

    The last block is the deepest element of an `nn.Sequential` / `nn.ModuleList` (a stage's residual block)
    that holds a parameter before the head, searched from the end; parameters are taken in registration
    order, which is the forward order in every model here. A model with no such container (an MLP of named
    layers) uses its last parametrised child before the head. `model.tail_name` (a module name) overrides both.
    """
    names = [n for n, _ in model.named_parameters()]
    head = head_name(model) + "."
    explicit = getattr(model, "tail_name", None)
    if isinstance(explicit, str):
        start = next((i for i, n in enumerate(names) if n.startswith(explicit + ".")), None)
        if start is None:
            raise CmwnetError(f"model.tail_name {explicit!r} names no module with parameters in "
                              f"{type(model).__name__}")
        return names[start:]
    modules = dict(model.named_modules())
    body = [n for n in names if not n.startswith(head)]
    if not body:
        raise CmwnetError(f"{type(model).__name__} has no parameters before its head {head[:-1]!r}: use meta_grad head")

    def block_of(param: str) -> str | None:
        parts = param.split(".")[:-1]
        for k in range(len(parts), 0, -1):   # deepest first
            parent = ".".join(parts[:k - 1])
            if isinstance(modules.get(parent), (nn.Sequential, nn.ModuleList)) and parts[k - 1].isdigit():
                return ".".join(parts[:k])
        return None

    block = next((b for b in map(block_of, reversed(body)) if b is not None), None)
    if block is None:   # no containers: the last top-level child before the head
        block = body[-1].split(".")[0]
    start = next(i for i, n in enumerate(names) if n.startswith(block + "."))
    return names[start:]


# importing the modules registers their models
from . import resnet_cifar, preact_resnet, small, sade_resnet, resnet34_plc  # noqa: E402,F401
from . import vgg, resnet_imagenet, inception_resnet_v2, bcnn  # noqa: E402,F401  large models (Sec. 5-6)

