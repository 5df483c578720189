"""`cmwnet.tools.plant`: a folder with known label errors, and a run's suspect list scored against them."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from cmwnet.config import config_from_dict
from cmwnet.engine import train
from cmwnet.errors import CmwnetError
from cmwnet.tools.plant import PLANTED, main, make_folder, score_run

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A CIFAR-10-shaped JPEG archive: 12 train and 3 test images a class, each class its own colour."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 12), ("test", 3)):
        blobs, labels = [], []
        for c in range(10):
            for _ in range(n):
                im = np.clip(rng.normal(25 * c, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(im).save(buf, format="JPEG")
                blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
                labels.append(c)
        out[f"{split}_jpeg"] = np.concatenate(blobs)
        out[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        out[f"{split}_labels"] = np.array(labels)
    path = tmp_path_factory.mktemp("npz") / "c.npz"
    np.savez(path, classes=np.array(NAMES), **out)
    return str(path)


def test_make_moves_a_share_of_each_class_and_lists_exactly_the_moved_files(npz, tmp_path):
    planted = make_folder(str(tmp_path / "f"), npz, ["bird", "deer", "ship"], 10, 2, 0.3, seed=1)
    files = [os.path.join(s, c, f) for s in ("train", "val") for c in os.listdir(tmp_path / "f" / s)
             for f in os.listdir(tmp_path / "f" / s / c)]
    assert len(files) == 36
    moved = sorted(f for f in files if f.startswith("train") and not os.path.basename(f).startswith(f.split(os.sep)[1]))
    assert moved == sorted(planted) and 0 < len(planted) < 30
    assert (tmp_path / "f" / PLANTED).read_text().split() == planted
    assert not any(f.startswith("val") for f in planted)


def test_make_refuses_what_it_cannot_do_in_one_line(npz, tmp_path):
    make_folder(str(tmp_path / "f"), npz, ["bird", "deer"], 2, 0, 0.5, seed=1)
    with pytest.raises(CmwnetError, match="not empty: give a new folder"):
        make_folder(str(tmp_path / "f"), npz, ["bird", "deer"], 2, 0, 0.5, seed=1)
    with pytest.raises(CmwnetError, match="at least 2 different CIFAR-10 classes"):
        make_folder(str(tmp_path / "g"), npz, ["bird", "bird"], 2, 0, 0.5, seed=1)
    with pytest.raises(CmwnetError, match="at least 2 different CIFAR-10 classes"):
        make_folder(str(tmp_path / "g"), npz, ["bird", "unicorn"], 2, 0, 0.5, seed=1)
    with pytest.raises(CmwnetError, match="has 12 images"):
        make_folder(str(tmp_path / "g"), npz, ["bird", "deer"], 13, 0, 0.5, seed=1)
    with pytest.raises(CmwnetError, match=r"--rate must be in \[0, 1\)"):
        make_folder(str(tmp_path / "g"), npz, ["bird", "deer"], 2, 0, 1.0, seed=1)
    with pytest.raises(CmwnetError, match="not found: copy the offline CIFAR-10"):
        make_folder(str(tmp_path / "g"), str(tmp_path / "none.npz"), ["bird", "deer"], 2, 0, 0.5, seed=1)


def test_score_counts_the_planted_files_a_trained_run_puts_first(npz, tmp_path, capsys):
    root = tmp_path / "f"
    planted = make_folder(str(root), npz, ["bird", "ship", "truck"], 12, 3, 0.25, seed=2)
    d = {"name": "r", "seed": 0,
         "data": {"name": "image_folder_32px", "root": str(root), "batch_size": 6, "test_batch_size": 6,
                  "augment": {"flip": False, "normalize": "half"}},
         "model": {"name": "tiny_cnn"}, "optim": {"lr": 0.05, "epochs": 3},
         "run": {"out": str(tmp_path / "runs"), "progress": False, "plot": False, "device": "cpu"}}
    train(config_from_dict(d), quiet=True)
    run = str(tmp_path / "runs" / "r")
    lines = score_run(run, str(root / PLANTED))
    assert f"{len(planted)} of 36 training files planted" in lines[1] and "ROC AUC" in lines[1]
    # the colours make the planted files the worst fitted: the loss ranks them first
    auc = float(lines[1].split("ROC AUC ")[1].split(",")[0])
    assert auc > 0.8
    assert lines[2].startswith("cleanlab find_label_issues") or lines[2].startswith("cleanlab not scored")
    assert main(["score", run, "--planted", str(root / PLANTED)]) == 0
    assert "training files planted" in capsys.readouterr().out
    (tmp_path / "other.txt").write_text("train/bird/ship_1.jpg\n")
    with pytest.raises(CmwnetError, match="was the run trained on that folder"):
        score_run(run, str(tmp_path / "other.txt"))
