"""Does each row do what its own paper says it does? Beside a table's accuracies, the evidence a run leaves of its
mechanism, mean over seeds: the learned weights' AUC (clean above mislabelled) and mean weights at the last epoch,
Forward's estimated transition matrix against the realised one, SADE's learned expert weights, and the run's
last-epoch validation top-1 (the held-out training images every CPU choice was made on)."""
from __future__ import annotations

import os
from typing import Any

from .results import mean_std, read_history, read_result, seed_runs
from ..run_folder.layout import FINAL_WEIGHTS


def _mean(values: list[float]) -> float | None:
    return mean_std(values)[0] if values else None


def cell_evidence(out: str, prefix: str) -> dict[str, Any]:
    """The evidence of one cell (`<setting>/<row>`) over its finished seeds."""
    names = seed_runs(out, prefix)
    results = [r for n in names for r in [read_result(out, n)] if r]
    lasts = [h[-1] for n in names for h in [read_history(out, n)] if h]
    ev: dict[str, Any] = {"seeds": len(results)}
    for key in ("weight_auc", "mean_weight_clean", "mean_weight_noisy"):
        vals = [h[key] for h in lasts if h.get(key) is not None]
        if vals:
            ev[key] = _mean(vals)
    vals = [r["val"]["last_top1"] for r in results if r.get("val")]
    if vals:
        ev["val_last"] = _mean(vals)
    est = [r["method_summary"]["estimated_transition"] for r in results
           if (r.get("method_summary") or {}).get("estimated_transition")]
    true = [((r.get("data") or {}).get("noise") or {}).get("transition") for r in results]
    true = [t for t in true if t]
    if est:
        c = len(est[0])
        ev["t_diag_estimated"] = [_mean([t[k][k] for t in est]) for k in range(c)]
        if true:
            ev["t_diag_true"] = [_mean([t[k][k] for t in true]) for k in range(c)]
    ratios = [rarest_over_largest(os.path.join(out, n, FINAL_WEIGHTS)) for n in names]
    ratios = [r for r in ratios if r is not None]
    if ratios:
        ev["weight_ratio_rare"] = _mean(ratios)
    experts = [r["method_summary"]["expert_weights"] for r in results
               if (r.get("method_summary") or {}).get("expert_weights")]
    if experts:
        ev["expert_weights"] = [_mean([e[k] for e in experts]) for k in range(len(experts[0]))]
    checks = [r["method_summary"]["aggregation_on_val"] for r in results
              if (r.get("method_summary") or {}).get("aggregation_on_val")]
    if checks:   # SADE's aggregate: val, the val top-1 of the learned and of the equal expert weights
        ev["aggregation_on_val"] = {"equal": _mean([c["equal"] for c in checks]),
                                    "learned": _mean([c["learned"] for c in checks]),
                                    "kept": [c["kept"] for c in checks]}
    return ev


def rarest_over_largest(path: str) -> float | None:
    """A long tail's re-balancing in one number: the mean last-epoch weight of the rarest class's samples over
    that of the largest class's (1: none; CB loss's class weights give about 80 on CIFAR-10-LT IF 100)."""
    import numpy as np

    from ..run_folder.sample_table import UNREADABLE

    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            w, y = z["weights"], z["labels"]
    except UNREADABLE:
        return None
    seen = ~np.isnan(w)
    counts = np.bincount(y[seen], minlength=int(y.max()) + 1 if len(y) else 0)
    if len(counts) < 2 or counts.min() == 0:
        return None
    rare, large = int(np.argmin(counts)), int(np.argmax(counts))
    if counts[rare] * 10 > counts[large]:     # not a long tail: the ratio would mean nothing
        return None
    head = float(w[seen & (y == large)].mean())
    return None if head <= 0 else float(w[seen & (y == rare)].mean()) / head


def _vec(v: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in v)


def evidence_markdown(table, out: str) -> list[str]:
    """Markdown lines, one per run row and setting with something to show."""
    lines: list[str] = []
    for s in table.settings:
        for r in table.run_rows():
            ev = cell_evidence(out, f"{s.key}/{r.key}")
            if not ev["seeds"]:
                continue
            bits = []
            if "val_last" in ev:
                bits.append(f"val top-1 (last) {ev['val_last']:.2f}")
            if "weight_auc" in ev:
                bits.append(f"weight AUC {ev['weight_auc']:.3f} (mean weight clean {ev['mean_weight_clean']:.3f}, "
                            f"mislabelled {ev['mean_weight_noisy']:.3f})")
            if "t_diag_estimated" in ev:
                true = f" vs the realised {_vec(ev['t_diag_true'])}" if "t_diag_true" in ev else ""
                bits.append(f"estimated T diagonal {_vec(ev['t_diag_estimated'])}{true}")
            if "weight_ratio_rare" in ev:
                bits.append(f"mean weight of the rarest class / the largest class {ev['weight_ratio_rare']:.3g}")
            if "expert_weights" in ev:
                bits.append(f"test-time expert weights (forward, uniform, backward) {_vec(ev['expert_weights'])}")
            if "aggregation_on_val" in ev:
                a = ev["aggregation_on_val"]
                bits.append(f"val top-1 with the learned expert weights {a['learned']:.2f} vs equal {a['equal']:.2f}: "
                            f"kept {' / '.join(a['kept'])}")
            if bits:
                lines.append(f"- {s.label}, {r.label} ({ev['seeds']} seed{'s' if ev['seeds'] > 1 else ''}): "
                             + "; ".join(bits))
    if not lines:
        return []
    return ["### What each row learned (mean over seeds, last epoch)", ""] + lines + [""]
