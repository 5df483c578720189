"""Data: long tail, label noise, meta sets, the CIFAR reader, device augmentation, digits."""
import io
import os
import pickle
import random

import numpy as np
import pytest
import torch

from cmwnet.config import DataCfg
from cmwnet.data import (Augment, DeviceImages, add_label_noise, balanced_subset, build_data, clean_meta_split,
                         load_cifar, load_digits_arrays, long_tail_counts, long_tail_indices, lowest_loss_per_class,
                         mixup)
from cmwnet.data.noise import superclass_next_map
from cmwnet.errors import CmwnetError


# -- long tail ---------------------------------------------------------------------------------------
def test_long_tail_counts_match_the_authors():
    assert long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    c100 = long_tail_counts(500, 100, 100)
    assert c100[:3] == [500, 477, 455] and c100[-1] == 5 and len(c100) == 100
    assert long_tail_counts(500, 100, 200)[-1] == 2          # the Table-1 meta set of C-100 IF 200
    assert long_tail_counts(5000, 10, 1) == [5000] * 10
    with pytest.raises(CmwnetError, match="imbalance factor"):
        long_tail_counts(5000, 10, 0.5)


def test_long_tail_indices_follow_python_random_per_class():
    labels = np.repeat(np.arange(3), 20)
    np.random.default_rng(0).shuffle(labels)
    counts = [20, 7, 3]
    keep = long_tail_indices(labels, counts, seed=42)
    # independent re-derivation: one random.Random(42), classes in order, shuffle then keep the first n
    rng, expected = random.Random(42), []
    for c, n in enumerate(counts):
        idx = [i for i in range(len(labels)) if labels[i] == c]
        rng.shuffle(idx)
        expected += idx[:n]
    assert keep.tolist() == sorted(expected)
    assert np.bincount(labels[keep]).tolist() == counts
    assert not np.array_equal(keep, long_tail_indices(labels, counts, seed=7))


# -- label noise ---------------------------------------------------------------------------------------
def test_symmetric_noise_selection_and_realised_rate():
    clean = np.repeat(np.arange(10), 1000)
    noisy = add_label_noise(clean, "sym", 0.4, 10, seed=123)
    changed = noisy.labels != clean
    # int(r N) samples are redrawn uniformly over all classes, so about a tenth keep their label
    assert changed.sum() <= 4000
    assert abs(noisy.realised_rate - 0.4 * 0.9) < 0.015
    assert noisy.realised_rate == changed.mean()
    assert np.allclose(noisy.transition.sum(1), 1)
    assert abs(np.trace(noisy.transition) / 10 - (1 - 0.36)) < 0.02
    again = add_label_noise(clean, "sym", 0.4, 10, seed=123)
    assert np.array_equal(again.labels, noisy.labels)
    assert not np.array_equal(add_label_noise(clean, "sym", 0.4, 10, seed=1).labels, noisy.labels)


def test_symmetric_noise_reproduces_the_divide_mix_draw():
    clean = np.arange(50) % 5
    noisy = add_label_noise(clean, "sym", 0.5, 5, seed=3).labels
    rng = random.Random(3)
    order = list(range(50))
    rng.shuffle(order)
    chosen = set(order[:25])
    expected = clean.copy()
    for i in range(50):
        if i in chosen:
            expected[i] = rng.randint(0, 4)
    assert noisy.tolist() == expected.tolist()


def test_cifar10_asymmetric_map():
    clean = np.repeat(np.arange(10), 1000)
    noisy = add_label_noise(clean, "asym", 0.4, 10, seed=123)
    t = noisy.transition
    for src, dst in {9: 1, 2: 0, 3: 5, 4: 7}.items():
        assert abs(t[src, dst] - 0.4) < 0.05 and abs(t[src, src] - 0.6) < 0.05
    for c in (0, 1, 5, 6, 7, 8):
        assert t[c, c] == 1.0, f"class {c} must keep its label"
    assert abs(noisy.realised_rate - 0.16) < 0.02


def test_cifar100_superclass_flip():
    coarse = np.array([c // 5 for c in range(100)])[np.random.default_rng(0).permutation(100)]
    mapping = superclass_next_map(coarse)
    for f, g in mapping.items():
        assert coarse[f] == coarse[g] and f != g
    clean = np.repeat(np.arange(100), 50)
    noisy = add_label_noise(clean, "asym", 0.4, 100, seed=0, coarse_of_fine=coarse)
    moved = noisy.labels != clean
    assert all(noisy.labels[i] == mapping[int(clean[i])] for i in np.flatnonzero(moved))
    assert abs(moved.mean() - 0.4) < 1e-9


def test_pair_noise_and_bad_arguments():
    clean = np.repeat(np.arange(4), 100)
    noisy = add_label_noise(clean, "pair", 0.3, 4, seed=0)
    moved = noisy.labels != clean
    assert np.all(noisy.labels[moved] == (clean[moved] + 1) % 4) and moved.mean() == 0.3
    with pytest.raises(CmwnetError, match=r"\[0, 1\]"):
        add_label_noise(clean, "sym", 1.5, 4)
    with pytest.raises(CmwnetError, match="valid noise kinds"):
        add_label_noise(clean, "symetric", 0.2, 4)
    with pytest.raises(CmwnetError, match="flip map"):
        add_label_noise(clean, "asym", 0.2, 4)


# -- meta sets -----------------------------------------------------------------------------------------
def test_clean_meta_split():
    labels = np.repeat(np.arange(3), [10, 6, 4])
    meta, rest = clean_meta_split(labels, 4, 3, seed=0)
    assert np.bincount(labels[meta]).tolist() == [4, 4, 4]
    assert len(np.intersect1d(meta, rest)) == 0 and len(meta) + len(rest) == 20
    with pytest.raises(CmwnetError, match="only 4"):
        clean_meta_split(labels, 5, 3)


def test_lowest_loss_per_class_hand_case():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.05])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    pos = lowest_loss_per_class(losses, labels, 2, 3)
    assert sorted(pos.tolist()) == [1, 2, 3, 4, 6]


def test_balanced_subset():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    pos = balanced_subset(labels, 3, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[pos]).tolist() == [3, 3, 2]


# -- CIFAR reader --------------------------------------------------------------------------------------
def _write_cifar10(root, n=4, byte_keys=True):
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    k = (lambda s: s.encode()) if byte_keys else (lambda s: s)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {k("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8), k("labels"): list(range(n))}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(d, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({k("label_names"): [f"c{i}" for i in range(10)]}, f)
    return folder


@pytest.mark.parametrize("byte_keys", [True, False])
def test_cifar10_reader(tmp_path, byte_keys):
    folder = _write_cifar10(str(tmp_path), byte_keys=byte_keys)
    a = load_cifar(str(tmp_path), "cifar10")
    assert a.train_x.shape == (20, 3, 32, 32) and a.train_x.dtype == np.uint8
    assert a.test_x.shape == (4, 3, 32, 32) and a.num_classes == 10
    with open(os.path.join(folder, "data_batch_1"), "rb") as f:
        first = pickle.load(f, encoding="latin1")
    raw = first[b"data" if byte_keys else "data"][0]
    assert np.array_equal(a.train_x[0].reshape(-1), raw)  # CHW order kept
    assert load_cifar(folder, "cifar10").train_x.shape == (20, 3, 32, 32)  # the batches folder itself


def test_cifar100_reader_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = np.arange(100)
    for name in ("train", "test"):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": np.zeros((100, 3072), np.uint8), b"fine_labels": fine.tolist(),
                         b"coarse_labels": (fine // 5).tolist()}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [str(i) for i in range(100)]}, f)
    a = load_cifar(str(tmp_path), "cifar100")
    assert a.num_classes == 100 and a.coarse_of_fine.tolist() == (fine // 5).tolist()


def test_cifar_missing_is_one_line(tmp_path):
    with pytest.raises(CmwnetError, match="cifar10 not found") as e:
        load_cifar(str(tmp_path), "cifar10")
    assert "\n" not in str(e.value) and "download" in str(e.value)


def test_cifar_jpeg_npz_reader(tmp_path):
    from PIL import Image

    imgs = [np.full((32, 32, 3), v, np.uint8) for v in (10, 200, 90)]
    blobs = []
    for im in imgs:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=95)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offs = np.cumsum([0] + [len(b) for b in blobs])
    path = tmp_path / "c.npz"
    np.savez(path, train_jpeg=np.concatenate(blobs), train_offsets=offs, train_labels=np.array([0, 1, 2]),
             test_jpeg=np.concatenate(blobs[:1]), test_offsets=offs[:2], test_labels=np.array([0]),
             classes=np.array([f"c{i}" for i in range(10)]))
    a = load_cifar(str(path), "cifar10")
    assert a.train_x.shape == (3, 3, 32, 32) and a.test_x.shape == (1, 3, 32, 32)
    order = np.random.default_rng(0).permutation(3)   # the conversion tool's shuffle
    assert a.train_y.tolist() == order.tolist()
    means = [int(x.mean()) for x in a.train_x]
    assert all(abs(m - (10, 200, 90)[i]) <= 2 for m, i in zip(means, order))


# -- device images and augmentation --------------------------------------------------------------------
def test_augment_crop_is_a_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6).to(torch.uint8)
    aug = Augment(crop_pad=2, pad_mode="constant", flip=False, normalize="none")
    out = aug(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x.float() / 255, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.allclose(out[b], w) for w in windows)
    plain = Augment(0, flip=False, normalize="cifar")
    assert torch.equal(plain(x, torch.Generator()), plain.to_float(x))


def test_augment_flip_and_normalisation():
    x = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8)
    out = Augment(0, flip=True, normalize="none")(x, torch.Generator().manual_seed(1))
    base = x.float() / 255
    flipped = [bool(torch.equal(o, b.flip(2))) and not torch.equal(o, b) for o, b in zip(out, base)]
    kept = [bool(torch.equal(o, b)) for o, b in zip(out, base)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54
    norm = Augment(0, normalize="cifar").to_float(x)
    assert torch.allclose(norm[:, 0], (x[:, 0].float() / 255 - 0.4914) / 0.2023)


def test_mixup_keeps_the_larger_share():
    x = torch.randn(8, 3)
    mixed, lam, perm = mixup(x, 1.0, torch.Generator().manual_seed(0), np.random.default_rng(0))
    assert lam >= 0.5 and torch.allclose(mixed, lam * x + (1 - lam) * x[perm])


def test_device_images_batches_and_subset():
    imgs = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    src = DeviceImages(imgs, torch.arange(10) % 3, Augment(0, normalize="none"), clean_labels=torch.zeros(10))
    seen = torch.cat([pos for _, _, pos in src.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)) and src.num_batches(4) == 3 and src.num_batches(4, True) == 2
    sub = src.subset(torch.tensor([7, 2]))
    assert sub.ids.tolist() == [7, 2] and sub.labels.tolist() == [1, 2]


# -- digits and the builder --------------------------------------------------------------------------
def test_digits_arrays():
    a = load_digits_arrays()
    assert a.train_x.shape[1:] == (1, 8, 8) and a.train_x.dtype == np.uint8 and a.train_x.max() == 255
    assert len(a.train_y) + len(a.test_y) == 1797 and a.num_classes == 10


def test_build_data_digits_long_tail_meta_and_noise():
    cfg = DataCfg(name="digits", imbalance=10)
    cfg.meta.kind, cfg.meta.per_class = "clean", 5
    cfg.noise.kind, cfg.noise.rate, cfg.noise.flip_map = "asym", 0.4, {9: 4, 8: 3}
    d = build_data(cfg, torch.device("cpu"))
    lt = d.info["long_tail_counts"]
    assert lt[0] / lt[-1] >= 9 and len(d.meta) == 50
    assert d.info["clean_class_counts"] == [n - 5 for n in lt]
    assert sum(d.class_counts) == len(d.train) == sum(lt) - 50
    moved = d.train.labels != d.train.clean_labels
    assert set(d.train.clean_labels[moved].tolist()) <= {8, 9}
    assert abs(d.info["noise"]["realised_rate"] - float(moved.float().mean())) < 1e-6
