"""Long-tailed subsets built exactly as the authors' (and LDAM-DRW's) CIFAR-LT code builds them."""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from ..errors import CmwnetError


def long_tail_counts(n_max: int, num_classes: int, imb_factor: float) -> list[int]:
    """Per-class sizes n_i = int(n_max * (1/IF)^(i/(C-1))): class 0 the head, class C-1 the tail.

    CIFAR-10 with IF 100 gives 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50.
    """
    if imb_factor < 1:
        raise CmwnetError(f"imbalance factor must be >= 1 (1 = balanced, 100 = head/tail ratio 100), got {imb_factor}")
    if num_classes < 1 or n_max < 1:
        raise CmwnetError(f"need n_max >= 1 and num_classes >= 1, got {n_max} and {num_classes}")
    if num_classes == 1:
        return [int(n_max)]
    ratio = 1.0 / imb_factor
    return [int(n_max * ratio ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def long_tail_indices(labels: Sequence[int], counts: Sequence[int], seed: int = 42) -> np.ndarray:
    """Indices of a long-tailed subset: per class (in class order) shuffle that class's indices with
    one Python `random.Random(seed)` and keep the first counts[c]; returned in ascending order."""
    labels = np.asarray(labels)
    rng = random.Random(seed)
    keep = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(labels == c).tolist()
        if n > len(idx):
            raise CmwnetError(f"class {c} has {len(idx)} samples, fewer than the {n} the long tail asks for")
        rng.shuffle(idx)
        keep.extend(idx[:n])
    return np.sort(np.asarray(keep, dtype=np.int64))


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).tolist()
