"""A run's figures, made from its files alone (so they can be redrawn after the fact):

- `weighting_evolution.png`: the weighting curve of each task family (or class) after every epoch, coloured
  by epoch (from weighting_history.npz);
- `class_weights.png`: the last epoch's mean weight per class, clean and mislabelled samples apart where
  the true labels are known (from final_weights.npz);
- `transition_matrix.png`: the realised label-noise transition matrix P(observed | true) (result.json), where
  some labels are wrong.

Titles state the realised noise rate (the share of training labels that are wrong), not only the nominal
rate. The engine writes them at the end of a run with `run.plot: true`; `python -m cmwnet.inspect RUN
--figures` redraws them.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..checkpoint import read_json
from .plotting import family_members, name_list, save_figure
from .sample_table import load_sample_table
from .weight_history import load_history
from .layout import FINAL_WEIGHTS, RESULT

EVOLUTION, CLASS_WEIGHTS, TRANSITION = "weighting_evolution.png", "class_weights.png", "transition_matrix.png"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def describe(result: dict[str, Any]) -> str:
    """'cmwnet on digits, 40% asym noise (6.1% of labels wrong)' from result.json."""
    data = result.get("data") or {}
    noise = data.get("noise") or {}
    head = f"{result.get('method', '?')} on {data.get('dataset', '?')}"
    kind, rate, realised = noise.get("kind", "none"), noise.get("rate"), noise.get("realised_rate")
    if kind == "real":
        return head + " (the data set's own label noise, rate unknown)"
    bits = []
    if kind not in ("none", None) and rate:
        bits.append(f"{rate * 100:g}% {kind} noise")
    elif kind == "file":
        bits.append("labels from a file")
    if realised is not None:
        bits.append(f"{realised * 100:.1f}% of labels wrong")
    return head + (f" ({', '.join(bits)})" if bits else "")


def _curve_names(net, n_curves: int, class_names: Sequence[str]) -> list[str]:
    fam = getattr(net, "families", None)
    if fam is not None:
        fam = fam.cpu().tolist()
        return [f"family {k} (classes: {name_list(family_members(fam, k, class_names), 5)})" for k in range(n_curves)]
    if n_curves == 1:
        return ["all classes"]
    return [f"class {class_names[k] if k < len(class_names) else k}" for k in range(n_curves)]


def plot_evolution(history: dict[str, np.ndarray], curve_names: Sequence[str], path: str, title: str,
                   present: Sequence[int] | None = None) -> str:
    """Small multiples, one panel per curve; one line per epoch, dark (first) to yellow (last)."""
    plt = _plt()
    from matplotlib import cm, colors

    curves = list(present) if present is not None else list(range(history["weights"].shape[1]))
    curves = curves[:12]   # a per-class net of 100 classes: the first 12 panels stay readable
    epochs = history["epochs"] + 1   # shown 1-based, as on screen
    ncol = min(3, len(curves))
    nrow = -(-len(curves) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol + 1.2, 3.3 * nrow + 0.8), squeeze=False)
    norm = colors.Normalize(vmin=epochs.min(), vmax=max(epochs.max(), epochs.min() + 1))
    cmap = cm.viridis
    for i, (ax, k) in enumerate(zip(axes.flat, curves)):
        for e in range(len(epochs)):
            ax.plot(history["grid"][e], history["weights"][e, k], color=cmap(norm(epochs[e])), lw=1.4)
        ax.set_title(curve_names[k] if k < len(curve_names) else f"curve {k}", fontsize=9)
        ax.set_ylim(0, 1.02)
        # the losses of the last epoch: epochs before meta-learning saw none and were drawn to a fallback of 10,
        # which used to leave most of each panel empty
        ax.set_xlim(0, float(history["grid"][-1][-1]))
        ax.set_xlabel("training loss (weight-net input)", fontsize=8)
        if i % ncol == 0:
            ax.set_ylabel("learned weight", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.9)
    bar.set_label("epoch (1 = first)")
    from matplotlib.ticker import MaxNLocator

    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    fig.suptitle(title + ": weighting after each epoch", fontsize=10)
    return save_figure(fig, path, dpi=110)


def _wrapped(title: str, fig) -> str:
    """The title broken into lines that fit the figure's width (a long run title was clipped on narrow figures)."""
    import textwrap

    return textwrap.fill(title, width=max(30, int(fig.get_figwidth() * 11)))


def plot_class_weights(table: dict[str, np.ndarray], path: str, title: str) -> str:
    """Per class (observed label), the mean last-epoch weight; clean / mislabelled bars apart where known."""
    plt = _plt()
    names = [str(c) for c in table["class_names"]]
    c = len(names)
    w, obs, true = table["weights"], table["labels"], table["true_labels"]
    seen = ~np.isnan(w)
    known = bool((true >= 0).all()) and bool((obs != true).any())

    def means(mask):
        return np.array([np.nan if not (mask & (obs == k)).any() else float(w[mask & (obs == k)].mean())
                         for k in range(c)])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * c + 2), 4.4))
    x = np.arange(c)
    if known:
        clean, bad = seen & (obs == true), seen & (obs != true)
        ax.bar(x - 0.2, means(clean), 0.4, color="0.55", label=f"clean labels ({int(clean.sum())})")
        ax.bar(x + 0.2, means(bad), 0.4, color="tab:red", label=f"mislabelled ({int(bad.sum())})")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    else:
        ax.bar(x, means(seen), 0.7, color="tab:blue")
    ax.set_xticks(x)
    step = max(1, c // 40)
    ax.set_xticklabels([n if k % step == 0 else "" for k, n in enumerate(names)], rotation=45 if c > 6 else 0,
                       ha="right" if c > 6 else "center", fontsize=8)
    ax.set_xlabel("observed class", fontsize=9)
    ax.set_ylabel("mean weight, last epoch", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(_wrapped(title + ": mean weight per class", fig), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_transition(transition: Sequence[Sequence[float]], class_names: Sequence[str], path: str, title: str) -> str:
    """The realised P(observed j | true i) as a heatmap, the numbers written in for up to 12 classes."""
    plt = _plt()
    t = np.asarray(transition, dtype=float)
    c = len(t)
    names = [str(n) for n in class_names][:c] + [str(k) for k in range(len(class_names), c)]
    fig, ax = plt.subplots(figsize=(max(4.8, 0.42 * c + 2.4), max(4.2, 0.42 * c + 1.6)))
    im = ax.imshow(t, cmap="Blues", vmin=0, vmax=1)
    if c <= 12:
        for i in range(c):
            for j in range(c):
                if t[i, j] > 0.0005:
                    ax.text(j, i, f"{t[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if t[i, j] > 0.6 else "black")
    step = max(1, c // 30)
    ticks = np.arange(0, c, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([names[k] for k in ticks], rotation=45 if c > 6 else 0, ha="right" if c > 6 else "center",
                       fontsize=7)
    ax.set_yticklabels([names[k] for k in ticks], fontsize=7)
    ax.set_xlabel("observed label", fontsize=9)
    ax.set_ylabel("true label", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="P(observed | true)")
    ax.set_title(title + ":\nrealised noise transition", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_run_figures(run_dir: str, result: dict[str, Any] | None = None) -> list[str]:
    """Whichever of the three figures the run's files allow; returns the paths written. `result`: result.json's
    dict (the engine passes it before writing result.json, which stays the run's last file)."""
    if result is None:
        result_path = os.path.join(run_dir, RESULT)
        result = read_json(result_path, "result file") if os.path.exists(result_path) else {}
    title = describe(result)
    class_names = result.get("class_names") or []
    written = []
    table = None
    weights_path = os.path.join(run_dir, FINAL_WEIGHTS)
    if os.path.exists(weights_path):
        table = load_sample_table(weights_path)
        class_names = class_names or [str(n) for n in table["class_names"]]
        written.append(plot_class_weights(table, os.path.join(run_dir, CLASS_WEIGHTS), title))
    history = load_history(run_dir)
    net_path = os.path.join(run_dir, "weight_net.pt")
    if history is not None and len(history["epochs"]) and os.path.exists(net_path):
        from ..weighting import load_weighting

        net = load_weighting(net_path)
        fam = getattr(net, "families", None)
        present = sorted(set(fam.cpu().tolist())) if fam is not None else None
        names = _curve_names(net, history["weights"].shape[1], class_names)
        written.append(plot_evolution(history, names, os.path.join(run_dir, EVOLUTION), title, present))
    noise = (result.get("data") or {}).get("noise") or {}
    if noise.get("transition") is not None and noise.get("realised_rate"):   # no noise: an identity, not drawn
        written.append(plot_transition(noise["transition"], class_names, os.path.join(run_dir, TRANSITION), title))
    return written
