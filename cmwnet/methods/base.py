"""The method interface and what every method shares (its loss, the plain ERM step)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..losses import build_loss

if TYPE_CHECKING:
    from ..engine import Trainer


class Method:
    """One training step's computation. Stats are tensors (no host sync inside a step): "loss" and
    "logits" always; "weights" (per-sample weights of the real update) where the method has them."""

    weight_net = None

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.cfg = trainer.cfg.method
        self.model, self.optimizer = trainer.model, trainer.optimizer
        data = trainer.data
        self.loss_fn = build_loss(self.cfg.loss, data.num_classes, data.class_counts, **self.cfg.loss_args)
        self.loss_fn.to(trainer.device)

    def on_epoch_start(self, epoch: int) -> None:
        if hasattr(self.loss_fn, "set_epoch"):
            self.loss_fn.set_epoch(epoch)

    def erm_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.model(x)
        loss = self.loss_fn(logits, y).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "logits": logits.detach()}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # every registered method defines its step

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
