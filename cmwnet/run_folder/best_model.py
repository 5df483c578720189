"""`run.save_best: true`: `best_model.pt`, the classifier of the epoch with the best held-out top-1.

The epoch is chosen on the validation split (`data.val_size`) where the run has one, else on the test
split; choosing on test reports an optimistic number (the test set picked the model), so result.json's
`best_model.selected_on` says which split chose it.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from ..checkpoint import atomic_torch_save
from .layout import BEST_MODEL


def selection_key(history: Sequence[dict[str, Any]]) -> str:
    """val_top1 where the records have it, else test_top1."""
    return "val_top1" if history and "val_top1" in history[-1] else "test_top1"


def best_record(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """result.json's `best_model`: the file, the split that chose it, the epoch (0-based as in
    metrics.jsonl) and its top-1 there; the first epoch wins ties, as best_model.pt keeps it."""
    key = selection_key(history)
    best = max(history, key=lambda h: h[key])   # max keeps the first of equal values
    out = {"file": BEST_MODEL, "selected_on": key, "epoch": best["epoch"], "top1": best[key],
           "test_top1": best["test_top1"]}
    if key == "test_top1":
        out["note"] = "chosen on the test split (no data.val_size): its test top-1 is optimistic"
    return out


def save_if_best(run_dir: str, history: Sequence[dict[str, Any]], model: torch.nn.Module) -> bool:
    """Write best_model.pt when the last record beats every earlier one; True when written."""
    key = selection_key(history)
    last = history[-1][key]
    if any(h[key] >= last for h in history[:-1]):
        return False
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"model": state, "epoch": history[-1]["epoch"], "selected_on": key, "top1": last},
                      os.path.join(run_dir, BEST_MODEL))
    return True
