"""What the meta-learning methods share: building the weight net and feeding meta batches."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..data.gpu import Cycle
from ..data.meta_set import balanced_subset, lowest_loss_per_class
from ..errors import CmwnetError
from ..weighting import WeightNet, build_weight_net, load_weighting

if TYPE_CHECKING:
    from ..engine import Trainer

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
        net = build_weight_net(kind, data.num_classes, data.class_counts, hidden=w.hidden, families=w.families, seed=0)
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
        losses = torch.empty(len(train), device=t.device)
        for x, y, pos in train.batches(t.cfg.data.test_batch_size):
            losses[pos] = F.cross_entropy(model(x), y, reduction="none")
        model.train(was_training)
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
