"""The fast path: whole training steps replayed as CUDA graphs, optional bf16 autocast and channels-last.

Why: at CIFAR sizes a training step is bound by kernel launches on a large GPU (an ERM step of
ResNet-32 is a few hundred small kernels, a second-order meta iteration a few thousand). Capturing a
whole step -- forward, backward and optimizer step; for a meta iteration also the virtual step, the
meta loss and the weight net's update -- and replaying it removes the per-kernel launch cost.
`python -m cmwnet.tools.bench` measures what it buys.

What a captured step may do, and what the callers therefore keep outside the graph:
- static shapes and addresses: tensor inputs are copied into static buffers before each replay. A new
  input shape or memory layout, or a new value of a Python scalar the kernels bake in (learning
  rates, optimizer settings, a loss's schedule state, train/eval mode: the step's `signature`), means
  a new capture, after `warmup` eager steps with that key; a few graphs are kept (e.g. one for the
  full batch, one for an epoch's short last batch), the least recently used is dropped first.
- no host syncs inside (`.item()`, printing a tensor, a Python branch on a tensor's value).
- randomness is drawn outside (augmentation, mixup's lambda and partner permutation): the graph sees
  it as inputs, so fast and eager runs consume the same random streams. Ops inside a step that draw
  from the default CUDA generator (dropout) stay random: `torch.cuda.graph` registers that
  generator's state with the graph and advances it on every replay.
- Python-side state changes (counters) run only at capture, so step functions keep bookkeeping outside.
- any other state a step reads must be a tensor updated in place (parameters, BN buffers, optimizer
  state, pseudo labels) or be visible to the signature (a tensor *replaced* by a new one, e.g. by a
  loss's `set_epoch` or a loaded checkpoint, is caught by identity; a closure's Python float is not).
- optimizers are captured as they are (their `step()` inside the graph); those with a `capturable`
  option (Adam, AdamW, ...) are switched to it first. SGD needs nothing.

Warm-up and capture run on one side stream (as the PyTorch CUDA-graph notes ask) with cuDNN's
autotuner on for these static shapes and, by default, TF32 off for convolutions (the TF32 kernel
cuDNN picks for the convolution double-backward of the meta step is slow; see the bench). Where
capture fails (an op that syncs, an optimizer that cannot be captured, no CUDA), the step runs eagerly
after a one-line notice: the fast path never changes what a step computes, only how it is launched.

Config: `run.fast` (auto: graphs on a GPU | on | off), `run.amp` (off | bf16: autocast of the
classifier's forwards, losses and the weight net stay fp32), `run.channels_last`. bf16 and
channels-last change numerics (within run-to-run noise: see the bench and its accuracy check); fast
alone does not, beyond kernel choice.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

import torch
import torch.nn as nn

from .errors import CmwnetError

FAST_MODES = ("auto", "on", "off")
AMP_MODES = ("off", "bf16")


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    """A config value among `allowed`; YAML reads on/off as true/false, so booleans are accepted too."""
    if value is True:
        return "on"
    if value is False or value is None:
        return "off"
    text = str(value).strip().lower()
    if text not in allowed:
        raise CmwnetError(f"unknown {key} '{value}': use one of {', '.join(allowed)}")
    return text


def parse_fast(value: Any) -> str:
    """`run.fast`: auto (CUDA graphs where the device is a GPU), on, or off."""
    return _choice(value, FAST_MODES, "run.fast")


def parse_amp(value: Any) -> str:
    """`run.amp`: off, or bf16 (autocast of the classifier's forward passes)."""
    if value is True or str(value).strip().lower() == "on":
        raise CmwnetError("run.amp takes a precision, not on/off: use run.amp=bf16 (or off)")
    return _choice(value, AMP_MODES, "run.amp")


# -- signatures: the Python values a captured step bakes in ------------------------------------------
_SCALARS = (bool, int, float, str, type(None))


def optimizer_signature(opt: torch.optim.Optimizer | None) -> Hashable:
    """Hyper-parameters of every param group (lr, momentum, ...) and the identity of the first and
    last parameter's state tensors (a loaded checkpoint replaces them)."""
    if opt is None:
        return None
    groups = tuple(tuple((k, v) for k, v in sorted(g.items()) if k != "params" and isinstance(v, _SCALARS))
                   for g in opt.param_groups)
    params = [p for g in opt.param_groups for p in g["params"]]
    state = []
    for p in (params[:1] + params[-1:]) if params else []:
        st = opt.state.get(p, {})
        state.append(tuple((k, id(v)) for k, v in sorted(st.items()) if torch.is_tensor(v)))
    return groups, tuple(state)


def module_signature(module: nn.Module | Any) -> Hashable:
    """Plain scalar attributes, tensor attributes and buffers (by identity) and train/eval mode of a
    module and its children: what a loss's `set_epoch` or a weight net's `with_families` may change."""
    if not isinstance(module, nn.Module):
        return type(module).__name__
    items: list[Any] = []
    for name, sub in module.named_modules():
        for key, value in sorted(vars(sub).items()):
            if isinstance(value, _SCALARS):
                items.append((name, key, value))
            elif torch.is_tensor(value):
                items.append((name, key, id(value)))
        items.extend((name, key, id(b)) for key, b in sub._buffers.items() if b is not None)
    return tuple(items)


def make_capturable(opt: torch.optim.Optimizer | None) -> None:
    """Switch an optimizer that has a `capturable` option to it (its step counters move to the
    parameters' device), so its `step()` can be captured. Only for GPU parameters (CPU optimizers
    refuse the option); idempotent and cheap."""
    if opt is None:
        return
    for group in opt.param_groups:
        if "capturable" not in group or any(p.device.type == "cpu" for p in group["params"]):
            continue
        group["capturable"] = True
        for p in group["params"]:
            st = opt.state.get(p)
            if st and torch.is_tensor(st.get("step")) and st["step"].device != p.device:
                st["step"] = st["step"].to(p.device)


def release_capturable(opt: torch.optim.Optimizer | None) -> None:
    """Undo `make_capturable` on a CPU run (a checkpoint written by a GPU fast-path run says capturable,
    which CPU optimizers refuse)."""
    if opt is None:
        return
    for group in opt.param_groups:
        if group.get("capturable") and all(p.device.type == "cpu" for p in group["params"]):
            group["capturable"] = False


# -- options -----------------------------------------------------------------------------------------
@dataclass
class FastPath:
    """How steps run on `device`: as CUDA graphs (`graphs`), under bf16 autocast (`amp`), channels-last.

    `FastPath.from_run(cfg.run, device)` reads the config; `FastPath.plain(device)` runs everything
    eagerly in fp32 (what `fast=off` gives). `forward`, `input` and `graph` are what steps use.
    """

    device: torch.device
    graphs: bool = False
    amp: torch.dtype | None = None
    channels_last: bool = False
    conv_tf32: bool = False
    warmup: int = 3
    notify: Callable[[str], None] = field(default=_notice, repr=False)
    check_steps: int = 1       # replays of each new graph compared with the eager step (0: none)
    checks: dict = field(default_factory=dict, repr=False)   # step name -> what its replay check found

    @classmethod
    def plain(cls, device: torch.device | str) -> "FastPath":
        return cls(torch.device(device))

    @classmethod
    def from_run(cls, run: Any, device: torch.device, notify: Callable[[str], None] = _notice) -> "FastPath":
        """From `run.fast` (auto | on | off), `run.amp` (off | bf16) and `run.channels_last`."""
        mode = parse_fast(getattr(run, "fast", "auto"))
        amp = parse_amp(getattr(run, "amp", "off"))
        cuda = device.type == "cuda"
        graphs = cuda and mode != "off"
        if mode == "on" and not cuda:
            notify(f"fast path: CUDA graphs need a CUDA device; steps run eagerly on {device}")
        if graphs and _distributed():
            notify("fast path: CUDA graphs are off under torchrun (the steps hold collectives); steps run eagerly")
            graphs = False
        return cls(device, graphs=graphs, amp=torch.bfloat16 if amp == "bf16" else None,
                   channels_last=bool(getattr(run, "channels_last", False)), notify=notify)

    @property
    def describe(self) -> str:
        parts = ["graphs" if self.graphs else "eager", "bf16" if self.amp is not None else "fp32"]
        if self.channels_last:
            parts.append("channels-last")
        return "+".join(parts)

    def prepare_models(self, *models: nn.Module | None) -> None:
        """Convert models to channels-last in place (before their optimizer has any state)."""
        if self.channels_last:
            for m in models:
                if m is not None:
                    m.to(memory_format=torch.channels_last)

    def input(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """An image batch in the layout the model expects."""
        if x is not None and self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """`fn(x)` (a model, or a functional forward) under autocast when `amp` is set; logits come back
        in fp32 so losses, weights and the weight net stay in fp32. The autocast weight cache is off:
        a CUDA graph must not keep casts made at capture (and one forward uses each weight once)."""
        if self.amp is None:
            return fn(x)
        with torch.autocast(self.device.type, dtype=self.amp, cache_enabled=False):
            out = fn(x)
        return out.float()

    def graph(self, fn: Callable[..., dict[str, torch.Tensor]], name: str,
              signature: Callable[[], Hashable] | None = None,
              prepare: Callable[[], None] | None = None,
              state: Callable[[], list[torch.Tensor]] | None = None) -> "StepGraph":
        """`fn` as a `StepGraph`; `state()` lists the tensors the step updates (see `step_state`), which its
        first replays are checked against an eager step on (none given: no check)."""
        return StepGraph(fn, name, self, signature=signature, prepare=prepare, state=state)


def step_state(*owners: nn.Module | torch.optim.Optimizer | torch.Tensor | None) -> list[torch.Tensor]:
    """Every tensor a training step may update: the modules' parameters and buffers (BatchNorm statistics),
    the optimizers' state (momenta, Adam moments, step counts) and any tensor given itself (pseudo labels)."""
    out: list[torch.Tensor] = []
    for o in owners:
        if o is None:
            continue
        if torch.is_tensor(o):
            out.append(o)
        elif isinstance(o, nn.Module):
            out += list(o.parameters()) + [b for b in o.buffers()]
        elif isinstance(o, torch.optim.Optimizer):
            out += [v for st in o.state.values() for v in st.values() if torch.is_tensor(v)]
    return out


# replay vs eager: |replay - eager| <= ATOL + RTOL * max|eager| per tensor (fp32 kernels; bf16 autocast: looser)
CHECK_TOLERANCE = {"fp32": (1e-6, 1e-4), "bf16": (1e-4, 1e-2)}


def max_mismatch(eager: list[torch.Tensor], replayed: list[torch.Tensor], atol: float, rtol: float
                 ) -> tuple[int, float] | None:
    """(index, |difference|) of the first tensor pair beyond the tolerance, or None when all agree."""
    for i, (e, r) in enumerate(zip(eager, replayed)):
        if e.shape != r.shape:
            return i, float("inf")
        e, r = e.detach().float(), r.detach().float()
        if e.numel() == 0:
            continue
        if not (torch.isfinite(e).all() and torch.isfinite(r).all()):
            if not torch.equal(torch.isnan(e), torch.isnan(r)) or not torch.equal(e[~torch.isnan(e)], r[~torch.isnan(r)]):
                return i, float("nan")
            continue
        diff = float((e - r).abs().max())
        if diff > atol + rtol * float(e.abs().max()):
            return i, diff
    return None


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def _cudnn_settings(conv_tf32: bool) -> Iterator[None]:
    """cuDNN autotuning on (shapes are static; off when deterministic algorithms are asked for) and TF32
    for cuDNN as chosen, restored afterwards. Uses the `allow_tf32` switch (PyTorch refuses to read it
    once the newer per-op precision settings were mixed in: TF32 is then left as the user set it)."""
    cudnn = torch.backends.cudnn
    old_bench = cudnn.benchmark
    try:
        old_tf32 = cudnn.allow_tf32
    except RuntimeError:
        old_tf32 = None
    try:
        cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        if old_tf32 is not None:
            cudnn.allow_tf32 = conv_tf32
        yield
    finally:
        cudnn.benchmark = old_bench
        if old_tf32 is not None:
            cudnn.allow_tf32 = old_tf32


def _describe(t: Any) -> Hashable:
    if t is None:
        return None
    if not torch.is_tensor(t):
        raise TypeError(f"graph inputs must be tensors or None, got {type(t).__name__}")
    return tuple(t.shape), t.dtype, t.stride(), t.device


@dataclass
class _Captured:
    graph: Any
    static_in: list
    static_out: dict


class StepGraph:
    """`fn(*tensors, **flags) -> dict of tensors`, replayed as a CUDA graph when the fast path is on.

    Tensor arguments (or None) are data: copied into static buffers before each replay. Keyword
    arguments are hashable Python flags that select what the step does (part of the capture key, with
    the tensors' shapes and layouts and `signature()`). A key is captured at its `warmup + 1`-th call
    (the calls before run eagerly, as the warm-up the capture needs); at most `max_graphs` graphs are
    kept, the least recently used one is dropped first (a run needs one for its batches and maybe one
    for a short last batch or meta batch; an old learning rate's graph goes). Outputs are returned as
    fresh tensors. When graphs are off, or after a failed capture, calls run `fn` directly.
    """

    def __init__(self, fn: Callable[..., dict[str, torch.Tensor]], name: str, fast: FastPath,
                 signature: Callable[[], Hashable] | None = None, prepare: Callable[[], None] | None = None,
                 max_graphs: int = 2, state: Callable[[], list[torch.Tensor]] | None = None):
        self.fn, self.name, self.fast = fn, name, fast
        self.state = state
        self._checks_left: dict[Hashable, int] = {}
        self.enabled = bool(fast.graphs) and fast.device.type == "cuda"
        self.signature = signature or (lambda: None)
        self.prepare = prepare
        self.max_graphs = max(1, int(max_graphs))
        self.captures = 0
        self.replays = 0
        self.fallback_reason: str | None = None
        self._graphs: OrderedDict[Hashable, _Captured] = OrderedDict()
        self._seen: dict[Hashable, int] = {}
        self._stream: Any = None

    @property
    def captured(self) -> bool:
        return bool(self._graphs)

    def disable(self, reason: str) -> None:
        """Run eagerly from now on, with a one-line notice."""
        if self.enabled:
            self.fast.notify(f"fast path: {self.name} runs eagerly ({reason})")
        self.enabled = False
        self.fallback_reason = reason
        self.release()

    def release(self) -> None:
        """Drop every captured graph and its memory."""
        while self._graphs:
            self._drop(next(iter(self._graphs)))

    def _drop(self, key: Hashable) -> None:
        captured = self._graphs.pop(key)
        if hasattr(captured.graph, "reset"):
            captured.graph.reset()

    def __call__(self, *inputs: torch.Tensor | None, **flags: Hashable) -> dict[str, torch.Tensor]:
        if not self.enabled:
            return self.fn(*inputs, **flags)
        if self.prepare is not None:
            self.prepare()
        key = (tuple(_describe(t) for t in inputs), tuple(sorted(flags.items())), self.signature())
        if key in self._graphs:
            self._graphs.move_to_end(key)
            if self._checks_left.get(key, 0) > 0:
                return self._checked_replay(key, self._graphs[key], inputs, flags)
            return self._replay(self._graphs[key], inputs)
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        if seen <= self.fast.warmup:
            return self._eager(inputs, flags)
        try:
            captured = self._capture(inputs, flags)
        except Exception as e:  # noqa: BLE001 - any capture failure falls back to the eager step
            first = (str(e).strip().splitlines() or [""])[0][:160]
            self.disable(f"CUDA graph capture failed: {type(e).__name__}: {first}")
            return self.fn(*inputs, **flags)
        self._graphs[key] = captured
        self.captures += 1
        self._checks_left[key] = self.fast.check_steps if self.state is not None else 0
        if self._checks_left[key] > 0:
            return self._checked_replay(key, captured, inputs, flags)
        return self._replay(captured, inputs)

    # -- the three ways a call runs ------------------------------------------------------------------
    def _side_stream(self) -> "torch.cuda.Stream":
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.fast.device)
        return self._stream

    def _checked_replay(self, key: Hashable, captured: _Captured, inputs: tuple, flags: dict) -> dict[str, torch.Tensor]:
        """The step twice from the same state: eagerly, then (state restored) as the replay; the two must agree
        on every updated tensor (`state()`) and every output, to `CHECK_TOLERANCE`. On a mismatch the eager
        result is kept, the graphs are dropped and the step runs eagerly from now on, with one line saying so
        (and `fast.checks[name]` for result.json): a silently diverging replay would make every run wrong."""
        self._checks_left[key] -= 1
        tensors = self.state()
        before = [t.detach().clone() for t in tensors]
        cuda = self.fast.device.type == "cuda"
        rng = torch.cuda.get_rng_state(self.fast.device) if cuda else None
        eager_out = self._eager(inputs, flags)
        after_eager = [t.detach().clone() for t in tensors]
        with torch.no_grad():
            for t, b in zip(tensors, before):
                t.copy_(b)
        if rng is not None:
            torch.cuda.set_rng_state(rng, self.fast.device)
        out = self._replay(captured, inputs)
        names = sorted(k for k in eager_out if eager_out[k] is not None and out.get(k) is not None)
        atol, rtol = CHECK_TOLERANCE["bf16" if self.fast.amp is not None else "fp32"]
        bad = max_mismatch(after_eager + [eager_out[k] for k in names], [t.detach() for t in tensors] +
                           [out[k] for k in names], atol, rtol)
        if bad is None:
            self.fast.checks[self.name] = (f"replay = eager step (every updated tensor and output within "
                                           f"{atol:g} + {rtol:g} x its largest value)")
            return out
        i, diff = bad
        what = f"updated tensor {i} of {len(tensors)}" if i < len(tensors) else f"output '{names[i - len(tensors)]}'"
        with torch.no_grad():   # the eager step is the trusted one
            for t, e in zip(tensors, after_eager):
                t.copy_(e)
        reason = f"its CUDA-graph replay differed from the eager step on the same inputs and state ({what}: |diff| {diff:.3g})"
        self.fast.checks[self.name] = "mismatch: " + reason + "; ran eagerly from then on"
        self.disable(reason)
        return eager_out

    def _eager(self, inputs: tuple, flags: dict) -> dict[str, torch.Tensor]:
        """A warm-up step: eager, on the side stream the capture will use, with the capture's settings."""
        if self.fast.device.type != "cuda":   # the replay check's eager step, tested on the CPU
            return self.fn(*inputs, **flags)
        current = torch.cuda.current_stream(self.fast.device)
        side = self._side_stream()
        side.wait_stream(current)
        with _cudnn_settings(self.fast.conv_tf32), torch.cuda.stream(side):
            out = self.fn(*inputs, **flags)
        current.wait_stream(side)
        return out

    def _capture(self, inputs: tuple, flags: dict) -> _Captured:
        while len(self._graphs) >= self.max_graphs:
            self._drop(next(iter(self._graphs)))  # least recently used first
        static_in = [None if t is None else t.detach().clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(self.fast.device)
        try:
            with _cudnn_settings(self.fast.conv_tf32), torch.cuda.graph(graph, stream=self._side_stream()):
                out = self.fn(*static_in, **flags)
        finally:
            torch.cuda.set_stream(current)  # a capture that failed midway may leave its stream current
        if not isinstance(out, dict) or not all(v is None or torch.is_tensor(v) for v in out.values()):
            raise TypeError("a step function must return a dict of tensors")
        return _Captured(graph, static_in, out)

    def _replay(self, captured: _Captured, inputs: tuple) -> dict[str, torch.Tensor]:
        for buf, t in zip(captured.static_in, inputs):
            if buf is not None:
                buf.copy_(t)
        captured.graph.replay()
        self.replays += 1
        return {k: (v.clone() if v is not None else None) for k, v in captured.static_out.items()}
