"""Real-world noisy data sets read in their own on-disk formats (paper Sec. 5 and 6).

- ANIMAL-10N: `ROOT/training/` and `ROOT/testing/` (or under `ROOT/raw_image/`), 64x64 JPEGs whose
  label is the integer prefix of the file name (`<label>_<id>.jpg`). Small enough to decode once and
  hold on the device. Train: horizontal flip; ImageNet normalisation.
- WebVision 1.0: `ROOT/info/train_filelist_google.txt` (+ `train_filelist_flickr.txt`), lines
  `<path relative to ROOT> <label>`; validation `ROOT/info/val_filelist.txt` with images in
  `ROOT/val_images_256/`; ImageNet validation `ROOT/imagenet/val/val.txt` with images beside it.
  mini-WebVision = Google images of the first 50 classes; base 256, RandomCrop 227 / CenterCrop 227.
  Full WebVision = 1000 classes, Google + Flickr; base 320, RandomResizedCrop 299 / CenterCrop 299.
- WebFG-496: `ROOT/web-{bird,aircraft,car}/{train,val}/<class folder>/`; base 448, RandomCrop 448
  (a flip on the centre square) / CenterCrop 448. Clean meta images come from the curated data set
  of the same domain, first `data.meta.per_class` training images of each class:
  `ROOT/fgvc-aircraft-2013b/data/` (`variants.txt`, `images_variant_train.txt`, `images/`),
  `ROOT/CUB_200_2011/` (`classes.txt`, `images.txt`, `image_class_labels.txt`,
  `train_test_split.txt`, `images/`), `ROOT/stanford_cars/` (`devkit/cars_meta.mat`,
  `devkit/cars_train_annos.mat`, `cars_train/`), or a plain `ROOT/web-<x>/meta/<class folder>/`.
  Curated classes are matched to the web folders by name (case and punctuation ignored); where the
  names differ but the counts agree they are matched by sorted position, as the authors' code does.
- Any image folder: `ROOT/train/<class>/`, `ROOT/val/<class>/` (optional `ROOT/meta/<class>/`).

Each data set is also registered with a small geometry (`<name>_32px`, `webvision_80px`) for CPU
smoke runs on generated trees: the same readers and transforms, smaller crops. A missing data set
stops with one line saying where to get it. The engine sees `FileSource`s (see `file_source.py`).
The labels go through the same pipeline as array data sets (`pipeline.py`: validation split, subsets,
long tail, clean meta split, noise, partial labels), with the files' labels as the true ones.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..config import DataCfg, given_keys
from ..errors import CmwnetError
from .builder import BUNDLE_BUILDERS, DataBundle
from .file_source import CropAugment, FileSource, decode_image, decode_pool
from .gpu import Augment, DeviceImages
from .pipeline import first, plan_labels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

WHERE = {
    "animal10n": "ANIMAL-10N: https://dm.kaist.ac.kr/datasets/animal-10n/ (unpack so that ROOT/training and "
                 "ROOT/testing hold the images)",
    "webvision": "WebVision 1.0 (resized images + info files): https://data.vision.ee.ethz.ch/cvl/webvision/"
                 "dataset2017.html, unpacked in ROOT",
    "imagenet": "the ILSVRC2012 validation images (https://image-net.org/challenges/LSVRC/2012/) in "
                "ROOT/imagenet/val/ with a val.txt of '<file> <class index>' lines",
    "webfg": "WebFG-496: https://github.com/NUST-Machine-Intelligence-Laboratory/weblyFG-dataset, unpacked in ROOT",
    "aircraft": "FGVC-Aircraft 2013b: https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/, unpacked in ROOT",
    "bird": "CUB-200-2011: https://www.vision.caltech.edu/datasets/cub_200_2011/, unpacked in ROOT",
    "car": "Stanford Cars (cars_train + devkit): https://ai.stanford.edu/~jkrause/cars/car_dataset.html, "
           "unpacked in ROOT/stanford_cars",
    "image_folder": "a folder with train/<class>/ and val/<class>/ sub-folders of images",
}


def _missing(what: str, path: str, source: str) -> CmwnetError:
    return CmwnetError(f"{what} not found at {path}: get {WHERE[source]}, and set data.root")


@dataclass
class FileList:
    """Image files with labels; `classes[i]` names label i."""
    paths: list[str]
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, indices: Sequence[int]) -> "FileList":
        idx = np.asarray(indices, dtype=np.int64)
        return FileList([self.paths[i] for i in idx], self.labels[idx], self.classes)

    def first_per_class(self, per_class: int) -> "FileList":
        """The first `per_class` files of every class, in list order (the authors' meta loaders)."""
        seen: dict[int, int] = {}
        keep = []
        for i, y in enumerate(self.labels.tolist()):
            if seen.get(y, 0) < per_class:
                seen[y] = seen.get(y, 0) + 1
                keep.append(i)
        return self.take(keep)


# -- readers: each data set's own format ----------------------------------------------------------
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def read_animal10n(root: str) -> tuple[FileList, FileList]:
    """ANIMAL-10N training and testing lists; the label is the integer before the first '_'."""
    base = root
    if not os.path.isdir(os.path.join(base, "training")) and os.path.isdir(os.path.join(root, "raw_image", "training")):
        base = os.path.join(root, "raw_image")
    out = []
    for split in ("training", "testing"):
        folder = os.path.join(base, split)
        if not os.path.isdir(folder):
            raise _missing(f"ANIMAL-10N {split}/ folder", folder, "animal10n")
        names = sorted(n for n in os.listdir(folder) if _is_image(n))
        if not names:
            raise CmwnetError(f"ANIMAL-10N folder {folder} holds no images: get {WHERE['animal10n']}")
        labels = []
        for n in names:
            prefix = n.split("_", 1)[0]
            if "_" not in n or not prefix.isdigit():
                raise CmwnetError(f"ANIMAL-10N file {os.path.join(folder, n)} is not named <label>_<id>.jpg")
            labels.append(int(prefix))
        out.append(FileList([os.path.join(folder, n) for n in names], np.asarray(labels, np.int64),
                            [str(i) for i in range(10)]))
    for fl, split in zip(out, ("training", "testing")):
        if fl.labels.max() > 9:
            raise CmwnetError(f"ANIMAL-10N {split}/ has label {fl.labels.max()}; its labels are 0..9")
    return out[0], out[1]


def read_label_list(list_file: str, image_root: str, num_classes: int, source: str) -> FileList:
    """A '<path> <label>' file list (WebVision, ImageNet val.txt); keeps labels < num_classes."""
    if not os.path.isfile(list_file):
        raise _missing(f"file list {os.path.basename(list_file)}", list_file, source)
    paths, labels = [], []
    with open(list_file) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise CmwnetError(f"{list_file} line {lineno} is not '<image path> <label>': {line[:80]!r}")
            y = int(parts[1])
            if 0 <= y < num_classes:
                paths.append(os.path.join(image_root, parts[0]))
                labels.append(y)
    if not paths:
        raise CmwnetError(f"{list_file} lists no image of classes 0..{num_classes - 1}")
    if not os.path.isfile(paths[0]):
        raise CmwnetError(f"images listed in {list_file} are not under {image_root} (first: {paths[0]}): "
                          f"get {WHERE[source]}")
    return FileList(paths, np.asarray(labels, np.int64), [str(i) for i in range(num_classes)])


def read_webvision(root: str, num_classes: int, sources: Sequence[str]) -> tuple[FileList, FileList, FileList]:
    """WebVision training list (the given sources), WebVision validation and ImageNet validation,
    each restricted to classes < num_classes."""
    if not os.path.isdir(os.path.join(root, "info")):
        raise _missing("WebVision info/ folder", os.path.join(root, "info"), "webvision")
    parts = [read_label_list(os.path.join(root, "info", f"train_filelist_{s}.txt"), root, num_classes, "webvision")
             for s in sources]
    train = FileList(sum((p.paths for p in parts), []), np.concatenate([p.labels for p in parts]), parts[0].classes)
    val = read_label_list(os.path.join(root, "info", "val_filelist.txt"), os.path.join(root, "val_images_256"),
                          num_classes, "webvision")
    imagenet_dir = os.path.join(root, "imagenet", "val")
    imagenet = read_label_list(os.path.join(imagenet_dir, "val.txt"), imagenet_dir, num_classes, "imagenet")
    return train, val, imagenet


def read_image_folder(folder: str, classes: Sequence[str] | None = None, source: str = "image_folder") -> FileList:
    """torchvision ImageFolder order: sorted class folders, files sorted within each (recursively).
    With `classes`, labels follow that list (a validation folder uses the training classes)."""
    if not os.path.isdir(folder):
        raise _missing("image folder", folder, source)
    found = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    if not found:
        raise CmwnetError(f"{folder} has no class sub-folders: expected {folder}/<class>/<image files>")
    names = list(classes) if classes is not None else found
    index = {c: i for i, c in enumerate(names)}
    paths, labels = [], []
    for c in found:
        if c not in index:
            raise CmwnetError(f"class folder '{c}' in {folder} is not a training class")
        files = _class_images(folder, c)
        if not files and classes is None:
            raise CmwnetError(f"class folder '{c}' in {folder} holds no image files: add images or remove the "
                              "folder (it would be a class with no training samples)")
        paths += files
        labels += [index[c]] * len(files)
    if not paths:
        raise CmwnetError(f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return FileList(paths, np.asarray(labels, np.int64), names)


def _class_images(folder: str, c: str) -> list[str]:
    """The image files under folder/c in torchvision ImageFolder's order (links followed), refusing a
    link that leads back into the data folder outside this class (`loop -> ..`: every other class's
    images would get this label) or into a folder already listed (a loop that never ends)."""
    root = os.path.join(folder, c)
    top, mine = os.path.realpath(folder), os.path.realpath(root)
    seen: set[str] = set()
    walked = []
    for dirpath, dirnames, files in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        inside_top = real == top or real.startswith(top + os.sep)
        inside_mine = real == mine or real.startswith(mine + os.sep)
        if real in seen or (inside_top and not inside_mine) or top.startswith(real + os.sep):
            raise CmwnetError(f"image folder {folder}: {dirpath} is a link to {real}, which would list images "
                              f"twice or give other images class '{c}': remove the link")
        seen.add(real)
        walked.append((dirpath, files))
    return [os.path.join(d, n) for d, files in sorted(walked) for n in sorted(files) if _is_image(n)]


def _lines(path: str, source: str) -> list[str]:
    if not os.path.isfile(path):
        raise _missing(os.path.basename(path), path, source)
    with open(path) as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]


def read_fgvc_aircraft(root: str) -> FileList:
    """FGVC-Aircraft 2013b training images by variant; label = position in sorted variants.txt."""
    data = os.path.join(root, "fgvc-aircraft-2013b", "data")
    variants = sorted(v.strip() for v in _lines(os.path.join(data, "variants.txt"), "aircraft"))
    index = {v: i for i, v in enumerate(variants)}
    paths, labels = [], []
    for ln in _lines(os.path.join(data, "images_variant_train.txt"), "aircraft"):
        image_id, _, variant = ln.strip().partition(" ")
        if variant not in index:
            raise CmwnetError(f"images_variant_train.txt names variant '{variant}', missing from variants.txt")
        paths.append(os.path.join(data, "images", image_id + ".jpg"))
        labels.append(index[variant])
    return FileList(paths, np.asarray(labels, np.int64), variants)


def read_cub(root: str) -> FileList:
    """CUB-200-2011 training images (train_test_split.txt == 1), in image-id order."""
    cub = os.path.join(root, "CUB_200_2011")
    classes = [ln.split(" ", 1)[1].strip() for ln in _lines(os.path.join(cub, "classes.txt"), "bird")]
    images = dict(ln.split(" ", 1) for ln in _lines(os.path.join(cub, "images.txt"), "bird"))
    label_of = dict(ln.split() for ln in _lines(os.path.join(cub, "image_class_labels.txt"), "bird"))
    is_train = dict(ln.split() for ln in _lines(os.path.join(cub, "train_test_split.txt"), "bird"))
    ids = sorted(images, key=int)
    keep = [i for i in ids if is_train.get(i) == "1"]
    paths = [os.path.join(cub, "images", images[i].strip()) for i in keep]
    labels = np.asarray([int(label_of[i]) - 1 for i in keep], np.int64)
    return FileList(paths, labels, classes)


def _mat_strings(values) -> list[str]:
    return [str(np.asarray(v).reshape(-1)[0]) if np.asarray(v).size else "" for v in np.atleast_1d(values)]


def read_stanford_cars(root: str) -> FileList:
    """Stanford Cars training images from the devkit's .mat annotations (classes 1-based there)."""
    from scipy.io import loadmat

    base = os.path.join(root, "stanford_cars")
    meta_path = os.path.join(base, "devkit", "cars_meta.mat")
    annos_path = os.path.join(base, "devkit", "cars_train_annos.mat")
    for p in (meta_path, annos_path):
        if not os.path.isfile(p):
            raise _missing(os.path.basename(p), p, "car")
    classes = _mat_strings(loadmat(meta_path, squeeze_me=True)["class_names"])
    annos = np.atleast_1d(loadmat(annos_path, squeeze_me=True)["annotations"])
    paths = [os.path.join(base, "cars_train", str(a["fname"])) for a in annos]
    labels = np.asarray([int(a["class"]) - 1 for a in annos], np.int64)
    return FileList(paths, labels, classes)


CURATED: dict[str, tuple[str, Callable[[str], FileList], str]] = {
    # WebFG subset -> (curated folder under ROOT, reader, WHERE key)
    "aircraft": ("fgvc-aircraft-2013b", read_fgvc_aircraft, "aircraft"),
    "bird": ("CUB_200_2011", read_cub, "bird"),
    "car": ("stanford_cars", read_stanford_cars, "car"),
}


def _norm_name(name: str) -> str:
    name = re.sub(r"^\d+\.", "", name)  # CUB's "001." prefix
    return re.sub(r"[^0-9a-z]", "", name.lower())


def align_classes(meta: FileList, train_classes: Sequence[str]) -> tuple[FileList, str]:
    """Relabel a curated meta list onto the web training classes: by name, or by sorted position when
    the names differ but the class counts agree. Returns (relabelled list, "name" | "position")."""
    wanted = {_norm_name(c): i for i, c in enumerate(train_classes)}
    by_name = {i: wanted.get(_norm_name(c)) for i, c in enumerate(meta.classes)}
    if all(_norm_name(c) in {_norm_name(m) for m in meta.classes} for c in train_classes):
        keep = [k for k, y in enumerate(meta.labels.tolist()) if by_name[y] is not None]
        out = meta.take(keep)
        out.labels = np.asarray([by_name[y] for y in out.labels.tolist()], np.int64)
        out.classes = list(train_classes)
        return out, "name"
    if len(meta.classes) == len(train_classes):
        return FileList(meta.paths, meta.labels, list(train_classes)), "position"
    raise CmwnetError(f"the curated meta set has {len(meta.classes)} classes and the web training set "
                      f"{len(train_classes)}, and their names differ: they cannot be matched")


def read_webfg(root: str, subset: str, per_class: int, meta_needed: bool) -> tuple[FileList, FileList, FileList | None, dict]:
    """WebFG-496 web training images, the validation (test) images and the clean meta list."""
    folder = os.path.join(root, f"web-{subset}")
    if not os.path.isdir(folder):
        raise _missing(f"WebFG-496 web-{subset}/ folder", folder, "webfg")
    train = read_image_folder(os.path.join(folder, "train"), source="webfg")
    test = read_image_folder(os.path.join(folder, "val"), classes=train.classes, source="webfg")
    info: dict = {}
    meta = None
    if meta_needed:
        sub, reader, where = CURATED[subset]
        if os.path.isdir(os.path.join(root, sub)):
            meta, info["meta_alignment"] = align_classes(reader(root), train.classes)
            info["meta_source"] = sub
        elif os.path.isdir(os.path.join(folder, "meta")):
            meta = read_image_folder(os.path.join(folder, "meta"), classes=train.classes, source="webfg")
            info["meta_source"], info["meta_alignment"] = f"web-{subset}/meta", "name"
        else:
            raise _missing(f"clean meta images for web-{subset} ({sub}/)", os.path.join(root, sub), where)
        if info["meta_alignment"] == "position":
            print(f"warning: {sub} class names differ from web-{subset}'s; matched by sorted position",
                  file=sys.stderr)
        meta = meta.first_per_class(per_class)
    return train, test, meta, info


# -- from file lists to the engine's data ------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """How a data set's images reach the model: decoded to a `base` square (None: the files' own
    size, all equal, held in memory), then cropped to `crop` (random for training, centre for test)."""
    base: int | None
    crop: int
    train_crop: str = "random_crop"       # random_crop | random_resized_crop (ignored when base is None)


def decode_all(paths: Sequence[str], base: int | None) -> np.ndarray:
    """Decode every file (in the thread pool) into one uint8 N x 3 x H x W array."""
    if not paths:
        raise CmwnetError("no image files to decode")
    arrays = list(decode_pool().map(lambda p: decode_image(p, base), paths))
    shape = arrays[0].shape
    for p, a in zip(paths, arrays):
        if a.shape != shape:
            raise CmwnetError(f"image {p} is {a.shape[1]}x{a.shape[0]}, the others {shape[1]}x{shape[0]}: "
                              "this data set's images must all have one size")
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()


def _augment(cfg: DataCfg, geometry: Geometry):
    a = cfg.augment
    if geometry.base is None:
        return Augment(a.crop_pad, a.pad_mode, a.flip, a.normalize)
    given = given_keys(a)
    if a.crop_pad and (given is None or "crop_pad" in given):     # the default 4 is for CIFAR-like data: not asked for
        raise CmwnetError(f"data.augment.crop_pad does not apply to {cfg.name} (its crops are fixed by the data "
                          f"set: {geometry.crop} from {geometry.base}): set data.augment.crop_pad: 0")
    return CropAugment(geometry.crop, geometry.train_crop, a.flip, a.normalize)


def _source(files: FileList, labels: np.ndarray, geometry: Geometry, augment, device: torch.device,
            clean: np.ndarray | None = None):
    if geometry.base is None:
        return DeviceImages.from_numpy(decode_all(files.paths, None), labels, augment, device, clean_labels=clean)
    return FileSource.from_files(files.paths, labels, geometry.base, augment, device, clean_labels=clean)


def make_bundle(cfg: DataCfg, device: torch.device, train: FileList, test: FileList, geometry: Geometry,
                meta: FileList | None = None, extra_tests: dict[str, FileList] | None = None,
                info: dict | None = None, clean_meta_from_train: bool = False) -> DataBundle:
    """Train/test/meta sources from file lists, after the label pipeline (`pipeline.py`): the same
    validation split, subsets, long tail, clean meta split, noise and partial labels as array data sets.
    `meta`: the data set's own clean meta images; else, with `clean_meta_from_train`, the meta set is
    held out from the training files. The files' labels are the data set's own (noisy) labels."""
    c = len(train.classes)
    if cfg.meta.kind == "clean" and meta is None and not clean_meta_from_train:
        raise CmwnetError(f"{cfg.name} has no clean meta images: use data.meta.kind lowest_loss (the authors' "
                          "choice) or balanced_train")
    if cfg.fold.folds:
        raise CmwnetError("data.fold (held-out folds for cross-validated predictions) works on array data sets (CIFAR, "
                          "digits) for now: use data.fold.folds=0 with an image folder")
    plan = plan_labels(cfg, train.labels, len(test), c, hold_out_meta=meta is None, real_noise=True)
    if plan.meta is not None:
        meta = train.take(plan.meta)
    extras = {k: v.take(first(len(v), cfg.test_subset)) for k, v in (extra_tests or {}).items()}
    if plan.val is not None:
        extras["val"] = train.take(plan.val)
    train, test = train.take(plan.train), test.take(plan.test)
    augment = _augment(cfg, geometry)
    train_src = _source(train, plan.observed, geometry, augment, device, clean=plan.clean)
    test_src = _source(test, test.labels, geometry, augment, device)
    extra_src = {k: _source(v, v.labels, geometry, augment, device) for k, v in extras.items()}
    meta_src = None
    if cfg.meta.kind == "clean":
        meta_src = DeviceImages.from_numpy(decode_all(meta.paths, geometry.base), meta.labels, augment, device)
    info = {**plan.info, "root": cfg.root, **(info or {}), "image_base": geometry.base, "image_crop": geometry.crop,
            **{f"{k}_size": len(v) for k, v in extras.items()}}
    if meta_src is not None:
        info["meta_size"] = len(meta)
    return DataBundle(train_src, test_src, meta_src, c, plan.info["class_counts"], info, extra_src, plan.candidates,
                      train_index=plan.train, train_paths=list(train.paths), class_names=list(train.classes))


# -- the registered data sets ---------------------------------------------------------------------------
def build_animal10n(cfg: DataCfg, device: torch.device) -> DataBundle:
    """ANIMAL-10N (Song et al., ICML 2019, "SELFIE"): 10 classes, 50,000 + 5,000 images of 64x64."""
    train, test = read_animal10n(cfg.root)
    return make_bundle(cfg, device, train, test, Geometry(None, 0))


def webvision_builder(num_classes: int, sources: tuple[str, ...], geometry: Geometry):
    def build(cfg: DataCfg, device: torch.device) -> DataBundle:
        """WebVision 1.0 (Li et al., 2017): web images of the 1000 ILSVRC12 classes."""
        train, val, imagenet = read_webvision(cfg.root, num_classes, sources)
        for fl in (train, val, imagenet):
            fl.classes = [str(i) for i in range(num_classes)]
        return make_bundle(cfg, device, train, val, geometry, extra_tests={"imagenet": imagenet},
                           info={"sources": list(sources), "classes_present": len(set(train.labels.tolist()))})
    return build


def webfg_builder(subset: str, geometry: Geometry):
    def build(cfg: DataCfg, device: torch.device) -> DataBundle:
        """WebFG-496 (Sun et al., 2021): web images of fine-grained birds, aircraft and cars."""
        train, test, meta, info = read_webfg(cfg.root, subset, cfg.meta.per_class, cfg.meta.kind == "clean")
        return make_bundle(cfg, device, train, test, geometry, meta=meta, info=info)
    return build


def adds_synthetic_noise(cfg: DataCfg) -> bool:
    """True when the config corrupts the folder's labels itself (a noise kind or a label file): the folder's own
    labels are then the true ones by the user's statement, and a clean meta set may be held out from them."""
    return cfg.noise.kind != "none" or bool(cfg.noise.file)


def image_folder_builder(geometry: Geometry):
    def build(cfg: DataCfg, device: torch.device) -> DataBundle:
        """Any image folder: train/<class>/, val/<class>/, optional clean meta/<class>/."""
        train = read_image_folder(os.path.join(cfg.root, "train"))
        test = read_image_folder(os.path.join(cfg.root, "val"), classes=train.classes)
        meta = None
        meta_dir = os.path.join(cfg.root, "meta")
        if cfg.meta.kind == "clean" and os.path.isdir(meta_dir):
            meta = read_image_folder(meta_dir, classes=train.classes).first_per_class(cfg.meta.per_class)
        elif cfg.meta.kind == "clean" and not adds_synthetic_noise(cfg):
            # the folder's labels are the ones under suspicion: images held out from them are not a clean meta set
            raise CmwnetError(f"data.meta.kind is clean but {cfg.root} has no meta/ folder, and its training labels "
                              "are not known to be clean: add hand-checked images as meta/<class>/ beside train/, or "
                              "set data.meta.kind: lowest_loss (no clean images needed)")
        # the reader's val/ folder is what the run evaluates as its test split: say so where it is reported
        return make_bundle(cfg, device, train, test, geometry, meta=meta, clean_meta_from_train=True,
                           info={"test_split": "val/"})
    return build


MINI_WEBVISION = Geometry(256, 227)
WEBVISION = Geometry(320, 299, "random_resized_crop")
WEBFG = Geometry(448, 448)
IMAGE_FOLDER = Geometry(256, 224)
SMALL = Geometry(36, 32)                                     # CPU smoke runs on generated trees
SMALL_WEBVISION = Geometry(88, 80, "random_resized_crop")    # InceptionResNetV2 needs >= 75 pixels

BUNDLE_BUILDERS["animal10n"] = build_animal10n
BUNDLE_BUILDERS["mini_webvision"] = webvision_builder(50, ("google",), MINI_WEBVISION)
BUNDLE_BUILDERS["mini_webvision_32px"] = webvision_builder(50, ("google",), SMALL)
BUNDLE_BUILDERS["webvision"] = webvision_builder(1000, ("google", "flickr"), WEBVISION)
BUNDLE_BUILDERS["webvision_80px"] = webvision_builder(1000, ("google", "flickr"), SMALL_WEBVISION)
for _sub in ("bird", "aircraft", "car"):
    BUNDLE_BUILDERS[f"web_{_sub}"] = webfg_builder(_sub, WEBFG)
    BUNDLE_BUILDERS[f"web_{_sub}_32px"] = webfg_builder(_sub, Geometry(32, 32))
BUNDLE_BUILDERS["image_folder"] = image_folder_builder(IMAGE_FOLDER)
BUNDLE_BUILDERS["image_folder_32px"] = image_folder_builder(SMALL)
