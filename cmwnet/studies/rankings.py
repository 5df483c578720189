"""Which score finds a weighting run's mislabelled samples best: its last-epoch weights, the final net's loss, or the
training loss averaged over the epochs? Measured on every finished weighting run under a folder whose noise is known
(samples.npz holds the true labels), with the suspect list's own rankings and `label_metrics.ranking_metrics`.

    python -m cmwnet.studies rankings runs/cpu [--json FILE]

This is the measurement behind the suspect list's default (`by="auto"`: the final loss; docs/finding-mislabelled.md).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import CmwnetError
from ..label_metrics import Ranking, ranking_metrics
from ..run_folder.layout import FINAL_WEIGHTS
from ..run_folder.sample_table import PREDICTIONS

SCORES = ("weight", "loss", "mean_loss")


def weighting_runs(root: str) -> list[str]:
    """Run folders under `root` (itself included) that learned a weighting and wrote their sample table."""
    if not os.path.isdir(root):
        raise CmwnetError(f"no folder {root}: give a folder of finished runs (a table's --out)")
    found = [d for d, _, files in os.walk(root) if FINAL_WEIGHTS in files and PREDICTIONS in files]
    return sorted(found)


def run_rankings(run: str) -> dict[str, Any] | None:
    """AUC, precision at k and recall at 5% of each score on one run; None where the run's noise is unknown or
    absent (no true labels, or none of them differ from the given ones)."""
    from ..run_folder.suspects import suspect_list

    out: dict[str, Any] = {}
    for score in SCORES:
        try:
            s = suspect_list(run, score)
        except CmwnetError as e:
            if score == "mean_loss":      # a run from before the loss trace: the other two still count
                continue
            raise CmwnetError(f"{run}: {e}") from None
        t = s.table
        if "true_labels" not in t:
            return None
        bad = t["index"][t["labels"] != t["true_labels"]]
        if len(bad) == 0 or len(bad) == len(t["labels"]):
            return None
        out[score] = ranking_metrics(Ranking(t["index"][s.order]), bad)
        if score == "weight":
            out["weights_inverted"] = s.inverted
    return out


def ranking_study(root: str) -> list[dict[str, Any]]:
    """One line per weighting run with known noise under `root`: each score's metrics."""
    rows = []
    for run in weighting_runs(root):
        got = run_rankings(run)
        if got is not None:
            rows.append({"run": os.path.relpath(run, root), **got})
    if not rows:
        raise CmwnetError(f"no finished weighting run with known label noise under {root} (looked for "
                          f"{FINAL_WEIGHTS} beside {PREDICTIONS} with true labels)")
    return rows


def format_rankings(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (ROC AUC per score) and the count of runs on which the final loss beats the weights."""
    lines = ["| run | AUC by weight | AUC by final loss | AUC by mean training loss | weights inverted |",
             "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[s]['auc']:.3f}" if s in r else "–" for s in SCORES]
        lines.append(f"| {r['run']} | {' | '.join(cells)} | {'yes' if r.get('weights_inverted') else 'no'} |")
    wins = sum(r["loss"]["auc"] > r["weight"]["auc"] for r in rows)
    mean = {s: float(np.mean([r[s]["auc"] for r in rows if s in r])) for s in SCORES if any(s in r for r in rows)}
    means = ", ".join(f"{s} {v:.3f}" for s, v in mean.items())
    lines += ["", f"The final loss ranks the mislabelled samples better than the weights on {wins} of {len(rows)} "
                  f"runs; mean AUC: {means}."]
    return "\n".join(lines)
