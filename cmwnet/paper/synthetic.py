"""SYNTHETIC stand-ins for CIFAR-10/100 in the canonical python-batch layout, for smoke runs and tests.

CI has no internet and no copy of CIFAR, yet every section-4 table must run end to end there
(`tableN.sh --smoke`). These trees have the exact on-disk format torchvision downloads
(`cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`; `cifar-100-python/train, test,
meta` with fine and coarse labels), so the real reader (`cmwnet.data.load_cifar`) is what reads
them. The images are NOT CIFAR: each class is a coloured stripe pattern (its own hue, orientation
and frequency) with per-image phase, brightness and pixel noise, so a small network learns
something in a few steps. Every file says so: class names start with `synthetic_`, batch labels
read "SYNTHETIC", and the folder holds `SYNTHETIC.json`.

`write_cifar_tree` also writes real arrays in that layout (e.g. the offline CIFAR-10 JPEG copy), so
a table reads decoded batches once instead of decoding 60,000 JPEGs in every run.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile

import numpy as np

from ..errors import CmwnetError
from ..data.cifar import FOLDERS, ImageArrays

MARKER = "SYNTHETIC.json"
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _class_style(num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: an RGB colour (hue wheel), a stripe orientation and a stripe frequency; the
    (orientation, frequency) pair alone already differs between any two of up to 100 classes."""
    c = np.arange(num_classes)
    hue = (c * 0.618033988749895) % 1.0
    rgb = np.stack([0.5 + 0.5 * np.cos(2 * np.pi * (hue - k / 3.0)) for k in range(3)], axis=1)
    angle = np.pi * (c % 10) / 10.0
    freq = 1.0 + 0.5 * ((c // 10 + 3 * (c % 10)) % 10)
    return rgb.astype(np.float32), angle.astype(np.float32), freq.astype(np.float32)


def synthetic_images(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 images N x 3 x 32 x 32 whose pattern depends on the class (see the module docstring)."""
    rgb, angle, freq = _class_style(num_classes)
    yy, xx = np.meshgrid(np.arange(32, dtype=np.float32), np.arange(32, dtype=np.float32), indexing="ij")
    out = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    for start in range(0, len(labels), 4096):
        y = labels[start:start + 4096]
        n = len(y)
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
        proj = xx[None] * np.cos(angle[y])[:, None, None] + yy[None] * np.sin(angle[y])[:, None, None]
        wave = 0.5 + 0.35 * np.sin(2 * np.pi * freq[y][:, None, None] * proj / 32.0 + phase)
        bright = rng.uniform(0.7, 1.1, (n, 1, 1, 1)).astype(np.float32)
        img = wave[:, None] * rgb[y][:, :, None, None] * bright
        img += 0.08 * rng.standard_normal(img.shape, dtype=np.float32)
        out[start:start + n] = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    return out


def synthetic_arrays(name: str = "cifar10", train_per_class: int = 200, test_per_class: int = 10,
                     seed: int = 0) -> ImageArrays:
    """A synthetic CIFAR-shaped data set in memory; labels cycle 0..C-1 so any prefix is balanced."""
    if name not in NUM_CLASSES:
        from ..errors import unknown_name
        raise unknown_name("CIFAR data set", name, NUM_CLASSES)
    if train_per_class < 1 or test_per_class < 1:
        raise CmwnetError("synthetic CIFAR needs at least one training and one test image per class")
    c = NUM_CLASSES[name]
    rng = np.random.default_rng(seed)
    train_y = np.tile(np.arange(c), train_per_class).astype(np.int64)
    test_y = np.tile(np.arange(c), test_per_class).astype(np.int64)
    train_x = synthetic_images(train_y, c, rng)
    test_x = synthetic_images(test_y, c, rng)
    coarse = None
    if name == "cifar100":
        # 20 super-classes of 5 fine classes, not contiguous (as in the real CIFAR-100)
        coarse = np.empty(c, dtype=np.int64)
        coarse[np.random.default_rng(seed + 1).permutation(c)] = np.repeat(np.arange(20), 5)
    classes = [f"synthetic_class_{i}" for i in range(c)]
    return ImageArrays(train_x, train_y, test_x, test_y, classes, coarse)


def _dump(obj: dict, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)  # protocol 2 stores bytes as latin-1 text: 10x slower to read


def write_cifar_tree(arrays: ImageArrays, root: str, name: str, note: str = "", synthetic: bool = False) -> str:
    """Write `arrays` under `root` in the canonical layout of `name`; returns the data set folder.

    The folder is built next to its final place and renamed in one step, so a reader never sees
    half a tree.
    """
    if name not in FOLDERS:
        from ..errors import unknown_name
        raise unknown_name("CIFAR data set", name, FOLDERS)
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, FOLDERS[name])
    tmp = tempfile.mkdtemp(prefix=f".tmp-{FOLDERS[name]}-", dir=root)
    tag = "SYNTHETIC (not CIFAR; cmwnet.data.synthetic)" if synthetic else (note or name)
    flat = lambda x: np.ascontiguousarray(x.reshape(len(x), -1))  # noqa: E731
    try:
        if name == "cifar10":
            parts = np.array_split(np.arange(len(arrays.train_y)), 5)
            for i, idx in enumerate(parts, 1):
                _dump({"batch_label": f"training batch {i} of 5, {tag}", "labels": arrays.train_y[idx].tolist(),
                       "data": flat(arrays.train_x[idx]), "filenames": [f"img_{j}.png" for j in idx]},
                      os.path.join(tmp, f"data_batch_{i}"))
            _dump({"batch_label": f"testing batch 1 of 1, {tag}", "labels": arrays.test_y.tolist(),
                   "data": flat(arrays.test_x), "filenames": [f"test_{j}.png" for j in range(len(arrays.test_y))]},
                  os.path.join(tmp, "test_batch"))
            _dump({"label_names": list(arrays.classes), "num_cases_per_batch": len(parts[0]), "num_vis": 3072},
                  os.path.join(tmp, "batches.meta"))
        else:
            if arrays.coarse_of_fine is None:
                raise CmwnetError("writing CIFAR-100 needs the super-class of every fine class (coarse_of_fine)")
            cof = np.asarray(arrays.coarse_of_fine)
            for split, x, y in (("train", arrays.train_x, arrays.train_y), ("test", arrays.test_x, arrays.test_y)):
                _dump({"batch_label": f"{split}, {tag}", "fine_labels": y.tolist(), "coarse_labels": cof[y].tolist(),
                       "data": flat(x), "filenames": [f"{split}_{j}.png" for j in range(len(y))]},
                      os.path.join(tmp, split))
            n_coarse = int(cof.max()) + 1
            _dump({"fine_label_names": list(arrays.classes),
                   "coarse_label_names": [f"{'synthetic_' if synthetic else ''}superclass_{i}" for i in range(n_coarse)]},
                  os.path.join(tmp, "meta"))
        if synthetic:
            with open(os.path.join(tmp, MARKER), "w") as f:
                json.dump({"synthetic": True, "note": note,
                           "train_size": int(len(arrays.train_y)), "test_size": int(len(arrays.test_y))}, f)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def ensure_synthetic_cifar(root: str, name: str = "cifar10", train_per_class: int = 200,
                           test_per_class: int = 10, seed: int = 0) -> str:
    """Write a synthetic tree under `root` unless one with the same parameters is there; returns
    `root` (what `data.root` should be set to)."""
    folder = os.path.join(root, FOLDERS.get(name, name))
    note = f"synthetic {name}: {train_per_class} train / {test_per_class} test images per class, seed {seed}"
    marker = os.path.join(folder, MARKER)
    if os.path.exists(marker):
        try:
            with open(marker) as f:
                if json.load(f).get("note") == note:
                    return root
        except (OSError, ValueError):
            pass
    elif os.path.isdir(folder):
        raise CmwnetError(f"{folder} exists and is not a synthetic tree: refusing to overwrite it; "
                          "choose another folder for the synthetic data")
    write_cifar_tree(synthetic_arrays(name, train_per_class, test_per_class, seed), root, name, note, synthetic=True)
    return root
