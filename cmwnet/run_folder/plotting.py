"""The paper's signature picture: learned sample weight against loss, one curve per task family."""
from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
import torch

from ..weighting import CMWNet, MCWNet, WeightNet


def name_list(names: Sequence[str], most: int = 4) -> str:
    """'cat, dog, fox' or 'cat, dog, fox, +7 more': a legend names a family's classes without running off."""
    names = [str(n) for n in names]
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most - 1]) + f", +{len(names) - most + 1} more"


def family_members(families: Sequence[int], k: int, class_names: Sequence[str] | None = None) -> list[str]:
    """The classes of task family k, by name (or index when no names are known)."""
    return [str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)
            for c, f in enumerate(families) if int(f) == k]


def curve_labels(net: WeightNet, class_names: Sequence[str] | None = None) -> list[str]:
    """One legend entry per curve; a CMW-Net family names its classes (`class_names`, else indices)."""
    if isinstance(net, CMWNet):
        fam = net.families.cpu().tolist()
        names = []
        for k in range(net.num_families):
            members = family_members(fam, k, class_names)
            size = "largest" if k == 0 else ("smallest" if k == net.num_families - 1 else "middle")
            names.append(f"family {k} ({size} classes: {name_list(members)})")
        return names
    if isinstance(net, MCWNet):
        return [f"class {class_names[c] if class_names is not None and c < len(class_names) else c}"
                for c in range(net.num_classes)]
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


def split_losses(losses: np.ndarray, labels: np.ndarray, clean_labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-sample losses (NaN: not weighted) as {"clean labels", "mislabelled"} where some observed label
    differs from the true one, else {"training samples"}: the histograms beneath a weighting plot."""
    seen = ~np.isnan(losses)
    if clean_labels is None or bool((labels == clean_labels).all()):
        return {"training samples": losses[seen]}
    ok = labels == clean_labels
    return {"clean labels": losses[seen & ok], "mislabelled": losses[seen & ~ok]}


def load_final_losses(paths: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """The last epoch's per-sample losses saved by the engine (final_weights.npz) of one or more runs
    (seeds), split as `split_losses` does; {} when none saved losses."""
    parts: dict[str, list[np.ndarray]] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        z = np.load(path)
        if "losses" not in z:
            continue
        clean = z["clean_labels"] if "clean_labels" in z else None
        for k, v in split_losses(z["losses"], z["labels"], clean).items():
            parts.setdefault(k, []).append(v)
    if "mislabelled" in parts and "training samples" in parts:   # seeds with and without noise: one pool
        parts.setdefault("clean labels", []).extend(parts.pop("training samples"))
    return {k: np.concatenate(v) for k, v in parts.items()}


def loss_range(losses: dict[str, np.ndarray], fallback: float = 10.0) -> float:
    """The loss axis's end: the 99.5% quantile of the observed losses (so the curves are drawn where the net
    has samples, not extrapolated), else `fallback`."""
    pooled = np.concatenate([v for v in losses.values()]) if losses else np.zeros(0)
    if pooled.size == 0:
        return fallback
    return max(float(np.quantile(pooled, 0.995)), 0.25)


def draw_weighting(ax, nets: Sequence[WeightNet], losses: dict[str, np.ndarray], hi: float,
                   fontsize: float = 9, class_names: Sequence[str] | None = None) -> list:
    """Onto `ax`: each net's curves (one colour per task family, seeds alike) over [0, hi], above a
    histogram of the observed losses (clean / mislabelled apart where known) on its own right-hand axis
    (samples per bin, grey: not a weight). Returns the legend handles (curves, then histograms) for the
    caller to place clear of the curves."""
    grid = torch.linspace(0, hi, 200)
    handles = []
    if losses:
        hx = ax.twinx()
        bins = np.linspace(0, hi, 40)
        for k, (label, v) in enumerate(losses.items()):
            _, _, patches = hx.hist(np.clip(v, 0, hi), bins=bins, alpha=0.3, color=["0.45", "tab:red"][k % 2],
                                    label=f"{label} ({len(v)} samples)")
            handles.append(patches[0])
        tallest = max((bar.get_height() for c in hx.containers for bar in c), default=1.0)
        hx.set_ylim(0, 3 * max(tallest, 1.0))   # the histograms fill the lower third, under the curves
        hx.set_ylabel("samples per loss bin (histogram)", fontsize=fontsize, color="0.4")
        hx.tick_params(axis="y", labelsize=fontsize - 1, colors="0.4")
        hx.yaxis.set_major_locator(_ticks_below(tallest))
    labels_done: set[int] = set()
    colours = plt_colours()
    for net in nets:
        with torch.no_grad():
            was = net.training
            net.eval()
            w = net.curves(grid.to(next(net.parameters()).device)).float().cpu().numpy()
            net.train(was)
        names = curve_labels(net, class_names)
        fam = getattr(net, "families", None)
        present = sorted(set(fam.cpu().tolist())) if fam is not None else list(range(w.shape[0]))
        for k in present:
            line, = ax.plot(grid.numpy(), w[k], color=colours[k % len(colours)], lw=1.8,
                            label=names[k] if k < len(names) else f"curve {k}")
            if k not in labels_done and len(present) <= 10:
                labels_done.add(k)
                handles.insert(len(labels_done) - 1, line)
    ax.set_zorder(2)
    ax.patch.set_visible(False)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training loss (weight-net input)", fontsize=fontsize)
    ax.set_ylabel("learned weight", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    ax.grid(alpha=0.3)
    return handles


def _ticks_below(tallest: float):
    """Count ticks only up to the tallest bar (the axis runs to 3x that so the bars stay low)."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    ticks = [t for t in MaxNLocator(3, integer=True).tick_values(0, max(tallest, 1.0)) if 0 <= t <= tallest * 1.05]
    return FixedLocator(ticks or [0])


def plt_colours() -> list[str]:
    return ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
            "tab:cyan", "tab:gray", "tab:red"]


def plot_weighting(net: WeightNet, path: str | os.PathLike, losses: dict[str, np.ndarray] | None = None,
                   title: str | None = None, max_loss: float = 10.0,
                   class_names: Sequence[str] | None = None) -> str:
    """Write a PNG of weight vs loss for every family (or class) of `net`, the loss axis fitted to the
    observed `losses` (see `split_losses`) with their histogram beneath, the legend below the plot; returns
    the path. Without losses the axis spans [0, max_loss]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = losses or {}
    hi = loss_range(losses, max_loss)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    handles = draw_weighting(ax, [net], losses, hi, class_names=class_names)
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, fontsize=8.5,
                  frameon=False)
    import textwrap

    ax.set_title(textwrap.fill(title or f"{net.kind} weighting function", 62), fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def run_title(method: str, data: str, imbalance: float = 1.0, noise_kind: str = "none", noise_rate: float = 0.0,
              realised_rate: float | None = None) -> str:
    """'cmwnet on digits (imbalance factor 10, 40% asym noise, 6.1% of labels wrong)': what a reader needs,
    not a folder name. The realised rate is the share of training labels actually changed, which can be far
    from the nominal rate (asymmetric noise flips only some classes)."""
    bits = []
    if imbalance and imbalance != 1:
        bits.append(f"imbalance factor {imbalance:g}")
    if noise_kind != "none" and noise_rate:
        bits.append(f"{noise_rate * 100:g}% {noise_kind} noise")
    if realised_rate is not None and (noise_kind != "none" or realised_rate > 0):
        bits.append(f"{realised_rate * 100:.1f}% of labels wrong")
    return f"{method} on {data}" + (f" ({', '.join(bits)})" if bits else "") + ": learned weighting"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def refuse_non_png(path: str | os.PathLike) -> None:
    """A figure is a PNG: refuse a name that is not one, and never write over a file that is not one (an --out
    naming a run's metrics.jsonl or final_weights.npz used to destroy it)."""
    from ..errors import CmwnetError

    name = os.fspath(path)
    if not name.lower().endswith(".png"):
        raise CmwnetError(f"{name}: figures are written as PNG, give a file name ending in .png")
    if os.path.isfile(name):
        with open(name, "rb") as f:
            head = f.read(8)
        if head and head != PNG_SIGNATURE:
            raise CmwnetError(f"{name} exists and is not a PNG image: it was left as it is; give another file name")


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write a matplotlib figure as a PNG atomically (a temporary file renamed over `path`), close it."""
    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_write_bytes, refuse_folder

    try:
        refuse_folder(path)
        refuse_non_png(path)
        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(buf.getvalue(), path)   # a temporary file in the folder, renamed: removed on failure
    return str(path)
