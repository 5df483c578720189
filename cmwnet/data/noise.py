"""Synthetic label noise: pure, seeded functions from clean labels to observed labels.

Selection follows the DivideMix-style code the authors use for Table 2: a Python `random.Random(seed)`
shuffles the sample indices, the first int(rate * N) are corrupted, and (for symmetric noise) each
corrupted sample, in index order, draws its new label uniformly over *all* classes, so it may keep
its label: the realised rate is about rate * (1 - 1/C). Every result records the realised rate and
the transition matrix T[i, j] = P(observed j | true i).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import CmwnetError

# The authors' CIFAR-10 asymmetric map (cmwn.py): truck->automobile, bird->airplane, cat->dog,
# deer->horse; every other class, dog included, keeps its label.
CIFAR10_ASYM = {9: 1, 2: 0, 3: 5, 4: 7}
KINDS = ("none", "sym", "asym", "pair")


@dataclass
class NoisyLabels:
    labels: np.ndarray
    clean: np.ndarray
    kind: str
    rate: float
    realised_rate: float
    transition: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        return {"kind": self.kind, "rate": self.rate, "realised_rate": round(float(self.realised_rate), 6),
                "transition": np.round(self.transition, 4).tolist()}


def transition_matrix(clean: np.ndarray, observed: np.ndarray, num_classes: int) -> np.ndarray:
    t = np.zeros((num_classes, num_classes))
    np.add.at(t, (clean, observed), 1)
    return t / np.maximum(t.sum(1, keepdims=True), 1)


def superclass_next_map(coarse_of_fine: Sequence[int]) -> dict[int, int]:
    """Each fine class -> the next fine class (cyclically, in index order) of its super-class:
    the CIFAR-100 asymmetric noise of the Meta-Weight-Net paper."""
    coarse = np.asarray(coarse_of_fine)
    mapping = {}
    for c in np.unique(coarse):
        members = np.flatnonzero(coarse == c)
        for i, f in enumerate(members):
            mapping[int(f)] = int(members[(i + 1) % len(members)])
    return mapping


def add_label_noise(labels: Sequence[int], kind: str, rate: float, num_classes: int, seed: int = 123,
                    flip_map: dict[int, int] | None = None,
                    coarse_of_fine: Sequence[int] | None = None) -> NoisyLabels:
    """Corrupt `labels` and return the observed labels with the realised rate and transition matrix.

    kind: "sym" (uniform over all classes), "asym" (class-dependent flips: `flip_map`, else the
    authors' CIFAR-10 map for 10 classes, else next-class-within-super-class from `coarse_of_fine`),
    "pair" (class c -> c+1 mod C), "none".
    """
    clean = np.asarray(labels, dtype=np.int64)
    if kind not in KINDS:
        from ..errors import unknown_name
        raise unknown_name("noise kind", kind, KINDS)
    if not 0.0 <= float(rate) <= 1.0:
        raise CmwnetError(f"noise rate must be in [0, 1], got {rate}")
    if clean.size and (clean.min() < 0 or clean.max() >= num_classes):
        raise CmwnetError(f"labels must lie in 0..{num_classes - 1}")
    noisy = clean.copy()
    if kind != "none" and rate > 0:
        mapping = None
        if kind == "asym":
            mapping = _asym_map(num_classes, flip_map, coarse_of_fine)
        elif kind == "pair":
            mapping = {c: (c + 1) % num_classes for c in range(num_classes)}
        rng = random.Random(seed)
        order = list(range(len(clean)))
        rng.shuffle(order)
        chosen = np.zeros(len(clean), dtype=bool)
        chosen[order[: int(rate * len(clean))]] = True
        for i in np.flatnonzero(chosen):
            if kind == "sym":
                noisy[i] = rng.randint(0, num_classes - 1)
            else:
                noisy[i] = mapping.get(int(clean[i]), int(clean[i]))
    realised = float((noisy != clean).mean()) if clean.size else 0.0
    return NoisyLabels(noisy, clean, kind, float(rate), realised, transition_matrix(clean, noisy, num_classes))


def _asym_map(num_classes: int, flip_map, coarse_of_fine) -> dict[int, int]:
    if flip_map is not None:
        mapping = {int(k): int(v) for k, v in flip_map.items()}
        for k, v in mapping.items():
            if not (0 <= k < num_classes and 0 <= v < num_classes):
                raise CmwnetError(f"data.noise.flip_map maps {k} to {v}, but the data has classes 0..{num_classes - 1}: "
                                  "give class numbers of this data set, e.g. {9: 1, 2: 0} for CIFAR-10")
        return mapping
    if coarse_of_fine is not None:
        return superclass_next_map(coarse_of_fine)
    if num_classes == 10:
        return dict(CIFAR10_ASYM)
    raise CmwnetError(f"asymmetric noise on {num_classes} classes needs a flip map or super-classes "
                      "(CIFAR-100 gives them); use kind 'pair' for c -> c+1")
