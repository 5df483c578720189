"""Learning rate as a pure function of the epoch, so a resumed run needs no scheduler state."""
from __future__ import annotations

import math

from .config import OptimCfg
from .errors import CmwnetError

KINDS = ("multistep", "constant", "cosine", "cosine_restarts")


def lr_at(epoch: int, cfg: OptimCfg) -> float:
    """The learning rate of `epoch` (0-based), set once at the start of the epoch.

    multistep: lr * gamma^(milestones passed); cosine: optional linear warm-up from 0 over
    `warmup_epochs`, then half a cosine to 0 over `epochs`; cosine_restarts: constant before `start`,
    then SGDR cycles of t0, t0*t_mult, ... epochs down to eta_min (PyTorch's
    CosineAnnealingWarmRestarts stepped with epoch - start, as the authors' Tables 4-5 code does).
    """
    s, lr0 = cfg.schedule, cfg.lr
    if s.kind == "constant":
        return lr0
    if s.kind == "multistep":
        return lr0 * s.gamma ** sum(epoch >= m for m in s.milestones)
    if s.kind == "cosine":
        w = s.warmup_epochs
        if w > 1 and epoch < w:
            return lr0 * epoch / (w - 1)
        t = epoch - max(w - 1, 0)
        return 0.5 * lr0 * (1 + math.cos(math.pi * t / cfg.epochs))
    if s.kind == "cosine_restarts":
        if epoch < s.start:
            return lr0
        t = epoch - s.start
        if s.t_mult == 1:
            t_cur, t_i = t % s.t0, s.t0
        else:
            n = int(math.log(t / s.t0 * (s.t_mult - 1) + 1, s.t_mult))
            t_cur = t - s.t0 * (s.t_mult ** n - 1) / (s.t_mult - 1)
            t_i = s.t0 * s.t_mult ** n
        return s.eta_min + (lr0 - s.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
    from .errors import unknown_name
    raise unknown_name("lr schedule (optim.schedule.kind)", s.kind, KINDS)


def validate(cfg: OptimCfg) -> None:
    if cfg.schedule.kind not in KINDS:
        lr_at(0, cfg)
    if cfg.epochs < 1:
        raise CmwnetError(f"optim.epochs must be >= 1, got {cfg.epochs}")
    if cfg.lr <= 0:
        raise CmwnetError(f"optim.lr must be > 0, got {cfg.lr}")
