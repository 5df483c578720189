"""Multi-expert ResNet-32 for SADE (Zhang, Hooi, Hong, Feng, "Self-Supervised Aggregation of Diverse
Experts for Test-Agnostic Long-Tailed Recognition", NeurIPS 2022), in the layout SADE uses on CIFAR-LT
(RIDE's multi-expert ResNet-32): a shared stem and first stage; per expert, its own second and third
stage (24 and 48 channels with `reduce_dimension`, SADE's CIFAR setting; 32 and 64 without), global
pooling and a cosine classifier whose output is multiplied by `scale` (30).

`model(x)` returns the aggregated logits sum_k w_k z_k, w = the `expert_weights` buffer (1/K each
until the test-time aggregation sets it; a buffer, so checkpoints and the EMA copy carry it). Training
needs each expert's logits: inside `with experts_output(model):` the forward returns (B, K, C). The flag
is a plain attribute, so the functional forwards of the bi-level step (higher, torch.func) see it too.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MODELS
from .resnet_cifar import BasicBlock, NormedLinear


class _ChannelPadShortcut(nn.Module):
    """Option-A shortcut between any two widths: subsample by 2, zero-pad the new channels evenly."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride = stride
        self.before = (planes - in_planes) // 2
        self.after = planes - in_planes - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.before, self.after))


def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
    blocks = []
    for i in range(n):
        s, c_in = (stride, in_planes) if i == 0 else (1, planes)
        block = BasicBlock(c_in, planes, s)
        if s != 1 or c_in != planes:
            block.shortcut = _ChannelPadShortcut(c_in, planes, s)
        blocks.append(block)
    return nn.Sequential(*blocks)


class SADEResNet(nn.Module):
    head_name = "heads"   # `virtual_params: head` moves every expert's classifier

    def __init__(self, num_classes: int = 10, in_channels: int = 3, num_blocks: int = 5, width: int = 16,
                 num_experts: int = 3, reduce_dimension: bool = True, normed: bool = True, scale: float = 30.0):
        super().__init__()
        w = width
        w2, w3 = (3 * w // 2, 3 * w) if reduce_dimension else (2 * w, 4 * w)
        self.num_experts = num_experts
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1 = _stage(w, w, num_blocks, 1)
        self.layer2s = nn.ModuleList([_stage(w, w2, num_blocks, 2) for _ in range(num_experts)])
        self.layer3s = nn.ModuleList([_stage(w2, w3, num_blocks, 2) for _ in range(num_experts)])
        head = (lambda: NormedLinear(w3, num_classes)) if normed else (lambda: nn.Linear(w3, num_classes))
        self.heads = nn.ModuleList([head() for _ in range(num_experts)])
        self.scale = float(scale) if normed else 1.0   # SADE/RIDE: s = 1 for a plain linear head
        self.register_buffer("expert_weights", torch.full((num_experts,), 1.0 / num_experts))
        self.return_experts = False
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def expert_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, C): every expert's logits."""
        shared = self.layer1(F.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer2, layer3, head in zip(self.layer2s, self.layer3s, self.heads):
            h = F.adaptive_avg_pool2d(layer3(layer2(shared)), 1).flatten(1)
            outs.append(self.scale * head(h))
        return torch.stack(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.expert_logits(x)
        if self.return_experts:
            return z
        return torch.einsum("k,bkc->bc", self.expert_weights.to(z.dtype), z)


@contextmanager
def experts_output(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `model(x)` returns every expert's logits (B, K, C)."""
    old = model.return_experts
    model.return_experts = True
    try:
        yield model
    finally:
        model.return_experts = old


@MODELS.register("sade_resnet32")
def sade_resnet32(num_classes: int = 10, in_channels: int = 3, num_experts: int = 3, reduce_dimension: bool = True,
                  normed: bool = True, scale: float = 30.0) -> SADEResNet:
    return SADEResNet(num_classes, in_channels, 5, 16, num_experts, reduce_dimension, normed, scale)


@MODELS.register("sade_resnet8")
def sade_resnet8(num_classes: int = 10, in_channels: int = 3, num_experts: int = 3, reduce_dimension: bool = True,
                 normed: bool = True, scale: float = 30.0) -> SADEResNet:
    """One block per stage, width 8: the SADE code path at a size CPU tests can afford."""
    return SADEResNet(num_classes, in_channels, 1, 8, num_experts, reduce_dimension, normed, scale)
