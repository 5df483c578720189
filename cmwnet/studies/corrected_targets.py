"""How right CMW-Net-SL's corrected targets are at a finished run's checkpoint (issue 15).

CMW-Net-SL trains on ỹ = v·y + (1 − v)·z (docs/method-as-published.md section 3): the observed label y, the
stored pseudo label z of the EMA teacher and the learned weight v. Whether label correction can beat
reweighting depends on whether ỹ is better than y; this measures it, on the training images whose true
labels the pipeline kept (synthetic noise), from the checkpoint's pseudo labels and the last epoch's weights
(`final_weights.npz`).

    python -m cmwnet.studies targets runs/cpu_full/cifar10_sym0.4/cmwnet_sl/s1
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import CmwnetError
from ..run_folder.layout import CHECKPOINT, FINAL_WEIGHTS


def corrected_targets(run_dir: str) -> dict[str, Any]:
    """Accuracy (%, argmax against the true label) of the observed labels, the teacher's pseudo labels and the
    corrected targets, over all samples, the clean ones and the mislabelled ones; the share of mislabelled
    samples whose weight is below 0.5 (only there can z outvote y); and the share of the training targets' mass
    on the true class. A reweighting run (MW-Net, CMW-Net: no pseudo labels) gets only the last, as
    Σ w·[y = true] / Σ w, the same share for a loss that trains on the observed labels with weights w, and how
    much of the data its weights keep (Kish's effective sample size over N; 1 for CMW-Net-SL's targets, which
    give every sample a total mass of 1)."""
    import torch

    from ..run_folder.inspect import open_run
    from ..run_folder.sample_table import UNKNOWN

    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(ckpt_path):
        raise CmwnetError(f"{ckpt_path} does not exist: give a run folder (one that holds checkpoint.pt)")
    table = open_run(run_dir)   # final_weights.npz, with its own one-line errors
    y, t, v, index = table["labels"], table["true_labels"], table["weights"], table["index"]
    if (t == UNKNOWN).any():
        raise CmwnetError(f"{run_dir} has no true labels (real label noise): the targets can be scored only where "
                          "the noise is synthetic (data.noise)")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False).get("method") or {}
    clean = y == t
    out: dict[str, Any] = {"samples": int(len(y)), "mislabelled": int((~clean).sum()),
                           "label_correction": "pseudo" in state}
    everyone = np.ones(len(y), bool)

    def acc(pred: np.ndarray, mask: np.ndarray) -> float | None:
        return float(100.0 * (pred[mask] == t[mask]).mean()) if mask.any() else None

    def scored(pred: np.ndarray) -> dict[str, float | None]:
        return {"all": acc(pred, everyone), "clean": acc(pred, clean), "mislabelled": acc(pred, ~clean)}

    out["labels"] = scored(y)
    if "pseudo" not in state:
        out["true_class_mass"] = float((v * clean).sum() / v.sum()) if v.sum() > 0 else None
        # Kish's effective sample size over N: how much of the data the weighting still trains on
        out["effective_sample_share"] = float(v.sum() ** 2 / (len(v) * (v ** 2).sum())) if (v ** 2).sum() > 0 else None
        return out
    z = state["pseudo"].float().numpy()
    if len(y) != len(z) or (len(index) > 1 and not (np.diff(index) > 0).all()):
        raise CmwnetError(f"{run_dir}: {FINAL_WEIGHTS} ({len(y)} rows) does not line up with the checkpoint's "
                          f"{len(z)} pseudo labels: the run folder mixes two runs")
    rows = np.arange(len(y))
    target = (1.0 - v)[:, None] * z
    target[rows, y] += v
    out["teacher"], out["corrected"] = scored(z.argmax(1)), scored(target.argmax(1))
    out["mislabelled_weight_below_half"] = float(100.0 * (v[~clean] < 0.5).mean()) if (~clean).any() else None
    out["true_class_mass"] = float(target[rows, t].mean())
    return out


def format_corrected(run_dir: str, r: dict[str, Any]) -> str:
    f = lambda v: "   -  " if v is None else f"{v:6.2f}"  # noqa: E731
    lines = [f"{run_dir}: {r['samples']} training samples, {r['mislabelled']} mislabelled"]
    if not r["label_correction"]:
        return "\n".join(lines + [f"  reweighting (no pseudo labels): share of the weighted targets' mass on the true "
                                  f"class Σ w·[y = true] / Σ w = {r['true_class_mass']:.3f}; effective sample "
                                  f"share (Σ w)² / (N Σ w²) = {r['effective_sample_share']:.3f}"])
    lines.append("  target                 all    clean  mislabelled  (% whose argmax is the true class)")
    for name, label in (("labels", "observed label y"), ("teacher", "teacher's pseudo label z"),
                        ("corrected", "corrected v·y + (1-v)·z")):
        a = r[name]
        lines.append(f"  {label:<24} {f(a['all'])}  {f(a['clean'])}  {f(a['mislabelled'])}")
    below = r["mislabelled_weight_below_half"]
    lines.append(f"  mislabelled samples with v < 0.5 (where z can outvote y): {f(below).strip()}%; mean mass of "
                 f"the corrected targets on the true class {r['true_class_mass']:.3f}")
    return "\n".join(lines)
