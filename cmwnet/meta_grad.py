"""Cheaper ways to the meta-gradient of `MetaStep` (`meta_grad=`, config `method.meta_grad`).

The exact meta-gradient (Meta-Weight-Net's) differentiates the meta loss through a virtual SGD step
theta' = theta - lr * grad_theta L_w(theta, phi): a second-order backward through the whole network,
about 80% of a meta iteration (FaMUS, CVPR 2021, measured the same). Two alternatives:

- ``head``: the virtual step moves only the classifier head (the last linear layer); the backbone is a
  constant of the meta problem. This is *the exact meta-gradient of that restricted problem* (the same as
  `meta_grad="exact"` with `virtual_params="head"`, to float rounding), so nothing is approximated inside
  it; what it leaves out is how a virtual step of the backbone would change the meta loss. It is cheap:
  the backbone runs forward only (no graph) on the meta batch, the second-order part touches the head
  alone, and in the plain reweighting iteration (`MetaStep.iteration`) the real update's forward is
  reused for the virtual step (one forward of the training batch per iteration, as ERM).
- ``forward``: the exact meta-gradient of the whole network without a second-order graph. The
  meta-gradient is d/dphi [-lr * v . grad_theta L_w(theta, phi)] with v = grad L_meta(theta') held
  fixed, and v . grad_theta L_w is a directional derivative of L_w along v, computed by forward-mode
  autodiff (a dual-number forward of the training batch; `detach` stops tangents as it stops
  gradients, so the weight net's detached loss input is treated as in the exact form). Same value as
  `exact` to float rounding; the cost is a first-order backward, a first-order meta backward and one
  dual forward instead of two graph-building forwards and a double backward, and the memory of no
  second-order graph. Not available under multi-process training (its cross-rank form is not written).

- ``tail``: the virtual step moves the backbone's last block and everything after it (the head included;
  `cmwnet.models.tail_names`), computed as `exact` with those `virtual_params`: the exact meta-gradient
  of that restricted problem. The layers before the block are constants of the meta problem, so the
  second-order graph covers the tail alone; every forward still runs the whole net. Between `head` and
  `exact` in cost, it keeps how a virtual step of the last block's features moves the meta loss.

`head` and `forward` run the virtual forwards with `torch.func.functional_call` on copies of the BatchNorm buffers
(the real model's running statistics are moved only by the real update's forward), whatever
`backend` says: the backend choice is about the exact form's double backward.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn
from torch.func import functional_call

from .errors import CmwnetError
from .fast import FastPath
from .models import head_name

Forward = Callable[[torch.Tensor], torch.Tensor]


class MetaProblem(Protocol):
    """What these functions read of a `cmwnet.bilevel.MetaStep` (which imports this module, so it is
    named by its parts here rather than imported)."""

    model: nn.Module
    weight_net: nn.Module
    names: list[str]
    head: "HeadFeatures | None"
    fast: FastPath
    reducer: Any
    lr: float

    def moving_mask(self) -> list[bool]:
        ...

META_GRADS = ("exact", "head", "forward", "tail")
SECOND_ORDER = ("exact", "tail")   # the modes that run the double backward (on their moved parameters)


def _load_jvp_decompositions_quietly() -> None:
    """Forward-mode AD loads torch's JVP decompositions on first use, which calls the deprecated
    `torch.jit.script` and printed its FutureWarning in every `meta_grad: forward` run, --quiet or not. Load
    them once here with that one warning silenced (torch's own code, nothing of ours to change)."""
    load = getattr(fwAD, "_maybe_load_decompositions", None)
    if load is None:
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        load()


def check_meta_grad(meta_grad: str) -> str:
    if meta_grad not in META_GRADS:
        raise CmwnetError(f"unknown meta-gradient mode '{meta_grad}': use one of {', '.join(META_GRADS)} "
                          "(exact: the full second-order meta-gradient; head: the virtual step moves the classifier "
                          "head only; forward: exact, by forward-mode autodiff; tail: the virtual step moves the last "
                          "block and the head)")
    return meta_grad


class HeadFeatures:
    """The classifier head of a model and the features that enter it, read by a forward hook.

    Needs a model whose output is its head's output (as every classifier here, torchvision's and timm's
    are); anything after the head would be skipped by the head-only forward, so it is refused."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.name = head_name(model)
        self.module = model.get_submodule(self.name)
        self.prefix = self.name + "."
        self._seen: dict[str, torch.Tensor] = {}
        self.checked = False

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._seen["features"], self._seen["output"] = inputs[0], output

    def run(self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(model output, the head's input) of `forward(x)`, a forward of this model."""
        handle = self.module.register_forward_hook(self._hook)
        try:
            out = forward(x)
        finally:
            handle.remove()
        seen, self._seen = self._seen, {}
        if "features" not in seen:
            raise CmwnetError(f"meta_grad head: the model's forward never called its head '{self.name}': set "
                              "model.head_name to the module that makes the logits, or use meta_grad exact")
        if not self.checked:
            head_out = seen["output"]
            same = torch.is_tensor(head_out) and head_out.shape == out.shape and torch.equal(head_out.to(out.dtype), out)
            if not same:
                raise CmwnetError(f"meta_grad head needs a model whose output is its head '{self.name}''s output, but "
                                  f"{type(self.model).__name__} changes it after the head: use meta_grad exact or forward")
            self.checked = True
        return out, seen["features"]

    def head_params(self, names: list[str], params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The head's entries of a full parameter list, named as the head module names them."""
        return {n[len(self.prefix):]: p for n, p in zip(names, params) if n.startswith(self.prefix)}


def head_forward_factory(step: MetaProblem, known: dict[int, torch.Tensor] | None = None
                         ) -> Callable[[list[torch.Tensor]], Forward]:
    """params -> forward(x) for the head-only meta problem: the backbone's features of x (no graph, at
    the model's current parameters, on copies of the buffers), then the head with the head's entries of
    `params`. `known` maps id(x) to features already computed for x (the real update's forward)."""
    heads: HeadFeatures = step.head
    buffers = {n: b.clone() for n, b in step.model.named_buffers()}
    state = {n: p.detach() for n, p in step.model.named_parameters()}
    state.update(buffers)
    known = known or {}

    def features(x: torch.Tensor) -> torch.Tensor:
        if id(x) in known:
            return known[id(x)]
        with torch.no_grad():
            _, f = heads.run(lambda t: step.fast.forward(lambda u: functional_call(step.model, state, (u,)), t), x)
        return f

    def make(params: list[torch.Tensor]) -> Forward:
        head = heads.head_params(step.names, params)
        return lambda x: step.fast.forward(lambda f: functional_call(heads.module, head, (f,)), features(x))
    return make


def _functional_factory(step: MetaProblem) -> Callable[..., Forward]:
    """(params, known=None) -> forward(x) through the whole model on copies of the buffers; `known` maps
    id(x) to logits already computed at these parameters (the real update's forward)."""
    buffers = {n: b.clone() for n, b in step.model.named_buffers()}

    def make(params: list[torch.Tensor], known: dict[int, torch.Tensor] | None = None) -> Forward:
        state = dict(zip(step.names, params))
        state.update(buffers)
        known = known or {}

        def forward(x: torch.Tensor) -> torch.Tensor:
            if id(x) in known:
                return known[id(x)]
            return step.fast.forward(lambda t: functional_call(step.model, state, (t,)), x)
        return forward
    return make


def forward_mode_meta_gradient(step: MetaProblem, virtual_loss: Callable[[Forward], torch.Tensor],
                               meta_loss: Callable[[Forward], torch.Tensor],
                               known: dict[int, torch.Tensor] | None = None
                               ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The exact meta-gradient without a second-order graph (see the module docstring).

    `known` (id(x) -> logits of the real forward) lets the first virtual loss reuse the real update's
    forward; that forward's graph is then kept (retain_graph) for the real backward."""
    if step.reducer is not None:
        raise CmwnetError("meta_grad forward runs in one process only: use meta_grad exact or head under torchrun")
    make = _functional_factory(step)
    own = list(step.model.parameters())
    moving = step.moving_mask()
    params = [p if m else p.detach() for p, m in zip(own, moving)]
    moved = [p for p, m in zip(params, moving) if m]
    loss = virtual_loss(make(params, known))
    grads = torch.autograd.grad(loss, moved, retain_graph=bool(known), allow_unused=True)
    lr = step.lr
    it = iter(grads)
    primed = []
    for p, m in zip(params, moving):
        g = next(it) if m else None
        primed.append((p.detach() - lr * g).requires_grad_(True) if g is not None else p.detach())
    primed_moved = [q for q, m in zip(primed, moving) if m]
    outer = meta_loss(make(primed))
    v = torch.autograd.grad(outer, [q for q in primed_moved if q.requires_grad], allow_unused=True)
    tangents = iter(v)
    direction = [next(tangents) if q.requires_grad else None for q in primed_moved]
    phi = [p for p in step.weight_net.parameters() if p.requires_grad]
    _load_jvp_decompositions_quietly()
    with fwAD.dual_level():
        it = iter(direction)
        dual = []
        for p, m in zip(params, moving):
            t = next(it) if m else None
            dual.append(fwAD.make_dual(p.detach(), t) if t is not None else p.detach())
        slope = fwAD.unpack_dual(virtual_loss(make(dual))).tangent
    if slope is None or not slope.requires_grad:
        meta_grads = [torch.zeros_like(p) for p in phi]
    else:
        meta_grads = torch.autograd.grad(-lr * slope, phi, allow_unused=True)
        meta_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(phi, meta_grads)]
    return meta_grads, outer.detach()
