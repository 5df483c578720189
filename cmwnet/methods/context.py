"""The run context: what a method may read of the run it trains in, instead of the whole Trainer.

The engine builds one `RunContext` per run, hands it to the method's constructor and keeps it current:
`epoch` is set at every epoch start (and on resume), `np_rng` is replaced whenever the engine re-seeds
it. Everything else is fixed for the run. A method reads what it needs from here; the run folder,
checkpoints, metrics, signals and the epoch loop stay the engine's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, TypeVar

import numpy as np
import torch
import torch.nn as nn

if TYPE_CHECKING:
    from ..config import Config

T = TypeVar("T")


class Ranks(Protocol):
    """The collectives a method may use under torchrun (the engine hands `cmwnet.distributed.Distributed`;
    with one process both are no-ops): a method never imports the distributed layer itself."""

    def shard_batches(self, batches: Iterable[T]) -> Iterator[T]:
        """This rank's share of a sequence of batches (every world_size-th one)."""
        ...

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over ranks, in place; returns it."""
        ...


@dataclass
class RunContext:
    """The narrow view of one training run that methods read (see the module docstring)."""

    cfg: "Config"
    """The resolved config of the run; the method's own options are `cfg.method`."""
    data: Any
    """The data bundle: `train`, `test`, `meta` (the clean meta set or None), `num_classes`,
    `class_counts` (observed training labels) and `info` (the data record written to result.json)."""
    device: torch.device
    """Where the model, the data sets and every per-sample table live."""
    model: nn.Module
    """The classifier being trained."""
    optimizer: torch.optim.Optimizer
    """The classifier's optimizer; its first param group's lr is the current lr (the virtual step size)."""
    ema_model: nn.Module | None
    """The EMA copy of the classifier (`ema.decay` > 0; pseudo labels, meta-set scoring), else None."""
    generator: torch.Generator
    """The device generator: sample order, augmentation, meta batches, mixup partners. Re-seeded in
    place from (seed, epoch) at every epoch start; saved in mid-epoch checkpoints."""
    cpu_generator: torch.Generator
    """A CPU generator, re-seeded like `generator`: re-drawn balanced meta sets."""
    np_rng: np.random.Generator
    """A NumPy generator (mixup's lambda), replaced by the engine at every epoch start and on resume:
    read it at the moment of use, never keep a reference."""
    steps_per_epoch: int
    """Training steps in every epoch (`run.max_steps` applied)."""
    meta_grad_hook: Callable[[list[torch.Tensor]], None] | None
    """Under torchrun: averages the weight net's meta-gradients across ranks and makes the virtual step
    global (`cmwnet.distributed.Distributed`); None in one process."""
    ranks: Ranks
    """This process's place among the torchrun ranks: scoring every sample once across ranks
    (`shard_batches` + `all_sum`)."""
    log: Callable[[str], None]
    """Prints one line of the run's log (silent when the run is quiet)."""
    epoch: int = 0
    """The epoch in progress (0-based)."""
