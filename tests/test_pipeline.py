"""The one label pipeline (`cmwnet.data.pipeline`): file-backed data sets get the same long tail, noise
record and partial labels as array data sets, and the two paths pick the same samples."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from cmwnet.config import config_from_dict
from cmwnet.data import build_data
from cmwnet.data.builder import build_arrays_bundle
from cmwnet.data.cifar import ImageArrays
from cmwnet.data.folders import read_image_folder
from cmwnet.data.imbalance import long_tail_counts, long_tail_indices
from cmwnet.data.label_store import label_file_digest, write_label_file
from cmwnet.data.partial import candidate_sets
from cmwnet.errors import CmwnetError

CPU = torch.device("cpu")
CLASSES = ("a", "b", "c", "d")


def data_cfg(**d):
    d.setdefault("augment", {"crop_pad": 0, "flip": False, "normalize": "none"})
    return config_from_dict({"data": d}).data


def image_folder(root, per_class=(6, 6, 6, 6), val_per_class=1):
    """ROOT/train/<class>/*.png and ROOT/val/<class>/*.png: tiny PNGs, one grey level per class."""
    for split, sizes in (("train", per_class), ("val", [val_per_class] * len(per_class))):
        for k, (name, n) in enumerate(zip(CLASSES, sizes)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), 40 * k + i, np.uint8)).save(folder / f"{i:03d}.png")
    return str(root)


def folder_labels(bundle):
    """The class of every training file, read from its folder name (not from the bundle's labels)."""
    return np.asarray([CLASSES.index(p.split("/")[-2]) for p in bundle.train.images.paths])


def test_imbalance_cuts_a_long_tail_from_an_image_folder(tmp_path):
    root = image_folder(tmp_path)
    balanced = build_data(data_cfg(name="image_folder_32px", root=root), CPU)
    assert balanced.class_counts == [6, 6, 6, 6]
    b = build_data(data_cfg(name="image_folder_32px", root=root, imbalance=6, lt_seed=3), CPU)
    counts = long_tail_counts(6, 4, 6)                      # n_i = int(6 * (1/6)^(i/3))
    assert counts == [6, 3, 1, 1]
    assert b.class_counts == counts and b.info["long_tail_counts"] == counts
    assert b.info["train_size"] == len(b.train) == sum(counts)
    assert np.bincount(folder_labels(b), minlength=4).tolist() == counts   # the files kept, not only labels
    keep = long_tail_indices(np.repeat(np.arange(4), 6), counts, 3)
    assert b.train.images.paths == [balanced.train.images.paths[i] for i in keep]       # the rule's files, in order


def test_imbalance_on_a_set_with_an_empty_class_is_refused_in_one_line(tmp_path):
    root = image_folder(tmp_path, per_class=(3, 3, 3, 3))
    with pytest.raises(CmwnetError, match="data.train_subset=6 leaves 6 of the 12 training images, none of class 2") as e:
        build_data(data_cfg(name="image_folder_32px", root=root, imbalance=2, train_subset=6), CPU)
    assert "\n" not in str(e.value)


def test_noise_file_sha256_is_recorded_on_the_file_path(tmp_path):
    root = image_folder(tmp_path / "if")
    clean = np.repeat(np.arange(4), 6)
    observed = clean.copy()
    observed[::4] = (observed[::4] + 1) % 4
    path = str(tmp_path / "labels.npy")
    write_label_file(path, observed, num_classes=4)
    b = build_data(data_cfg(name="image_folder_32px", root=root, noise={"file": path}), CPU)
    noise = b.info["noise"]
    assert noise["kind"] == "file" and noise["sha256"] == label_file_digest(path)
    assert noise["realised_rate"] == pytest.approx(0.25)
    assert np.array_equal(b.train.labels.numpy(), observed)
    assert np.array_equal(b.train.clean_labels.numpy(), clean)


def test_array_and_file_paths_choose_the_same_samples_and_labels(tmp_path):
    """Every step of the pipeline at once, on the same labels read from files and held as arrays."""
    root = image_folder(tmp_path, per_class=(12, 10, 9, 8), val_per_class=3)
    d = dict(root=root, val_size=5, train_subset=34, imbalance=2, lt_seed=1, meta={"kind": "clean", "per_class": 1},
             noise={"kind": "sym", "rate": 0.5, "seed": 2}, partial={"kind": "binomial", "rate": 0.3, "seed": 5},
             test_subset=10)
    files = build_data(data_cfg(name="image_folder_32px", **d), CPU)
    y = np.repeat(np.arange(4), (12, 10, 9, 8))
    ids = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1, 1)   # each image "is" its position in the list
    arrays = ImageArrays(ids, y, np.zeros((12, 1, 1, 1), np.uint8), np.repeat(np.arange(4), 3), list(CLASSES))
    mem = build_arrays_bundle(data_cfg(name="image_folder_32px", **d), arrays, CPU)
    position = {p: i for i, p in enumerate(read_image_folder(f"{root}/train").paths)}
    assert [position[p] for p in files.train.images.paths] == mem.train.images.reshape(-1).tolist()
    assert [position[p] for p in files.extra_tests["val"].images.paths] == \
        mem.extra_tests["val"].images.reshape(-1).tolist()
    for name in ("labels", "clean_labels"):
        assert torch.equal(getattr(files.train, name), getattr(mem.train, name))
    assert torch.equal(files.meta.labels, mem.meta.labels)
    assert torch.equal(files.extra_tests["val"].labels, mem.extra_tests["val"].labels)
    assert np.array_equal(files.candidates, mem.candidates)
    for key in ("long_tail_counts", "meta_size", "noise", "partial", "train_size", "test_size", "class_counts",
                "clean_class_counts", "val_size"):
        assert files.info[key] == mem.info[key], key


def test_partial_labels_are_built_by_the_data_pipeline():
    cfg = data_cfg(name="digits", train_subset=300, partial={"kind": "pair", "rate": 0.4, "seed": 9})
    b = build_data(cfg, CPU)
    true = b.train.clean_labels.numpy()
    assert b.candidates.shape == (300, 10)
    assert np.array_equal(b.candidates, candidate_sets(true, 10, "pair", 0.4, 9))
    assert b.info["partial"]["kind"] == "pair" and b.info["partial"]["true_label_always_in"]
    assert build_data(data_cfg(name="digits", train_subset=300), CPU).candidates is None


def _png(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def test_an_image_folder_link_loop_is_refused_not_relabelled(tmp_path):
    for c in "abc":
        for k in range(2):
            _png(str(tmp_path / "train" / c / f"{k}.png"))
    assert len(read_image_folder(str(tmp_path / "train"))) == 6
    os.symlink("..", tmp_path / "train" / "a" / "loop")   # a -> the whole training folder, b and c as "a"
    with pytest.raises(CmwnetError, match="is a link to .* remove the link"):
        read_image_folder(str(tmp_path / "train"))
    os.remove(tmp_path / "train" / "a" / "loop")
    os.symlink(".", tmp_path / "train" / "a" / "self")     # a loop inside the class
    with pytest.raises(CmwnetError, match="remove the link"):
        read_image_folder(str(tmp_path / "train"))
    os.remove(tmp_path / "train" / "a" / "self")
    _png(str(tmp_path / "outside" / "x.png"))               # a link out of the data folder is fine
    os.symlink(tmp_path / "outside", tmp_path / "train" / "a" / "more")
    assert len(read_image_folder(str(tmp_path / "train"))) == 7


def test_an_empty_class_folder_is_refused(tmp_path):
    _png(str(tmp_path / "train" / "a" / "0.png"))
    os.makedirs(tmp_path / "train" / "b")
    with pytest.raises(CmwnetError, match="class folder 'b' .* holds no image files"):
        read_image_folder(str(tmp_path / "train"))
