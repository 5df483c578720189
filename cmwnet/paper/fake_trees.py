"""Small data-set trees in the real on-disk formats, for tests and `--smoke` runs.

Nothing here is a format of our own: each writer lays files out exactly as the published data set
does (see `folders.py` for the formats), only with a few tiny synthetic images per class. An image of
class c is a random-noise texture around a colour drawn from c, so a small net can learn the classes
and the training code has signal; `noise_rate` mislabels that fraction of training images (the label
in the file name or file list is then wrong, as in the real web data).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

AIRCRAFT = ["707-320", "727-200", "A300B4", "F-16A/B", "F/A-18", "Cessna 172"]
BIRDS = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani",
         "005.Crested_Auklet", "006.Least_Auklet"]
CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Audi R8 Coupe 2012",
        "BMW M3 Coupe 2012", "Bugatti Veyron 16.4 Coupe 2009"]


def folder_name(name: str) -> str:
    """A class name as a folder name ('/' is not allowed in one)."""
    return name.replace("/", "_")


def _palette(num_classes: int, seed: int = 1234) -> np.ndarray:
    return np.random.default_rng(seed).integers(30, 226, size=(num_classes, 3))


def _image(rng: np.random.Generator, colour: np.ndarray, h: int, w: int):
    from PIL import Image

    pixels = colour[None, None, :] + rng.normal(0, 18, size=(h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _noisy(rng: np.random.Generator, labels: np.ndarray, rate: float, num_classes: int) -> np.ndarray:
    """Move `rate` of the labels to another class (uniformly among the others)."""
    out = labels.copy()
    flip = rng.random(len(labels)) < rate
    out[flip] = (labels[flip] + rng.integers(1, num_classes, flip.sum())) % num_classes
    return out


def _counts(per_class: int | Sequence[int], num_classes: int) -> list[int]:
    return [per_class] * num_classes if isinstance(per_class, int) else list(per_class)


def make_animal10n(root: str, per_class: int | Sequence[int] = 6, test_per_class: int = 2, size: int = 32,
                   noise_rate: float = 0.0, seed: int = 0) -> dict:
    """ROOT/training/<label>_<id>.jpg and ROOT/testing/<label>_<id>.jpg (ANIMAL-10N: 64x64, 10 classes)."""
    rng, pal = np.random.default_rng(seed), _palette(10)
    counts = _counts(per_class, 10)
    true = np.repeat(np.arange(10), counts)
    observed = _noisy(rng, true, noise_rate, 10)
    for split, t, o in (("training", true, observed),
                        ("testing", np.repeat(np.arange(10), test_per_class), None)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        o = t if o is None else o
        for i, (yt, yo) in enumerate(zip(t, o)):
            _image(rng, pal[yt], size, size).save(os.path.join(root, split, f"{yo}_{i:05d}.jpg"), quality=90)
    return {"train_true": true, "train_observed": observed}


def make_webvision(root: str, num_classes: int = 4, per_class: int | Sequence[int] = 5, flickr_per_class: int = 0,
                   val_per_class: int = 2, imagenet_per_class: int = 2, extra_classes: int = 1,
                   size: tuple[int, int] = (36, 48), noise_rate: float = 0.0, seed: int = 0) -> dict:
    """WebVision 1.0 layout: info/train_filelist_{google,flickr}.txt ('<relative path> <label>'),
    google/q####/*.jpg, flickr/q####/*.jpg, info/val_filelist.txt + val_images_256/, and the
    ImageNet validation images with imagenet/val/val.txt. `extra_classes` more classes appear in
    every list (the loaders must drop labels >= their class count). `size` is (height, width)."""
    rng = np.random.default_rng(seed)
    total = num_classes + extra_classes
    pal = _palette(total)
    counts = _counts(per_class, num_classes) + [2] * extra_classes
    os.makedirs(os.path.join(root, "info"), exist_ok=True)
    h, w = size
    out = {}
    for source, cnt in (("google", counts), ("flickr", [flickr_per_class] * total)):
        true = np.repeat(np.arange(total), cnt)
        observed = _noisy(rng, true, noise_rate, total)
        lines = []
        for i, (yt, yo) in enumerate(zip(true, observed)):
            rel = f"{source}/q{yo + 1:04d}/{i:06d}.jpg"  # a query's images carry the query's (noisy) label
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            _image(rng, pal[yt], h, w).save(os.path.join(root, rel), quality=90)
            lines.append(f"{rel} {yo}\n")
        with open(os.path.join(root, "info", f"train_filelist_{source}.txt"), "w") as f:
            f.writelines(lines)
        out[source] = {"true": true, "observed": observed}
    os.makedirs(os.path.join(root, "val_images_256"), exist_ok=True)
    val = np.repeat(np.arange(total), val_per_class)
    with open(os.path.join(root, "info", "val_filelist.txt"), "w") as f:
        for i, y in enumerate(val):
            name = f"val{i + 1:06d}.jpg"
            _image(rng, pal[y], h, h).save(os.path.join(root, "val_images_256", name), quality=90)
            f.write(f"{name} {y}\n")
    inet = os.path.join(root, "imagenet", "val")
    os.makedirs(inet, exist_ok=True)
    labels = np.repeat(np.arange(total), imagenet_per_class)
    rng.shuffle(labels)  # ILSVRC12 validation files are not sorted by class
    with open(os.path.join(inet, "val.txt"), "w") as f:
        for i, y in enumerate(labels):
            name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
            _image(rng, pal[y], 2 * h, 2 * w).save(os.path.join(inet, name), format="JPEG", quality=90)
            f.write(f"{name} {y}\n")
    return out


def _write_folder(rng, folder: str, names: Sequence[str], counts: Sequence[int], pal, size: int,
                  labels_true: np.ndarray | None = None, observed: np.ndarray | None = None) -> None:
    if labels_true is None:
        labels_true = np.repeat(np.arange(len(names)), counts)
    observed = labels_true if observed is None else observed
    for i, (yt, yo) in enumerate(zip(labels_true, observed)):
        d = os.path.join(folder, folder_name(names[yo]))
        os.makedirs(d, exist_ok=True)
        _image(rng, pal[yt], size, size + size // 4).save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def make_image_folder(root: str, classes: Sequence[str] = ("a", "b", "c"), per_class: int | Sequence[int] = 4,
                      val_per_class: int = 2, meta_per_class: int = 0, size: int = 40, noise_rate: float = 0.0,
                      seed: int = 0) -> dict:
    """ROOT/train/<class>/*.jpg, ROOT/val/<class>/*.jpg (and ROOT/meta/<class>/ when meta_per_class)."""
    rng, pal = np.random.default_rng(seed), _palette(len(classes))
    true = np.repeat(np.arange(len(classes)), _counts(per_class, len(classes)))
    observed = _noisy(rng, true, noise_rate, len(classes))
    _write_folder(rng, os.path.join(root, "train"), classes, [], pal, size, true, observed)
    _write_folder(rng, os.path.join(root, "val"), classes, [val_per_class] * len(classes), pal, size)
    if meta_per_class:
        _write_folder(rng, os.path.join(root, "meta"), classes, [meta_per_class] * len(classes), pal, size)
    return {"train_true": true, "train_observed": observed}


def _write_fgvc_aircraft(rng, root: str, names: Sequence[str], per_class: int, pal, size: int) -> None:
    data = os.path.join(root, "fgvc-aircraft-2013b", "data")
    os.makedirs(os.path.join(data, "images"), exist_ok=True)
    with open(os.path.join(data, "variants.txt"), "w") as f:
        f.writelines(f"{n}\n" for n in names)  # the real file is not sorted either
    order = np.repeat(np.arange(len(names)), per_class)
    rng.shuffle(order)
    with open(os.path.join(data, "images_variant_train.txt"), "w") as f:
        for i, y in enumerate(order):
            image_id = f"{1000000 + i:07d}"
            _image(rng, pal[y], size, size + size // 3).save(os.path.join(data, "images", image_id + ".jpg"))
            f.write(f"{image_id} {names[y]}\n")


def _write_cub(rng, root: str, names: Sequence[str], per_class: int, pal, size: int) -> None:
    cub = os.path.join(root, "CUB_200_2011")
    rows, k = [], 0
    for y, n in enumerate(names):
        os.makedirs(os.path.join(cub, "images", n), exist_ok=True)
        for j in range(2 * per_class):  # half of them in CUB's test split
            k += 1
            rel = f"{n}/{n.split('.', 1)[1]}_{j:04d}_{k}.jpg"
            _image(rng, pal[y], size, size).save(os.path.join(cub, "images", rel))
            rows.append((k, rel, y + 1, int(j % 2 == 0)))
    with open(os.path.join(cub, "classes.txt"), "w") as f:
        f.writelines(f"{i + 1} {n}\n" for i, n in enumerate(names))
    with open(os.path.join(cub, "images.txt"), "w") as f:
        f.writelines(f"{k} {rel}\n" for k, rel, _, _ in rows)
    with open(os.path.join(cub, "image_class_labels.txt"), "w") as f:
        f.writelines(f"{k} {y}\n" for k, _, y, _ in rows)
    with open(os.path.join(cub, "train_test_split.txt"), "w") as f:
        f.writelines(f"{k} {t}\n" for k, _, _, t in rows)


def _write_stanford_cars(rng, root: str, names: Sequence[str], per_class: int, pal, size: int) -> None:
    from scipy.io import savemat

    base = os.path.join(root, "stanford_cars")
    os.makedirs(os.path.join(base, "devkit"), exist_ok=True)
    os.makedirs(os.path.join(base, "cars_train"), exist_ok=True)
    class_names = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        class_names[0, i] = n
    savemat(os.path.join(base, "devkit", "cars_meta.mat"), {"class_names": class_names})
    order = np.repeat(np.arange(len(names)), per_class)
    rng.shuffle(order)
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    annos = np.zeros((1, len(order)), dtype=[(f, "O") for f in fields])
    for i, y in enumerate(order):
        fname = f"{i + 1:05d}.jpg"
        _image(rng, pal[y], size, size + size // 2).save(os.path.join(base, "cars_train", fname))
        annos[0, i] = (np.array([[1]]), np.array([[1]]), np.array([[size]]), np.array([[size]]),
                       np.array([[y + 1]], dtype=np.uint8), np.array([fname]))
    savemat(os.path.join(base, "devkit", "cars_train_annos.mat"), {"annotations": annos})


CURATED_WRITERS = {"aircraft": (AIRCRAFT, _write_fgvc_aircraft), "bird": (BIRDS, _write_cub),
                   "car": (CARS, _write_stanford_cars)}


def make_webfg(root: str, subset: str = "aircraft", num_classes: int = 4, per_class: int | Sequence[int] = 5,
               val_per_class: int = 2, meta_per_class: int = 3, size: int = 32, noise_rate: float = 0.0,
               seed: int = 0) -> dict:
    """ROOT/web-<subset>/{train,val}/<class folder>/*.jpg plus the curated data set of that domain in
    its own format (FGVC-Aircraft 2013b, CUB-200-2011 or Stanford Cars' devkit) for the meta images."""
    names, writer = CURATED_WRITERS[subset]
    names = list(names[:num_classes])
    rng, pal = np.random.default_rng(seed), _palette(len(names))
    folder = os.path.join(root, f"web-{subset}")
    true = np.repeat(np.arange(len(names)), _counts(per_class, len(names)))
    observed = _noisy(rng, true, noise_rate, len(names))
    _write_folder(rng, os.path.join(folder, "train"), names, [], pal, size, true, observed)
    _write_folder(rng, os.path.join(folder, "val"), names, [val_per_class] * len(names), pal, size)
    writer(rng, root, names, meta_per_class, pal, size)
    return {"classes": names, "train_true": true, "train_observed": observed}
