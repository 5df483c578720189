"""Label files (`data.noise.file`) in either of their two forms: one label per image of the reader's full
training split, in the reader's order (a published human-label file), or exactly one per kept training
sample. The full form is read at the kept samples' original positions, so it combines with
`data.val_size`, `train_subset`, the long tail and the clean meta split; any other length is refused.

Every sample's original position is written into its image, so the tests check the labels against the
positions the samples really came from, not against the pipeline's own bookkeeping."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cmwnet.data import build_data, transition_matrix
from cmwnet.data.builder import build_arrays_bundle
from cmwnet.data.cifar import ImageArrays
from cmwnet.data.digits import load_digits_arrays
from cmwnet.data.folders import read_image_folder
from cmwnet.data.label_store import label_file_digest, read_label_file, write_label_file
from cmwnet.errors import CmwnetError
from test_pipeline import data_cfg, image_folder

CPU = torch.device("cpu")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C, N = 4, 300
# every reduction at once: validation split, subset, long tail, clean meta split
REDUCED = dict(val_size=25, split_seed=3, train_subset=200, imbalance=2, lt_seed=1,
               meta={"kind": "clean", "per_class": 3})


def position_arrays() -> ImageArrays:
    """N training images whose two pixels spell their position in the reader's list (hi, lo byte)."""
    y = np.random.default_rng(0).permutation(np.arange(N) % C)
    pos = np.arange(N)
    x = np.stack([pos // 256, pos % 256], axis=1).astype(np.uint8).reshape(N, 2, 1, 1)
    test_x = np.zeros((8, 2, 1, 1), np.uint8)
    return ImageArrays(x, y, test_x, np.arange(8) % C, [str(k) for k in range(C)])


def positions(images: torch.Tensor) -> np.ndarray:
    """The original positions written into `position_arrays` images."""
    a = images.numpy().astype(np.int64).reshape(len(images), 2)
    return a[:, 0] * 256 + a[:, 1]


def human_labels(true: np.ndarray, seed: int = 1, rate: float = 0.3) -> np.ndarray:
    """A stand-in for a published human-label file: about `rate` of the true labels moved to the next class."""
    flip = np.random.default_rng(seed).random(len(true)) < rate
    return np.where(flip, (true + 1) % C, true).astype(np.int64)


def bundle(tmp_path, file_labels=None, **data):
    d = dict(name="digits", **data)
    if file_labels is not None:
        tag = hashlib.sha256(np.asarray(file_labels, np.int64).tobytes()).hexdigest()[:8]
        path = str(tmp_path / f"labels-{len(file_labels)}-{tag}.npy")
        write_label_file(path, file_labels, num_classes=C)
        d["noise"] = {"file": path}
    return build_arrays_bundle(data_cfg(**d), position_arrays(), CPU)


# -- (a) the full form under every reduction -------------------------------------------------------------------
def test_a_full_length_file_is_read_at_the_kept_samples_original_positions(tmp_path):
    arrays = position_arrays()
    full = human_labels(arrays.train_y)
    b = bundle(tmp_path, full, **REDUCED)
    kept = positions(b.train.images)
    meta, val = positions(b.meta.images), positions(b.extra_tests["val"].images)
    assert len(kept) < N - len(val) - len(meta)                     # the subset and the long tail cut too
    assert len(set(kept) | set(meta) | set(val)) == len(kept) + len(meta) + len(val)   # disjoint
    assert np.array_equal(b.train.labels.numpy(), full[kept])       # the file's label of each kept image
    assert np.array_equal(b.train.clean_labels.numpy(), arrays.train_y[kept])
    assert np.array_equal(b.meta.labels.numpy(), arrays.train_y[meta])              # clean meta: true labels
    assert np.array_equal(b.extra_tests["val"].labels.numpy(), arrays.train_y[val])  # val: true labels
    noise = b.info["noise"]
    assert noise["label_file_form"] == "full" and noise["sha256"] == label_file_digest(noise["file"])
    assert noise["realised_rate"] == round(float((full[kept] != arrays.train_y[kept]).mean()), 6)
    assert noise["transition"] == np.round(transition_matrix(arrays.train_y[kept], full[kept], C), 4).tolist()
    assert 0 < noise["realised_rate"] < 1
    plain = bundle(tmp_path, **REDUCED)                              # the file chooses no samples
    assert np.array_equal(positions(plain.train.images), kept)
    assert np.array_equal(positions(plain.meta.images), meta)


def test_a_full_length_file_on_an_image_folder(tmp_path):
    """File-backed sets take the same positions: the reader's file list order."""
    root = image_folder(tmp_path / "if", per_class=(12, 10, 9, 8), val_per_class=2)
    reader = read_image_folder(f"{root}/train")
    full = human_labels(np.asarray(reader.labels), seed=4)
    path = str(tmp_path / "human.npy")
    write_label_file(path, full, num_classes=C)
    d = dict(name="image_folder_32px", root=root, val_size=5, train_subset=30, imbalance=2, lt_seed=1,
             meta={"kind": "clean", "per_class": 1})
    b = build_data(data_cfg(**d, noise={"file": path}), CPU)
    position = {p: i for i, p in enumerate(reader.paths)}
    kept = np.asarray([position[p] for p in b.train.images.paths])
    assert len(kept) == b.info["train_size"] < len(reader) - 5 - 4
    assert np.array_equal(b.train.labels.numpy(), full[kept])
    assert np.array_equal(b.train.clean_labels.numpy(), np.asarray(reader.labels)[kept])
    assert b.info["noise"]["label_file_form"] == "full"
    # the same split without the file: the folder's labels count as clean only under synthetic noise (rate 0 here)
    plain = build_data(data_cfg(**d, noise={"kind": "sym", "rate": 0.0}), CPU)
    assert b.train.images.paths == plain.train.images.paths and torch.equal(b.meta.labels, plain.meta.labels)


# -- (b) the kept form, as before --------------------------------------------------------------------------------
def test_a_kept_length_file_is_still_read_in_training_order(tmp_path):
    plain = bundle(tmp_path, **REDUCED)
    observed = (plain.train.clean_labels.numpy() + (np.arange(len(plain.train)) % 3 == 0)) % C
    b = bundle(tmp_path, observed, **REDUCED)
    assert np.array_equal(b.train.labels.numpy(), observed)
    assert torch.equal(b.train.images, plain.train.images) and torch.equal(b.meta.labels, plain.meta.labels)
    assert b.info["noise"]["label_file_form"] == "kept"
    assert b.info["noise"]["realised_rate"] == round(float((observed != plain.train.clean_labels.numpy()).mean()), 6)


def test_without_reductions_the_two_forms_are_one(tmp_path):
    full = human_labels(position_arrays().train_y)
    b = bundle(tmp_path, full)
    assert np.array_equal(b.train.labels.numpy(), full) and np.array_equal(positions(b.train.images), np.arange(N))
    assert b.info["noise"]["label_file_form"] == "full"


def _split_file(tmp_path, split_labels, made_for):
    """A label file of one label per image left after the val split, recorded (as the feature-noise
    generator records it) as made for the clean labels `made_for`."""
    from cmwnet.data.feature_noise import FORMAT, sha256

    path = str(tmp_path / f"split-{hashlib.sha256(np.asarray(made_for).tobytes()).hexdigest()[:8]}.npy")
    write_label_file(path, split_labels, meta={"format": FORMAT, "clean_labels_sha256": sha256(made_for)},
                     num_classes=C)
    return path


def test_a_split_length_file_serves_a_subset_of_the_split(tmp_path):
    """Labels generated on the whole split after the val hold-out (Tables 4-5's posterior network on the
    45k) are read by a run on its first N images at each image's place in the split."""
    arrays = position_arrays()
    whole = bundle(tmp_path, val_size=25, split_seed=3)                 # the generator's training set
    split_pos = positions(whole.train.images)
    noisy = human_labels(arrays.train_y[split_pos], seed=4)             # one per split image, split order
    path = _split_file(tmp_path, noisy, arrays.train_y[split_pos])
    b = build_arrays_bundle(data_cfg(name="digits", val_size=25, split_seed=3, train_subset=120,
                                     noise={"file": path}), arrays, CPU)
    kept = positions(b.train.images)
    assert len(kept) == 120 and b.info["noise"]["label_file_form"] == "split"
    assert np.array_equal(b.train.labels.numpy(), noisy[np.searchsorted(split_pos, kept)])
    assert np.array_equal(b.train.labels.numpy(), noisy[:120])          # train_subset: the split's first 120
    with pytest.raises(CmwnetError, match="not of this run's .*data.split_seed") as e:
        build_arrays_bundle(data_cfg(name="digits", val_size=25, split_seed=4, train_subset=120,
                                     noise={"file": path}), arrays, CPU)
    assert "\n" not in str(e.value)


# -- (c) any other length ------------------------------------------------------------------------------------
def test_a_file_of_a_third_length_is_refused_naming_both_lengths(tmp_path):
    kept = len(bundle(tmp_path, **REDUCED).train)
    with pytest.raises(CmwnetError) as e:
        bundle(tmp_path, np.zeros(kept + 7, np.int64), **REDUCED)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"holds {kept + 7} labels" in msg and f"{kept} kept" in msg and f"{N} images" in msg
    assert "in the reader's order" in msg and "point data.noise.file at the right file" in msg
    with pytest.raises(CmwnetError, match=f"holds {N - 1} labels but the training set has {N}: ") as e:
        bundle(tmp_path, np.zeros(N - 1, np.int64))       # no reductions: one accepted length, named once
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("labels,needle", [(np.full(N, C, np.int64), r"labels outside 0\.\.3"),
                                           (np.zeros(N, np.float32), r"must hold a 1-d integer array, got float32")])
def test_a_full_length_file_with_bad_labels_is_refused_in_one_line(tmp_path, labels, needle):
    path = tmp_path / "bad.npy"
    np.save(path, labels)
    with pytest.raises(CmwnetError, match=needle) as e:
        build_arrays_bundle(data_cfg(name="digits", noise={"file": str(path)}, **REDUCED), position_arrays(), CPU)
    assert "\n" not in str(e.value)


def test_an_npz_archive_is_refused_in_one_line(tmp_path):
    path = tmp_path / "human.npz"
    np.savez(path, worse_label=np.zeros(N, np.int64))
    with pytest.raises(CmwnetError, match="npz archive of several arrays.*numpy.save") as e:
        read_label_file(path, N, C)
    assert "\n" not in str(e.value)


# -- (d) end to end ------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_training_on_a_full_length_file_with_a_validation_split(tmp_path):
    true = load_digits_arrays(seed=0).train_y                    # the reader's full training split, its order
    relabel = np.random.default_rng(2).random(len(true)) < 0.2      # about 20% of the images relabelled
    full = np.where(relabel, (true + 3) % 10, true)
    path = tmp_path / "human.npy"
    write_label_file(path, full, {"source": "test"}, num_classes=10)
    sets = ["data.name=digits", "data.val_size=200", "data.train_subset=700", f"data.noise.file={path}",
            "data.augment.normalize=half", "data.augment.flip=false", "model.name=tiny_mlp", "optim.epochs=1",
            "run.progress=false", "run.plot=false", "run.device=cpu", "name=human"]
    cmd = [sys.executable, "-m", "cmwnet.train", "--out", str(tmp_path / "runs"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "runs" / "human" / "result.json").read_text())["data"]
    cfg = data_cfg(name="digits", val_size=200, train_subset=700)
    kept = build_data(cfg, CPU)                                  # which images the run kept, without the file
    ids = {x.tobytes(): i for i, x in enumerate(load_digits_arrays(seed=0).train_x)}
    assert len(ids) == len(true)   # the digits images are all distinct, so an image names its position
    where = np.asarray([ids[x.tobytes()] for x in kept.train.images.numpy()])
    assert data["train_size"] == 700 and data["val_size"] == 200
    assert data["noise"]["label_file_form"] == "full"
    assert data["noise"]["realised_rate"] == round(float((full[where] != true[where]).mean()), 6)


def test_the_data_fingerprint_depends_on_the_labels_trained_on_not_the_files_form(tmp_path):
    """Resume checks labels, not file bytes: a full-length file and its kept-form cut are the same data,
    and the same full-length file gives the same fingerprint every time."""
    from cmwnet.engine import data_fingerprint

    full = human_labels(position_arrays().train_y)
    a, again = bundle(tmp_path, full, **REDUCED), bundle(tmp_path, full, **REDUCED)
    cut = bundle(tmp_path, full[positions(a.train.images)], **REDUCED)
    assert cut.info["noise"]["label_file_form"] == "kept" and a.info["noise"]["sha256"] != cut.info["noise"]["sha256"]
    assert data_fingerprint(a) == data_fingerprint(again) == data_fingerprint(cut) is not None
    assert data_fingerprint(a) != data_fingerprint(bundle(tmp_path, human_labels(position_arrays().train_y, 9),
                                                          **REDUCED))
