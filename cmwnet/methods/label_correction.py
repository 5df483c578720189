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

Speed: the random draws (mixup's lam and partner permutation, the meta batch and its mixup) happen
first, on the host and the run's generators (`RunContext`); lam enters the step as a device scalar, so
the rest of the iteration (pseudo-label refresh, meta update, real update) is one pure tensor
function, replayed as a CUDA graph on a GPU (`cmwnet.fast`, through `MetaStep.graphed`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..bilevel import Forward
from ..data.gpu import mixup
from ..errors import CmwnetError
from ..fast import step_state
from ..losses import soft_cross_entropy
from . import METHODS
from .base import Method
from .context import RunContext
from .meta_learner import MetaLearner


@METHODS.register("cmwnet_sl")
class CMWNetSL(Method):
    weight_kind = "cmwnet"
    learns_weighting, meta_phase = True, "sl.warmup"   # label correction starts after the CE warm-up
    per_sample_state = ("pseudo",)   # rows updated at the step's positions (all-gathered under DDP)

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        sl = self.sl = self.cfg.sl
        if sl.partner_weight not in ("recomputed", "permuted"):
            raise CmwnetError(f"unknown method.sl.partner_weight '{sl.partner_weight}': use recomputed or permuted")
        if sl.pseudo_init not in ("onehot", "zeros"):
            raise CmwnetError(f"unknown method.sl.pseudo_init '{sl.pseudo_init}': use onehot or zeros")
        if ctx.ema_model is None:
            raise CmwnetError("cmwnet_sl takes pseudo labels from the EMA model: set ema.decay (e.g. 0.997)")
        # meta-learning from sl.warmup on; the label-correction loss is already a batch mean: "mean" keeps it
        self.meta_learner = MetaLearner(ctx, self.weight_kind, self.loss_fn, self.fast, start_epoch=sl.warmup,
                                        normalize="mean")
        self.meta_step = self.meta_learner.step
        train = ctx.data.train
        c = ctx.data.num_classes
        self.pseudo = torch.zeros(len(train), c, device=ctx.device)
        if sl.pseudo_init == "onehot":
            self.pseudo[torch.arange(len(train), device=ctx.device), train.labels] = 1.0

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.meta_learner.on_epoch_start(epoch)

    # -- the loss ----------------------------------------------------------------------------------
    def _sl_loss(self, logits: torch.Tensor, y: torch.Tensor, z: torch.Tensor, lam: torch.Tensor,
                 one_minus_lam: torch.Tensor, perm: torch.Tensor, weigh, partner: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mixed label-correction loss; `weigh(losses, labels)` gives weights (with or without
        graph); lam and 1 - lam are device scalars (both rounded from the host's double, as a Python
        float would be). `partner` (lam < 1) adds the partner's term. Returns (loss, v1, the per-sample
        losses v1 was computed from)."""
        ce_y = F.cross_entropy(logits, y, reduction="none")
        ce_z = soft_cross_entropy(logits, z)
        v1 = weigh(ce_y.detach(), y)
        loss = lam * (v1 * ce_y + (1 - v1) * ce_z)
        if partner:
            y2 = y[perm]
            ce_y2 = F.cross_entropy(logits, y2, reduction="none")
            ce_z2 = soft_cross_entropy(logits, z[perm])
            v2 = v1[perm] if self.sl.partner_weight == "permuted" else weigh(ce_y2.detach(), y2)
            loss = loss + one_minus_lam * (v2 * ce_y2 + (1 - v2) * ce_z2)
        return loss.mean(), v1, ce_y.detach()

    @staticmethod
    def _meta_loss(mx: torch.Tensor, my: torch.Tensor, lam_m: torch.Tensor | None,
                   one_minus_lam_m: torch.Tensor | None, perm_m: torch.Tensor | None):
        """CE on the meta batch; with meta mixup (lam_m given) the mixed-label form."""
        def meta_loss(forward: Forward) -> torch.Tensor:
            out = forward(mx)
            if lam_m is not None:
                return lam_m * F.cross_entropy(out, my) + one_minus_lam_m * F.cross_entropy(out, my[perm_m])
            return F.cross_entropy(out, my)
        return meta_loss

    @torch.no_grad()
    def _refresh_pseudo(self, x: torch.Tensor, pos: torch.Tensor, reset: bool) -> torch.Tensor:
        ema = self.ctx.ema_model
        # the authors' EMA net gives pseudo labels in train mode (batch statistics); with ema.bn: own this
        # forward is the only thing that moves its BatchNorm running statistics
        ema.train()
        probs = F.softmax(self.fast.forward(ema, x), dim=1)
        m = self.sl.pseudo_momentum
        if reset:
            self.pseudo[pos] = probs
        else:
            self.pseudo[pos] = m * self.pseudo[pos] + (1 - m) * probs
        return self.pseudo[pos]

    # -- the step ----------------------------------------------------------------------------------
    def sl_iteration(self, x: torch.Tensor, xm: torch.Tensor, y: torch.Tensor, pos: torch.Tensor,
                     lam: torch.Tensor, one_minus_lam: torch.Tensor, perm: torch.Tensor,
                     mx: torch.Tensor | None = None, my: torch.Tensor | None = None,
                     lam_m: torch.Tensor | None = None, one_minus_lam_m: torch.Tensor | None = None,
                     perm_m: torch.Tensor | None = None, *, partner: bool, reset: bool) -> dict[str, torch.Tensor]:
        """One label-correction iteration after the random draws, as a pure tensor function: refresh the
        pseudo labels of the batch, the meta update (when a meta batch is given), the real update."""
        z = self._refresh_pseudo(x, pos, reset)
        meta = torch.full((), float("nan"), device=x.device)
        if mx is not None:
            def virtual_loss(forward: Forward) -> torch.Tensor:
                return self._sl_loss(forward(xm), y, z, lam, one_minus_lam, perm, self.weight_net, partner)[0]
            meta = self.meta_step.meta_update(virtual_loss, self._meta_loss(mx, my, lam_m, one_minus_lam_m, perm_m),
                                              count=False)
        logits = self.fast.forward(self.model, xm)
        loss, v1, ce_y = self._sl_loss(logits, y, z, lam, one_minus_lam, perm, self.meta_step.weights, partner)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "logits": logits.detach(), "weights": v1, "losses": ce_y, "meta_loss": meta}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        c, ml = self.ctx, self.meta_learner
        if not ml.active(c.epoch):
            return self.erm_step(x, y)
        # every random draw first, in the order of the authors' loop: mixup, meta batch, meta mixup
        xm, lam, perm = mixup(x, self.sl.mixup_alpha, c.generator, c.np_rng)
        mx, my = ml.next_batch(step)
        meta = mx is not None
        lam_m = oml_m = perm_m = None
        if meta and self.sl.meta_mixup_alpha > 0:
            mx, lm, perm_m = mixup(mx, self.sl.meta_mixup_alpha, c.generator, c.np_rng)
            lam_m, oml_m = _device_scalar(lm, mx), _device_scalar(1.0 - lm, mx)
        reset = c.epoch == self.sl.pseudo_reset_epoch or self.sl.pseudo_momentum == 0
        f = self.fast.input
        ema = c.ema_model
        run = ml.step.graphed(self.sl_iteration, "CMW-Net-SL meta iteration" if meta else "CMW-Net-SL step", meta,
                              signature=lambda: (ml.step.signature(), ema.training),
                              extra_state=lambda: step_state(self.pseudo, ema))
        return run(f(x), f(xm), y, pos, _device_scalar(lam, xm), _device_scalar(1.0 - lam, xm), perm,
                   f(mx), my, lam_m, oml_m, perm_m, partner=lam < 1.0, reset=reset)   # a meta run counts itself

    def state_dict(self) -> dict[str, Any]:
        return {**self.meta_learner.state_dict(), "pseudo": self.pseudo}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meta_learner.load_state_dict(state)
        self.pseudo.copy_(state["pseudo"])


def _device_scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """A host float as a 0-dim tensor on `like`'s device (a fill kernel: no host sync)."""
    return torch.full((), value, dtype=like.dtype, device=like.device)
