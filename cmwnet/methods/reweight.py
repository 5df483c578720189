"""Sample reweighting by a meta-learned weight net: MW-Net, CMW-Net and MCW (one net per class).

Before `method.start_epoch` the step is plain ERM (Table 1 meta-learns only from epoch 160); after it,
each iteration runs `MetaStep` (meta update every `method.interval` iterations) with the configured
per-sample loss, so "CMW-Net with LDAM loss" is `loss: ldam` here. With `weight_net.frozen` a saved
weighting is applied as it is (transfer, paper Sec. 6): no meta set, no second-order step.
On a GPU each iteration (with or without its meta update) replays as one CUDA graph (`cmwnet.fast`).
"""
from __future__ import annotations

from typing import Any

import torch

from . import METHODS
from .base import Method
from .context import RunContext
from .meta_learner import MetaLearner


class Reweight(Method):
    weight_kind = "cmwnet"
    learns_weighting, meta_phase = True, "start_epoch"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.meta_learner = MetaLearner(ctx, self.weight_kind, self.loss_fn, self.fast)
        self.meta_step = self.meta_learner.step

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.meta_learner.on_epoch_start(epoch)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        ml = self.meta_learner
        if not ml.active(self.ctx.epoch):
            return self.erm_step(x, y)
        mx, my = ml.next_batch(step)
        return ml.step.step(x, y, mx, my, step)

    def state_dict(self) -> dict[str, Any]:
        return self.meta_learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meta_learner.load_state_dict(state)


@METHODS.register("mwnet")
class MWNetMethod(Reweight):
    """Meta-Weight-Net: one weighting function for all classes."""
    weight_kind = "mwnet"


@METHODS.register("cmwnet")
class CMWNetMethod(Reweight):
    """CMW-Net: one weighting function per task family (K-means on class sizes)."""
    weight_kind = "cmwnet"


@METHODS.register("mcw")
class MCWMethod(Reweight):
    """MCW: one weighting function per class (Table 1 baseline)."""
    weight_kind = "mcwnet"
