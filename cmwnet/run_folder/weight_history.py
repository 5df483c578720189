"""`weighting_history.npz`: the weight net's curves after every epoch, to see how the weighting evolved.

Small by design: per epoch, each curve (task family, class or the one curve) sampled at 64 losses over
[0, that epoch's 99.5% loss quantile] (10 before any loss is seen). Keys: `epochs` (E, 0-based as in
metrics.jsonl), `grid` (E x 64 losses), `weights` (E x curves x 64). Rewritten atomically after each epoch;
a snapshot for an epoch already present (a resumed run redoing it) replaces the old one, so epochs
never repeat.
"""
from __future__ import annotations

import io
import os

import numpy as np
import torch

from .. import checkpoint   # by module: the atomic writer is looked up at call time

HISTORY = "weighting_history.npz"
POINTS = 64


def snapshot_range(losses: np.ndarray | None, fallback: float = 10.0) -> float:
    seen = np.asarray([]) if losses is None else losses[~np.isnan(losses)]
    return max(float(np.quantile(seen, 0.995)), 0.25) if seen.size else fallback


@torch.no_grad()
def curves_on(net, hi: float, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    device = next(net.parameters()).device
    grid = torch.linspace(0.0, hi, points, device=device)
    was = net.training
    net.eval()
    w = net.curves(grid).float().cpu().numpy()
    net.train(was)
    return grid.cpu().numpy(), w


def load_history(run_dir: str) -> dict[str, np.ndarray] | None:
    path = os.path.join(run_dir, HISTORY)
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def append_snapshot(run_dir: str, epoch: int, net, losses: np.ndarray | None) -> None:
    """Add (or replace) epoch `epoch`'s curves in weighting_history.npz."""
    grid, w = curves_on(net, snapshot_range(losses))
    old = load_history(run_dir)
    epochs, grids, weights = [epoch], [grid], [w]
    if old is not None and old["weights"].shape[1:] == w.shape:
        keep = old["epochs"] < epoch
        epochs = list(old["epochs"][keep]) + epochs
        grids = list(old["grid"][keep]) + grids
        weights = list(old["weights"][keep]) + weights
    buffer = io.BytesIO()
    np.savez_compressed(buffer, epochs=np.asarray(epochs, np.int64), grid=np.stack(grids).astype(np.float32),
                        weights=np.stack(weights).astype(np.float32))
    checkpoint.atomic_write_bytes(buffer.getvalue(), os.path.join(run_dir, HISTORY))
