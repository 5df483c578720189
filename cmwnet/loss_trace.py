"""Every training sample's training loss, summed over the epochs of a run: the "loss averaged over epochs".

A sample's loss under the final net says how the net ends up seeing it; the same loss averaged over every epoch of
training says how hard it was to fit all along. Mislabelled samples are fitted late (the net learns the clean
patterns first), so the averaged loss separates them better than the last one in regimes where the final net has
partly memorised them (Arpit et al., ICML 2017; the small-loss criterion of Co-teaching, Han et al., NeurIPS
2018, and O2U-Net, Huang et al., ICCV 2019, rank by losses gathered over training for this reason).

The loss recorded is the plain cross-entropy of the observed label on the training forward pass (train mode, the
augmented image), whatever the method optimises; it costs one cross-entropy per batch. The sums ride in the
checkpoint, so a resumed run averages over all its epochs. samples.npz gets `mean_train_losses` (NaN where a
sample was never trained on) and `last_train_losses` (the last epoch's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class LossTrace:
    """Per training sample: the sum of its epoch losses, and in how many epochs it was trained on."""
    total: torch.Tensor     # (N,) float64
    epochs: torch.Tensor    # (N,) int64
    first_epoch: int = 0    # the epoch the sums start at (> 0: resumed from a checkpoint written before the trace)

    @classmethod
    def zeros(cls, n: int, device: torch.device, first_epoch: int = 0) -> "LossTrace":
        return cls(torch.zeros(n, dtype=torch.float64, device=device), torch.zeros(n, dtype=torch.long, device=device),
                   first_epoch)

    def add_epoch(self, epoch_losses: torch.Tensor) -> None:
        """One epoch's per-sample losses (NaN: not trained on in that epoch)."""
        seen = ~torch.isnan(epoch_losses)
        self.total += torch.where(seen, epoch_losses, torch.zeros_like(epoch_losses)).to(self.total.dtype)
        self.epochs += seen.long()

    def mean(self) -> np.ndarray:
        """Per sample, the mean epoch loss (NaN where never trained on)."""
        total, count = self.total.cpu().numpy(), self.epochs.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "epochs": self.epochs, "first_epoch": self.first_epoch}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, n: int, device: torch.device, epoch: int) -> "LossTrace":
        """The trace of a checkpoint; a checkpoint from before the trace existed (or of another size) starts a new
        one at `epoch`, which `first_epoch` records."""
        if not state or len(state.get("total", ())) != n:
            return cls.zeros(n, device, first_epoch=epoch)
        return cls(state["total"].to(device), state["epochs"].to(device), int(state.get("first_epoch", 0)))

    def arrays(self, last_epoch: torch.Tensor | None) -> dict[str, np.ndarray]:
        """The columns samples.npz carries: the mean over epochs, the last epoch's, and from which epoch."""
        out = {"mean_train_losses": self.mean(), "train_loss_first_epoch": np.asarray(self.first_epoch, np.int64)}
        if last_epoch is not None:
            out["last_train_losses"] = last_epoch.float().cpu().numpy()
        return out
