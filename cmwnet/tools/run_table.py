"""One table of many runs, saved as Markdown and CSV: the sweep's and the demo's summary.

Each row is one setting (a label per column, e.g. `method.name = cmwnet`) and the runs of its seeds;
each metric is given as mean ± sample std over those seeds (std blank for one seed). The metrics come
from a finished run's `result.json` and the last record of its `metrics.jsonl`, so the same reader
serves runs trained here and runs trained anywhere else.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..checkpoint import atomic_write_text
from ..errors import CmwnetError
from ..paper.results import mean_std, read_history, read_result

# (key, column title, digits): what a row reports; a metric no run of the table has is left out
METRICS: list[tuple[str, str, int]] = [
    ("last_top1", "test top-1 last (%)", 2),
    ("best_top1", "test top-1 best (%)", 2),
    ("ema_last_top1", "EMA top-1 last (%)", 2),
    ("weight_auc", "weight AUC (last epoch)", 3),
    ("minutes", "minutes per run", 2),
]


def run_metrics(folder: str, result: dict[str, Any] | None = None) -> dict[str, float]:
    """The table's metrics of one finished run folder (`result`: its result.json dict, if already read)."""
    parent, name = os.path.split(os.path.normpath(folder))
    if result is None:
        result = read_result(parent, name)
        if result is None:
            raise CmwnetError(f"{folder} holds no readable result.json: is the run finished?")
    m = {"last_top1": result["last_top1"], "best_top1": result["best_top1"],
         "minutes": result.get("wall_time_s", math.nan) / 60}
    if result.get("ema"):
        m["ema_last_top1"] = result["ema"]["last_top1"]
    history = read_history(parent, name) or [{}]
    if history[-1].get("weight_auc") is not None:
        m["weight_auc"] = history[-1]["weight_auc"]
    return m


@dataclass
class Row:
    """One setting: its label per column and the metrics of each finished seed."""
    labels: dict[str, str]
    runs: list[dict[str, float]] = field(default_factory=list)
    expected: int = 0          # seeds asked for (a row with fewer finished says so)

    def stat(self, key: str) -> tuple[float, float, int]:
        values = [r[key] for r in self.runs if key in r and not math.isnan(r[key])]
        m, s = mean_std(values)
        return m, s, len(values)


def _present(rows: Sequence[Row]) -> list[tuple[str, str, int]]:
    return [(k, title, d) for k, title, d in METRICS if any(k in r for row in rows for r in row.runs)]


def _cell(m: float, s: float, digits: int) -> str:
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f}" + ("" if math.isnan(s) else f" ± {s:.{digits}f}")


def markdown(rows: Sequence[Row], title: str = "") -> str:
    """The rows as a Markdown table (mean ± std over seeds; `seeds` says finished/asked)."""
    label_cols = list(dict.fromkeys(k for row in rows for k in row.labels))
    metrics = _present(rows)
    head = label_cols + ["seeds"] + [t for _, t, _ in metrics]
    lines = [f"{title}\n"] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        seeds = f"{len(row.runs)}" + (f"/{row.expected}" if row.expected and row.expected != len(row.runs) else "")
        cells = [row.labels.get(k, "") for k in label_cols] + [seeds]
        cells += [_cell(*row.stat(k)[:2], d) for k, _, d in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[Row]) -> str:
    """The rows as CSV: per metric a mean, a std and an n column (machine-readable, full precision)."""
    label_cols = list(dict.fromkeys(k for row in rows for k in row.labels))
    metrics = _present(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(label_cols + ["seeds"] + [f"{k}_{part}" for k, _, _ in metrics for part in ("mean", "std", "n")])
    for row in rows:
        values: list[Any] = [row.labels.get(k, "") for k in label_cols] + [len(row.runs)]
        for k, _, _ in metrics:
            m, s, n = row.stat(k)
            values += ["" if math.isnan(m) else m, "" if math.isnan(s) else s, n]
        w.writerow(values)
    return buf.getvalue()


def write_tables(rows: Sequence[Row], out: str, stem: str, title: str = "") -> tuple[str, str]:
    """Write OUT/<stem>.md and OUT/<stem>.csv (atomically); returns both paths."""
    md, cs = os.path.join(out, stem + ".md"), os.path.join(out, stem + ".csv")
    atomic_write_text(markdown(rows, title), md)
    atomic_write_text(csv_text(rows), cs)
    return md, cs
