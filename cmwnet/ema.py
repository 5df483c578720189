"""Exponential moving average of a model's parameters (the "EMA net" of CMW-Net-SL).

ema <- d * ema + (1 - d) * theta over parameters, as the authors do; BatchNorm buffers are copied
from the live model (the authors' EMA net re-estimates them from its own train-mode forwards; a
copy gives the same statistics without extra forwards on the warm-up epochs).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        ema_p = list(self.model.parameters())
        live_p = [p.detach() for p in model.parameters()]
        if d < 1.0:
            torch._foreach_lerp_(ema_p, live_p, 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
