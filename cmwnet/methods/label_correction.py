"""CMW-Net-SL: label correction with meta-learned, class-aware weights (paper Sec. 3; method doc Sec. 3).

Corrected target of sample i: v_i * y_i + (1 - v_i) * z_i, with y_i the observed label, z_i a soft
pseudo label from the EMA model, and v_i = V(loss_i; family(y_i)) the CMW-Net weight. Cross-entropy
is linear in the target, so the loss is v*CE(p, y) + (1-v)*CE(p, z). With mixup (lam, partner perm):

    L = mean[ lam*(v1*CE(p,y) + (1-v1)*CE(p,z)) + (1-lam)*(v2*CE(p,y_perm) + (1-v2)*CE(p,z_perm)) ]

v1 = V(CE(p, y); y), and v2 = V(CE(p, y_perm); y_perm) ("recomputed"), or v1[perm] as the authors'
Table 2 code has it ("permuted", `sl.partner_weight`). The same loss drives the virtual step (v with
its graph) and the real step (v constant). Epochs before `sl.warmup` are plain CE.

Pseudo labels z are kept per training sample: z <- m*z + (1-m)*softmax(ema(x)) on the un-mixed
augmented batch each time the sample is seen (m = `sl.pseudo_momentum`; 0 in Table 2), initialised
one-hot (or zeros), and reset to the EMA softmax at `sl.pseudo_reset_epoch` where set.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..bilevel import Forward, MetaStep
from ..data.gpu import mixup
from ..errors import CmwnetError
from ..losses import soft_cross_entropy
from . import METHODS
from .base import Method
from .meta_common import MetaBatches, make_weight_net


@METHODS.register("cmwnet_sl")
class CMWNetSL(Method):
    weight_kind = "cmwnet"

    def __init__(self, trainer):
        super().__init__(trainer)
        sl = self.sl = self.cfg.sl
        if sl.partner_weight not in ("recomputed", "permuted"):
            raise CmwnetError(f"unknown method.sl.partner_weight '{sl.partner_weight}': use recomputed or permuted")
        if sl.pseudo_init not in ("onehot", "zeros"):
            raise CmwnetError(f"unknown method.sl.pseudo_init '{sl.pseudo_init}': use onehot or zeros")
        if trainer.ema is None:
            raise CmwnetError("cmwnet_sl takes pseudo labels from the EMA model: set ema.decay (e.g. 0.997)")
        self.weight_net, self.meta_optimizer = make_weight_net(trainer, self.weight_kind)
        self.frozen = self.meta_optimizer is None
        self.meta = None if self.frozen else MetaBatches(trainer)
        self.meta_step = MetaStep(self.model, self.optimizer, self.weight_net, self.meta_optimizer,
                                  backend=self.cfg.backend, interval=self.cfg.interval, normalize="mean",
                                  virtual_params=self.cfg.virtual_params, grad_hook=trainer.meta_grad_hook)
        train = trainer.data.train
        c = trainer.data.num_classes
        self.pseudo = torch.zeros(len(train), c, device=trainer.device)
        if sl.pseudo_init == "onehot":
            self.pseudo[torch.arange(len(train), device=trainer.device), train.labels] = 1.0

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        if self.meta is not None and epoch >= self.sl.warmup:
            self.meta.refresh(epoch)

    # -- the loss ----------------------------------------------------------------------------------
    def _sl_loss(self, logits: torch.Tensor, y: torch.Tensor, z: torch.Tensor, lam: float,
                 perm: torch.Tensor, weigh) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed label-correction loss; `weigh(losses, labels)` gives weights (with or without
        graph). Returns (loss, v1)."""
        ce_y = F.cross_entropy(logits, y, reduction="none")
        ce_z = soft_cross_entropy(logits, z)
        v1 = weigh(ce_y.detach(), y)
        loss = lam * (v1 * ce_y + (1 - v1) * ce_z)
        if lam < 1.0:
            y2 = y[perm]
            ce_y2 = F.cross_entropy(logits, y2, reduction="none")
            ce_z2 = soft_cross_entropy(logits, z[perm])
            v2 = v1[perm] if self.sl.partner_weight == "permuted" else weigh(ce_y2.detach(), y2)
            loss = loss + (1 - lam) * (v2 * ce_y2 + (1 - v2) * ce_z2)
        return loss.mean(), v1

    def _meta_loss(self, mx: torch.Tensor, my: torch.Tensor):
        t = self.trainer
        alpha = self.sl.meta_mixup_alpha
        if alpha > 0:
            mx, lam_m, perm_m = mixup(mx, alpha, t.generator, t.np_rng)

        def meta_loss(forward: Forward) -> torch.Tensor:
            out = forward(mx)
            if alpha > 0:
                return lam_m * F.cross_entropy(out, my) + (1 - lam_m) * F.cross_entropy(out, my[perm_m])
            return F.cross_entropy(out, my)
        return meta_loss

    @torch.no_grad()
    def _refresh_pseudo(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        ema = self.trainer.ema.model
        ema.train()  # the authors' EMA net gives pseudo labels in train mode (batch statistics)
        probs = F.softmax(ema(x), dim=1)
        m = self.sl.pseudo_momentum
        if self.trainer.epoch == self.sl.pseudo_reset_epoch or m == 0:
            self.pseudo[pos] = probs
        else:
            self.pseudo[pos] = m * self.pseudo[pos] + (1 - m) * probs
        return self.pseudo[pos]

    # -- the step ----------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        t = self.trainer
        if t.epoch < self.sl.warmup:
            return self.erm_step(x, y)
        z = self._refresh_pseudo(x, pos)
        xm, lam, perm = mixup(x, self.sl.mixup_alpha, t.generator, t.np_rng)
        meta = torch.full((), float("nan"), device=x.device)
        if self.meta is not None and self.meta_step.due(step):
            mx, my = self.meta.next()

            def virtual_loss(forward: Forward) -> torch.Tensor:
                return self._sl_loss(forward(xm), y, z, lam, perm, self.weight_net)[0]
            meta = self.meta_step.meta_update(virtual_loss, self._meta_loss(mx, my))
        logits = self.model(xm)
        loss, v1 = self._sl_loss(logits, y, z, lam, perm, self.meta_step.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "logits": logits.detach(), "weights": v1, "meta_loss": meta}

    def state_dict(self) -> dict[str, Any]:
        return {"weight_net": self.weight_net.state_dict(), "pseudo": self.pseudo,
                "meta_optimizer": None if self.frozen else self.meta_optimizer.state_dict(),
                "meta": None if self.meta is None else self.meta.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight_net.load_state_dict(state["weight_net"])
        self.pseudo.copy_(state["pseudo"])
        if not self.frozen:
            self.meta_optimizer.load_state_dict(state["meta_optimizer"])
            self.meta.load_state_dict(state["meta"])
