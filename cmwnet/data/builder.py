"""Config -> the data a run trains on: the data-set registries, `DataBundle`, and array data sets on the device.

What happens to the labels (subsets, long tail, meta split, noise, partial labels) is `pipeline.py`'s job,
shared with the file-backed data sets of `folders.py`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..config import DataCfg
from ..errors import unknown_name
from ..registry import Registry
from .cifar import ImageArrays, load_cifar
from .digits import load_digits_arrays
from .gpu import Augment, DeviceImages
from .pipeline import plan_labels, validation_indices  # noqa: F401  validation_indices: also imported from here

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
    candidates: np.ndarray | None = None   # data.partial: boolean N x C candidate sets, rows as in `train`
    # per training sample, so a run's per-sample files name the reader's sample (cmwnet.run_folder.sample_table):
    train_index: np.ndarray | None = None   # its position in the reader's training split
    train_paths: list | None = None         # its file (file-backed data sets; None for array data sets)
    class_names: list | None = None         # class_names[k] names label k
    heldout: Any = None                     # data.fold: the held-out fold (observed labels, true ones as clean)
    heldout_index: np.ndarray | None = None  # its positions in the reader's training split

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])


def build_arrays_bundle(cfg: DataCfg, arrays: ImageArrays, device: torch.device) -> DataBundle:
    """A data set held in memory: the label pipeline's choices (`pipeline.py`) taken from the arrays."""
    plan = plan_labels(cfg, arrays.train_y, len(arrays.test_y), arrays.num_classes,
                       coarse_of_fine=arrays.coarse_of_fine)
    a = cfg.augment
    augment = Augment(a.crop_pad, a.pad_mode, a.flip, a.normalize)
    x, y = arrays.train_x, arrays.train_y
    train = DeviceImages.from_numpy(x[plan.train], plan.observed, augment, device, clean_labels=plan.clean)
    test = DeviceImages.from_numpy(arrays.test_x[plan.test], arrays.test_y[plan.test], augment, device)
    meta = None if plan.meta is None else DeviceImages.from_numpy(x[plan.meta], y[plan.meta], augment, device)
    extra_tests = {}
    if plan.val is not None:
        extra_tests["val"] = DeviceImages.from_numpy(x[plan.val], y[plan.val], augment, device)
    heldout = None
    if plan.heldout is not None:   # data.fold: the net's predictions on it are written at the end (heldout.npz)
        heldout = DeviceImages.from_numpy(x[plan.heldout], plan.heldout_observed, augment, device,
                                          clean_labels=plan.heldout_clean)
    return DataBundle(train, test, meta, arrays.num_classes, plan.info["class_counts"], plan.info, extra_tests,
                      plan.candidates, train_index=plan.train, class_names=list(arrays.classes), heldout=heldout,
                      heldout_index=plan.heldout)


def build_data(cfg: DataCfg, device: torch.device) -> DataBundle:
    """The training, test and (held-out) meta sets a config asks for."""
    if cfg.name in BUNDLE_BUILDERS:
        return BUNDLE_BUILDERS[cfg.name](cfg, device)
    if cfg.name not in ARRAY_DATASETS:
        raise unknown_name("data set", cfg.name, ARRAY_DATASETS.names() + list(BUNDLE_BUILDERS))
    arrays = ARRAY_DATASETS.get(cfg.name)(cfg)
    return build_arrays_bundle(cfg, arrays, device)
