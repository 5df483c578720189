"""Device-resident images and batch augmentation.

CIFAR-sized data sets fit in GPU memory as uint8 (CIFAR-10 train: 150 MB), so a whole epoch runs
without a DataLoader or host copies: batches are index gathers, and random crop, flip, normalisation
and mixup run on the batch on the device. The same code runs on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CmwnetError

NORMALIZATIONS = {
    # the authors' CIFAR-LT code (LDAM-DRW's values)
    "cifar_lt": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    # the authors' noisy-label code (DivideMix / PLC)
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5,), (0.5,)),
    "none": ((0.0,), (1.0,)),
}


@dataclass
class Augment:
    """Random crop after padding (`crop_pad` pixels, zeros or reflect), horizontal flip, normalisation."""
    crop_pad: int = 0
    pad_mode: str = "constant"
    flip: bool = False
    normalize: str = "none"

    def __post_init__(self):
        if self.pad_mode not in ("constant", "reflect"):
            raise CmwnetError(f"unknown pad mode '{self.pad_mode}': use constant or reflect")
        if self.normalize not in NORMALIZATIONS:
            from ..errors import unknown_name
            raise unknown_name("normalisation", self.normalize, NORMALIZATIONS)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> normalised float, no randomness (the test transform)."""
        mean, std = NORMALIZATIONS[self.normalize]
        c = x.shape[1]
        mean_t = torch.tensor((mean * c)[:c], device=x.device).view(1, c, 1, 1)
        std_t = torch.tensor((std * c)[:c], device=x.device).view(1, c, 1, 1)
        return (x.float().div_(255.0) - mean_t) / std_t

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The train transform on a uint8 batch, on the batch's device."""
        out = self.to_float(x)
        b, _, h, w = out.shape
        if self.crop_pad > 0:
            p = self.crop_pad
            padded = F.pad(out, (p, p, p, p), mode=self.pad_mode)
            oy = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=generator.device).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=generator.device).to(x.device)
            rows = (oy + torch.arange(h, device=x.device))[:, :, None]
            cols = (ox + torch.arange(w, device=x.device))[:, None, :]
            out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = torch.rand(b, generator=generator, device=generator.device).to(x.device) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(3), out)
        return out.contiguous()


def mixup(x: torch.Tensor, alpha: float, generator: torch.Generator, rng: np.random.Generator,
          keep_larger: bool = True) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Mix each sample with a random partner: x~ = lam*x + (1-lam)*x[perm], lam ~ Beta(alpha, alpha).

    `keep_larger` takes lam = max(lam, 1-lam) (the authors' choice: the sample's own label dominates).
    lam is drawn on the host (no device sync). Returns (mixed, lam, perm).
    """
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    if keep_larger:
        lam = max(lam, 1.0 - lam)
    perm = torch.randperm(x.shape[0], generator=generator, device=generator.device).to(x.device)
    return lam * x + (1.0 - lam) * x[perm], lam, perm


class LabelledImages:
    """What a training, test or meta set offers the engine and the methods: `images[pos]` (a uint8
    batch on the device), `augment` (the train transform; `augment.to_float` is the test one),
    observed `labels`, `clean_labels`, and `ids` (sample ids in the full training set, so per-sample
    state such as pseudo labels can be kept by id). Positions 0..N-1 index the set.
    """

    def __init__(self, images, labels: torch.Tensor, augment, clean_labels: torch.Tensor | None = None,
                 ids: torch.Tensor | None = None):
        self.images, self.labels, self.augment = images, labels.long(), augment
        self.clean_labels = self.labels if clean_labels is None else clean_labels.long()
        self.ids = torch.arange(len(labels), device=labels.device) if ids is None else ids
        self.device = labels.device

    def __len__(self) -> int:
        return len(self.labels)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def plan(self, order: torch.Tensor, batch_size: int, start_step: int = 0, n_steps: int | None = None) -> None:
        """The coming batches, in order (the engine announces each epoch's): file-backed sets decode
        them ahead; images already in memory need nothing."""

    def batches(self, batch_size: int, *, shuffle: bool = False, augment: bool = False,
                generator: torch.Generator | None = None, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yields (x float, observed labels, positions) batches."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        n_batches = self.num_batches(batch_size, drop_last)
        self.plan(order, batch_size, 0, n_batches)
        for b in range(n_batches):
            pos = order[b * batch_size:(b + 1) * batch_size]
            raw = self.images[pos]
            x = self.augment(raw, generator) if augment else self.augment.to_float(raw)
            yield x, self.labels[pos], pos


class DeviceImages(LabelledImages):
    """A labelled image set held on one device as a uint8 N x C x H x W tensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: Augment,
                 clean_labels: torch.Tensor | None = None, ids: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise CmwnetError(f"images must be uint8 N x C x H x W, got {images.dtype} {tuple(images.shape)}")
        super().__init__(images, labels, augment, clean_labels, ids)
        self.device = images.device

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: Sequence[int], augment: Augment, device: torch.device,
                   clean_labels: Sequence[int] | None = None) -> "DeviceImages":
        t = lambda a: torch.as_tensor(np.asarray(a), device=device)  # noqa: E731
        return cls(t(images), t(labels).long(), augment, None if clean_labels is None else t(clean_labels).long())

    def subset(self, positions: torch.Tensor | np.ndarray) -> "DeviceImages":
        pos = torch.as_tensor(positions, device=self.device).long()
        return DeviceImages(self.images[pos], self.labels[pos], self.augment, self.clean_labels[pos], self.ids[pos])


class Cycle:
    """An endless stream of shuffled, augmented batches over a (small) set: the meta loader.

    Its position is explicit state (`state_dict`), so a run stopped mid-epoch resumes exactly.
    """

    def __init__(self, source: DeviceImages, batch_size: int, generator: torch.Generator, augment: bool = True):
        if len(source) == 0:
            raise CmwnetError("the meta set is empty: check data.meta settings")
        self.source, self.batch_size, self.generator, self.augment = source, batch_size, generator, augment
        self.order: torch.Tensor | None = None
        self.pos = 0

    def __iter__(self) -> "Cycle":
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        # a remainder of one sample (of a set larger than one) starts the next pass instead: BatchNorm
        # cannot train on one sample
        left = 0 if self.order is None else len(self.order) - self.pos
        if left <= 0 or (left == 1 and len(self.order) > 1):
            gen = self.generator
            self.order = torch.randperm(len(self.source), generator=gen, device=gen.device).to(self.source.device)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        raw = self.source.images[idx]
        x = self.source.augment(raw, self.generator) if self.augment else self.source.augment.to_float(raw)
        return x, self.source.labels[idx]

    def state_dict(self) -> dict:
        return {"order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.pos = state["order"], int(state["pos"])
