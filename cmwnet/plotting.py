"""The paper's signature picture: learned sample weight against loss, one curve per task family."""
from __future__ import annotations

import os

import torch

from .weighting import CMWNet, MCWNet, WeightNet


def curve_labels(net: WeightNet) -> list[str]:
    if isinstance(net, CMWNet):
        fam = net.families.cpu()
        names = []
        for k in range(net.num_families):
            n = int((fam == k).sum())
            size = "largest" if k == 0 else ("smallest" if k == net.num_families - 1 else "middle")
            names.append(f"family {k} ({size} classes, {n} classes)")
        return names
    if isinstance(net, MCWNet):
        return [f"class {c}" for c in range(net.num_classes)]
    return ["all classes"]


@torch.no_grad()
def weighting_curves(net: WeightNet, max_loss: float = 10.0, points: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss grid, weights of shape num_curves x points)."""
    device = next(net.parameters()).device
    grid = torch.linspace(0.0, max_loss, points, device=device)
    was_training = net.training
    net.eval()
    w = net.curves(grid)
    net.train(was_training)
    return grid.cpu(), w.float().cpu()


def plot_weighting(net: WeightNet, path: str | os.PathLike, max_loss: float = 10.0, title: str | None = None) -> str:
    """Write a PNG of weight vs loss for every family (or class) of `net`; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, w = weighting_curves(net, max_loss)
    labels = curve_labels(net)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k in range(w.shape[0]):
        ax.plot(grid.numpy(), w[k].numpy(), label=labels[k] if w.shape[0] <= 10 else None, lw=2)
    ax.set_xlabel("loss")
    ax.set_ylabel("weight")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if w.shape[0] <= 10:
        ax.legend(fontsize=8)
    ax.set_title(title or f"{net.kind} weighting function")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write a matplotlib figure as a PNG atomically (a temporary file renamed over `path`), close it."""
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return str(path)
