"""The bi-level (meta) step shared by every meta-learned weighting method.

One meta update, as in Meta-Weight-Net / CMW-Net:
  1. per-sample training losses at the classifier's parameters theta, weights from the weight net;
  2. a *virtual* plain-SGD step theta' = theta - lr * grad_theta L_w(theta, phi), kept differentiable
     in the weight net's parameters phi (create_graph), at the classifier's current learning rate;
  3. the meta loss on a meta batch through theta'; its gradient w.r.t. phi flows back through theta'
     and grad_theta L_w into the weights, and one step of the weight net's optimizer follows;
  4. the real update of the classifier uses weights recomputed by the updated net, as constants.

How the meta-gradient is obtained is a backend ("higher", the default, or "torch.func"); what the
losses are is the caller's (a `virtual_loss(forward)` and a `meta_loss(forward)` closure), so the
same step serves plain reweighting, label correction with mixup, and head-only virtual updates.
The virtual forwards run on copies of the BatchNorm buffers: the real model's running statistics are
never touched by them.

Speed: `iteration` is a whole reweighting iteration written as a pure tensor function (no host sync,
no Python state), so `step` can replay it as one CUDA graph through `cmwnet.fast` (`fast=`); with
graphs off it is the same eager code. Python bookkeeping (`meta_updates`) stays in `step`; the checks of a
user's model, optimizers and batches are `meta_step_checks.py`'s.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from .errors import CmwnetError
from .fast import FastPath, StepGraph, make_capturable, module_signature, optimizer_signature, step_state
from .meta_grad import (SECOND_ORDER, HeadFeatures, check_meta_grad, forward_mode_meta_gradient,
                        head_forward_factory)
from .meta_step_checks import (all_finite, check_batch, check_first_batch, check_iteration, check_meta_optimizer,
                               check_optimizers, check_settings, raise_if_nonfinite, restore, snapshot)
from .models import head_name, tail_names

Forward = Callable[[torch.Tensor], torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# meta-gradient modes whose virtual step moves a fixed part of the net (the same name as a virtual_params value)
FIXED_VIRTUAL_PARAMS = {"head": "the classifier head only", "tail": "the last block and the head"}

BACKENDS = ("higher", "torch.func")
NORMALIZATIONS = ("sum", "sum_detached", "mean")


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets, reduction="none")


def weighted_mean(losses: torch.Tensor, weights: torch.Tensor, normalize: str = "sum",
                  total: torch.Tensor | None = None) -> torch.Tensor:
    """Combine per-sample losses with weights (the choice changed silently between MW-Net versions,
    so it is explicit here).

    "sum": sum(w*l) / sum(w), gradients flow through the denominator too (Meta-Weight-Net's PyTorch
    release); "sum_detached": the same value with the denominator a constant (the authors' CMW-Net
    code for long-tailed and partial-label data); "mean": mean(w*l), no normalisation (the authors'
    noisy-label code). `total` replaces sum(w) in the denominator (under DDP: this rank's share of the
    global batch's sum, see `cmwnet.distributed`).
    """
    if weights.ndim == 2 and weights.shape[1] == 1:   # a weight net's (B, 1) output
        weights = weights[:, 0]
    if losses.ndim == 2 and losses.shape[1] == 1:
        losses = losses[:, 0]
    if losses.ndim != 1 or weights.shape != losses.shape:
        raise CmwnetError(f"weighted_mean needs one weight per loss: losses of shape {tuple(losses.shape)}, weights "
                          f"of shape {tuple(weights.shape)}; give both as (B,) (a (B, 1) weight net output is fine)")
    if not weights.is_cuda and weights.numel() and bool((weights.detach() < 0).any()):   # no GPU sync
        raise CmwnetError("weighted_mean: a weight is negative; sample weights lie in [0, 1] (a weight net's sigmoid "
                          "output)")
    if total is not None and not torch.is_tensor(total):
        total = torch.as_tensor(float(total), dtype=losses.dtype, device=losses.device)
    if normalize == "mean" and losses.numel() == 0:
        return (weights * losses).sum()   # an empty batch contributes 0 (its mean would be nan)
    denominator = weights.sum() if total is None else total
    if normalize == "sum":
        return (weights * losses).sum() / denominator.clamp_min(1e-8)
    if normalize == "sum_detached":
        return (weights * losses).sum() / denominator.detach().clamp_min(1e-8)
    if normalize == "mean":
        return (weights * losses).mean()
    raise CmwnetError(f"unknown weight normalisation '{normalize}': use one of {', '.join(NORMALIZATIONS)}")


class MetaStep:
    """Meta-learns `weight_net` while training `model`.

    `step(x, y, meta_x, meta_y, iteration)` runs a whole reweighting iteration (meta update when due,
    then the real update) for the common case; `meta_update(virtual_loss, meta_loss)` is the general
    form methods such as label correction build on.

    Args:
        model: the classifier.
        optimizer: the classifier's optimizer; its first param group's lr is the virtual step size, as in
            the authors' code.
        weight_net: the weight net (`CMWNet`, `MWNet`, `MCWNet`, or any module of (losses, labels)).
        meta_optimizer: the weight net's optimizer (Adam in the paper: `weight_net_optimizer`); None trains
            with the weighting frozen (no meta batch may then be given).
        backend: "higher" or "torch.func"; both give the same meta-gradient (tested).
        interval: run the meta update every `interval` iterations (1 = every iteration).
        normalize: how weighted losses are averaged, see `weighted_mean`.
        virtual_params: "all", "head" (only the final classifier layer moves in the virtual step, for
            large backbones), "tail" (the last block and the head, `cmwnet.models.tail_names`), or a list of
            parameter names.
        loss_fn: per-sample loss `(logits, targets) -> (B,)`; cross-entropy by default.
        grad_hook: called with the weight net's meta-gradients before the optimizer step (DDP averages
            them across ranks here). A hook that also has `reduce_virtual_grads` and `weight_total`
            (`cmwnet.distributed.Distributed`) makes the virtual step and the weighted-loss denominators
            global, so that N ranks compute the one-process meta-gradient of the whole batch.
        fast: how steps run (`cmwnet.fast.FastPath`: CUDA graphs, bf16 autocast of the classifier's
            forwards, channels-last inputs); None = eager fp32, exactly the code as written.
        meta_grad: how the meta-gradient is computed (`cmwnet.meta_grad`): "exact" (the double backward,
            the default), "head" (the virtual step moves the classifier head only, cheap: about an ERM
            step plus a forward of the meta batch), "forward" (exact, by forward-mode autodiff, no
            second-order graph), "tail" (`exact` with the virtual step through the last block and the head).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, weight_net: nn.Module,
                 meta_optimizer: torch.optim.Optimizer, *, backend: str = "higher", interval: int = 1,
                 normalize: str = "sum", virtual_params: str | Sequence[str] = "all",
                 loss_fn: LossFn = per_sample_ce,
                 grad_hook: Callable[[list[torch.Tensor]], None] | None = None,
                 fast: FastPath | None = None, meta_grad: str = "exact"):
        check_settings(backend, normalize, interval, BACKENDS, NORMALIZATIONS)
        check_optimizers(model, optimizer, weight_net, meta_optimizer)
        self.model, self.optimizer = model, optimizer
        self.weight_net, self.meta_optimizer = weight_net, meta_optimizer
        self.backend, self.interval, self.normalize = backend, int(interval), normalize
        self.loss_fn, self.grad_hook = loss_fn, grad_hook
        self.reducer = grad_hook if hasattr(grad_hook, "reduce_virtual_grads") else None
        self.names = [n for n, _ in model.named_parameters()]
        self.meta_grad = check_meta_grad(meta_grad)
        self.head: HeadFeatures | None = None
        if meta_grad in FIXED_VIRTUAL_PARAMS:   # these modes choose the moved parameters themselves
            if virtual_params not in ("all", meta_grad):
                raise CmwnetError(f"meta_grad {meta_grad} moves {FIXED_VIRTUAL_PARAMS[meta_grad]}, so virtual_params "
                                  f"must be all or {meta_grad}, got {virtual_params!r}: use meta_grad exact to choose "
                                  "the moved parameters")
            virtual_params = meta_grad
        if meta_grad == "head":
            self.head = HeadFeatures(model)
        if meta_grad == "forward" and self.reducer is not None:
            raise CmwnetError("meta_grad forward runs in one process only: use meta_grad exact or head under torchrun")
        self.moved = self._moved_mask(virtual_params)
        self.meta_updates = 0
        if fast is None:
            first = next(model.parameters(), None)
            fast = FastPath.plain(first.device if first is not None else "cpu")
        self.fast = fast
        self._runners: dict[tuple[str, bool], StepGraph] = {}
        self._checked = False
        # NaN/Inf guard of the eager path (see `step`): the trainer turns it off, it has its own check
        self.check_finite = True
        self._flags: list[tuple[str, torch.Tensor]] | None = None

    # -- configuration ---------------------------------------------------------------------------
    def _moved_mask(self, virtual_params: str | Sequence[str]) -> list[bool]:
        if virtual_params == "all":
            return [True] * len(self.names)
        if virtual_params == "head":
            prefix = head_name(self.model) + "."
            mask = [n.startswith(prefix) for n in self.names]
        elif virtual_params == "tail":
            tail = set(tail_names(self.model))
            mask = [n in tail for n in self.names]
        else:
            # a string is one module or parameter name ("fc": every parameter under fc.), a list names several
            wanted = [virtual_params] if isinstance(virtual_params, str) else list(virtual_params)
            hits = {w: [n == w or n.startswith(w + ".") for n in self.names] for w in wanted}
            unknown = [w for w, m in hits.items() if not any(m)]
            if unknown:
                raise CmwnetError(f"virtual_params names no parameter of the model: {unknown[:3]} (parameter names "
                                  f"look like {self.names[0]!r}; or use all / head)")
            mask = [any(col) for col in zip(*hits.values())]
        if not any(mask):
            raise CmwnetError("virtual_params selects no parameter of the model")
        return mask

    # -- saving ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a loop needs to resume the meta-learning exactly: the weight net, its optimizer's state and the
        number of meta updates made (the classifier and its optimizer are the caller's to save)."""
        return {"weight_net": self.weight_net.state_dict(),
                "meta_optimizer": None if self.meta_optimizer is None else self.meta_optimizer.state_dict(),
                "meta_updates": int(self.meta_updates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of `state_dict` (into the same kind of weight net and optimizer)."""
        if not isinstance(state, dict) or "weight_net" not in state or "meta_updates" not in state:
            raise CmwnetError("MetaStep.load_state_dict takes what MetaStep.state_dict returned (a dict with weight_net, "
                              "meta_optimizer and meta_updates)")
        try:
            self.weight_net.load_state_dict(state["weight_net"])
            if self.meta_optimizer is not None and state.get("meta_optimizer") is not None:
                self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CmwnetError(f"MetaStep.load_state_dict: the saved state does not fit this MetaStep ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120]})") from None
        self.meta_updates = int(state["meta_updates"])

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def due(self, iteration: int) -> bool:
        """Whether the meta update runs at this iteration (every `interval` iterations, from 0)."""
        return iteration % self.interval == 0

    def weighted(self, losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        total = None
        if self.reducer is not None and self.normalize != "mean":  # DDP: the global batch's sum of weights
            total = self.reducer.weight_total(weights.sum())
        return weighted_mean(losses, weights, self.normalize, total)

    # -- functional forwards ---------------------------------------------------------------------
    def _forward_factory(self) -> Callable[[list[torch.Tensor]], Forward]:
        """A function params -> forward(x) that runs the model with those parameters and with
        private copies of its buffers."""
        if self.backend == "higher":
            import higher

            # monkeypatch copies the buffers into the patched module: BN updates land there
            fmodel = higher.monkeypatch(self.model, copy_initial_weights=False, track_higher_grads=True)
            return lambda params: (lambda x: self.fast.forward(lambda t: fmodel(t, params=params), x))
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}

        def make(params: list[torch.Tensor]) -> Forward:
            state = dict(zip(self.names, params))
            state.update(buffers)
            return lambda x: self.fast.forward(lambda t: functional_call(self.model, state, (t,)), x)
        return make

    def moving_mask(self) -> list[bool]:
        """Which parameters the virtual step moves: those chosen (virtual_params / meta_grad head) that are
        trainable; a frozen parameter (requires_grad False, as when fine-tuning a head) stays where it is."""
        moving = [m and p.requires_grad for p, m in zip(self.model.parameters(), self.moved)]
        if not any(moving):
            raise CmwnetError("every parameter the virtual step would move is frozen (requires_grad False): "
                              "unfreeze some, or choose others with virtual_params")
        return moving

    def meta_gradient(self, virtual_loss: Callable[[Forward], torch.Tensor],
                      meta_loss: Callable[[Forward], torch.Tensor],
                      known: dict[int, torch.Tensor] | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """d meta_loss(theta'(phi)) / d phi, with theta' = theta - lr * grad_theta virtual_loss, computed as
        `meta_grad` says. `known` (non-exact modes, from `iteration`) maps id(x) of the training batch to what
        the real update's forward already computed for it (logits; the head's input for meta_grad head).

        Returns the gradients for the weight net's parameters and the meta loss (detached).
        """
        if self.meta_grad == "forward":
            return forward_mode_meta_gradient(self, virtual_loss, meta_loss, known)
        make = self._forward_factory() if self.meta_grad in SECOND_ORDER else head_forward_factory(self, known)
        moving = self.moving_mask()
        params = [p if m else p.detach() for p, m in zip(self.model.parameters(), moving)]
        moved = [p for p, m in zip(params, moving) if m]
        loss = virtual_loss(make(params))
        grads = torch.autograd.grad(loss, moved, create_graph=True, allow_unused=True)
        if self.reducer is not None:  # DDP: the gradient of the whole global batch, still differentiable
            grads = self.reducer.reduce_virtual_grads(grads, moved)
        lr, it = self.lr, iter(grads)
        new_params = []
        for p, m in zip(params, moving):
            g = next(it) if m else None
            new_params.append(p if g is None else p - lr * g)
        outer = meta_loss(make(new_params))
        phi = [p for p in self.weight_net.parameters() if p.requires_grad]
        meta_grads = torch.autograd.grad(outer, phi, allow_unused=True)
        meta_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(phi, meta_grads)]
        return meta_grads, outer.detach()

    def meta_update(self, virtual_loss: Callable[[Forward], torch.Tensor],
                    meta_loss: Callable[[Forward], torch.Tensor], count: bool = True,
                    known: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """One optimizer step of the weight net on the meta-gradient; returns the meta loss.

        `count=False` leaves `meta_updates` alone (inside a step captured as a CUDA graph, where Python
        code runs once at capture; the caller counts). `known`: see `meta_gradient`."""
        grads, outer = self.meta_gradient(virtual_loss, meta_loss, known)
        if self.grad_hook is not None:
            self.grad_hook(grads)
        if self._flags is not None:   # a guarded `step`: checked with the rest before the real update
            self._flags.append(("the meta loss or the meta-gradient", all_finite([outer] + list(grads))))
        elif self.check_finite and not _capturing():   # nothing has moved yet: refuse before the update
            raise_if_nonfinite([("the meta loss or the meta-gradient", all_finite([outer] + list(grads)))],
                                "MetaStep.meta_update")
        phi = [p for p in self.weight_net.parameters() if p.requires_grad]
        for p, g in zip(phi, grads):
            p.grad = g
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        if count:
            self.meta_updates += 1
        return outer

    # -- the standard reweighting iteration --------------------------------------------------------
    def weights(self, losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Weights for the real update: the current weight net on detached losses, as constants."""
        with torch.no_grad():
            return self.weight_net(losses.detach(), labels)

    def reweighting_losses(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor, meta_y: torch.Tensor):
        """The (virtual_loss, meta_loss) closures of plain sample reweighting.

        The meta loss is cross-entropy on the clean meta batch, with the logits multiplied by the
        training loss's `logit_scale` where it has one (LDAM trains cosine logits scaled by s; without
        the same scale the meta cross-entropy of values in [-1, 1] would be nearly flat).
        """
        scale = float(getattr(self.loss_fn, "logit_scale", 1.0))

        def virtual_loss(forward: Forward) -> torch.Tensor:
            losses = self.loss_fn(forward(x), y)
            return self.weighted(losses, self.weight_net(losses.detach(), y))

        def meta_loss(forward: Forward) -> torch.Tensor:
            logits = forward(meta_x)
            return F.cross_entropy(logits if scale == 1.0 else scale * logits, meta_y)
        return virtual_loss, meta_loss

    def iteration(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor | None = None,
                  meta_y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """A whole reweighting iteration as a pure tensor function: the meta update when a meta batch
        is given, then the real weighted update (what `step` runs, eagerly or as a CUDA graph).

        Returns tensors (no host sync): the real loss, the per-sample losses and weights, and the
        meta loss (NaN when no meta update ran).
        """
        meta = torch.full((), float("nan"), device=x.device)
        if meta_x is not None and self.meta_grad not in SECOND_ORDER:
            return self._reusing_iteration(x, y, meta_x, meta_y)
        if meta_x is not None:
            meta = self.meta_update(*self.reweighting_losses(x, y, meta_x, meta_y), count=False)
        return self._real_update(self.fast.forward(self.model, x), x, y, meta_x, meta)

    def _real_update(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor | None,
                     meta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The real update of the classifier from its forward's logits, with the (updated) weight net's
        weights as constants; the iteration's tensors."""
        losses = self.loss_fn(logits, y)
        w = self.weights(losses, y)
        loss = self.weighted(losses, w)
        self._check_before_update(x, meta_x, losses, w, loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "losses": losses.detach(), "weights": w, "meta_loss": meta,
                "logits": logits.detach()}

    def _check_before_update(self, x: torch.Tensor, meta_x: torch.Tensor | None, losses: torch.Tensor,
                             w: torch.Tensor, loss: torch.Tensor) -> None:
        """In a guarded eager `step`: one host sync for every finiteness flag, before the real update moves
        a parameter (the caller, `_guarded`, restores what the meta update changed)."""
        if self._flags is None:
            return
        self._flags += [("the training inputs x", all_finite([x]))]
        if meta_x is not None:
            self._flags += [("the meta inputs meta_x", all_finite([meta_x]))]
        self._flags += [("the per-sample losses", all_finite([losses])), ("the weights", all_finite([w])),
                        ("the weighted loss", all_finite([loss]))]
        flags, self._flags = self._flags, None
        raise_if_nonfinite(flags, "MetaStep.step")

    def _reusing_iteration(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor,
                           meta_y: torch.Tensor) -> dict[str, torch.Tensor]:
        """`iteration` for meta_grad head / forward: the real forward runs first and the virtual step
        reuses it (its logits, or for head the head's input), so the training batch goes forward once.
        Same values as running them apart: the parameters are the same, and in training mode BatchNorm
        normalises with the batch's statistics, whichever buffers the forward updates."""
        if self.meta_grad == "head":
            logits, features = self.head.run(lambda t: self.fast.forward(self.model, t), x)
            known = {id(x): features.detach()}
        else:
            logits = self.fast.forward(self.model, x)
            known = {id(x): logits}
        meta = self.meta_update(*self.reweighting_losses(x, y, meta_x, meta_y), count=False, known=known)
        return self._real_update(logits, x, y, meta_x, meta)

    def signature(self) -> tuple:
        """The Python values a captured iteration bakes in (see `cmwnet.fast`): learning rates and other
        optimizer settings, the loss's and the weight net's state, train/eval modes."""
        return (optimizer_signature(self.optimizer), optimizer_signature(self.meta_optimizer),
                module_signature(self.loss_fn), module_signature(self.weight_net), self.model.training)

    def graphed(self, fn: Callable[..., dict[str, torch.Tensor]], name: str, meta: bool,
                signature: Callable[[], Hashable] | None = None,
                extra_state: Callable[[], list[torch.Tensor]] | None = None) -> StepGraph:
        """`fn` (an iteration as a pure tensor function, with or without a meta update) as a
        `cmwnet.fast.StepGraph`, built once per (name, meta) and kept: the one runner cache of every
        meta-learning step. Both optimizers are made capturable before capture; a meta iteration under a
        meta-gradient hook (multi-GPU) runs eagerly. `signature` defaults to `self.signature`. `extra_state`
        lists what `fn` updates besides the two nets and their optimizers (pseudo labels, an EMA net's
        BatchNorm statistics): the replay check restores and compares it too."""
        key = (name, meta)
        if key not in self._runners:
            def prepare() -> None:
                make_capturable(self.optimizer)
                make_capturable(self.meta_optimizer)
            run = self.fast.graph(fn, name, signature=signature or self.signature, prepare=prepare,
                                  state=lambda: step_state(self.model, self.optimizer, self.weight_net,
                                                           self.meta_optimizer) + (extra_state() if extra_state else []))
            if meta and self.grad_hook is not None:
                run.disable("a meta-gradient hook (multi-GPU) runs collectives inside the step")
            self._runners[key] = _CountedRun(run, self) if meta else run
        return self._runners[key]

    def runner(self, meta: bool) -> StepGraph:
        """The iteration with (meta=True) or without a meta update, as a `cmwnet.fast.StepGraph`."""
        return self.graphed(self.iteration, "meta iteration" if meta else "reweighted step", meta)

    def check_inputs(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor | None = None,
                     meta_y: torch.Tensor | None = None) -> None:
        """One look at the first batch for the mistakes a notebook user makes with their own model
        (`meta_step_checks.check_first_batch`)."""
        check_first_batch(self, x, y, meta_x, meta_y)

    def step(self, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor | None, meta_y: torch.Tensor | None,
             iteration: int) -> dict[str, torch.Tensor]:
        """A whole reweighting iteration: meta update (when due and a meta batch is given), then the
        real weighted update; see `iteration`.

        Every call checks the batch's types, dtypes, shapes and devices (no host sync). On the eager path
        (`check_finite`, on by default; everywhere but captured CUDA graphs) NaN or Inf in the inputs, the
        per-sample losses, the weights or the meta-gradient raises `CmwnetValueError` before the step is
        kept: the model, its BatchNorm statistics, the weight net and both optimizers are left as they were
        (one host sync per step). A step replayed as a CUDA graph (`fast`, GPU only) is not checked.
        """
        check_iteration(iteration)
        meta = meta_x is not None and self.due(iteration)
        check_meta_optimizer(meta, self.meta_optimizer)
        check_batch(self, x, y, meta_x if meta else None, meta_y if meta else None)
        if not self._checked:   # once: what would otherwise surface as a raw torch error deep in the step
            self.check_inputs(x, y, meta_x, meta_y)
        x = self.fast.input(x)
        run = self.runner(meta)
        if self.check_finite and not run.enabled:
            return self._guarded(run, meta, x, y, meta_x, meta_y)
        if meta:   # the meta runner counts the update (`_CountedRun`)
            return run(x, y, self.fast.input(meta_x), meta_y)
        return run(x, y)

    def _guarded(self, run: StepGraph, meta: bool, x: torch.Tensor, y: torch.Tensor,
                 meta_x: torch.Tensor | None, meta_y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """`run` eagerly with the NaN/Inf checks of `step`; on a failed check everything the step had
        changed (BatchNorm buffers, the weight net and its optimizer's state) is put back."""
        saved = snapshot(self.model, self.weight_net, self.meta_optimizer if meta else None)
        self._flags = []
        # the step's one combined check covers the losses and weights: the weight net's own per-call value
        # checks (a host sync each) are off meanwhile
        validate = getattr(self.weight_net, "validate", None)
        if validate is not None:
            self.weight_net.validate = False
        try:
            out = run(x, y, self.fast.input(meta_x), meta_y) if meta else run(x, y)
        except BaseException:   # a refused step (or any failure inside it) leaves nothing half-done
            restore(saved)
            raise
        finally:
            self._flags = None
            if validate is not None:
                self.weight_net.validate = validate
        return out


class _CountedRun:
    """A meta iteration's runner (`MetaStep.graphed`) that counts each completed call in `meta_updates`: the
    count is Python bookkeeping, which a step replayed as a CUDA graph skips, so it lives outside the graph, and
    no caller counts by hand."""

    def __init__(self, run: StepGraph, step: "MetaStep"):
        self.run, self.step = run, step

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = self.run(*args, **kwargs)
        self.step.meta_updates += 1
        return out

    def __getattr__(self, name: str) -> Any:   # enabled, disable, checks, ...: the StepGraph's
        return getattr(self.run, name)


# -- checks of the Python API (issue 17): one clear error instead of a torch traceback or NaN weights ----
def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
