"""L2RW: learning to reweight examples (Ren, Zeng, Yang, Urtasun, ICML 2018).

Each iteration, every training sample i gets a perturbation eps_i = 0 on its loss; one virtual SGD
step theta' = theta - lr * grad sum_i eps_i l_i(theta); the meta loss (mean CE on a meta batch) at
theta'. The sample's weight is its negative meta-gradient, clipped at 0 and normalised to sum 1:

    u_i = -d meta_loss / d eps_i |eps=0  (= lr * grad meta_loss(theta) . grad l_i(theta)),
    w_i = max(u_i, 0) / sum_j max(u_j, 0)      (all zero when no u_i is positive: no update)

and the real step minimises sum_i w_i l_i. The eps vector is the "weight net" of `MetaStep` (a module
whose forward returns it), so the backends, virtual-parameter choice and BatchNorm handling are the
ones every meta method shares. There is no weighting function to learn or save: weights are recomputed
every iteration (`method.interval` must be 1). Before `method.start_epoch` the step is plain ERM.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..bilevel import Forward, MetaStep
from ..errors import CmwnetError
from . import METHODS
from .base import Method
from .context import RunContext
from .meta_learner import MetaBatches


class PerSampleEps(nn.Module):
    """eps, one zero per sample of the current batch: `forward(losses, labels)` returns it (with graph),
    so `MetaStep.meta_gradient` differentiates the meta loss with respect to it."""

    def __init__(self):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(0))

    def reset(self, n: int, device: torch.device, dtype: torch.dtype) -> None:
        """eps := n zeros (a new parameter only when the batch's size, device or dtype changes)."""
        e = self.eps
        if e.shape != (n,) or e.device != torch.device(device) or e.dtype != dtype:
            self.eps = nn.Parameter(torch.zeros(n, device=device, dtype=dtype))
        else:
            with torch.no_grad():
                e.zero_()

    def forward(self, losses: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.eps


def clip_and_normalise(meta_grad: torch.Tensor) -> torch.Tensor:
    """w = max(-g, 0) / sum max(-g, 0), zeros when the sum is 0 (no host sync)."""
    u = (-meta_grad).clamp_min(0.0)
    return u / u.sum().clamp_min(torch.finfo(u.dtype).tiny)


def l2rw_weights(meta_step: MetaStep, eps: PerSampleEps, x: torch.Tensor, y: torch.Tensor,
                 meta_x: torch.Tensor, meta_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The L2RW weights of batch (x, y) against meta batch (meta_x, meta_y); returns (weights, meta loss).

    `meta_step` holds the model, its optimizer (lr of the virtual step), the per-sample loss and
    `eps` as its weight net.
    """
    eps.reset(len(y), y.device, next(meta_step.model.parameters()).dtype)

    def virtual_loss(forward: Forward) -> torch.Tensor:
        losses = meta_step.loss_fn(forward(x), y)
        return (eps(losses, y) * losses).sum()

    def meta_loss(forward: Forward) -> torch.Tensor:
        return F.cross_entropy(forward(meta_x), meta_y)

    (grad,), outer = meta_step.meta_gradient(virtual_loss, meta_loss)
    return clip_and_normalise(grad.detach()), outer


@METHODS.register("l2rw")
class L2RW(Method):
    """Learning to reweight (Ren et al. 2018): per-iteration weights from the meta-gradient sign."""

    meta_phase = "start_epoch"
    records_weights = True   # its per-batch weights go to the epoch record (weight AUC) and final_weights.npz

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        if self.cfg.interval != 1:
            raise CmwnetError("method l2rw computes its weights every iteration: set method.interval to 1")
        # no weighting function to learn, keep or save, so no MetaLearner: the meta batches, and a MetaStep
        # whose "weight net" is eps (it only computes meta-gradients; nothing is averaged across ranks)
        self.eps = PerSampleEps().to(ctx.device)
        self.meta = MetaBatches(ctx)
        self.meta_step = MetaStep(self.model, self.optimizer, self.eps, None, backend=self.cfg.backend,
                                  virtual_params=self.cfg.virtual_params, loss_fn=self.loss_fn, fast=self.fast,
                                  meta_grad=self.cfg.meta_grad)

    def active(self, epoch: int) -> bool:
        return epoch >= self.cfg.start_epoch

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        if self.active(epoch):
            self.meta.refresh(epoch)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        if not self.active(self.ctx.epoch):
            return self.erm_step(x, y)
        mx, my = self.meta.next()
        x = self.fast.input(x)
        w, meta = l2rw_weights(self.meta_step, self.eps, x, y, self.fast.input(mx), my)
        logits = self.fast.forward(self.model, x)
        losses = self.loss_fn(logits, y)
        loss = (w * losses).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "logits": logits.detach(), "weights": w, "losses": losses.detach(),
                "meta_loss": meta}

    def state_dict(self) -> dict[str, Any]:
        return {"meta": self.meta.state_dict(), "loss": self.loss_fn.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meta.load_state_dict(state["meta"])
        self.loss_fn.load_state_dict(state["loss"])
