"""`python -m cmwnet.paper report N RUNS_DIR`: any paper table (1-10) or Fig. 9 from a folder of finished runs.

For every cell (setting x method) the report averages the seeds found (`<setting>/<row>/s*/result.json`)
and prints, in the paper's layout, ours (mean ± sample std over seeds; a single seed has no std) with
the paper's number beside it in parentheses, once for the best epoch and once for the last epoch.
Rows the paper quotes from other work show the quoted number, marked. It writes `tableN.md`,
`tableN.csv` (one line per cell, every number) and `tableN_weighting.png`: the learned weighting
functions of the table's CMW-Net runs, one panel per setting, one curve per task family (mean over
seeds), as in the paper's figure of weighting functions.

`write_table` is the one renderer of every table and Fig. 9: the Markdown in the table's layout
(Tables 1-5 here, 6-10 by `tables_real.format_table`: several numbers per run, Fig. 9 by
`partial_figure.write_figure`: curves), the CSV (one line per cell, or per cell and number for 6-10) and
the weighting figure of the rows that learn one. The launcher (`cmwnet.paper.run`) calls it at its end.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import CmwnetError, run_cli
from .results import mean_std, read_result, seed_runs
from ..run_folder.layout import CONFIG, FINAL_WEIGHTS, RESULT


@dataclass
class Agg:
    """One cell over seeds: (mean, std) of the best and last value, of the net and of the EMA net."""
    seeds: list[int]
    best: tuple[float, float]
    last: tuple[float, float]
    ema_best: tuple[float, float] | None = None
    ema_last: tuple[float, float] | None = None
    class_last: list[float] | None = None    # the last epoch's test top-1 per class, mean over seeds

    @property
    def n(self) -> int:
        return len(self.seeds)


def _value(result: dict, key: str, metric: str) -> float:
    v = float(result[key])
    return 100.0 - v if metric == "error" else v


def aggregate(results: list[dict], metric: str = "accuracy") -> Agg | None:
    """Mean and std over seeds of best/last top-1 (as error = 100 - top-1 when metric is "error")."""
    if not results:
        return None
    seeds = [int(r.get("seed", -1)) for r in results]
    agg = Agg(seeds, mean_std([_value(r, "best_top1", metric) for r in results]),
              mean_std([_value(r, "last_top1", metric) for r in results]))
    per_class = [r["last_class_top1"] for r in results if r.get("last_class_top1")]
    if per_class and len(per_class) == len(results) and len({len(p) for p in per_class}) == 1:
        agg.class_last = [float("nan") if any(p[c] is None for p in per_class)
                          else sum(p[c] for p in per_class) / len(per_class) for c in range(len(per_class[0]))]
    emas = [r["ema"] for r in results if r.get("ema")]
    if len(emas) == len(results):
        agg.ema_best = mean_std([_value(e, "best_top1", metric) for e in emas])
        agg.ema_last = mean_std([_value(e, "last_top1", metric) for e in emas])
    return agg


def collect(table, out: str, exclude: frozenset[str] | set[str] = frozenset()) -> dict[tuple[str, str], Agg]:
    """(row key, setting key) -> Agg, from every seed folder found under `out`, except the run names in
    `exclude` (folders the runner found holding another config)."""
    found = {}
    for s in table.settings:
        for r in table.run_rows():
            results = [res for name in seed_runs(out, f"{s.key}/{r.key}") if name not in exclude
                       for res in [read_result(out, name)] if res is not None]
            agg = aggregate(results, table.metric)
            if agg is not None:
                found[(r.key, s.key)] = agg
    return found


def fmt(ms: tuple[float, float] | None, digits: int = 2) -> str:
    if ms is None or math.isnan(ms[0]):
        return "–"
    m, s = ms
    return f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def cell_text(table, row, setting, agg: Agg | None, which: str) -> str:
    paper = table.paper.get((row.key, setting.key))
    ptxt = paper.text() if paper is not None else "–"
    if row.status == "quoted":
        return f"*quoted* {ptxt}"
    if row.status == "not_reproduced":
        return f"*not reproduced* ({ptxt})"
    ours = fmt(None if agg is None else getattr(agg, which))
    return f"{ours} ({ptxt})"


def _groups(table) -> list[tuple[str, list]]:
    groups: list[tuple[str, list]] = []
    for s in table.settings:
        if not groups or groups[-1][0] != s.group:
            groups.append((s.group, []))
        groups[-1][1].append(s)
    return groups


def _md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def render_markdown(table, aggs: dict[tuple[str, str], Agg]) -> str:
    """The table in the paper's layout: for the best and the last epoch, ours (paper)."""
    what = "test error (%)" if table.metric == "error" else "test accuracy (%)"
    paper_epoch = ("the paper reports the **best** epoch" if table.paper_epoch == "best"
                   else "the paper does not say which epoch it reports")
    n_run = len(table.settings) * len(table.run_rows())
    n_done = len(aggs)
    seeds = sorted({s for a in aggs.values() for s in a.seeds})
    parts = [f"## {table.title}", "",
             f"Cells: ours = mean ± std over seeds (sample std; one seed: no std), the paper's number in "
             f"parentheses; {what}; {paper_epoch}. Finished: {n_done} of {n_run} cells we run "
             f"(seeds found: {', '.join(map(str, seeds)) or 'none'}).", ""]
    order = ("best", "last") if table.paper_epoch != "last" else ("last", "best")
    for which in order:
        tag = "the paper's metric" if which == table.paper_epoch else "for reference"
        parts += [f"### Ours at the {which} epoch ({tag}): {what}", ""]
        for group, settings in _groups(table):
            if table.transpose:
                header = [f"{group}: noise"] + [r.label for r in table.rows]
                lines = [[s.label] + [cell_text(table, r, s, aggs.get((r.key, s.key)), which) for r in table.rows]
                         for s in settings]
            else:
                header = [f"{group}: method"] + [s.label for s in settings]
                lines = [[r.label] + [cell_text(table, r, s, aggs.get((r.key, s.key)), which) for s in settings]
                         for r in table.rows]
            parts += [_md_table(header, lines), ""]
    parts += class_accuracy_markdown(table, aggs)
    parts += ranking_markdown(table, aggs)
    quoted = [r for r in table.rows if r.status != "run"]
    if quoted:
        parts.append("Not run by us: " + "; ".join(f"{r.label}: {r.source}" for r in quoted) + ".")
    parts += [f"- {n}" for n in table.notes]
    return "\n".join(parts).rstrip() + "\n"


def ranked_epoch(table) -> str:
    """The epoch whose numbers are ranked against the paper's: the paper's own, or the last where unstated."""
    return "best" if table.paper_epoch == "best" else "last"


def ranking_markdown(table, aggs: dict[tuple[str, str], Agg]) -> list[str]:
    """Kendall's tau of our row order against the paper's, per setting (ranking.py)."""
    from .ranking import render, table_rankings

    if not aggs:
        return []
    which = ranked_epoch(table)
    return [render(table, table_rankings(table, aggs, which), which)]


def class_accuracy_markdown(table, aggs: dict[tuple[str, str], Agg]) -> list[str]:
    """Long-tailed settings: the last epoch's test top-1 per class (head first) and the mean of the head, middle
    and tail thirds of the classes: what a re-balancing method is for, which the overall number hides."""
    parts: list[str] = []
    for s in table.settings:
        if not (s.overrides.get("data") or {}).get("imbalance"):
            continue
        found = [(r, aggs[(r.key, s.key)].class_last) for r in table.run_rows()
                 if (r.key, s.key) in aggs and aggs[(r.key, s.key)].class_last]
        if not found:
            continue
        c = len(found[0][1])
        third = max(c // 3, 1)
        groups = {"head": range(0, third), "middle": range(third, c - third), "tail": range(c - third, c)}
        header = [f"{s.group} {s.label}: method"] + [f"class {k}" for k in range(c) if c <= 10] + \
            [f"{g} ({len(idx)})" for g, idx in groups.items()]
        lines = []
        for r, acc in found:
            cells = [f"{a:.1f}" for a in acc] if c <= 10 else []
            cells += [f"{sum(acc[i] for i in idx) / max(len(idx), 1):.1f}" for idx in groups.values()]
            lines.append([r.label] + cells)
        parts += [f"### Test top-1 per class at the last epoch (%, mean over seeds; class 0 has the most training "
                  f"images)", "", _md_table(header, lines), ""]
    return parts


CSV_FIELDS = ["table", "group", "setting", "setting_label", "row", "row_label", "status", "metric", "n_seeds", "seeds",
              "best_mean", "best_std", "last_mean", "last_std", "ema_best_mean", "ema_best_std", "ema_last_mean",
              "ema_last_std", "paper_mean", "paper_std", "paper_epoch", "ranked_epoch", "rank_ours", "rank_paper",
              "kendall_tau", "class_last_top1"]


def csv_rows(table, aggs: dict[tuple[str, str], Agg]) -> list[dict[str, Any]]:
    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"

    from .ranking import table_rankings

    which = ranked_epoch(table)
    rankings = {rk.setting: rk for rk in table_rankings(table, aggs, which)}
    rows = []
    for s in table.settings:
        rk = rankings.get(s.key)
        for r in table.rows:
            a = aggs.get((r.key, s.key))
            p = table.paper.get((r.key, s.key))
            pair = lambda ms: (None, None) if ms is None else ms  # noqa: E731
            bm, bs = pair(a and a.best)
            lm, ls = pair(a and a.last)
            ebm, ebs = pair(a and a.ema_best)
            elm, els = pair(a and a.ema_last)
            rows.append({"table": table.number, "group": s.group, "setting": s.key, "setting_label": s.label,
                         "row": r.key, "row_label": r.label, "status": r.status, "metric": table.metric,
                         "n_seeds": a.n if a else 0, "seeds": " ".join(map(str, a.seeds)) if a else "",
                         "best_mean": num(bm), "best_std": num(bs), "last_mean": num(lm), "last_std": num(ls),
                         "ema_best_mean": num(ebm), "ema_best_std": num(ebs), "ema_last_mean": num(elm),
                         "ema_last_std": num(els), "paper_mean": num(p.mean if p else None),
                         "paper_std": num(p.std if p else None), "paper_epoch": table.paper_epoch,
                         "ranked_epoch": which, "rank_ours": rk.ours.get(r.key, "") if rk else "",
                         "rank_paper": rk.paper.get(r.key, "") if rk else "",
                         "kendall_tau": num(rk.tau) if rk and rk.tau is not None else "",
                         "class_last_top1": " ".join(f"{v:.2f}" for v in a.class_last) if a and a.class_last else ""})
    return rows


# Tables 6-10: one line per cell and number (top-1/top-5 on each validation set), ours from the epoch
# and model the table selects (`Table.select`)
SELECTED_CSV_FIELDS = ["table", "group", "setting", "setting_label", "row", "row_label", "status", "column",
                       "column_label", "select", "n_seeds", "ours_mean", "ours_std", "paper_mean", "paper_std",
                       "paper_epoch"]


def selected_csv_rows(table, values: dict[tuple[str, str, str], list[float]]) -> list[dict[str, Any]]:
    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"

    rows = []
    for s in table.settings:
        for r in table.rows:
            for c in table.columns:
                vals = values.get((r.key, s.key, c.key)) or []
                m, sd = mean_std(vals) if vals else (None, None)
                p = table.paper_number(r.key, s.key, c.key)
                rows.append({"table": table.number, "group": s.group, "setting": s.key, "setting_label": s.label,
                             "row": r.key, "row_label": r.label, "status": r.status, "column": c.key,
                             "column_label": c.label, "select": table.select, "n_seeds": len(vals),
                             "ours_mean": num(m), "ours_std": num(sd), "paper_mean": num(p.mean),
                             "paper_std": num(p.std), "paper_epoch": table.paper_epoch})
    return rows


def render_csv(table, numbers) -> str:
    """The CSV of a table: `numbers` are the cells' Aggs (Tables 1-5, Fig. 9) or, for a table that selects
    one epoch per run (6-10), (row, setting, column) -> values over seeds."""
    buf = io.StringIO()
    selected = table.select is not None
    w = csv.DictWriter(buf, SELECTED_CSV_FIELDS if selected else CSV_FIELDS)
    w.writeheader()
    w.writerows(selected_csv_rows(table, numbers) if selected else csv_rows(table, numbers))
    return buf.getvalue()


# -- the weighting figure ----------------------------------------------------------------------------
def weighting_figure(table, out: str, path: str, max_loss: float = 10.0) -> str | None:
    """One panel per (figure row, setting): each task family's weight vs loss, mean over seeds.
    Returns the path, or None when no run of the figure rows saved a weight net."""
    import numpy as np

    from ..run_folder.plotting import save_figure, weighting_curves
    from ..weighting import load_weighting

    panels = []  # (title, grid, curves (K x P), n_seeds, position)
    groups = _groups(table)
    for i, row_key in enumerate(table.figure_rows):
        row = next((r for r in table.rows if r.key == row_key), None)
        if row is None:
            continue
        for g, (group, settings) in enumerate(groups):
            for j, s in enumerate(settings):
                curves, grid = [], None
                wpaths = sorted(glob.glob(os.path.join(out, s.key, row_key, "s*", "weight_net.pt")))
                hi = _seen_loss_range(wpaths, max_loss)   # the losses the nets saw, not a fixed 0-10
                for wpath in wpaths:
                    try:
                        net = load_weighting(wpath)
                    except CmwnetError:
                        continue
                    grid, w = weighting_curves(net, hi)
                    w = w.numpy().copy()
                    fam = getattr(net, "families", None)
                    if fam is not None:  # a head no class uses (e.g. balanced data: one family) is not drawn
                        used = set(fam.cpu().tolist())
                        w[[k for k in range(w.shape[0]) if k not in used]] = np.nan
                    curves.append(w)
                if curves and len({c.shape for c in curves}) == 1:
                    panels.append((f"{row.label}\n{group} {s.label}", grid.numpy(), np.mean(curves, 0), len(curves),
                                   (i * len(groups) + g, j)))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = len(table.figure_rows) * len(groups)
    n_cols = max(len(s) for _, s in groups)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(max(3.4 * n_cols, 6.0), 3.0 * n_rows + 0.8), squeeze=False,
                             sharey=True)
    for ax in axes.flat:
        ax.set_visible(False)
    import textwrap

    names = {0: "family 0 (largest classes)", 1: "family 1", 2: "family 2 (smallest classes)"}
    styles = ("-", "--", "-.")   # families that overlap (e.g. two at weight 0) stay visible
    for title, grid, w, n, (r, c) in panels:
        ax = axes[r][c]
        ax.set_visible(True)
        for k in range(w.shape[0]):
            ax.plot(grid, w[k], lw=1.6, ls=styles[k % 3], label=names.get(k, f"family {k}") if w.shape[0] <= 3 else None)
        ax.set_title(f"{title} ({n} seed{'s' if n > 1 else ''})", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, float(grid[-1]))
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    first = axes[panels[0][4][0]][panels[0][4][1]]
    handles, labels = first.get_legend_handles_labels()
    fig.supylabel("weight", fontsize=10)
    title = f"{table.title.split(':')[0]}: learned weighting functions by task family"
    width = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(title, max(30, int(10 * width))), fontsize=11)   # wrapped to the figure's width
    if handles:   # below the panels, where it hides no curve, under the x label
        fig.supxlabel("training loss (weight-net input)", fontsize=10, y=0.09)
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    else:
        fig.supxlabel("training loss (weight-net input)", fontsize=10)
        fig.tight_layout()
    return save_figure(fig, path)


def _seen_loss_range(weight_paths: list[str], fallback: float) -> float:
    """The 99.5th percentile of the last epoch's weight-net input losses of these runs (final_weights.npz beside
    each weight_net.pt), or `fallback` when none is there."""
    import numpy as np

    from ..run_folder.sample_table import UNREADABLE

    seen = []
    for p in weight_paths:
        f = os.path.join(os.path.dirname(p), FINAL_WEIGHTS)
        try:
            with np.load(f) as z:
                losses = z["losses"]
        except (UNREADABLE + (FileNotFoundError,)):
            continue
        seen.append(losses[~np.isnan(losses)])
    values = np.concatenate(seen) if seen else np.zeros(0)
    return max(float(np.quantile(values, 0.995)), 0.25) if values.size else fallback


def write_table(table, out: str, to: str | None = None, figure: bool = True,
                exclude: frozenset[str] | set[str] = frozenset(), seeds: list[int] | tuple[int, ...] | None = None,
                missing: dict[str, str] | None = None, names: dict[tuple[str, str], list[str]] | None = None) -> str:
    """The one renderer of every table and Fig. 9: writes STEM.md, STEM.csv and, with `figure`, the
    weighting figure of the rows that learn one (STEM_weighting.png) and the learning curves, into `to`
    (default `out`); returns the text to print. Runs named in `exclude` are left out; `seeds` (the seeds
    asked for; default those found), `missing` (row -> why it did not run) and `names` (Tables 6-10: the runs
    of each cell to read; default every finished one) are what the launcher knows."""
    from ..checkpoint import atomic_write_text
    from . import partial_figure, tables_real

    to = to or out
    base = os.path.join(to, table.stem)
    banner = smoke_banner(out)
    if table.kind == "real":
        names = tables_real.finished_names(table, out) if names is None else names
        if seeds is None:
            seeds = sorted({int(n.rsplit("/s", 1)[1]) for runs in names.values() for n in runs})
        numbers = tables_real.collect(table, out, names, exclude)
        md = banner + tables_real.format_table(table, numbers, missing or {}, seeds)
    elif table.kind == "figure":
        rates, found = partial_figure.found_runs(out)
        if not rates:
            return banner + f"## {table.title}\n\nno finished run under {out}\n"
        if partial_figure.rates_of(table) != rates and seeds is None:   # the report: the rates that ran
            switch, table = table.switch_epoch, partial_figure.figure9(rates, table.scale)
            table.switch_epoch = switch
        seeds = found if seeds is None else seeds
        md = banner + partial_figure.write_figure(out, partial_figure.rates_of(table), seeds, table.switch_epoch, to)
        numbers = collect(table, out, exclude)
    else:
        numbers = collect(table, out, exclude)
        from .row_evidence import evidence_markdown

        evidence = evidence_markdown(table, out)
        md = banner + render_markdown(table, numbers) + ("\n" + "\n".join(evidence) if evidence else "")
    written = [base + ".csv"]
    if table.kind != "figure":   # the figure's Markdown (fig9.md, beside fig9.png) is written with its curves
        atomic_write_text(md, base + ".md")
        written.insert(0, base + ".md")
    atomic_write_text(render_csv(table, numbers), base + ".csv")
    if figure:
        fig = weighting_figure(table, out, base + "_weighting.png") if table.figure_rows else None
        if fig:
            written.append(fig)
        if table.kind != "figure":
            curves = setting_curves(table, out, os.path.join(to, f"{table.stem}_curves"))
            if curves:
                written.append(f"{len(curves)} learning-curve PNGs in {os.path.dirname(curves[0])}")
    return md + ("" if md.endswith("\n") else "\n") + "\nwritten: " + ", ".join(written) + "\n"


def setting_curves(table, out: str, folder: str) -> list[str]:
    """One learning-curve PNG per setting (`cmwnet.run_folder.curves`: every method and seed of the setting
    overlaid): test top-1, train loss, lr, mean weights and weight AUC against epoch."""
    from ..run_folder.curves import find_runs, plot_curves

    written = []
    for setting in table.settings:
        runs_dir = os.path.join(out, setting.key)
        if not os.path.isdir(runs_dir):
            continue
        try:
            runs = find_runs([runs_dir])
        except CmwnetError:   # no cell of this setting finished an epoch yet
            continue
        os.makedirs(folder, exist_ok=True)
        title = f"Table {table.number}: {getattr(setting, 'group', '')} {getattr(setting, 'label', setting.key)}"
        written.append(plot_curves(runs, os.path.join(folder, f"{setting.key.replace('/', '_')}.png"),
                                   title=title.replace("  ", " ").strip()))
    return written


SMOKE_BANNER = "SMOKE RUN: generated data, a few steps; numbers are meaningless (they check the pipeline, not the paper)"


def smoke_banner(out: str) -> str:
    """The banner above a report of smoke runs (a run capped by run.max_steps), so that their numbers are
    never read beside the paper's as a result; '' for real runs."""
    import yaml

    for path in glob.glob(os.path.join(out, "**", CONFIG), recursive=True):
        try:
            with open(path, encoding="utf-8") as f:
                cfg = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(cfg, dict) and (cfg.get("run") or {}).get("max_steps") is not None:
            bar = "!" * len(SMOKE_BANNER)
            return f"{bar}\n{SMOKE_BANNER}\n{bar}\n\n"
    return ""


def tables_with_runs(out: str, scale: str = "paper", settings: list[str] | None = None) -> list[str]:
    """Keys of the tables (and Fig. 9) with at least one finished run under OUT (at that scale)."""
    from . import partial_figure
    from .cpu_tables import SPECS
    from .registry import KEYS, get_table, kind

    found = []
    keys = KEYS if scale == "paper" else tuple(SPECS[scale]) + (("fig9",) if scale == "cpu" else ())
    for key in keys:
        try:
            spec = get_table(key, scale, settings)
        except CmwnetError:        # a table without those settings (another table, or Tables 6-10, Fig. 9)
            continue
        if kind(spec) == "figure":
            hit = bool(partial_figure.found_runs(out)[0])
        else:
            hit = any(seed_runs(out, f"{s.key}/{r.key}") for s in spec.settings for r in spec.run_rows())
        if hit:
            found.append(key)
    return found


def check_results_readable(spec, out: str) -> None:
    """A result.json that exists but cannot be read (truncated, not JSON, not a mapping) used to show as an
    unfinished cell: name it instead."""
    import json

    from .registry import kind

    if kind(spec) == "figure":
        import glob

        names = [os.path.relpath(os.path.dirname(p), out)
                 for p in glob.glob(os.path.join(out, "*_q*", "*", "s*", RESULT))]
    else:
        names = [n for s in spec.settings for r in spec.run_rows() for n in seed_runs(out, f"{s.key}/{r.key}")]
    for name in names:
        path = os.path.join(out, name, RESULT)
        try:
            with open(path) as f:
                ok = isinstance(json.load(f), dict)
        except ValueError:
            ok = False
        if not ok:
            raise CmwnetError(f"{path} is truncated or not a result file: delete it and rerun the cell (the run "
                              "resumes from its checkpoint), or move the folder away")


def main(argv: list[str] | None = None) -> int:
    """`python -m cmwnet.paper.report RUNS_DIR [--table N]` (the same as `python -m cmwnet.paper report`)."""
    p = argparse.ArgumentParser(prog="python -m cmwnet.paper.report", description=__doc__.splitlines()[0])
    p.add_argument("runs_dir", help="the folder the table runner wrote (its --out)")
    p.add_argument("--table", action="append", help="table number 1-10 or fig9 (repeatable; default: every table "
                   "with at least one finished run in RUNS_DIR)")
    p.add_argument("--to", help="where to write tableN.md/.csv/_weighting.png (default: RUNS_DIR)")
    p.add_argument("--no-figure", action="store_true", help="skip the weighting-function figure")
    a = p.parse_args(argv)
    return report_main(a.runs_dir, a.table, a.to, not a.no_figure)


def report_main(runs_dir: str, keys: list[str] | None, to: str | None = None, figure: bool = True,
                scale: str = "paper", settings: list[str] | None = None) -> int:
    from .registry import get_table, normalise

    keys = None if keys is None else [normalise(k) for k in keys]
    # a table without that scale (or those settings): its one-line error before anything is read
    named = {key: get_table(key, scale, settings) for key in keys or []}

    if not os.path.isdir(runs_dir):
        raise CmwnetError(f"no folder {runs_dir}: give the --out folder of a table run")
    found = tables_with_runs(runs_dir, scale, settings)
    if not (keys or found):
        raise CmwnetError(f"no finished run of any table under {runs_dir} (looked for <setting>/<method>/s<seed>/"
                          "result.json)")
    for key in keys or []:   # a named table with nothing here would print (and write) a table of dashes
        if key not in found:
            other = f"; tables with runs there: {', '.join(found)}" if found else ""
            raise CmwnetError(f"no finished run of table {key} under {runs_dir} (looked for <setting>/<row>/s<seed>/"
                              f"result.json): give the --out folder of a `python -m cmwnet.paper run {key}`{other}")
    keys = keys or found
    specs = {key: named.get(key) or get_table(key, scale, settings) for key in keys}
    for key in keys:
        check_results_readable(specs[key], runs_dir)
    for key in keys:
        print(write_table(specs[key], runs_dir, to, figure=figure))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
