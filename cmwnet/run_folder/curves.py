"""Learning curves of one or more runs in one PNG: `python -m cmwnet.curves RUN [RUN ...] [--out PNG]`.

Reads each run folder's `metrics.jsonl` (one record per epoch, written by the engine) and draws test top-1
(net, EMA, val), train loss, learning rate, the mean weight of clean vs mislabelled samples and the weight
AUC against epoch. Runs are overlaid; seeds of one setting (names that differ only by a trailing `/sN` or
`_sN`) share a colour. A folder that is not a run itself stands for every run beneath it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import CmwnetError
from .layout import METRICS, RESULT

_SEED = re.compile(r"[/_]s\d+$")


def setting_of(name: str) -> str:
    """A run's setting: its name less a trailing seed (`a/b/s1` and `a_s1` -> `a/b`, `a`)."""
    return _SEED.sub("", name)

# (title, y label, [(key, line style, what the key is)]) per panel
PANELS: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("test top-1", "top-1 (%)", [("test_top1", "-", "net"), ("ema_top1", "--", "EMA net"), ("val_top1", ":", "val")]),
    ("train loss", "loss", [("train_loss", "-", "loss optimised (weighted for weighting methods)"),
                            ("train_ce", "--", "unweighted cross-entropy")]),
    ("learning rate", "lr", [("lr", "-", "lr")]),
    ("mean sample weight", "weight", [("mean_weight_clean", "-", "clean labels"),
                                      ("mean_weight_noisy", "--", "mislabelled"),
                                      ("mean_weight", ":", "all samples")]),
    ("weight AUC (clean vs mislabelled)", "ROC AUC", [("weight_auc", "-", "AUC")]),
]


@dataclass
class Run:
    """One run's name (relative to what was asked for), its setting (the name less a seed suffix) and epochs."""
    name: str
    setting: str
    records: list[dict[str, Any]] = field(default_factory=list)
    test_split: str = "test"   # what `test_top1` was measured on (an image folder's val/: result.json's test_split)


def read_metrics(path: str) -> list[dict[str, Any]]:
    """The records of one `metrics.jsonl`; a line that is not JSON is a one-line error naming the file."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError:
        raise CmwnetError(f"{path} is not text (not UTF-8): is this a cmwnet metrics file?") from None
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == last and i > 0:   # the line a running run is writing: the epochs before it are whole
                break
            raise CmwnetError(f"{path}, line {i + 1}: not a JSON record; is this a cmwnet metrics file?") from None
        if not isinstance(record, dict):   # a list or a number parses, then broke the plots
            raise CmwnetError(f"{path}, line {i + 1}: a JSON {type(record).__name__}, not a record of one epoch "
                              "({\"epoch\": ..., ...}); is this a cmwnet metrics file?")
        epoch = record.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise CmwnetError(f"{path}, line {i + 1}: the record's epoch is {epoch!r}, not an integer; is this a "
                              "cmwnet metrics file?")
        for key, value in record.items():
            if value is not None and not isinstance(value, (int, float, str, list)):
                raise CmwnetError(f"{path}, line {i + 1}: {key} is a {type(value).__name__}, not a number")
        records.append(record)
    return records


def find_runs(paths: list[str]) -> list[Run]:
    """Every run named by `paths`: a run folder (holding metrics.jsonl) or a folder of runs beneath it."""
    runs: list[Run] = []
    seen: set[str] = set()
    for path in paths:
        if not os.path.isdir(path):
            raise CmwnetError(f"{path} is not a folder: give run folders (holding {METRICS}) or folders of runs")
        if os.path.isfile(os.path.join(path, METRICS)):
            found = [path]
            base = os.path.dirname(os.path.abspath(path))
        else:
            found = sorted(root for root, _, files in os.walk(path) if METRICS in files)
            base = os.path.abspath(path)
            if not found:
                raise CmwnetError(f"{path} holds no {METRICS}: it is not a run folder, nor a folder of runs "
                                  f"(a run writes {METRICS} after its first epoch)")
        for run in found:
            if os.path.realpath(run) in seen:   # the same run named twice (a folder and a run inside it)
                continue
            seen.add(os.path.realpath(run))
            name = os.path.relpath(os.path.abspath(run), base).replace(os.sep, "/")
            if name == ".":
                name = os.path.basename(os.path.abspath(run))
            runs.append(Run(name, setting_of(name), read_metrics(os.path.join(run, METRICS)), _test_split(run)))
    return runs


def _test_split(run: str) -> str:
    """The split a run's `test_top1` is on: result.json's `test_split` (e.g. an image folder's "val/"), else test."""
    path = os.path.join(run, RESULT)
    try:
        with open(path, encoding="utf-8") as f:
            split = json.load(f).get("test_split")
    except (OSError, ValueError, AttributeError):
        return "test"
    return str(split) if split else "test"


def setting_colours(settings: list[str]) -> dict[str, tuple]:
    """One colour per setting, every one distinct: tab10 up to 10 settings, tab20 up to 20, then evenly spaced
    hues (a table of 12 rows used to repeat tab10's first two colours)."""
    import matplotlib.pyplot as plt

    n = len(settings)
    if n <= 10:
        cmap, pick = plt.get_cmap("tab10"), lambda i: i
    elif n <= 20:
        cmap, pick = plt.get_cmap("tab20"), lambda i: (2 * i) % 20 + (2 * i) // 20   # dark shades first
    else:
        cmap, pick = plt.get_cmap("hsv"), lambda i: i / n
    return {s: cmap(pick(i)) for i, s in enumerate(settings)}


def plot_curves(runs: list[Run], path: str | os.PathLike, title: str | None = None) -> str:
    """Write the learning-curve PNG of `runs` to `path`; a panel whose keys no run recorded says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .plotting import save_figure

    settings = list(dict.fromkeys(r.setting for r in runs))
    colours = setting_colours(settings)
    epochs = [r["epoch"] + 1 for run in runs for r in run.records if "epoch" in r] or [1]
    recorded = lambda keys: any(r.get(k) is not None for run in runs for r in run.records for k, _, _ in keys)  # noqa: E731
    panels = [p for p in PANELS if recorded(p[2])] or PANELS[:1]   # a panel no run recorded is left out
    splits = sorted({run.test_split for run in runs})
    if splits != ["test"]:   # e.g. an image folder's val/ stands in for the test split: say so, not "test"
        where = splits[0] if len(splits) == 1 else " / ".join(splits)
        panels = [(f"top-1 on {where}", p[1], p[2]) if p[0] == "test top-1" else p for p in panels]
    cols = 3
    rows = -(-(len(panels) + 1) // cols)   # + 1: the legend's panel
    fig, axes = plt.subplots(rows, cols, figsize=(15, 4.25 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(panels) + 1:]:
        ax.axis("off")
    for ax, (panel, ylabel, keys) in zip(flat, panels):
        drawn = set()
        for run in runs:
            for key, style, _ in keys:
                pts = [(r["epoch"] + 1, r[key]) for r in run.records if r.get(key) is not None]
                if not pts:
                    continue
                x, y = zip(*pts)
                ax.plot(x, y, style, color=colours[run.setting], lw=1.6, marker="o", ms=3, alpha=0.85)
                drawn.add(key)
        ax.set_title(panel, fontsize=11)
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)   # one epoch range in every panel
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center",
                    fontsize=11, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
        elif len(keys) > 1:   # which line style is which key, in this panel
            ax.legend([Line2D([], [], ls=st, color="0.2") for k, st, _ in keys if k in drawn],
                      [what for k, _, what in keys if k in drawn], fontsize=9, loc="best")
        if panel == "learning rate" and drawn:
            ax.set_yscale("log")
    legend_ax = flat[len(panels)]   # the panel after the curves: which colour is which setting, clear of every curve
    legend_ax.axis("off")
    handles = [Line2D([], [], color=colours[s], lw=2.5) for s in settings]
    seeds = {s: sum(r.setting == s for r in runs) for s in settings}
    labels = [f"{s} ({seeds[s]} seeds)" if seeds[s] > 1 else s for s in settings]
    legend_ax.legend(handles, labels, loc="upper left", fontsize=10, frameon=False,
                     title="runs (one colour per setting)", title_fontsize=10)
    fig.suptitle(title or "learning curves", fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from ..errors import OneLineParser

    p = OneLineParser(prog="python -m cmwnet.curves", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help=f"run folders (holding {METRICS}) or folders of runs")
    p.add_argument("--out", default=None, help="the PNG to write (default: curves.png in the first folder given)")
    p.add_argument("--title", default=None, help="the figure's title")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = find_runs(args.runs)
    if not any(r.records for r in runs):
        raise CmwnetError(f"no epoch records in {', '.join(args.runs)}: a run writes metrics.jsonl after each epoch; "
                          "wait for its first epoch")
    out = args.out or os.path.join(args.runs[0], "curves.png")
    plot_curves(runs, out, args.title)
    print(f"{out}: {len(runs)} run{'s' if len(runs) != 1 else ''}")
    return 0


if __name__ == "__main__":
    import sys

    from ..errors import run_cli

    sys.exit(run_cli(main))
