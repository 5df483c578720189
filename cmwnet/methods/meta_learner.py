"""The meta-learning component: what every method that meta-learns a weighting holds.

`MetaLearner` bundles the weight net, its optimizer, the meta batches (`MetaBatches`: the meta set of
the epoch and an endless stream of its batches), the `MetaStep` that meta-learns the weight net, the
phase gate (meta-learning from `start_epoch` on) and the resumable state of all of these. The methods
(reweight, label correction, SADE, PRODEN + CMW-Net) only say what their losses are.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..bilevel import LossFn, MetaStep
from ..data.gpu import Cycle, DeviceImages
from ..data.meta_set import balanced_subset, lowest_loss_per_class
from ..errors import CmwnetError, unknown_name
from ..fast import FastPath, release_capturable
from ..weighting import WeightNet, build_weight_net, load_weighting
from .context import RunContext

META_KINDS = ("clean", "lowest_loss", "balanced_train")


def make_weight_net(ctx: RunContext, kind: str) -> tuple[WeightNet, torch.optim.Optimizer | None]:
    """The weight net (fresh, or from `weight_net.init`) and its Adam optimizer (None when frozen).

    Task families come from K-means (seed 0) on the observed per-class counts of the training set.
    """
    w = ctx.cfg.method.weight_net
    data = ctx.data
    if w.init:
        net = load_weighting(w.init, class_counts=data.class_counts)
        method = ctx.cfg.method.name
        if net.kind != kind:
            fits = {"mwnet": "mwnet", "cmwnet": "cmwnet (or cmwnet_sl)", "mcwnet": "mcw"}[net.kind]
            raise CmwnetError(f"method {method} learns a {kind} weighting, but weight_net.init {w.init} holds a "
                              f"{net.kind} net: give a {kind} file, or use method {fits}")
        if net.kind == "mcwnet" and net.num_classes != data.num_classes:
            raise CmwnetError(f"weight_net.init {w.init} holds an MCW net of {net.num_classes} classes, but the data "
                              f"has {data.num_classes}: an MCW net has one curve per class and cannot be reused here")
        if not w.frozen:
            net.requires_grad_(True).train()
    else:
        if w.frozen:
            raise CmwnetError("method.weight_net.frozen needs weight_net.init: the saved weight net to reuse")
        net = build_weight_net(kind, data.num_classes, data.class_counts, hidden=w.hidden, families=w.families, seed=0,
                               init_output=w.init_output)
    net.to(ctx.device)
    net.validate = False   # the trainer's labels and losses are checked by the trainer (no host sync per forward)
    if w.frozen:
        return net.freeze(), None
    opt = torch.optim.Adam(net.parameters(), lr=w.lr, weight_decay=w.weight_decay, amsgrad=w.amsgrad)
    return net, opt


def _plain_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


class MetaBatches:
    """The meta set of the current epoch and an endless stream of its batches.

    kinds (`data.meta.kind`, or `kind`): "clean" (the held-out clean set), "lowest_loss" (the k
    lowest-loss training samples per class under the EMA model, or the model, re-chosen each epoch),
    "balanced_train" (k random training samples per class, re-drawn each epoch; k = 0 means the
    smallest class's size). `labels()` replaces the observed training labels, for choosing and
    labelling the meta set (PRODEN + CMW-Net: the pseudo labels); `forward(model, x)` is how the
    lowest-loss scoring runs the model (default: a plain call).
    """

    def __init__(self, ctx: RunContext, kind: str | None = None,
                 labels: Callable[[], torch.Tensor] | None = None,
                 forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _plain_forward):
        self.ctx, self.cfg = ctx, ctx.cfg.data.meta
        self.kind = kind or self.cfg.kind
        if self.kind == "none":
            raise CmwnetError(f"method {ctx.cfg.method.name} meta-learns on a meta set, but data.meta.kind is none: set "
                              "data.meta.kind to clean (held-out clean images), lowest_loss or balanced_train")
        if self.kind not in META_KINDS:
            raise unknown_name("meta set kind (data.meta.kind)", self.kind, META_KINDS)
        if self.kind == "clean" and ctx.data.meta is None:
            raise CmwnetError("data.meta.kind 'clean' needs a held-out meta set, which this data set does not have")
        self.labels, self.forward = labels, forward
        self.positions: torch.Tensor | None = None
        self.cycle: Cycle | None = None

    def _scoring_model(self) -> nn.Module:
        c = self.ctx
        return c.ema_model if (self.cfg.model == "ema" and c.ema_model is not None) else c.model

    @torch.no_grad()
    def _lowest_loss_positions(self) -> torch.Tensor:
        c = self.ctx
        model = self._scoring_model()
        was_training = model.training
        model.eval()
        train = c.data.train
        labels = None if self.labels is None else self.labels()
        losses = torch.zeros(len(train), device=c.device)
        ranks = c.ranks   # under torchrun each rank scores every world_size-th batch; summed below
        for x, y, pos in ranks.shard_batches(train.batches(c.cfg.data.test_batch_size)):
            losses[pos] = F.cross_entropy(self.forward(model, x), y if labels is None else labels[pos],
                                          reduction="none")
        model.train(was_training)
        ranks.all_sum(losses)
        return lowest_loss_per_class(losses, train.labels if labels is None else labels, self.cfg.per_class,
                                     c.data.num_classes)

    def _source(self, positions: torch.Tensor | None) -> DeviceImages:
        """The meta set: the clean set (positions None), or these training samples, relabelled by `labels()`."""
        train = self.ctx.data.train
        if positions is None:
            return self.ctx.data.meta
        positions = positions.to(self.ctx.device)
        if self.labels is None:
            return train.subset(positions)
        return DeviceImages(train.images[positions], self.labels()[positions], train.augment,
                            train.clean_labels[positions], train.ids[positions])

    def refresh(self, epoch: int) -> None:
        """Choose this epoch's meta set (called at the start of every meta-learning epoch)."""
        c = self.ctx
        if self.kind == "clean":
            self.positions = None
        elif self.kind == "lowest_loss":
            self.positions = self._lowest_loss_positions()
        else:
            k = self.cfg.per_class or min(n for n in c.data.class_counts if n > 0)
            self.positions = balanced_subset(c.data.train.labels, k, c.data.num_classes, c.cpu_generator)
        self.cycle = Cycle(self._source(self.positions), self.cfg.batch_size, c.generator, augment=self.cfg.augment)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cycle is None:
            raise RuntimeError("MetaBatches.next before refresh")
        return next(self.cycle)

    def state_dict(self) -> dict[str, Any]:
        return {"positions": self.positions, "cycle": None if self.cycle is None else self.cycle.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        c = self.ctx
        self.positions = state["positions"]
        if state["cycle"] is None:
            self.cycle = None
            return
        self.cycle = Cycle(self._source(self.positions), self.cfg.batch_size, c.generator, augment=self.cfg.augment)
        cyc = dict(state["cycle"])
        if cyc["order"] is not None:
            cyc["order"] = cyc["order"].to(c.device)
        self.cycle.load_state_dict(cyc)


class MetaLearner:
    """The weight net a method meta-learns, with everything that learning needs.

    Holds `weight_net`, `meta_optimizer` (Adam; None when the weighting is frozen: `weight_net.frozen`
    applies a saved weighting as it is, with no meta set and no meta update), `batches` (the meta
    batches; None when frozen) and `step` (the `MetaStep` on the method's per-sample `loss_fn`, with
    `method.backend`, `interval`, `virtual_params`, `meta_grad`, and `normalize` unless given). Meta-learning runs
    from epoch `start_epoch` on (`method.start_epoch` unless given); before it the method trains
    without meta updates.
    """

    def __init__(self, ctx: RunContext, kind: str, loss_fn: LossFn, fast: FastPath, *,
                 start_epoch: int | None = None, normalize: str | None = None,
                 batches: MetaBatches | None = None):
        cfg = ctx.cfg.method
        self.start_epoch = cfg.start_epoch if start_epoch is None else int(start_epoch)
        self.weight_net, self.meta_optimizer = make_weight_net(ctx, kind)
        self.frozen = self.meta_optimizer is None
        self.batches = None if self.frozen else (batches or MetaBatches(ctx))
        self.step = MetaStep(ctx.model, ctx.optimizer, self.weight_net, self.meta_optimizer,
                             backend=cfg.backend, interval=cfg.interval, normalize=normalize or cfg.normalize,
                             virtual_params=cfg.virtual_params, loss_fn=loss_fn, grad_hook=ctx.meta_grad_hook,
                             fast=fast, meta_grad=cfg.meta_grad)
        self.step.check_finite = False   # the trainer checks the loss itself (no host sync per step)

    def active(self, epoch: int) -> bool:
        """Whether this epoch meta-learns (the phase gate)."""
        return epoch >= self.start_epoch

    def on_epoch_start(self, epoch: int) -> None:
        """Choose the epoch's meta set, in meta-learning epochs."""
        if self.batches is not None and self.active(epoch):
            self.batches.refresh(epoch)

    def next_batch(self, iteration: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The meta batch for this iteration: (None, None) when frozen or when the meta update is not due."""
        if self.batches is None or not self.step.due(iteration):
            return None, None
        return self.batches.next()

    def state_dict(self) -> dict[str, Any]:
        return {"weight_net": self.weight_net.state_dict(),
                "meta_optimizer": None if self.frozen else self.meta_optimizer.state_dict(),
                "meta": None if self.batches is None else self.batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight_net.load_state_dict(state["weight_net"])
        if not self.frozen:
            self.meta_optimizer.load_state_dict(state["meta_optimizer"])
            release_capturable(self.meta_optimizer)   # a checkpoint may come from a graphed (capturable) run
            if self.batches is not None:
                self.batches.load_state_dict(state["meta"])
