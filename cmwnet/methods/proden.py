"""Partial-label learning: PRODEN, and PRODEN followed by CMW-Net on its pseudo labels (paper Sec. 7.1).

Every training sample has a candidate set S_i of classes (`data.partial`, built by the data pipeline
with `cmwnet.data.partial.candidate_sets` from the true labels, which nothing else here reads).

PRODEN (Lv et al., "Progressive Identification of True Labels for Partial-Label Learning", ICML 2020)
keeps a confidence vector c_i per sample, initialised uniform over S_i. A step minimises the
cross-entropy against the confidences,

    L = mean_i  -sum_k c_ik log p_ik,

then sets c_i to the model's softmax of that same forward, restricted to S_i and renormalised (as the
PRODEN code does: the step's loss uses the confidences from before the update).

`proden_cmwnet` is the authors' two-stage pipeline run as one training run. Their CMW-Net stage
(`section7/.../main.py`) loads the confidences of a separate PRODEN run (epoch 40; the script that
makes them is missing from their repository), takes the argmax as a hard pseudo label and trains a
fresh ResNet-32: CE for epochs 0-44, then CMW-Net. Here one network trains with PRODEN for the epochs
before `method.start_epoch` (45 in configs/pll_*.yaml); at that epoch the argmax of the confidences
becomes a fixed hard pseudo label (always a candidate), the task families are K-means on the
pseudo-label class counts, and the same network continues with CMW-Net reweighting of CE on the
pseudo labels, treating partial labels as noisy labels: meta step every `method.interval` iterations,
`method.normalize` (sum_detached, as the authors), and each epoch a meta set of the
`data.meta.per_class` lowest-loss samples per pseudo class under the current network
(`data.meta.model: model`, as the authors; or the EMA net), eval mode, labelled with the pseudo labels. With the same seed, `proden` and `proden_cmwnet` are the same run
up to `start_epoch`, so Fig. 9's two curves differ only by what CMW-Net adds.

The labels the engine passes to `train_step` (the true labels, used by the engine for the training
accuracy) are never read here.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CmwnetError
from ..fast import make_capturable, optimizer_signature, step_state
from ..losses import soft_cross_entropy
from ..weighting import task_families
from . import METHODS
from .base import Method
from .context import RunContext
from .meta_learner import MetaBatches, MetaLearner


def proden_loss(logits: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Per-sample PRODEN loss: cross-entropy against the confidence vector, -sum_k c_k log p_k."""
    return soft_cross_entropy(logits, confidence)


def proden_confidence(logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The updated confidences: softmax restricted to the candidate set and renormalised (computed as a
    softmax over the candidate logits alone, which is the same and cannot underflow to 0/0)."""
    masked = logits.detach().float().masked_fill(~candidates, float("-inf"))
    return F.softmax(masked, dim=1)


def uniform_confidence(candidates: torch.Tensor) -> torch.Tensor:
    """The initial confidences: uniform over each candidate set."""
    c = candidates.float()
    return c / c.sum(1, keepdim=True)


@METHODS.register("proden")
class PRODEN(Method):
    """PRODEN for every epoch (the baseline curve of Fig. 9)."""

    uses_candidate_sets = True   # the engine refuses data.partial for any other method

    per_sample_state = ("confidence",)   # rows updated at the step's positions (kept equal on all DDP ranks)

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        p = ctx.cfg.data.partial
        if p.kind == "none":
            raise CmwnetError(f"method {self.cfg.name} learns from candidate sets: set data.partial.kind "
                              "(binomial or pair) and data.partial.rate")
        cand = ctx.data.candidates   # built by the data pipeline (cmwnet.data.pipeline), recorded in its info
        if cand is None:
            raise CmwnetError(f"method {self.cfg.name}: the data set {ctx.cfg.data.name} brought no candidate sets "
                              "(its builder does not run the label pipeline, cmwnet.data.pipeline)")
        self.candidates = torch.as_tensor(cand, device=ctx.device)
        self.confidence = uniform_confidence(self.candidates)
        self._proden_graph = None

    def proden_step(self, x: torch.Tensor, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """One PRODEN step (a CUDA graph on the fast path, like the ERM step)."""
        if self._proden_graph is None:
            self._proden_graph = self.fast.graph(
                self.proden_iteration, "PRODEN step", prepare=lambda: make_capturable(self.optimizer),
                signature=lambda: (optimizer_signature(self.optimizer), self.model.training),
                state=lambda: step_state(self.model, self.optimizer, self.confidence))
        return self._proden_graph(self.fast.input(x), pos)

    def proden_iteration(self, x: torch.Tensor, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """The PRODEN step as a pure tensor function: loss against the current confidences, the update,
        then the batch's confidences from the same forward."""
        logits = self.fast.forward(self.model, x)
        loss = proden_loss(logits, self.confidence[pos]).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.confidence[pos] = proden_confidence(logits, self.candidates[pos])
        return {"loss": loss.detach(), "logits": logits.detach()}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return self.proden_step(x, pos)

    def state_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "confidence": self.confidence}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not torch.equal(state["candidates"].to(self.candidates.device), self.candidates):
            raise CmwnetError("the checkpoint's candidate sets differ from this config's (data.partial changed)")
        self.confidence.copy_(state["confidence"])


@METHODS.register("proden_cmwnet")
class PRODENCMWNet(PRODEN):
    """PRODEN before `method.start_epoch`, then CMW-Net on the argmax pseudo labels (module docstring)."""

    learns_weighting, meta_phase = True, "start_epoch"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        if ctx.cfg.method.weight_net.frozen:
            raise CmwnetError("proden_cmwnet meta-learns its weight net: unset method.weight_net.frozen")
        if ctx.cfg.data.meta.kind not in ("none", "lowest_loss"):
            raise CmwnetError(f"proden_cmwnet's meta set is the lowest-loss samples per pseudo class: set "
                              f"data.meta.kind to lowest_loss (got {ctx.cfg.data.meta.kind!r})")
        self.pseudo: torch.Tensor | None = None      # hard pseudo labels, fixed at start_epoch
        # the meta set: the lowest-loss samples per pseudo class, scored on the fast path, pseudo-labelled
        batches = MetaBatches(ctx, kind="lowest_loss", labels=lambda: self.pseudo,
                              forward=lambda model, x: self.fast.forward(model, self.fast.input(x)))
        self.meta_learner = MetaLearner(ctx, "cmwnet", self.loss_fn, self.fast, batches=batches)
        self.meta_step = self.meta_learner.step

    @property
    def per_sample_state(self) -> tuple[str, ...]:
        return ("confidence",) if self.pseudo is None else ()

    @property
    def meta_positions(self) -> torch.Tensor | None:
        """The training positions of this epoch's meta set (None before the switch)."""
        return self.meta_learner.batches.positions

    # -- the switch ----------------------------------------------------------------------------------
    def switch_to_pseudo_labels(self) -> None:
        """Fix the hard pseudo labels and the task families they give (at start_epoch)."""
        c = self.ctx
        self.pseudo = self.confidence.argmax(1)
        counts = torch.bincount(self.pseudo, minlength=c.data.num_classes).tolist()
        w = self.cfg.weight_net
        self.weight_net.with_families(task_families(counts, w.families, seed=0))
        self.weight_net.class_counts = counts
        self._record_switch(int(c.epoch))

    def _record_switch(self, epoch: int) -> None:
        """The switch epoch and the pseudo labels' accuracy, in result.json's data record."""
        info = self.ctx.data.info.setdefault("partial", {})
        info["switch_epoch"] = epoch
        accuracy = (self.pseudo == self.ctx.data.train.clean_labels).float().mean()
        info["pseudo_label_accuracy"] = round(float(accuracy), 6)

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        if self.meta_learner.active(epoch) and self.pseudo is None:
            self.switch_to_pseudo_labels()
        self.meta_learner.on_epoch_start(epoch)

    # -- the step ------------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        ml = self.meta_learner
        if not ml.active(self.ctx.epoch):
            return self.proden_step(x, pos)
        mx, my = ml.next_batch(step)
        return ml.step.step(x, self.pseudo[pos], mx, my, step)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.meta_learner.state_dict(), "pseudo": self.pseudo,
                "class_counts": self.weight_net.class_counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "meta" not in state:   # a checkpoint from before issue 10 kept the meta set's state at the top level
            state = {**state, "meta": {"positions": state["meta_positions"], "cycle": state["cycle"]}}
        self.pseudo = None if state["pseudo"] is None else state["pseudo"].to(self.ctx.device)
        self.meta_learner.load_state_dict(state)
        self.weight_net.class_counts = state["class_counts"]
        if self.pseudo is not None:
            self._record_switch(self.meta_learner.start_epoch)
