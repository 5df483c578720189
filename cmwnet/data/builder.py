"""Config -> the data a run trains on: long tail, held-out meta set, label noise, on the device."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import DataCfg
from ..errors import CmwnetError
from ..registry import Registry
from .cifar import ImageArrays, load_cifar
from .digits import load_digits_arrays
from .gpu import Augment, DeviceImages
from .imbalance import class_counts, long_tail_counts, long_tail_indices
from .label_store import label_file_digest, read_label_file  # read_label_file is also imported from here
from .meta_set import clean_meta_split
from .noise import add_label_noise, transition_matrix

# name -> function(DataCfg) -> ImageArrays, for data sets small enough to hold on the device
ARRAY_DATASETS: Registry = Registry("data set")
ARRAY_DATASETS.register("digits")(lambda cfg: load_digits_arrays(seed=cfg.split_seed))
ARRAY_DATASETS.register("cifar10")(lambda cfg: load_cifar(cfg.root, "cifar10", cfg.download))
ARRAY_DATASETS.register("cifar100")(lambda cfg: load_cifar(cfg.root, "cifar100", cfg.download))

# name -> function(DataCfg, device) -> DataBundle, for data sets read from files batch by batch
BUNDLE_BUILDERS: dict[str, Callable] = {}


@dataclass
class DataBundle:
    train: DeviceImages
    test: DeviceImages
    meta: DeviceImages | None
    num_classes: int
    class_counts: list[int]
    info: dict = field(default_factory=dict)
    extra_tests: dict = field(default_factory=dict)   # name -> test set, evaluated beside `test`

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])


def build_arrays_bundle(cfg: DataCfg, arrays: ImageArrays, device: torch.device) -> DataBundle:
    c = arrays.num_classes
    train_x, train_y = arrays.train_x, arrays.train_y
    test_x, test_y = arrays.test_x, arrays.test_y
    val = None
    if cfg.val_size:
        keep, held = validation_indices(len(train_y), cfg.val_size, cfg.split_seed)
        val = (train_x[held], train_y[held])
        train_x, train_y = train_x[keep], train_y[keep]
    if cfg.train_subset is not None:
        train_x, train_y = train_x[: cfg.train_subset], train_y[: cfg.train_subset]
    if cfg.test_subset is not None:
        test_x, test_y = test_x[: cfg.test_subset], test_y[: cfg.test_subset]
    info: dict = {"dataset": cfg.name, "num_classes": c}
    if cfg.imbalance != 1:
        n_max = int(np.bincount(train_y, minlength=c).min())
        counts = long_tail_counts(n_max, c, cfg.imbalance)
        keep = long_tail_indices(train_y, counts, cfg.lt_seed)
        train_x, train_y = train_x[keep], train_y[keep]
        info["long_tail_counts"] = counts
    meta = None
    if cfg.meta.kind == "clean":
        sizes = np.bincount(train_y, minlength=c)
        short = sorted(np.flatnonzero(sizes < cfg.meta.per_class), key=lambda k: sizes[k])
        if short:  # name the smallest classes and the largest value that fits them all
            listed = ", ".join(f"class {k} has {sizes[k]}" for k in short[:3]) + (", ..." if len(short) > 3 else "")
            raise CmwnetError(f"data.meta.per_class is {cfg.meta.per_class} but {len(short)} classes have fewer "
                              f"training samples ({listed}): lower data.meta.per_class to at most {sizes.min()}")
        meta_idx, rest = clean_meta_split(train_y, cfg.meta.per_class, c, cfg.split_seed)
        meta = (train_x[meta_idx], train_y[meta_idx])
        train_x, train_y = train_x[rest], train_y[rest]
        info["meta_size"] = int(len(meta_idx))
    if cfg.noise.file:
        observed = read_label_file(cfg.noise.file, len(train_y), c)
        realised = float((observed != train_y).mean())
        info["noise"] = {"kind": "file", "file": cfg.noise.file, "sha256": label_file_digest(cfg.noise.file),
                         "realised_rate": round(realised, 6),
                         "transition": np.round(transition_matrix(train_y, observed, c), 4).tolist()}
    else:
        noisy = add_label_noise(train_y, cfg.noise.kind, cfg.noise.rate, c, cfg.noise.seed,
                                flip_map=cfg.noise.flip_map or None, coarse_of_fine=arrays.coarse_of_fine)
        observed = noisy.labels
        info["noise"] = noisy.summary()
    counts = class_counts(observed, c)
    info.update({"train_size": int(len(observed)), "test_size": int(len(test_y)), "class_counts": counts,
                 "clean_class_counts": class_counts(train_y, c)})
    a = cfg.augment
    augment = Augment(a.crop_pad, a.pad_mode, a.flip, a.normalize)
    train = DeviceImages.from_numpy(train_x, observed, augment, device, clean_labels=train_y)
    test = DeviceImages.from_numpy(test_x, test_y, augment, device)
    meta_set = None if meta is None else DeviceImages.from_numpy(meta[0], meta[1], augment, device)
    extra_tests = {}
    if val is not None:
        extra_tests["val"] = DeviceImages.from_numpy(val[0], val[1], augment, device)
        info["val_size"] = int(len(val[1]))
    return DataBundle(train, test, meta_set, c, counts, info, extra_tests)


def validation_indices(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept training indices in their order, validation indices): `size` of the n training images drawn
    with `seed` (data.split_seed) become a validation set with their true labels, so settings are chosen
    without looking at the test split. Drawn before any subset, long tail, meta split or noise, so those
    apply to the remaining images only and the validation set stays the same whatever they are."""
    if size >= n:
        raise CmwnetError(f"data.val_size is {size} but the training split has only {n} images: "
                          f"hold out fewer (at most {n - 1})")
    val = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    return np.setdiff1d(np.arange(n), val), val


def build_data(cfg: DataCfg, device: torch.device) -> DataBundle:
    """The training, test and (held-out) meta sets a config asks for."""
    if cfg.name in BUNDLE_BUILDERS:
        return BUNDLE_BUILDERS[cfg.name](cfg, device)
    if cfg.name not in ARRAY_DATASETS:
        from ..errors import unknown_name
        raise unknown_name("data set", cfg.name, ARRAY_DATASETS.names() + list(BUNDLE_BUILDERS))
    arrays = ARRAY_DATASETS.get(cfg.name)(cfg)
    return build_arrays_bundle(cfg, arrays, device)
