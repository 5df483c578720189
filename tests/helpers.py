"""Tiny models shared by several test files."""
import torch.nn as nn


class TinyBN(nn.Module):
    """Linear-BN-ReLU-Linear: the smallest classifier with BatchNorm (buffers the virtual step must not touch)."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.fc = nn.Linear(6, c)

    def forward(self, x):
        return self.fc(self.body(x))
