"""Partial labels: each training sample gets a *candidate set* of classes that contains its true one.

The two generators of PRODEN's code (Lv et al., ICML 2020, `utils_algo.partialize`), which the CMW-Net
paper's Sec. 7.1 uses; pure, seeded functions from true labels to a boolean N x C candidate matrix:

- "binomial": every other class enters independently with probability `rate` (the true class is always
  in). A sample left with its true class alone gets one more class, drawn uniformly from the others,
  so every set holds at least 2 classes (a one-class set would be a clean label). The realised share of
  false classes is therefore rate + (1 - rate)^(C-1) / (C-1), slightly above `rate`.
- "pair": the true class, plus the next class (cyclically: C-1 -> 0) with probability `rate`. No top-up:
  a sample that draws no partner keeps a one-class set, exactly as the pair rule states.

The paper's rates: {0.1, 0.3, 0.5, 0.7} on CIFAR-10 and {0.03, 0.05, 0.07, 0.10} on CIFAR-100 (binomial).
The authors' draws are unseeded; ours take `seed` (config `data.partial.seed`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import CmwnetError

KINDS = ("binomial", "pair")


def candidate_sets(labels: Sequence[int], num_classes: int, kind: str, rate: float, seed: int = 0) -> np.ndarray:
    """Boolean (N, C) matrix: entry [i, k] says class k is a candidate of sample i."""
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if kind not in KINDS:
        from ..errors import unknown_name
        raise unknown_name("partial-label kind (data.partial.kind)", kind, KINDS)
    if not 0.0 < float(rate) <= 1.0:
        raise CmwnetError(f"data.partial.rate must be in (0, 1], got {rate}: e.g. 0.3 (CIFAR-10) or 0.05 (CIFAR-100)")
    if num_classes < 2:
        raise CmwnetError(f"partial labels need at least 2 classes, got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise CmwnetError(f"labels must lie in 0..{num_classes - 1}")
    n, rows = len(y), np.arange(len(y))
    rng = np.random.default_rng(seed)
    cand = np.zeros((n, num_classes), dtype=bool)
    if kind == "binomial":
        cand[:] = rng.random((n, num_classes)) < rate
        cand[rows, y] = True
        alone = np.flatnonzero(cand.sum(1) < 2)
        # one uniformly drawn other class: r in 0..C-2, skipping the true class
        r = rng.integers(0, num_classes - 1, size=len(alone))
        cand[alone, r + (r >= y[alone])] = True
    else:
        cand[rows, y] = True
        cand[rows, (y + 1) % num_classes] = rng.random(n) < rate
    return cand


def candidate_summary(candidates: np.ndarray, labels: Sequence[int], kind: str, rate: float, seed: int) -> dict:
    """What a run records about its candidate sets (result.json, data.partial)."""
    cand = np.asarray(candidates, dtype=bool)
    y = np.asarray(labels, dtype=np.int64)
    sizes = cand.sum(1)
    c = cand.shape[1]
    false_share = float((sizes - 1).sum() / max(len(y) * (c - 1), 1))
    return {"kind": kind, "rate": float(rate), "seed": int(seed), "mean_candidates": round(float(sizes.mean()), 4),
            "max_candidates": int(sizes.max()) if len(sizes) else 0,
            "single_candidate_share": round(float((sizes == 1).mean()), 6) if len(sizes) else 0.0,
            "realised_false_rate": round(false_share, 6),
            "true_label_always_in": bool(cand[np.arange(len(y)), y].all()) if len(y) else True}
