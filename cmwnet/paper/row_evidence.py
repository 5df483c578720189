"""Does each row do what its own paper says it does? Beside a table's accuracies, the evidence a run leaves of its
mechanism, mean over seeds: the learned weights' AUC (clean above mislabelled) and mean weights at the last epoch,
Forward's estimated transition matrix against the realised one, SADE's learned expert weights, and the run's
last-epoch validation top-1 (the held-out training images every CPU choice was made on)."""
from __future__ import annotations

from typing import Any

from .results import mean_std, read_history, read_result, seed_runs


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
    experts = [r["method_summary"]["expert_weights"] for r in results
               if (r.get("method_summary") or {}).get("expert_weights")]
    if experts:
        ev["expert_weights"] = [_mean([e[k] for e in experts]) for k in range(len(experts[0]))]
    return ev


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
            if "expert_weights" in ev:
                bits.append(f"test-time expert weights (forward, uniform, backward) {_vec(ev['expert_weights'])}")
            if bits:
                lines.append(f"- {s.label}, {r.label} ({ev['seeds']} seed{'s' if ev['seeds'] > 1 else ''}): "
                             + "; ".join(bits))
    if not lines:
        return []
    return ["### What each row learned (mean over seeds, last epoch)", ""] + lines + [""]
