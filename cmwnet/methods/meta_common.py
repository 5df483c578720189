"""What the meta-learning methods share: building the weight net and feeding meta batches."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .. import distributed
from ..bilevel import MetaStep
from ..data.gpu import Cycle
from ..fast import release_capturable
from ..data.meta_set import balanced_subset, lowest_loss_per_class
from ..errors import CmwnetError
from ..weighting import WeightNet, build_weight_net, load_weighting

if TYPE_CHECKING:
    from ..engine import Trainer
    from .base import Method

META_KINDS = ("clean", "lowest_loss", "balanced_train")


def make_weight_net(trainer: "Trainer", kind: str) -> tuple[WeightNet, torch.optim.Optimizer | None]:
    """The weight net (fresh, or from `weight_net.init`) and its Adam optimizer (None when frozen).

    Task families come from K-means (seed 0) on the observed per-class counts of the training set.
    """
    w = trainer.cfg.method.weight_net
    data = trainer.data
    if w.init:
        net = load_weighting(w.init, class_counts=data.class_counts)
        if kind == "cmwnet" and net.kind != "cmwnet":
            raise CmwnetError(f"weight_net.init {w.init} holds a {net.kind} net, not a CMW-Net")
        if not w.frozen:
            net.requires_grad_(True).train()
    else:
        if w.frozen:
            raise CmwnetError("method.weight_net.frozen needs weight_net.init: the saved weight net to reuse")
        net = build_weight_net(kind, data.num_classes, data.class_counts, hidden=w.hidden, families=w.families, seed=0,
                               init_output=w.init_output)
    net.to(trainer.device)
    if w.frozen:
        return net.freeze(), None
    opt = torch.optim.Adam(net.parameters(), lr=w.lr, weight_decay=w.weight_decay, amsgrad=w.amsgrad)
    return net, opt


class MetaBatches:
    """The meta set of the current epoch and an endless stream of its batches.

    kinds: "clean" (the held-out clean set), "lowest_loss" (the k lowest-loss training samples per
    observed class under the EMA model, or the model, re-chosen each epoch), "balanced_train" (k random
    training samples per class, re-drawn each epoch; k = 0 means the smallest class's size).
    """

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.cfg = trainer.cfg.data.meta
        if self.cfg.kind not in META_KINDS:
            from ..errors import unknown_name
            raise unknown_name("meta set kind (data.meta.kind)", self.cfg.kind, META_KINDS)
        if self.cfg.kind == "clean" and trainer.data.meta is None:
            raise CmwnetError("data.meta.kind 'clean' needs a held-out meta set, which this data set does not have")
        self.positions: torch.Tensor | None = None
        self.cycle: Cycle | None = None

    def _scoring_model(self) -> torch.nn.Module:
        t = self.trainer
        return t.ema.model if (self.cfg.model == "ema" and t.ema is not None) else t.model

    @torch.no_grad()
    def _lowest_loss_positions(self) -> torch.Tensor:
        t = self.trainer
        model = self._scoring_model()
        was_training = model.training
        model.eval()
        train = t.data.train
        losses = torch.zeros(len(train), device=t.device)
        dist = distributed.get()   # under torchrun each rank scores every world_size-th batch; summed below
        for x, y, pos in dist.shard_batches(train.batches(t.cfg.data.test_batch_size)):
            losses[pos] = F.cross_entropy(model(x), y, reduction="none")
        model.train(was_training)
        dist.all_sum(losses)
        return lowest_loss_per_class(losses, train.labels, self.cfg.per_class, t.data.num_classes)

    def refresh(self, epoch: int) -> None:
        """Choose this epoch's meta set (called at the start of every meta-learning epoch)."""
        t = self.trainer
        if self.cfg.kind == "clean":
            source = t.data.meta
            self.positions = None
        else:
            if self.cfg.kind == "lowest_loss":
                self.positions = self._lowest_loss_positions()
            else:
                k = self.cfg.per_class or min(c for c in t.data.class_counts if c > 0)
                self.positions = balanced_subset(t.data.train.labels, k, t.data.num_classes, t.cpu_generator)
            source = t.data.train.subset(self.positions)
        self.cycle = Cycle(source, self.cfg.batch_size, t.generator, augment=self.cfg.augment)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cycle is None:
            raise RuntimeError("MetaBatches.next before refresh")
        return next(self.cycle)

    def state_dict(self) -> dict[str, Any]:
        return {"positions": self.positions, "cycle": None if self.cycle is None else self.cycle.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        t = self.trainer
        self.positions = state["positions"]
        if state["cycle"] is None:
            self.cycle = None
            return
        source = t.data.meta if self.positions is None else t.data.train.subset(self.positions.to(t.device))
        self.cycle = Cycle(source, self.cfg.batch_size, t.generator, augment=self.cfg.augment)
        cyc = dict(state["cycle"])
        if cyc["order"] is not None:
            cyc["order"] = cyc["order"].to(t.device)
        self.cycle.load_state_dict(cyc)


def attach_meta_learning(method: "Method", kind: str, *, loss_fn=None, normalize: str | None = None,
                         meta_batches: bool = True) -> None:
    """Give a meta-learning method what all of them hold: `weight_net`, `meta_optimizer` (None when the
    weighting is frozen), `frozen`, `meta` (its meta batches; None when frozen or when the method
    builds its own) and `meta_step` (with the method's loss, or `loss_fn`, and `normalize`)."""
    t, cfg = method.trainer, method.cfg
    method.weight_net, method.meta_optimizer = make_weight_net(t, kind)
    method.frozen = method.meta_optimizer is None
    method.meta = MetaBatches(t) if meta_batches and not method.frozen else None
    method.meta_step = MetaStep(method.model, method.optimizer, method.weight_net, method.meta_optimizer,
                                backend=cfg.backend, interval=cfg.interval, normalize=normalize or cfg.normalize,
                                virtual_params=cfg.virtual_params, loss_fn=loss_fn or method.loss_fn,
                                grad_hook=t.meta_grad_hook, fast=method.fast)


def meta_state(method: "Method") -> dict[str, Any]:
    """The resumable state `attach_meta_learning` gave a method."""
    return {"weight_net": method.weight_net.state_dict(),
            "meta_optimizer": None if method.frozen else method.meta_optimizer.state_dict(),
            "meta": None if method.meta is None else method.meta.state_dict()}


def load_meta_state(method: "Method", state: dict[str, Any]) -> None:
    method.weight_net.load_state_dict(state["weight_net"])
    if not method.frozen:
        method.meta_optimizer.load_state_dict(state["meta_optimizer"])
        release_capturable(method.meta_optimizer)   # a checkpoint may come from a graphed (capturable) run
        if method.meta is not None:
            method.meta.load_state_dict(state["meta"])
