"""A CMW-Net iteration written the way the authors' code runs it -- for the bench only.

The published scripts (see docs/method-as-published.md, "the meta step") build a *fresh* classifier
at every meta step (a new instance, initialised, moved to the GPU, then loaded with the live model's
state), take the virtual step on that copy, and evaluate the K-head weight net with a Python loop
over the batch, one head per sample, indexing with a label that lives on the GPU (a host sync per
sample). `AuthorsWayIteration` reproduces that cost structure in our own code, so
`python -m cmwnet.tools.bench` can state how much faster `MetaStep` and the fast path are; it computes the
same meta-gradient and the same update as `MetaStep` (tested in float64), only slowly.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..bilevel import per_sample_ce, weighted_mean


def per_sample_head_loop(weight_net: nn.Module, losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The weight net evaluated sample by sample, one head each (the authors' K-branch loop).

    For a CMW-Net (shared trunk, heads as rows of one Linear) sample i uses row families[y_i],
    chosen on the host; other weight nets have no heads to choose and run batched.
    """
    heads = getattr(weight_net, "heads", None)
    if heads is None:
        return weight_net(losses, labels)
    h = F.relu(weight_net.trunk(losses.reshape(-1, 1)))
    family = weight_net.families[labels]
    out = []
    for i in range(h.shape[0]):
        k = int(family[i])  # a device -> host copy per sample, as in the authors' loop
        out.append(torch.sigmoid(F.linear(h[i:i + 1], heads.weight[k:k + 1], heads.bias[k:k + 1])))
    return torch.cat(out).reshape(-1)


class AuthorsWayIteration:
    """One CMW-Net iteration (meta update, then the real update) in the authors' style.

    Args:
        make_model: builds a new classifier instance (on the CPU, as the authors' constructor does);
            it is moved to the model's device and loaded with the model's state at every meta step.
        model, optimizer, weight_net, meta_optimizer: as for `MetaStep`.
        normalize: weighted-loss normalisation (`weighted_mean`); the authors' long-tail code uses
            "sum_detached".
        loss_fn: per-sample loss.
    """

    def __init__(self, make_model: Callable[[], nn.Module], model: nn.Module, optimizer: torch.optim.Optimizer,
                 weight_net: nn.Module, meta_optimizer: torch.optim.Optimizer, *, normalize: str = "sum_detached",
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = per_sample_ce):
        self.make_model, self.model, self.optimizer = make_model, model, optimizer
        self.weight_net, self.meta_optimizer = weight_net, meta_optimizer
        self.normalize, self.loss_fn = normalize, loss_fn

    def _fresh_copy(self) -> nn.Module:
        param = next(self.model.parameters())
        fresh = self.make_model().to(device=param.device, dtype=param.dtype)
        fresh.load_state_dict(self.model.state_dict())
        return fresh.train()

    def meta_gradient(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor,
                      meta_y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The weight net's meta-gradient and the meta loss, through a fresh copy of the classifier."""
        fresh = self._fresh_copy()
        names = [n for n, _ in fresh.named_parameters()]
        params = [p for _, p in fresh.named_parameters()]
        losses = self.loss_fn(fresh(x), y)
        w = per_sample_head_loop(self.weight_net, losses.detach(), y)
        grads = torch.autograd.grad(weighted_mean(losses, w, self.normalize), params, create_graph=True)
        lr = float(self.optimizer.param_groups[0]["lr"])
        state = {n: p - lr * g for n, p, g in zip(names, params, grads)}
        state.update(dict(fresh.named_buffers()))
        outer = F.cross_entropy(functional_call(fresh, state, (meta_x,)), meta_y)
        phi = [p for p in self.weight_net.parameters() if p.requires_grad]
        meta_grads = torch.autograd.grad(outer, phi, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(phi, meta_grads)], outer.detach()

    def step(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor, meta_y: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        grads, outer = self.meta_gradient(x, y, meta_x, meta_y)
        phi = [p for p in self.weight_net.parameters() if p.requires_grad]
        for p, g in zip(phi, grads):
            p.grad = g
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        losses = self.loss_fn(logits, y)
        with torch.no_grad():
            w = per_sample_head_loop(self.weight_net, losses.detach(), y)
        loss = weighted_mean(losses, w, self.normalize)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "weights": w, "meta_loss": outer, "logits": logits.detach()}
