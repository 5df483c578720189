"""ERM: minimise the mean of the configured per-sample loss (cross-entropy by default)."""
from __future__ import annotations

import torch

from . import METHODS
from .base import Method


@METHODS.register("erm")
class ERM(Method):
    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return self.erm_step(x, y)
