"""Reader of the canonical CIFAR-10/100 python batches (the layout torchvision downloads).

Also reads the offline JPEG copy `cifar10-jpeg.npz` (see the README) when `root` points at it.
torchvision's own classes refuse files whose md5 differs, so the project reads the batches itself.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass

import numpy as np

from ..errors import CmwnetError

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
HOW_TO_GET = ("set data.root to the folder that holds it, set data.download: true (needs internet; "
              "torchvision fetches it), or point data.root at cifar10-jpeg.npz (offline copy, CIFAR-10 only)")


@dataclass
class ImageArrays:
    """A whole image-classification data set in memory: uint8 N x C x H x W images, int64 labels."""
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    coarse_of_fine: np.ndarray | None = None  # CIFAR-100: super-class of each fine class

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _unpickle(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise CmwnetError(f"CIFAR file missing: {path}; the folder is incomplete: delete it and fetch it again "
                          f"({HOW_TO_GET})") from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise CmwnetError(f"CIFAR file {path} is truncated or corrupt ({type(e).__name__}): "
                          "delete the folder and fetch it again") from None
    if not isinstance(d, dict):
        raise CmwnetError(f"CIFAR file {path} holds a {type(d).__name__}, not the canonical batch dict: delete the "
                          f"folder and fetch it again ({HOW_TO_GET})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _field(d: dict, key: str, path: str):
    """d[key], or one line saying the file is not the canonical CIFAR batch."""
    if key not in d:
        raise CmwnetError(f"CIFAR file {path} has no '{key}' entry (it has {sorted(map(str, d))[:5]}): it is not the "
                          f"canonical python batch; delete the folder and fetch it again ({HOW_TO_GET})")
    return d[key]


def _images(d: dict, path: str) -> np.ndarray:
    try:
        raw = np.asarray(_field(d, "data", path))
    except (TypeError, ValueError):
        raise CmwnetError(f"CIFAR file {path} has image data that is not an array of bytes: it is corrupt") from None
    if raw.dtype != np.uint8:   # a cast to uint8 would wrap negatives and truncate floats silently
        ok = np.issubdtype(raw.dtype, np.integer) and (raw.size == 0 or (raw.min() >= 0 and raw.max() <= 255))
        if not ok:
            what = "floats" if np.issubdtype(raw.dtype, np.floating) else f"{raw.dtype} values"
            if np.issubdtype(raw.dtype, np.number) and raw.size:
                what += f" in [{raw.min()}, {raw.max()}]"
            raise CmwnetError(f"CIFAR file {path} has pixels that are {what}, not bytes 0..255 (uint8): it is not "
                              f"the canonical batch; write the images as uint8, or fetch the data again ({HOW_TO_GET})")
    data = raw.astype(np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise CmwnetError(f"CIFAR file {path} has image data of shape {data.shape}, expected N x 3072")
    return data.reshape(-1, 3, 32, 32)


def _labels(value, path: str, key: str) -> np.ndarray:
    """A batch's labels as int64, or one line: they must be a flat list of whole class numbers."""
    raw = np.asarray(value)
    if raw.ndim != 1 or not (np.issubdtype(raw.dtype, np.integer) or raw.size == 0):
        kind = f"{raw.ndim}-d" if raw.ndim != 1 else f"{raw.dtype.name}"
        raise CmwnetError(f"CIFAR file {path} has '{key}' that are {kind}, not a flat list of class numbers: it is "
                          f"not the canonical batch; delete the folder and fetch it again ({HOW_TO_GET})")
    return raw.astype(np.int64)


def _read_split(folder: str, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    xs, ys, coarse = [], [], []
    for name in files:
        path = os.path.join(folder, name)
        d = _unpickle(path)
        x = _images(d, path)
        y = _labels(_field(d, label_key, path), path, label_key)
        if len(y) != len(x):
            raise CmwnetError(f"CIFAR file {path} holds {len(x)} images but {len(y)} labels: it is corrupt")
        xs.append(x)
        ys.append(y)
        if "coarse_labels" in d:
            coarse.append(_labels(d["coarse_labels"], path, "coarse_labels"))
            if len(coarse[-1]) != len(y):
                raise CmwnetError(f"CIFAR file {path} holds {len(y)} labels but {len(coarse[-1])} coarse_labels: it is "
                                  "corrupt")
        if not len(x):
            raise CmwnetError(f"CIFAR file {path} holds no images: it is truncated; delete the folder and fetch it again "
                              f"({HOW_TO_GET})")
    return np.concatenate(xs), np.concatenate(ys), (np.concatenate(coarse) if coarse else None)


def _download(root: str, name: str) -> None:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        cls(root, train=True, download=True)
        cls(root, train=False, download=True)
    except Exception as e:  # noqa: BLE001
        raise CmwnetError(f"downloading {name} into {root} failed ({type(e).__name__}: {e}); without internet, "
                          f"{HOW_TO_GET}") from None


def _decode_jpeg(blob: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.uint8)


def _read_jpeg_npz(path: str) -> ImageArrays:
    """The offline CIFAR-10 copy: every image a JPEG, concatenated, with offsets.

    The archive is sorted by class; like the conversion tool that writes canonical batches from it
    (numpy default_rng(0): one permutation for train, then one for test), the images are shuffled, so
    reading the archive and reading the batches the tool writes give the same arrays in the same order
    (and "the first N training images" means the same in both).
    """
    from concurrent.futures import ProcessPoolExecutor

    try:
        z = np.load(path)
        splits = {}
        rng = np.random.default_rng(0)
        for split in ("train", "test"):
            data, offs = z[f"{split}_jpeg"], z[f"{split}_offsets"]
            order = rng.permutation(len(offs) - 1)
            blobs = [data[offs[i]:offs[i + 1]].tobytes() for i in order]
            with ProcessPoolExecutor(min(8, os.cpu_count() or 1)) as ex:
                imgs = np.stack(list(ex.map(_decode_jpeg, blobs, chunksize=2048)))
            labels = np.asarray(z[f"{split}_labels"], dtype=np.int64)[order]
            splits[split] = (imgs.transpose(0, 3, 1, 2).copy(), labels)
        classes = [str(c) for c in z["classes"]]
    except CmwnetError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CmwnetError(f"cannot read the CIFAR JPEG archive {path} ({type(e).__name__}): is it cifar10-jpeg.npz?") from None
    return ImageArrays(*splits["train"], *splits["test"], classes)


def load_cifar(root: str, name: str = "cifar10", download: bool = False) -> ImageArrays:
    """CIFAR-10 or CIFAR-100 from `root` (the folder holding cifar-10-batches-py / cifar-100-python,
    or that folder itself, or a cifar10-jpeg.npz file)."""
    if name not in FOLDERS:
        from ..errors import unknown_name
        raise unknown_name("CIFAR data set", name, FOLDERS)
    root = os.path.expanduser(str(root))
    if root.endswith(".npz"):
        if name != "cifar10":
            raise CmwnetError(f"{root} is the CIFAR-10 JPEG copy; {name} needs its own python batches")
        if not os.path.exists(root):
            raise CmwnetError(f"{name} archive not found: {root}; {HOW_TO_GET}")
        return _read_jpeg_npz(root)
    folder = root if os.path.basename(os.path.normpath(root)) == FOLDERS[name] else os.path.join(root, FOLDERS[name])
    if not os.path.isdir(folder):
        if download:
            _download(root, name)
        else:
            raise CmwnetError(f"{name} not found: no folder {folder}; {HOW_TO_GET}")
    if name == "cifar10":
        train = _read_split(folder, [f"data_batch_{i}" for i in range(1, 6)], "labels")
        test = _read_split(folder, ["test_batch"], "labels")
        meta = _unpickle(os.path.join(folder, "batches.meta"))
        classes = [str(c) for c in _field(meta, "label_names", os.path.join(folder, "batches.meta"))]
        coarse_of_fine = None
    else:
        train = _read_split(folder, ["train"], "fine_labels")
        test = _read_split(folder, ["test"], "fine_labels")
        meta = _unpickle(os.path.join(folder, "meta"))
        classes = [str(c) for c in _field(meta, "fine_label_names", os.path.join(folder, "meta"))]
        coarse_of_fine = np.zeros(len(classes), dtype=np.int64)
        if train[2] is None:
            raise CmwnetError(f"CIFAR-100 file {folder}/train has no coarse_labels: it is not the canonical file")
        coarse_of_fine[train[1]] = train[2]
    n_classes = len(classes)
    want = 10 if name == "cifar10" else 100
    if n_classes != want:
        raise CmwnetError(f"{name}'s meta file in {folder} names {n_classes} classes, not {want}: it belongs to another "
                          f"data set; fetch {name} again ({HOW_TO_GET})")
    for split, y in (("train", train[1]), ("test", test[1])):
        if y.min() < 0 or y.max() >= n_classes:
            raise CmwnetError(f"{name} {split} labels fall outside 0..{n_classes - 1}: the files are corrupt")
    return ImageArrays(train[0], train[1], test[0], test[1], classes, coarse_of_fine)
