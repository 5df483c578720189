"""Per-sample losses by name: `build_loss("ce", num_classes, class_counts)` -> (logits, targets) -> (B,).

Every loss here returns one value per sample, so any of them can be reweighted. A loss whose form
changes during training (e.g. deferred re-weighting) has `set_epoch(epoch)`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import Registry

LOSSES: Registry = Registry("loss")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum_c z_c log p_c per sample, for soft targets z (pseudo labels, mixed labels)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1)


@LOSSES.register("ce")
class CrossEntropy(nn.Module):
    """Plain cross-entropy, per sample."""

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none")


def build_loss(name: str, num_classes: int, class_counts: Sequence[int], **args) -> nn.Module:
    """A registered per-sample loss; `args` are the loss's own options (config: method.loss_args)."""
    from .errors import CmwnetError

    cls = LOSSES.get(name)
    try:
        return cls(num_classes=num_classes, class_counts=class_counts, **args)
    except TypeError as e:
        raise CmwnetError(f"bad method.loss_args for loss '{name}': {e}") from None
