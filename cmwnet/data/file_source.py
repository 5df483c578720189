"""Images read from files batch by batch: a drop-in for `DeviceImages` when a data set is too big to
hold in memory (WebVision, WebFG-496).

Each image is decoded with PIL to a fixed *base* square (shorter side resized to `base` as
torchvision's `Resize(base)` does, then the centre `base x base` square; JPEGs are first decoded at a
reduced scale with PIL's draft mode when they are much larger). The uint8 batch then moves to the
device, where the random crop (or random-resized crop), flip and normalisation run on the whole batch
(`CropAugment`), as `Augment` does for CIFAR. Decoding runs in a thread pool (PIL releases the GIL
while it decodes and resizes) and the batches of an epoch are decoded ahead, in training order, once
the engine announces the order (`FileSource.plan`).

Deviation from the authors' torchvision pipelines, stated once: their random crops are taken from the
whole shorter-side-resized image, ours from its centre square (for WebVision's 4:3 images the crop
window moves over 256 instead of 341 columns).
"""
from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CmwnetError
from .gpu import Augment, DeviceImages, LabelledImages

_POOL: ThreadPoolExecutor | None = None
# a subset this small (a meta set) is decoded once and kept on the device
MATERIALIZE_LIMIT = 5000


def decode_pool() -> ThreadPoolExecutor:
    """The process-wide pool of decoding threads (created on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1), thread_name_prefix="cmwnet-decode")
    return _POOL


def decode_image(path: str, base: int | None) -> np.ndarray:
    """One image file -> H x W x 3 uint8. With `base`: shorter side resized to `base` (bilinear, long
    side int(base * long / short) as torchvision computes it), then the centre base x base square."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if base is not None:
                im.draft("RGB", (base, base))  # JPEG only: decode at the smallest scale still >= base
            im = im.convert("RGB")
    except FileNotFoundError:
        raise CmwnetError(f"image file missing: {path}; the data set folder is incomplete") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise CmwnetError(f"cannot decode image {path} ({type(e).__name__}): replace the file or remove "
                          "it from the data set") from None
    if base is not None:
        w, h = im.size
        if min(w, h) != base:
            if w <= h:
                size = (base, int(base * h / w))
            else:
                size = (int(base * w / h), base)
            im = im.resize(size, Image.BILINEAR)
            w, h = im.size
        if (w, h) != (base, base):
            left, top = int(round((w - base) / 2.0)), int(round((h - base) / 2.0))
            im = im.crop((left, top, left + base, top + base))
    return np.asarray(im, dtype=np.uint8)


class FileImages:
    """Indexable like a uint8 N x 3 x S x S tensor: `images[positions]` decodes those files and returns
    the batch on `device`. `plan(batches)` announces the coming batches so they decode ahead."""

    def __init__(self, paths: Sequence[str], base: int, device: torch.device, lookahead: int = 2):
        if base < 1:
            raise CmwnetError(f"image base size must be >= 1, got {base}")
        self.paths, self.base, self.device = list(paths), int(base), torch.device(device)
        self.lookahead = lookahead
        self.shape = (len(self.paths), 3, self.base, self.base)
        self._upcoming: Iterator[list[int]] = iter(())
        self._ahead: deque[tuple[tuple[int, ...], list[Future]]] = deque()

    def __len__(self) -> int:
        return len(self.paths)

    def _submit(self, idx: Sequence[int]) -> list[Future]:
        pool = decode_pool()
        return [pool.submit(decode_image, self.paths[i], self.base) for i in idx]

    def _fill(self) -> None:
        while len(self._ahead) < self.lookahead:
            nxt = next(self._upcoming, None)
            if nxt is None:
                return
            self._ahead.append((tuple(nxt), self._submit(nxt)))

    def plan(self, batches: Iterator[list[int]]) -> None:
        """Decode these batches (lists of positions) ahead, in this order; drops any earlier plan."""
        for _, futures in self._ahead:
            for f in futures:
                f.cancel()
        self._ahead.clear()
        self._upcoming = iter(batches)
        self._fill()

    def __getitem__(self, positions) -> torch.Tensor:
        idx = torch.as_tensor(positions).reshape(-1).tolist()
        key = tuple(idx)
        if self._ahead and self._ahead[0][0] == key:
            futures = self._ahead.popleft()[1]
        else:  # not the planned batch: decode it now (still correct, just not ahead)
            futures = self._submit(idx)
        self._fill()
        arrays = [f.result() for f in futures]
        if not arrays:
            return torch.zeros((0, 3, self.base, self.base), dtype=torch.uint8, device=self.device)
        batch = torch.from_numpy(np.stack(arrays)).to(self.device)
        return batch.permute(0, 3, 1, 2).contiguous()


class FileSource(LabelledImages):
    """A labelled image set read from files (`images` is a `FileImages`): the interface of
    `DeviceImages`, and `plan` decodes the announced batches ahead."""

    @classmethod
    def from_files(cls, paths: Sequence[str], labels: Sequence[int], base: int, augment, device: torch.device,
                   clean_labels: Sequence[int] | None = None) -> "FileSource":
        t = lambda a: torch.as_tensor(np.asarray(a), device=device).long()  # noqa: E731
        return cls(FileImages(paths, base, device), t(labels), augment,
                   None if clean_labels is None else t(clean_labels))

    def subset(self, positions) -> "DeviceImages | FileSource":
        """The samples at `positions`: decoded once onto the device when small (meta sets), else
        another file-backed source."""
        pos = torch.as_tensor(positions, device=self.device).long()
        if len(pos) <= MATERIALIZE_LIMIT:
            return DeviceImages(self.images[pos], self.labels[pos], self.augment, self.clean_labels[pos],
                                self.ids[pos])
        paths = [self.images.paths[i] for i in pos.tolist()]
        return FileSource(FileImages(paths, self.images.base, self.images.device), self.labels[pos], self.augment,
                          self.clean_labels[pos], self.ids[pos])

    def plan(self, order: torch.Tensor, batch_size: int, start_step: int = 0, n_steps: int | None = None) -> None:
        order_list = torch.as_tensor(order).tolist()
        n = self.num_batches(batch_size) if n_steps is None else n_steps
        self.images.plan(order_list[k * batch_size:(k + 1) * batch_size] for k in range(start_step, n))


CROP_MODES = ("random_crop", "random_resized_crop")


@dataclass
class CropAugment:
    """Batch transforms of the ImageNet-style pipelines, on the device.

    Train: `random_crop` (torchvision RandomCrop(crop)) or `random_resized_crop` (RandomResizedCrop(crop,
    scale, ratio): 10 tries of a random area and aspect ratio, else the centre crop of the clamped
    ratio; bilinear resampling without antialiasing), then a horizontal flip with probability 1/2.
    Test (`to_float`): CenterCrop(crop). Both normalise (`normalize` names a `NORMALIZATIONS` entry).
    """
    crop: int
    mode: str = "random_crop"
    flip: bool = True
    normalize: str = "imagenet"
    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)

    def __post_init__(self):
        if self.mode not in CROP_MODES:
            from ..errors import unknown_name
            raise unknown_name("crop mode", self.mode, CROP_MODES)
        self._norm = Augment(normalize=self.normalize)

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[2] < self.crop or x.shape[3] < self.crop:
            raise CmwnetError(f"images of {x.shape[2]}x{x.shape[3]} are smaller than the crop {self.crop}")

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """Centre crop and normalise, no randomness (the test transform)."""
        self._check(x)
        h, w = x.shape[2], x.shape[3]
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        return self._norm.to_float(x[:, :, top:top + self.crop, left:left + self.crop].contiguous())

    def _rand(self, n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=generator.device).to(like.device)

    def _random_crop(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        c = self.crop
        oy = (self._rand(b, generator, x) * (h - c + 1)).long().clamp_max(h - c)
        ox = (self._rand(b, generator, x) * (w - c + 1)).long().clamp_max(w - c)
        rows = (oy[:, None] + torch.arange(c, device=x.device))[:, :, None]
        cols = (ox[:, None] + torch.arange(c, device=x.device))[:, None, :]
        out = x[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        return self._norm.to_float(out.contiguous())

    def crop_boxes(self, b: int, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """RandomResizedCrop boxes (top, left, height, width) per sample, as float tensors (B, 4)."""
        tries = 10
        u = torch.rand(4, b, tries, generator=generator, device=generator.device).to(device)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0])
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + (hi - lo) * u[1])
        cw = torch.round(torch.sqrt(area * aspect))
        ch = torch.round(torch.sqrt(area / aspect))
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = torch.argmax(ok.int(), dim=1)  # index of the first valid try
        take = lambda t: t.gather(1, first[:, None]).squeeze(1)  # noqa: E731
        cw, ch, ui, uj = take(cw), take(ch), take(u[2]), take(u[3])
        top = torch.floor(ui * (h - ch + 1)).clamp_max(h - ch)
        left = torch.floor(uj * (w - cw + 1)).clamp_max(w - cw)
        # fallback (no valid try): the whole image, aspect ratio clamped to `ratio`, centred
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fh, fw = h, int(round(h * self.ratio[1]))
        else:
            fw, fh = w, h
        none_ok = ~ok.any(1)
        fallback = torch.tensor([(h - fh) // 2, (w - fw) // 2, fh, fw], dtype=cw.dtype, device=device)
        boxes = torch.stack([top, left, ch, cw], 1)
        return torch.where(none_ok[:, None], fallback, boxes)

    def _random_resized_crop(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        top, left, ch, cw = self.crop_boxes(b, h, w, generator, x.device).unbind(1)
        # affine map from output coordinates in [-1, 1] to the box in the input (align_corners=False)
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = cw / w
        theta[:, 0, 2] = (2 * left + cw) / w - 1
        theta[:, 1, 1] = ch / h
        theta[:, 1, 2] = (2 * top + ch) / h - 1
        src = self._norm.to_float(x)
        grid = F.affine_grid(theta, [b, src.shape[1], self.crop, self.crop], align_corners=False)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The train transform on a uint8 batch, on the batch's device."""
        self._check(x)
        out = self._random_crop(x, generator) if self.mode == "random_crop" else self._random_resized_crop(x, generator)
        if self.flip:
            flip = self._rand(out.shape[0], generator, out) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(3), out)
        return out.contiguous()
