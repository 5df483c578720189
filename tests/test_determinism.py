"""Determinism: the same config and seed give the same noisy labels, the same long-tail subset and, on
the CPU, the same final accuracy; noisy-label files are written once and verified on every read."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cmwnet.config import config_from_dict
from cmwnet.data import add_label_noise, build_data, long_tail_indices
from cmwnet.data.label_store import read_label_file, sidecar_path, write_label_file
from cmwnet.engine import train
from cmwnet.errors import CmwnetError
from cmwnet.tools.killtest import read_metrics, read_result

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = {"name": "digits", "imbalance": 10, "lt_seed": 42, "noise": {"kind": "sym", "rate": 0.4, "seed": 123},
        "meta": {"kind": "clean", "per_class": 3}, "augment": {"normalize": "half", "flip": False}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(**changes):
    d = json.loads(json.dumps(DATA))
    for key, value in changes.items():
        node = d
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return build_data(config_from_dict({"data": d}).data, torch.device("cpu"))


def _digest(bundle) -> str:
    h = hashlib.sha256()
    for t in (bundle.train.images, bundle.train.labels, bundle.train.clean_labels, bundle.meta.images,
              bundle.meta.labels):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# -- noisy labels and the long tail ----------------------------------------------------------------------
def test_noise_is_a_function_of_the_seed():
    clean = np.arange(1000) % 10
    a = add_label_noise(clean, "sym", 0.4, 10, seed=7)
    b = add_label_noise(clean, "sym", 0.4, 10, seed=7)
    c = add_label_noise(clean, "sym", 0.4, 10, seed=8)
    assert np.array_equal(a.labels, b.labels) and a.realised_rate == b.realised_rate
    assert not np.array_equal(a.labels, c.labels)


def test_long_tail_subset_is_a_function_of_the_seed():
    labels = np.arange(2000) % 10
    counts = [200, 100, 50, 25, 12, 10, 8, 6, 4, 2]
    a, b, c = (long_tail_indices(labels, counts, s) for s in (42, 42, 43))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(labels[a], minlength=10).tolist() == counts


def test_built_data_is_identical_for_the_same_config_and_changes_with_each_seed():
    base = _digest(_data())
    assert _digest(_data()) == base
    for key, value in (("noise.seed", 124), ("lt_seed", 43), ("split_seed", 1)):
        assert _digest(_data(**{key: value})) != base, key


def test_built_data_is_identical_in_another_process():
    """Same config, a fresh interpreter: the same bytes (no hidden dependence on process state)."""
    code = ("import json,sys; sys.path.insert(0, 'tests'); import torch; from test_determinism import _data, _digest; "
            "print(_digest(_data()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == _digest(_data())


# -- training ----------------------------------------------------------------------------------------------
def _run(tmp_path, name, seed=0):
    cfg = config_from_dict({
        "name": name, "seed": seed, "data": dict(DATA, batch_size=64), "model": {"name": "tiny_mlp"},
        "optim": {"epochs": 2}, "ema": {"decay": 0.9},
        "method": {"name": "cmwnet_sl", "sl": {"warmup": 1}},
        "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu"}})
    train(cfg, quiet=True)
    return read_metrics(str(tmp_path / name)), read_result(str(tmp_path / name))


def test_same_config_and_seed_give_the_same_accuracy_on_the_cpu(tmp_path):
    m1, r1 = _run(tmp_path, "a")
    m2, r2 = _run(tmp_path, "b")
    r1.pop("name"), r2.pop("name")
    assert m1 == m2 and r1 == r2          # exactly, every float of every epoch
    m3, _ = _run(tmp_path, "c", seed=1)
    assert m3 != m1


# -- noisy-label files ---------------------------------------------------------------------------------------
def test_label_file_round_trip_and_written_once(tmp_path):
    path = tmp_path / "noise" / "labels.npy"
    labels = np.array([0, 3, 2, 9, 1])
    digest = write_label_file(path, labels, {"kind": "type1", "rate": 0.2}, num_classes=10)
    side = json.loads(open(sidecar_path(path)).read())
    assert side["sha256"] == digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert side["n"] == 5 and side["meta"] == {"kind": "type1", "rate": 0.2}
    assert read_label_file(path, 5, 10).tolist() == labels.tolist()
    mtime = os.stat(path).st_mtime_ns
    assert write_label_file(path, labels, num_classes=10) == digest    # the same labels again: no-op
    assert os.stat(path).st_mtime_ns == mtime
    with pytest.raises(CmwnetError, match="already exists with different labels.*delete it"):
        write_label_file(path, labels[::-1], num_classes=10)
    assert read_label_file(path, 5, 10).tolist() == labels.tolist()


def test_changed_or_truncated_label_file_is_refused(tmp_path):
    path = tmp_path / "labels.npy"
    labels = np.arange(100) % 10
    write_label_file(path, labels, num_classes=10)
    changed = labels.copy()
    changed[5] = 0
    np.save(path, changed)                     # edited behind the store's back
    with pytest.raises(CmwnetError, match="changed since it was written.*refusing to use it"):
        read_label_file(path, 100, 10)
    path.write_bytes(path.read_bytes()[:60])   # truncated
    with pytest.raises(CmwnetError, match="changed since it was written"):
        read_label_file(path, 100, 10)


def test_label_file_without_sidecar_is_pinned_on_first_use(tmp_path, capsys):
    path = tmp_path / "external.npy"
    np.save(path, np.arange(20) % 10)
    assert read_label_file(path, 20, 10).tolist() == (np.arange(20) % 10).tolist()
    assert "pinned noisy-label file" in capsys.readouterr().err
    assert json.loads(open(sidecar_path(path)).read())["meta"] == {"pinned_on_first_use": True}
    np.save(path, np.zeros(20, dtype=np.int64))
    with pytest.raises(CmwnetError, match="changed since it was written"):
        read_label_file(path, 20, 10)


def test_label_file_shape_and_range_checks(tmp_path):
    path = tmp_path / "l.npy"
    write_label_file(path, np.arange(10) % 10, num_classes=10)
    with pytest.raises(CmwnetError, match="holds 10 labels but the training set has 11"):
        read_label_file(path, 11, 10)
    with pytest.raises(CmwnetError, match="labels outside 0..4"):
        read_label_file(path, 10, 5)
    with pytest.raises(CmwnetError, match="1-d integer array"):
        write_label_file(tmp_path / "f.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(CmwnetError, match="fall outside 0..9"):
        write_label_file(tmp_path / "g.npy", np.array([0, 10]), num_classes=10)
    open(sidecar_path(path), "w").write("{not json")
    with pytest.raises(CmwnetError, match="checksum file .* is unreadable"):
        read_label_file(path, 10, 10)


def test_a_run_on_a_label_file_records_its_digest(tmp_path):
    probe = _data()
    n = len(probe.train)
    path = tmp_path / "labels.npy"
    observed = (probe.train.clean_labels.numpy() + (np.arange(n) % 7 == 0)) % 10
    digest = write_label_file(path, observed, {"kind": "test"}, num_classes=10)
    bundle = _data(**{"noise.file": str(path)})
    assert bundle.info["noise"]["sha256"] == digest
    assert bundle.train.labels.tolist() == observed.tolist()
    assert 0 < bundle.info["noise"]["realised_rate"] < 0.2
