"""The method interface and what every method shares (its loss, the plain ERM step, the fast path).

A method is built from the run's `RunContext` (`self.ctx`: data, device, epoch, generators, EMA model,
config; see `cmwnet.methods.context`), never from the Trainer. A method that meta-learns a weighting
holds a `MetaLearner` (`self.meta_learner`; `weight_net` reads it, and such a method names the learner's
`MetaStep` `self.meta_step`).

`self.fast` (`cmwnet.fast.FastPath`, from `run.fast`, `run.amp`, `run.channels_last`) says how steps
run: the ERM step here, and the meta steps of the reweighting and label-correction methods, are pure
tensor functions replayed as CUDA graphs on a GPU; elsewhere they run eagerly, unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..fast import FastPath, make_capturable, module_signature, optimizer_signature, step_state
from ..losses import build_loss
from .context import RunContext

if TYPE_CHECKING:
    from .meta_learner import MetaLearner


def erm_iteration(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, fast: FastPath,
                  x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One plain step on the mean per-sample loss: a pure tensor function, so it can be captured."""
    logits = fast.forward(model, x)
    loss = loss_fn(logits, y).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.detach(), "logits": logits.detach()}


class Method:
    """One training step's computation. Stats are tensors (no host sync inside a step): "loss" and
    "logits" always; "weights" (per-sample weights of the real update) and "losses" (the per-sample
    losses the weights were computed from) where the method has them."""

    meta_learner: "MetaLearner | None" = None   # set by the methods that meta-learn a weighting
    learns_weighting = False   # holds a weight net (method.weight_net.init / frozen apply)
    records_weights = False    # per-sample weights without a weight net (L2RW): recorded like a weight net's
    meta_phase: str | None = None   # key under method. of the epoch its meta-learning starts at, if gated
    options: dict[str, Any] = {}    # method.args the method takes, with their defaults (none: refused)
    nullable_options: tuple[str, ...] = ()   # options that may be null
    option_choices: dict[str, tuple] = {}    # options whose value is one of a few (of any type)

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.cfg = ctx.cfg.method
        self.model, self.optimizer = ctx.model, ctx.optimizer
        data = ctx.data
        self.loss_fn = build_loss(self.cfg.loss, data.num_classes, data.class_counts, **self.cfg.loss_args)
        self.loss_fn.to(ctx.device)
        self.fast = FastPath.from_run(ctx.cfg.run, ctx.device)
        self.fast.prepare_models(self.model, ctx.ema_model)
        self._erm_graph = None

    @property
    def weight_net(self) -> torch.nn.Module | None:
        """The learned weighting (None: the method has none): the engine records the per-sample weights of
        a method that has one, and saves it at the end of the run."""
        return None if self.meta_learner is None else self.meta_learner.weight_net

    def on_epoch_start(self, epoch: int) -> None:
        if hasattr(self.loss_fn, "set_epoch"):
            self.loss_fn.set_epoch(epoch)

    def erm_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One plain step on the mean of the configured loss (a CUDA graph on the fast path)."""
        if self._erm_graph is None:
            self._erm_graph = self.fast.graph(
                self.erm_iteration, "ERM step", prepare=lambda: make_capturable(self.optimizer),
                signature=lambda: (optimizer_signature(self.optimizer), module_signature(self.loss_fn),
                                   self.model.training),
                state=lambda: step_state(self.model, self.optimizer))
        return self._erm_graph(self.fast.input(x), y)

    def erm_iteration(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ERM step as a pure tensor function (what `erm_step` runs or captures)."""
        return erm_iteration(self.model, self.optimizer, self.loss_fn, self.fast, x, y)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # every registered method defines its step

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        """What the method learned beside the network, for result.json's `method_summary` (e.g. Forward's
        estimated transition matrix, SADE's expert weights); {} when nothing."""
        return {}
