"""Multi-GPU training under torchrun: N processes (ranks) that together compute what one process computes
on the whole batch.

    torchrun --nproc_per_node 4 -m cmwnet.train --config configs/X.yaml

No DistributedDataParallel wrapper: the meta step runs the plain module functionally (virtual
parameters), which DDP's reducer does not see. Instead, for any method and config:

- Data: every rank holds the whole data set and the same seeds, hence the same epoch order and the
  same augmentation draws. Each global batch (`data.batch_size`) is augmented whole and cut into
  contiguous per-rank slices (`shard`), so random streams stay identical on every rank.
- Classifier gradients: before every optimizer step (a step pre-hook) each rank's gradient of its
  *local mean* loss is weighted by its share n_r / n of the global batch and the shares are summed
  (all-reduce). Any loss that is a mean over the batch (CE, PRODEN, label correction, ...) gives
  exactly the one-process gradient, even for a last batch that does not split evenly.
- Meta step (`MetaStep(grad_hook=ctx.meta_grad_hook)`, which is this object): the virtual step
  theta' = theta - lr * g uses the gradient of the whole global batch (a differentiable all-reduce of
  the per-rank shares, `reduce_virtual_grads`), sum-normalised weighted losses divide by the global
  weight sum (`weight_total`), every rank computes the meta loss on the whole meta batch, and the
  weight net's meta-gradients are averaged across ranks (`__call__`) before its optimizer step. The
  result equals the one-process meta-gradient (see `reduce_virtual_grads`).
- Per-sample state: what a method updates at the step's positions and lists in `per_sample_state`
  (pseudo labels, PRODEN confidences) is all-gathered after every step, so every rank holds the same
  table; per-sample losses for meta-set selection are computed batch-by-batch across ranks and summed
  (`shard_batches` + `all_sum`). A stop signal or a NaN on any rank stops every rank at the same step.
- BatchNorm normalises each rank's slice with the slice's statistics (as DDP without SyncBatchNorm);
  running statistics are taken from rank 0 at the end of each epoch, before evaluation. Evaluation is
  split across ranks and the counts are summed. Only rank 0 writes files and prints.

With one process (no WORLD_SIZE, or WORLD_SIZE=1) every function here is a no-op.
"""
from __future__ import annotations

import atexit
import os
import signal
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import CmwnetError

T = TypeVar("T")


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable to any order: the gradient of a sum that every rank receives is the
    sum of the ranks' incoming gradients, i.e. again this function (so a virtual step built with
    create_graph can be differentiated through it)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return _AllReduceSum.apply(grad)


def differentiable_all_sum(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class Distributed:
    """This process's place in a torchrun job (rank, world size, device) and the collectives the
    engine, the meta step and the methods use. `world_size == 1`: everything is a no-op."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, device: torch.device | None = None):
        self.rank, self.world_size, self.local_rank, self.device = rank, world_size, local_rank, device
        self.share = 1.0                              # this rank's share n_r / n of the current global batch
        self.chunks: list[torch.Tensor] | None = None  # the current global batch's positions, per rank

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def meta_grad_hook(self) -> "Distributed | None":
        """What `RunContext.meta_grad_hook` is set to: this object under DDP, None on one process."""
        return self if self.active else None

    # -- the engine's hooks ------------------------------------------------------------------------
    def attach(self, optimizer: torch.optim.Optimizer, batch_size: int, n_train: int, drop_last: bool) -> None:
        """Once the classifier's optimizer exists: check that the global batch (`data.batch_size`, over a
        training set of `n_train` samples) splits over the ranks, and combine gradients before each step."""
        if not self.active:
            return
        w = self.world_size
        if batch_size % w:
            raise CmwnetError(f"data.batch_size {batch_size} does not split over {w} ranks: under torchrun the "
                              f"global batch is cut into equal slices, so use a multiple of {w}")
        tail = n_train % batch_size
        if not drop_last and 0 < tail < w:
            raise CmwnetError(f"the last batch of each epoch holds {tail} sample(s), fewer than the {w} ranks: set "
                              "data.drop_last=true or pick a batch size that leaves at least one sample per rank")
        optimizer.register_step_pre_hook(self._combine_grads)

    def shard(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's contiguous slice of a global batch (and its share, for combining gradients)."""
        if not self.active:
            return x, y, pos
        n = len(pos)
        idx = torch.arange(n, device=pos.device).tensor_split(self.world_size)
        self.chunks = [pos[i] for i in idx]
        mine = idx[self.rank]
        self.share = len(mine) / n
        return x[mine], y[mine], pos[mine]

    def after_step(self, method: Any) -> None:
        """All-gather the rows of `method.per_sample_state` tables that the ranks updated this step."""
        names = getattr(method, "per_sample_state", ())
        if not self.active or not names or self.chunks is None:
            return
        chunks = self.chunks
        width = max(len(c) for c in chunks)
        for name in names:
            table = getattr(method, name)
            mine = table[chunks[self.rank]]
            buf = torch.zeros((width,) + tuple(table.shape[1:]), dtype=table.dtype, device=table.device)
            buf[:len(mine)] = mine
            parts = [torch.empty_like(buf) for _ in range(self.world_size)]
            dist.all_gather(parts, buf)
            for r, c in enumerate(chunks):
                if r != self.rank:
                    table[c] = parts[r][:len(c)]

    def agree_to_stop(self, stop_signal: int | None, first_bad_step: torch.Tensor, at_check: bool = True) -> int | None:
        """The signal to stop for, or None. One process: this process's `stop_signal`. DDP: all ranks decide
        together, only at check points (a signal reaches the ranks at different steps), and a rank that got
        none stops for SIGTERM; the first non-finite loss step (`first_bad_step`, a one-element tensor) is
        shared too, in place, so every rank fails at the same check."""
        if not self.active:
            return stop_signal
        if not at_check:
            return None
        flags = torch.stack([torch.tensor(float(stop_signal is not None), device=self.device),
                             first_bad_step.float()])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        first_bad_step.fill_(int(flags[1]))
        if not bool(flags[0] > 0):
            return None
        return int(signal.SIGTERM) if stop_signal is None else stop_signal   # SIGTERM: another rank got the signal

    def end_epoch(self, sums: Any, models: Sequence[torch.nn.Module]) -> None:
        """Before the epoch's record: sum the epoch's running sums over ranks (`sums`: tensors `correct`,
        `seen`, `loss`, `meta_loss`, `meta_count`, and per-sample `weights` / `losses` or None), take the
        BatchNorm statistics of `models` from rank 0."""
        if not self.active:
            return
        sm = sums
        for name in ("correct", "seen", "ce"):   # ce: None when resumed from an older checkpoint
            if getattr(sm, name) is not None:
                self.all_sum(getattr(sm, name))
        for name in ("loss", "meta_loss", "meta_count"):   # per-step values of the global batch: average
            t = getattr(sm, name)
            self.all_sum(t).div_(self.world_size)
        for per_sample in (sm.weights, sm.losses, getattr(sm, "sample_ce", None)):   # one rank saw each sample: NaN elsewhere
            if per_sample is None:
                continue
            seen = (~torch.isnan(per_sample)).float()
            values = torch.nan_to_num(per_sample, nan=0.0)
            self.all_sum(seen)
            self.all_sum(values)
            per_sample.copy_(torch.where(seen > 0, values / seen.clamp_min(1), torch.full_like(values, float("nan"))))
        for model in models:
            self.broadcast_buffers(model)

    # -- gradients -----------------------------------------------------------------------------------
    def _combine_grads(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook: grad <- sum over ranks of share_r * grad_r (None where no rank has one)."""
        params = [p for g in optimizer.param_groups for p in g["params"]]
        has = torch.tensor([float(p.grad is not None) for p in params], device=self.device)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * self.share
                          for p in params] + [has])
        dist.all_reduce(flat)
        offset = 0
        for p, any_grad in zip(params, flat[-len(params):].tolist()):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone() if any_grad > 0 else None
            offset += n

    def __call__(self, grads: list[torch.Tensor]) -> None:
        """MetaStep's grad_hook: average the weight net's meta-gradients across ranks (in place)."""
        if not self.active or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def reduce_virtual_grads(self, grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The virtual step's gradient of the whole global batch, differentiable in the weight net.

        g = sum_r share_r * g_r(phi), by an all-reduce whose backward is again an all-reduce. Every rank
        then computes the meta loss L on the same meta batch at the same theta' = theta - lr * g, so
        dL/dtheta' = u on every rank; back through the all-reduce each rank receives W * (-lr u) and
        turns it into W * share_r * (-lr u) . dg_r/dphi. The average over ranks is
        -lr u . sum_r share_r dg_r/dphi = dL/dphi of one process: hence `__call__` averages.
        """
        if not self.active:
            return list(grads)
        full = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
        flat = torch.cat([g.reshape(-1) for g in full]) * self.share
        flat = differentiable_all_sum(flat)
        out, offset = [], 0
        for g in full:
            out.append(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        return out

    def weight_total(self, weight_sum: torch.Tensor) -> torch.Tensor:
        """This rank's denominator for sum(w * l) / sum(w): share_r * (the global batch's sum of w), so that
        the share-weighted sum over ranks is the one-process value (differentiable when weight_sum is)."""
        if not self.active:
            return weight_sum
        if weight_sum.requires_grad:
            total = differentiable_all_sum(weight_sum)
        else:
            total = weight_sum.detach().clone()
            dist.all_reduce(total)
        return total * self.share

    # -- collectives ---------------------------------------------------------------------------------
    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over ranks, in place; returns it."""
        if self.active:
            dist.all_reduce(t)
        return t

    def shard_batches(self, batches: Iterable[T]) -> Iterator[T]:
        """Every world_size-th item of a sequence of batches, starting at this rank's index."""
        for i, item in enumerate(batches):
            if i % self.world_size == self.rank:
                yield item

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        if self.active:
            for b in module.buffers():
                dist.broadcast(b, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's value of `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """fn() on rank 0 (e.g. checking or moving the run folder), its result (or its CmwnetError) on every rank."""
        if not self.active:
            return fn()
        outcome: tuple[str, Any] | None = None
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except CmwnetError as e:
                outcome = ("error", str(e))
        kind, value = self.broadcast_object(outcome)
        if kind == "error":
            raise CmwnetError(value)
        return value

    def barrier(self) -> None:
        if self.active:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)


_SINGLE = Distributed()
_current = _SINGLE


def get() -> Distributed:
    """The process's Distributed (the no-op one unless `init` started a torchrun job)."""
    return _current


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        raise CmwnetError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} is not an integer") from None


def init(run_device: str = "auto") -> Distributed:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT), once per process: NCCL on cuda:LOCAL_RANK, or gloo on the CPU (run.device=cpu or
    no GPU). Without WORLD_SIZE > 1, returns the no-op single-process object."""
    global _current
    if _current.active:
        return _current
    world = world_size_from_env()
    if world <= 1:
        return _SINGLE
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise CmwnetError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                          "(torchrun --nproc_per_node N -m cmwnet.train ...)")
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if run_device not in ("auto", "cpu", "cuda"):
        raise CmwnetError(f"run.device={run_device!r} under torchrun: each rank uses cuda:LOCAL_RANK, so set "
                          "run.device to auto, cuda or cpu")
    use_cuda = run_device != "cpu" and torch.cuda.is_available()
    if run_device == "cuda" and not use_cuda:
        raise CmwnetError("run.device is 'cuda' but no CUDA device is available: use run.device=cpu")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise CmwnetError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s): lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    else:
        device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=rank, world_size=world)
    _current = Distributed(rank, world, local_rank, device)
    atexit.register(shutdown)
    return _current


def shutdown() -> None:
    """Leave the job (called at exit; tests that start several jobs in one process call it between)."""
    global _current
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _current = _SINGLE
