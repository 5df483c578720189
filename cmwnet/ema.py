"""Exponential moving average of a model's parameters (the "EMA net" of CMW-Net-SL).

ema <- d * ema + (1 - d) * theta over parameters, as the authors do. Their EMA net's BatchNorm
running statistics are NOT averaged or copied: they come only from the EMA net's own train-mode
forwards (the pseudo-label forwards of CMW-Net-SL), so during the CE warm-up, when it makes none, they
stay at their initial mean 0 / variance 1. That changes what the EMA net scores in eval mode (the
lowest-loss meta set, the EMA test accuracy), so the choice is explicit (`ema.bn`):

- "own": the authors' behaviour; buffers are never copied, they move only through the EMA net's forwards.
- "copy": after every update the live model's buffers are copied in (the library default): the EMA net
  then evaluates with sensible statistics from the first epoch, whatever the method does with it
  (ERM, PRODEN or a warm-up never forward it, and "own" would leave it evaluating with mean 0 / var 1).

Either way the buffers are in `state_dict()`, so checkpoints resume exactly.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .errors import CmwnetError

BN_MODES = ("copy", "own")


class EMA:
    def __init__(self, model: nn.Module, decay: float, bn: str = "copy"):
        if bn not in BN_MODES:
            raise CmwnetError(f"unknown ema.bn '{bn}': use copy (the live net's BatchNorm statistics) or own "
                              "(the EMA net's own forwards, as the authors)")
        self.decay = float(decay)
        self.bn = bn
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        """Average the parameters (decay 1.0 freezes them); with bn="copy" also take the live buffers."""
        d = self.decay if decay is None else decay
        ema_p = list(self.model.parameters())
        live_p = [p.detach() for p in model.parameters()]
        if d < 1.0:
            torch._foreach_lerp_(ema_p, live_p, 1.0 - d)
        if self.bn == "copy":
            for e, b in zip(self.model.buffers(), model.buffers()):
                e.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
