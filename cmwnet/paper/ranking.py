"""Does our table order its methods as the paper does? Per setting, Kendall's tau between our row order (mean over
seeds) and the paper's, over the rows both have, and the pairs of rows the two orders disagree on.

Tau-b (ties in either order count as neither concordant nor discordant, and shrink the denominator): +1 is the
paper's order, -1 its reverse, 0 no relation. A table's metric decides the direction (error: lower is better);
the ranking is the same either way since both sides use the same metric.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Ranking:
    """One setting: tau over `n` rows, our and the paper's rank of each row (1 = best), the pairs that disagree."""
    setting: str
    n: int
    tau: float | None
    ours: dict[str, int] = field(default_factory=dict)
    paper: dict[str, int] = field(default_factory=dict)
    disagree: list[tuple[str, str]] = field(default_factory=list)   # (a, b): the paper has a above b, we b above a


def kendall_tau_b(x: list[float], y: list[float]) -> float | None:
    """Kendall's tau-b of two equally long score lists (None below 2 items or when one side is all ties)."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"kendall_tau_b needs two lists of one length, got {n} and {len(y)}")
    conc = disc = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + ties_x) * (conc + disc + ties_y))
    return None if denom == 0 else (conc - disc) / denom


def ranks(scores: dict[str, float], higher_is_better: bool) -> dict[str, int]:
    """Competition ranks (1 = best; equal scores share a rank)."""
    ordered = sorted(scores.values(), reverse=higher_is_better)
    return {k: 1 + ordered.index(v) for k, v in scores.items()}


def rank_setting(setting: str, ours: dict[str, float], paper: dict[str, float], higher_is_better: bool) -> Ranking:
    """The agreement of our scores with the paper's over the rows both have."""
    common = [k for k in ours if k in paper]
    if len(common) < 2:
        return Ranking(setting, len(common), None)
    tau = kendall_tau_b([ours[k] for k in common], [paper[k] for k in common])
    sign = 1 if higher_is_better else -1
    disagree = [(a, b) if sign * (paper[a] - paper[b]) > 0 else (b, a)
                for i, a in enumerate(common) for b in common[i + 1:]
                if (ours[a] - ours[b]) * (paper[a] - paper[b]) < 0]
    return Ranking(setting, len(common), tau, ranks({k: ours[k] for k in common}, higher_is_better),
                   ranks({k: paper[k] for k in common}, higher_is_better), disagree)


def table_rankings(table, aggs: dict, which: str) -> list[Ranking]:
    """Per setting of a Tables 1-5 table: our `which` ("best" or "last") means against the paper's numbers."""
    higher = table.metric != "error"
    out = []
    for s in table.settings:
        ours, paper = {}, {}
        for r in table.run_rows():
            agg = aggs.get((r.key, s.key))
            p = table.paper.get((r.key, s.key))
            if agg is not None and p is not None and p.mean is not None:
                ours[r.key] = getattr(agg, which)[0]
                paper[r.key] = p.mean
        out.append(rank_setting(s.key, ours, paper, higher))
    return out


def render(table, rankings: list[Ranking], which: str) -> str:
    """Markdown lines: per setting tau, n and the disagreeing pairs (by row label)."""
    labels = {r.key: r.label for r in table.rows}
    lines = [f"### Ranking against the paper's (ours at the {which} epoch; Kendall's tau-b over the rows both have)", ""]
    for rk in rankings:
        label = next((s.label for s in table.settings if s.key == rk.setting), rk.setting)
        if rk.tau is None:
            lines.append(f"- {label}: fewer than 2 rows finished, no ranking")
            continue
        pairs = "; ".join(f"{labels[a]} > {labels[b]} in the paper, not here" for a, b in rk.disagree)
        lines.append(f"- {label}: tau = {rk.tau:+.2f} over {rk.n} rows; {len(rk.disagree)} of "
                     f"{rk.n * (rk.n - 1) // 2} pairs disagree" + (f": {pairs}" if pairs else ""))
    return "\n".join(lines) + "\n"
