"""Meta sets: the small data the weight net is meta-learned on.

- `clean_meta_split`: k samples per class with their true labels, held out from training (MW-Net's
  setting; the demo uses it).
- `lowest_loss_per_class`: the k lowest-loss samples per *observed* class, re-chosen every epoch
  (what the authors' noisy-label code does: no clean data at all).
- `balanced_subset`: k random training samples per class, re-drawn every epoch (the authors'
  Table 1 code, k = the tail class size).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import CmwnetError


def clean_meta_split(labels: Sequence[int], per_class: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(meta indices, remaining training indices), per_class random samples of each class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    meta = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if per_class > len(idx):
            raise CmwnetError(f"meta set asks for {per_class} samples of class {c}, which has only {len(idx)}: "
                              f"lower data.meta.per_class to at most {len(idx)}")
        meta.append(rng.choice(idx, per_class, replace=False))
    meta_idx = np.sort(np.concatenate(meta)) if meta else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), meta_idx)
    return meta_idx.astype(np.int64), rest.astype(np.int64)


def lowest_loss_per_class(losses: torch.Tensor, labels: torch.Tensor, per_class: int, num_classes: int) -> torch.Tensor:
    """Positions of the `per_class` lowest losses within each class (all of a smaller class).

    Vectorised: one stable sort by loss, then by class, and a rank-within-class cut.
    """
    order = torch.argsort(losses, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]
    sorted_labels = labels[order]
    counts = torch.bincount(sorted_labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=losses.device) - starts[sorted_labels]
    return order[rank < per_class]


def balanced_subset(labels: torch.Tensor, per_class: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """per_class random positions of each class (all of a smaller class), drawn with `generator`."""
    keys = torch.rand(len(labels), generator=generator).to(labels.device)
    return lowest_loss_per_class(keys, labels, per_class, num_classes)
