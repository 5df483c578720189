"""SADE and CMW-Net with SADE (Table 1).

SADE (Zhang, Hooi, Hong, Feng, "Self-Supervised Aggregation of Diverse Experts for Test-Agnostic
Long-Tailed Recognition", NeurIPS 2022) trains three experts on a shared backbone (model
`sade_resnet32`), each with its own loss, summed per sample (prior pi_j = n_j / n):

    forward expert:  CE(z1, y)                                          (fits the long-tailed prior)
    uniform expert:  CE(z2 + log pi, y)                                 (balanced softmax)
    backward expert: CE(z3 + log pi - tau * log pi_inv, y), tau = 2      (fits an inverted prior)

pi_inv is pi with its values reversed in rank order (the most frequent class gets the smallest prior;
a stable sort breaks ties); log(. + 1e-9) as in the authors' code. The prediction is sum_k w_k z_k with
w = 1/3 each during training. Test-time self-supervised aggregation then learns w = softmax(a) on the
unlabelled test images by maximising the cosine similarity of the aggregated softmax predictions of
two augmented views (the training augmentation), with the experts frozen (eval mode): SGD lr 0.1,
momentum 0.9, Nesterov, weight decay 5e-4, batch 128, 5 epochs, stopping early once a weight drops
below 0.05 (SADE's CIFAR test-time config). It runs once, right after the last training step of the
last epoch, so the engine's final evaluation (and result.json's last_top1) uses the aggregated
prediction; earlier epochs report the equal-weight prediction. The learned w is the model buffer
`expert_weights` (checkpoints carry it) and is printed.

CMW-Net with SADE (`cmwnet_sade`): the per-sample SADE loss L_i (the sum of the three expert losses
above) is weighted by the CMW-Net weight v_i = V(L_i; family(y_i)) (families from the class counts), in
both the virtual and the real step, combined as `method.normalize` says; the meta loss is CE of the
equal-weight aggregated logits on a meta batch (the balanced meta set of `data.meta`). Before
`method.start_epoch` (Table 1: 160) the step is plain SADE. The same test-time aggregation ends training.
Options (`method.args`): tau, aggregate (true), tta_epochs, tta_lr, tta_batch_size, tta_momentum,
tta_weight_decay, tta_min_weight.

`aggregate: val` (our choice, not SADE's): learn the aggregation as above, then keep it only if it does not lower
top-1 on the held-out val images (`data.val_size`, true labels) against the equal weights; otherwise the equal
weights stay. SADE's premise is a test distribution nobody knows; where labelled held-out images exist, they can
say whether the self-supervised weights help. At CPU scale they did not: Table 1's SADE fell from 45.25% to 36.97%
test top-1 (val 45.42 to 36.42) when the aggregation moved weight to the backward expert.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..bilevel import Forward
from ..errors import CmwnetError
from ..models.sade_resnet import experts_output
from . import METHODS
from .base import Method
from .context import RunContext
from .meta_learner import MetaLearner
from .options import method_args

SADE_DEFAULTS: dict[str, Any] = {"tau": 2.0, "aggregate": True, "tta_epochs": 5, "tta_lr": 0.1,
                                 "tta_batch_size": 128, "tta_momentum": 0.9, "tta_weight_decay": 5e-4,
                                 "tta_min_weight": 0.05}


def inverse_prior(prior: np.ndarray) -> np.ndarray:
    """The prior's values reversed in rank order: the class of rank r (ascending) gets the value of
    rank C-1-r."""
    prior = np.asarray(prior, dtype=np.float64)
    order = np.argsort(prior, kind="stable")
    rank = np.empty(len(prior), dtype=np.int64)
    rank[order] = np.arange(len(prior))
    return np.sort(prior, kind="stable")[len(prior) - 1 - rank]


class SADELoss(nn.Module):
    """The three expert losses of SADE; `forward(expert_logits (B, 3, C), y) -> (B,)`, their sum."""

    def __init__(self, class_counts, tau: float = 2.0):
        super().__init__()
        counts = np.asarray(class_counts, dtype=np.float64)
        prior = counts / counts.sum()
        self.tau = float(tau)
        self.register_buffer("log_prior", torch.tensor(np.log(prior + 1e-9), dtype=torch.float32))
        self.register_buffer("log_inverse_prior", torch.tensor(np.log(inverse_prior(prior) + 1e-9), dtype=torch.float32))

    def expert_losses(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 3): forward (CE), uniform (balanced softmax), backward (inverse softmax) expert losses."""
        if z.ndim != 3 or z.shape[1] != 3:
            raise CmwnetError(f"SADE needs the logits of 3 experts, shape (B, 3, C); got {tuple(z.shape)}")
        lp, lip = self.log_prior.to(z.dtype), self.log_inverse_prior.to(z.dtype)
        adjusted = torch.stack([z[:, 0], z[:, 1] + lp, z[:, 2] + lp - self.tau * lip], dim=1)
        return F.cross_entropy(adjusted.transpose(1, 2), y[:, None].expand(-1, 3), reduction="none")

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.expert_losses(z, y).sum(1)


def learn_aggregation(view_pairs: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]], num_experts: int,
                      device: torch.device | str = "cpu", epochs: int = 5, lr: float = 0.1, momentum: float = 0.9,
                      weight_decay: float = 5e-4, nesterov: bool = True, min_weight: float = 0.05) -> torch.Tensor:
    """SADE's test-time self-supervised aggregation: w = softmax(a) maximising the mean cosine
    similarity between softmax(sum_k w_k z_k) of two views. `view_pairs()` yields (z_view1, z_view2),
    each (B, K, C) expert logits (constants), once per epoch. Returns w (K,)."""
    a = torch.full((num_experts,), 1.0 / num_experts, device=device, requires_grad=True)
    opt = torch.optim.SGD([a], lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    for _ in range(epochs):
        for z0, z1 in view_pairs():
            w = F.softmax(a, dim=0)
            p0 = F.softmax(torch.einsum("k,bkc->bc", w, z0.float()), dim=1)
            p1 = F.softmax(torch.einsum("k,bkc->bc", w, z1.float()), dim=1)
            loss = -F.cosine_similarity(p0, p1, dim=1, eps=1e-6).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if bool((F.softmax(a, dim=0) < min_weight).any()):
            break
    return F.softmax(a, dim=0).detach()


@METHODS.register("sade")
class SADE(Method):
    """Three diverse experts trained jointly; test-time self-supervised aggregation at the end."""

    options = SADE_DEFAULTS
    option_choices = {"aggregate": (True, False, "val")}

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        name = self.cfg.name
        if self.cfg.loss != "ce":
            raise CmwnetError(f"method {name} trains with its own three expert losses: leave method.loss at ce")
        if not (hasattr(self.model, "return_experts") and getattr(self.model, "num_experts", 0) == 3):
            raise CmwnetError(f"method {name} needs a three-expert model: set model.name to sade_resnet32")
        self.args = method_args(name, self.cfg.args, SADE_DEFAULTS, choices=self.option_choices)
        if self.args["aggregate"] == "val" and "val" not in ctx.data.extra_tests:
            raise CmwnetError(f"method.args.aggregate: val of method '{name}' needs held-out val images: set "
                              "data.val_size (e.g. 5000), or aggregate: true")
        self.sade_loss = SADELoss(ctx.data.class_counts, self.args["tau"]).to(ctx.device)
        self.aggregation: list[float] | None = None
        self.val_check: dict[str, Any] | None = None

    # -- training ----------------------------------------------------------------------------------
    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _aggregated(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("k,bkc->bc", self.model.expert_weights.to(z.dtype), z.detach())

    def sade_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with experts_output(self.model):
            z = self.fast.forward(self.model, self.fast.input(x))
        loss = self.sade_loss(z, y).mean()
        self._update(loss)
        return {"loss": loss.detach(), "logits": self._aggregated(z)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        stats = self.sade_step(x, y)
        self.maybe_aggregate(step)
        return stats

    # -- test-time aggregation -----------------------------------------------------------------------
    def maybe_aggregate(self, step: int) -> None:
        """Run the test-time aggregation after the last step of the last epoch."""
        c = self.ctx
        if self.args["aggregate"] and c.epoch == c.cfg.optim.epochs - 1 and step == c.steps_per_epoch - 1:
            self.aggregate()

    @torch.no_grad()
    def _views(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        test, bs = self.ctx.data.test, int(self.args["tta_batch_size"])
        with experts_output(self.model):
            for (x0, _, _), (x1, _, _) in zip(test.batches(bs, augment=True, generator=generator),
                                              test.batches(bs, augment=True, generator=generator)):
                run = lambda v: self.fast.forward(self.model, self.fast.input(v))  # noqa: E731
                yield run(x0), run(x1)

    def aggregate(self) -> torch.Tensor:
        """Learn the expert weights on the unlabelled test images; set them in the model."""
        c, a = self.ctx, self.args
        gen = torch.Generator(device=c.device).manual_seed(c.cfg.seed * 1_000_003 + 7919)
        was_training = self.model.training
        self.model.eval()
        with torch.enable_grad():
            w = learn_aggregation(lambda: self._views(gen), 3, c.device, epochs=int(a["tta_epochs"]),
                                  lr=a["tta_lr"], momentum=a["tta_momentum"], weight_decay=a["tta_weight_decay"],
                                  min_weight=a["tta_min_weight"])
        if a["aggregate"] == "val":
            w = self._kept_on_val(w)
        self.model.train(was_training)
        self.model.expert_weights.copy_(w)
        self.aggregation = [round(float(v), 4) for v in w]
        c.log(f"SADE test-time aggregation: expert weights (forward, uniform, backward) = {self.aggregation}")
        return w

    @torch.no_grad()
    def _val_top1(self, w: torch.Tensor) -> float:
        """Top-1 (%) on the val images of the prediction aggregated with weights `w` (eval mode, no augmentation)."""
        val, right = self.ctx.data.extra_tests["val"], 0
        with experts_output(self.model):
            for x, y, _ in val.batches(500):
                z = self.fast.forward(self.model, self.fast.input(x))
                right += int((torch.einsum("k,bkc->bc", w.to(z.dtype), z).argmax(1) == y).sum())
        return 100.0 * right / len(val)

    def _kept_on_val(self, learned: torch.Tensor) -> torch.Tensor:
        """`aggregate: val`: the learned weights where they do not lower val top-1, else the equal ones."""
        equal = torch.full_like(learned, 1.0 / len(learned))
        top_equal, top_learned = self._val_top1(equal), self._val_top1(learned)
        keep = top_learned >= top_equal
        self.val_check = {"equal": round(top_equal, 2), "learned": round(top_learned, 2),
                          "learned_weights": [round(float(v), 4) for v in learned], "kept": "learned" if keep else "equal"}
        self.ctx.log(f"SADE aggregation on val: equal weights {top_equal:.2f}%, learned {top_learned:.2f}% "
                     f"({', '.join(f'{float(v):.3f}' for v in learned)}): keeping the {self.val_check['kept']} ones")
        return learned if keep else equal

    def state_dict(self) -> dict[str, Any]:
        return {"aggregation": self.aggregation, "val_check": self.val_check}

    def summary(self) -> dict[str, Any]:
        out = {} if self.aggregation is None else {"expert_weights": self.aggregation}
        if self.val_check is not None:
            out["aggregation_on_val"] = self.val_check
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.aggregation = state.get("aggregation")
        self.val_check = state.get("val_check")


@METHODS.register("cmwnet_sade")
class CMWNetSADE(SADE):
    """CMW-Net weights on the per-sample SADE loss (see the module docstring)."""

    learns_weighting, meta_phase = True, "start_epoch"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.meta_learner = MetaLearner(ctx, "cmwnet", self.sade_loss, self.fast)
        self.meta_step = self.meta_learner.step

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.meta_learner.on_epoch_start(epoch)

    @staticmethod
    def _meta_loss(mx: torch.Tensor, my: torch.Tensor) -> Callable[[Forward], torch.Tensor]:
        def meta_loss(forward: Forward) -> torch.Tensor:
            return F.cross_entropy(forward(mx).mean(1), my)   # the equal-weight aggregated prediction
        return meta_loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        ml = self.meta_learner
        if not ml.active(self.ctx.epoch):
            return super().train_step(x, y, pos, step)
        meta = torch.full((), float("nan"), device=x.device)
        x = self.fast.input(x)
        with experts_output(self.model):   # every forward below, virtual ones included, gives (B, 3, C)
            mx, my = ml.next_batch(step)
            if mx is not None:
                mx = self.fast.input(mx)
                virtual_loss, _ = self.meta_step.reweighting_losses(x, y, mx, my)
                meta = self.meta_step.meta_update(virtual_loss, self._meta_loss(mx, my))
            z = self.fast.forward(self.model, x)
        losses = self.sade_loss(z, y)
        w = self.meta_step.weights(losses, y)
        loss = self.meta_step.weighted(losses, w)
        self._update(loss)
        self.maybe_aggregate(step)
        return {"loss": loss.detach(), "logits": self._aggregated(z), "weights": w, "losses": losses.detach(),
                "meta_loss": meta}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.meta_learner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.meta_learner.load_state_dict(state)
