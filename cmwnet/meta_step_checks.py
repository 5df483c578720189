"""MetaStep's input checks, apart from the algorithm in `bilevel.py`: a user's own model, optimizers and batches meet
a one-line error naming the fix instead of a torch traceback from deep inside the meta step, and a NaN or Inf is
caught before the step is kept (with what the step changed put back).

The checks cost no host sync on the path every step takes (`check_batch` reads Python attributes only); the first
batch gets one closer look (`check_first_batch`), and the eager path's finiteness flags are synced once per step
(`raise_if_nonfinite`)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from .errors import CmwnetError, CmwnetTypeError, CmwnetValueError


def check_settings(backend: str, normalize: str, interval: object, backends: Sequence[str],
                   normalizations: Sequence[str]) -> None:
    """The constructor's choices: a known backend and normalisation, an integer interval of at least 1."""
    if backend not in backends:
        raise CmwnetError(f"unknown meta backend '{backend}': use one of {', '.join(backends)}")
    if normalize not in normalizations:
        raise CmwnetError(f"unknown weight normalisation '{normalize}': use one of {', '.join(normalizations)}")
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval < 1:
        raise CmwnetError(f"meta interval must be an integer >= 1, got {interval!r}")


def check_iteration(iteration: object) -> None:
    """The step's number decides when the meta update runs: an integer, never a bool or a float."""
    if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)):
        raise CmwnetValueError(f"MetaStep.step: iteration must be the step's integer number (it decides when the "
                               f"meta update runs), got {iteration!r}")


def check_meta_optimizer(meta: bool, meta_optimizer: object) -> None:
    """A meta batch given to a MetaStep built without a meta optimizer would be silently ignored."""
    if meta and meta_optimizer is None:
        raise CmwnetValueError("MetaStep.step: a meta batch is given but the MetaStep has no meta_optimizer, so "
                               "it cannot meta-learn: build it with weight_net_optimizer(weight_net, lr), or pass "
                               "meta_x=None to train with the weighting frozen")


def check_first_batch(step: Any, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor | None = None,
                      meta_y: torch.Tensor | None = None) -> None:
    """One look at the first batch: a model that does not return a logits tensor, a model and weight net of
    different dtypes, labels the weight net has no curve for, a meta batch of one sample for a BatchNorm model.
    Records on `step` what later batches are checked against (logit count, sample shape)."""
    was_training = step.model.training
    step.model.eval()   # eval mode: BatchNorm buffers stay untouched, no randomness is drawn
    outs = []
    try:
        with torch.no_grad():
            for name, batch in (("x", x), ("meta_x", meta_x)):
                if batch is None:
                    continue
                try:
                    outs.append(step.fast.forward(step.model, step.fast.input(batch[:2])))
                except (RuntimeError, ValueError, TypeError, IndexError) as e:
                    msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                    raise CmwnetValueError(f"MetaStep.step: the model cannot take {name} of shape "
                                           f"{tuple(batch.shape)} ({msg}): give batches of the shape the model "
                                           "expects, (batch, ...) as in training") from None
    finally:
        step.model.train(was_training)
    out = outs[0]
    if not torch.is_tensor(out) or out.dim() != 2:
        what = type(out).__name__ if not torch.is_tensor(out) else f"a tensor of shape {tuple(out.shape)}"
        raise CmwnetError(f"MetaStep needs a model that returns logits of shape (batch, classes), got {what}: "
                          "wrap the model so forward returns the logits alone (e.g. lambda x: model(x)[0])")
    if meta_x is not None and len(outs) > 1 and torch.is_tensor(outs[1]) and torch.is_tensor(out) \
            and outs[1].shape[1:] != out.shape[1:]:
        raise CmwnetValueError(f"MetaStep.step: the model gives logits of shape {tuple(out.shape[1:])} for x but "
                               f"{tuple(outs[1].shape[1:])} for meta_x: give meta batches like training batches")
    model_dtype = next(step.model.parameters()).dtype
    wn_dtype = next(step.weight_net.parameters()).dtype
    if model_dtype != wn_dtype:
        raise CmwnetError(f"the model is {model_dtype} but the weight net is {wn_dtype}: convert one "
                          f"(weight_net.to({model_dtype}))")
    n_labels = getattr(step.weight_net, "families", None)
    n_labels = len(n_labels) if n_labels is not None else getattr(step.weight_net, "num_classes", None)
    labels = torch.cat([y] + ([meta_y] if meta_y is not None else []))
    low, top = int(labels.min()), int(labels.max())
    if low < 0:
        raise CmwnetValueError(f"MetaStep.step: label {low} is negative: labels are class numbers 0..C-1 (drop or "
                               "relabel samples marked -1 before the step)")
    if n_labels is not None and top >= n_labels:
        raise CmwnetError(f"label {top} has no curve in the weight net, which knows {n_labels} classes: build it "
                          "from the class counts of all classes of this data")
    if top >= out.shape[1]:
        raise CmwnetValueError(f"MetaStep.step: label {top} but the model gives {out.shape[1]} logits (classes "
                               f"0..{out.shape[1] - 1}): give labels of the model's classes")
    step._num_logits = min(out.shape[1], n_labels) if n_labels is not None else out.shape[1]
    step._sample_shapes = {"x": tuple(x.shape[1:]), "meta_x": tuple(x.shape[1:])}
    step._checked = True
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in step.model.modules())
    if meta_x is not None and len(meta_x) < 2 and has_bn and step.model.training:
        raise CmwnetError("a meta batch of one sample cannot pass a BatchNorm model in training mode: use meta "
                          "batches of at least 2")


def all_finite(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One boolean tensor (no host sync): every value of every floating tensor is finite."""
    flags = [torch.isfinite(t).all() for t in tensors if torch.is_tensor(t) and t.is_floating_point()]
    return torch.stack(flags).all() if flags else torch.ones((), dtype=torch.bool)


def raise_if_nonfinite(flags: list[tuple[str, torch.Tensor]], where: str) -> None:
    """One host sync for all `flags`; the first that is False names what held NaN or Inf."""
    if not flags:
        return
    device = flags[0][1].device
    ok = torch.stack([f.to(device) for _, f in flags])
    if bool(ok.all()):
        return
    what = flags[int((~ok).nonzero()[0])][0]
    raise CmwnetValueError(f"{where}: {what} hold NaN or Inf, so the step was not taken (the model, its BatchNorm "
                           "statistics and the weight net are as before it): clean the batch (e.g. drop or "
                           "torch.nan_to_num the bad samples), or lower the learning rates if the model diverged")


def snapshot(model: nn.Module, weight_net: nn.Module, meta_optimizer: torch.optim.Optimizer | None) -> list:
    """Copies of what a step may change before its check: the model's buffers (BatchNorm statistics,
    moved by the real forward), the weight net's tensors and the meta optimizer's state (moved by the
    meta update). The model's parameters move only after the check."""
    tensors = list(model.buffers()) + list(weight_net.parameters()) + list(weight_net.buffers())
    saved: list = [(t, t.detach().clone()) for t in tensors]
    if meta_optimizer is not None:
        state = {p: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                 for p, s in meta_optimizer.state.items()}
        saved.append((meta_optimizer, state))
    return saved


def restore(saved: list) -> None:
    with torch.no_grad():
        for target, copy in saved:
            if isinstance(target, torch.optim.Optimizer):
                target.state.clear()
                target.state.update(copy)
            else:
                target.copy_(copy)


def _describe(name: str, t: object) -> str:
    if not torch.is_tensor(t):
        return f"{name} is a {type(t).__name__}"
    return f"{name} is {t.dtype} of shape {tuple(t.shape)} on {t.device}"


def check_optimizers(model: nn.Module, optimizer: object, weight_net: nn.Module, meta_optimizer: object) -> None:
    """Each optimizer holds its own net's parameters (swapped, the weights never learned, silently), and a
    weight net to meta-learn has parameters that take gradients (a frozen one, e.g. from load_run, raised
    torch's 'inputs argument to grad() cannot be empty')."""
    def owned(opt: object) -> set[int]:
        groups = getattr(opt, "param_groups", None) or []
        return {id(p) for g in groups for p in g["params"]}
    model_ids = {id(p) for p in model.parameters()}
    net_params = list(weight_net.parameters()) if isinstance(weight_net, nn.Module) else []
    net_ids = {id(p) for p in net_params}
    if optimizer is not None and owned(optimizer) & net_ids and not owned(optimizer) & model_ids:
        raise CmwnetError("MetaStep: optimizer holds the weight net's parameters and meta_optimizer the model's? "
                          "the order is MetaStep(model, optimizer, weight_net, meta_optimizer)")
    if meta_optimizer is not None:
        if owned(meta_optimizer) & model_ids and not owned(meta_optimizer) & net_ids:
            raise CmwnetError("MetaStep: meta_optimizer holds the model's parameters, not the weight net's: the order "
                              "is MetaStep(model, optimizer, weight_net, meta_optimizer)")
        if net_params and not any(p.requires_grad for p in net_params):
            raise CmwnetError("MetaStep: every parameter of the weight net is frozen (requires_grad=False; load_run "
                              "returns it frozen), so it cannot meta-learn: call weight_net.requires_grad_(True), or "
                              "pass meta_optimizer=None and meta_x=None to train with it frozen")


def check_batch(step: Any, x: object, y: object, meta_x: object, meta_y: object) -> None:
    """Types, dtypes, shapes and devices of one batch (Python attributes only, no host sync): the mistakes
    that would otherwise end in a long torch traceback from inside the step."""
    first = next(step.model.parameters(), None)
    if first is None:
        raise CmwnetValueError("MetaStep: the model has no parameters to train: give the classifier itself")
    dtype, device = first.dtype, first.device
    wn = next(step.weight_net.parameters(), None)
    if wn is not None and wn.device != device:
        raise CmwnetValueError(f"MetaStep: the model is on {device} but the weight net on {wn.device}: move both to "
                               f"one device (weight_net.to({str(device)!r}), before building its optimizer)")
    pairs = [("x", x, "y", y)] + ([("meta_x", meta_x, "meta_y", meta_y)] if meta_x is not None else [])
    for xn, xt, yn, yt in pairs:
        if not torch.is_tensor(xt) or not xt.is_floating_point():
            raise CmwnetTypeError(f"MetaStep.step: {_describe(xn, xt)}; inputs must be a floating tensor of the "
                                  f"model's dtype {dtype}: convert with {xn}.to({dtype})")
        if xt.dtype != dtype:
            raise CmwnetTypeError(f"MetaStep.step: {_describe(xn, xt)} but the model is {dtype}: convert with "
                                  f"{xn}.to({dtype}) (or the model with model.to({xt.dtype}))")
        if not torch.is_tensor(yt) or yt.dtype != torch.long:
            raise CmwnetTypeError(f"MetaStep.step: {_describe(yn, yt)}; labels must be class numbers, an int64 "
                                  f"(torch.long) tensor: convert with {yn}.long()")
        if yt.dim() != 1 or xt.dim() < 1 or len(yt) != len(xt) or len(xt) == 0:
            raise CmwnetValueError(f"MetaStep.step: {_describe(xn, xt)} and {_describe(yn, yt)}; give one label "
                                   f"per sample, {yn} of shape ({xn}.shape[0],), and a non-empty batch")
        for n, t in ((xn, xt), (yn, yt)):
            if t.device != device:
                raise CmwnetValueError(f"MetaStep.step: {n} is on {t.device} but the model on {device}: move the "
                                       f"batch with {n}.to({str(device)!r})")
    if (meta_x is None) != (meta_y is None):
        raise CmwnetValueError("MetaStep.step: meta_x and meta_y go together: give both, or None for both")
    if getattr(step, "_has_bn", None) is None:
        step._has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in step.model.modules())
    for xn, xt, yn, yt in pairs:
        if len(xt) < 2 and step._has_bn and step.model.training:
            what = "a meta batch" if xn == "meta_x" else "a training batch"
            raise CmwnetValueError(f"MetaStep.step: {what} of one sample ({xn}) cannot pass a BatchNorm model in "
                                   "training mode: use batches of at least 2 (e.g. drop_last=True in the DataLoader)")
        shapes = getattr(step, "_sample_shapes", None)
        if shapes is not None and tuple(xt.shape[1:]) != shapes["x"]:
            raise CmwnetValueError(f"MetaStep.step: {xn} has samples of shape {tuple(xt.shape[1:])} but the first batch "
                                   f"had {shapes['x']}: give every batch in one shape")
        classes = getattr(step, "_num_logits", None)
        if classes is not None and yt.device.type == "cpu" and len(yt):   # no host sync on CPU labels
            low, high = int(yt.min()), int(yt.max())
            if low < 0 or high >= classes:
                raise CmwnetValueError(f"MetaStep.step: label {low if low < 0 else high} in {yn} is outside the classes "
                                       f"0..{classes - 1} of the model and weight net: give class numbers (drop "
                                       "samples marked -1)")
