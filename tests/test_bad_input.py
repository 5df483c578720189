"""The bad-input catalogue: every mistake a user can make in a config, a data folder or a run folder is
one `error:` line on stderr naming the problem and the fix, exit status 2, and no traceback.

Most cases call the real command line in-process (`run_cli(main, argv)`, what `python -m
cmwnet.train` runs); a few also run it as a subprocess to show the same holds end to end.
"""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from cmwnet.checkpoint import load_checkpoint
from cmwnet.data.label_store import write_label_file
from cmwnet.run_folder.layout import RunLock
from cmwnet.errors import run_cli
from cmwnet.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["data.name=digits", "data.augment.normalize=half", "data.augment.flip=false", "data.batch_size=128",
        "model.name=tiny_mlp", "optim.epochs=2", "run.progress=false", "run.plot=false", "run.device=cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def argv(out, *sets, name="bad", extra=()):
    a = ["--out", str(out), "--quiet", "--set", f"name={name}"]
    for s in TINY + list(sets):
        a += ["--set", s]
    return a + list(extra)


def fails(capsys, args, *needles):
    """Run the CLI; assert exit 2 with one `error:` line holding every needle; return that line."""
    capsys.readouterr()
    rc = run_cli(main, args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def succeeds(capsys, args):
    rc = run_cli(main, args)
    assert rc == 0, capsys.readouterr().err


# -- the config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,needles", [
    ("optim.lrr=0.1", ["unknown config key 'optim.lrr'", "did you mean 'optim.lr'"]),
    ("data.noise.rat=0.4", ["unknown config key 'data.noise.rat'", "did you mean 'data.noise.rate'"]),
    ("method.nmae=erm", ["did you mean 'method.name'"]),
    ("optim.lr=fast", ["'optim.lr' must be a number", "got 'fast'", "write it like"]),
    ("data.batch_size=12.5", ["'data.batch_size' must be an integer", "whole number"]),
    ("run.plot=maybe", ["'run.plot' must be true or false"]),
    ("optim.schedule.milestones=5", ["'optim.schedule.milestones' must be a list", "[80, 100]"]),
    ("data.noise=0.4", ["'data.noise' must be a mapping of sub-keys", "--set data.noise.<key>"]),
    ("data.noise.rate=1.5", ["'data.noise.rate' must be in [0, 1]", "got 1.5", "e.g. 0.4"]),
    ("data.noise.rate=-0.1", ["'data.noise.rate' must be in [0, 1]"]),
    ("data.imbalance=0.5", ["'data.imbalance' must be >= 1", "got 0.5", "1 means balanced"]),
    ("optim.epochs=0", ["'optim.epochs' must be >= 1"]),
    ("ema.decay=1.5", ["'ema.decay' must be in [0, 1)"]),
    ("optim.lr=-0.1", ["'optim.lr' must be a positive number"]),
    ("method.name=cmwnett", ["method.name: unknown method 'cmwnett'", "did you mean 'cmwnet'",
                             "valid methods: ", "erm", "mwnet"]),
    ("model.name=resnt32", ["model.name: unknown model 'resnt32'", "did you mean 'resnet32'", "valid models: "]),
    ("data.name=cifar1O", ["data.name: unknown data set 'cifar1O'", "did you mean 'cifar10'", "valid data sets: ",
                           "digits"]),
    ("method.loss=focla", ["method.loss: unknown loss 'focla'", "valid losses: ", "ce"]),
    ("optim.name=sdg", ["optim.name: unknown optimizer 'sdg'", "did you mean 'sgd'", "adam"]),
    # issue 11: values that used to train silently wrong or crash later
    ("optim.schedule.gamma=-1", ["'optim.schedule.gamma' must be a positive number", "got -1.0"]),
    ("optim.schedule.milestones=[a, 3]", ["'optim.schedule.milestones' must be a list of epochs >= 0"]),
    ("optim.schedule.t0=0", ["'optim.schedule.t0' must be >= 1"]),
    ("optim.schedule.t_mult=0", ["'optim.schedule.t_mult' must be >= 1"]),
    ("method.weight_net.hidden=0", ["'method.weight_net.hidden' must be in 1..100000"]),
    ("method.weight_net.hidden=28755777536", ["'method.weight_net.hidden' must be in 1..100000"]),   # found by the fuzz: 22 GB
    ("optim.weight_decay=9999999999999999999999999999999999999999",
     ["'optim.weight_decay' must be at most 3.4e38 in size (float32)"]),   # found by the fuzz: overflow in SGD
    ("ema.freeze_epoch=-1", ["'ema.freeze_epoch' must be >= 0 or null"]),
    ("data.augment.crop_pad=-2", ["'data.augment.crop_pad' must be in 0..64"]),
    ("data.noise.rate=0.4", ["data.noise.rate is 0.4 but data.noise.kind is none", "set data.noise.kind"]),
    ("data.split_seed=-1", ["'data.split_seed' must be in [0, 2^32)"]),
    ("data.noise.flip_map={a: 1}", ["'data.noise.flip_map' maps class numbers to class numbers", "{9: 1, 2: 0}"]),
    ("model.args={widht: 4}", ["unknown model.args key 'widht' for model tiny_mlp", "valid keys: "]),
])
def test_config_mistakes(tmp_path, capsys, bad, needles):
    fails(capsys, argv(tmp_path, bad), *needles)
    assert not (tmp_path / "bad").exists(), "a rejected config must not create a run folder"


def test_meta_learning_that_would_never_start(tmp_path, capsys):
    fails(capsys, argv(tmp_path, "method.name=cmwnet", "data.meta.kind=clean", "method.start_epoch=2"),
          "method.start_epoch is 2 but the run has only 2 epochs", "cmwnet would never meta-learn")
    fails(capsys, argv(tmp_path, "method.name=cmwnet_sl", "ema.decay=0.9", "method.sl.warmup=5"),
          "method.sl.warmup is 5 but the run has only 2 epochs")
    succeeds(capsys, argv(tmp_path, "method.name=erm", "method.start_epoch=5"))   # erm has no meta phase


@pytest.mark.parametrize("name", ["../x", "/tmp/abs_run", "..", "", "a/../../b", "./a"])
def test_a_run_name_cannot_leave_out(tmp_path, capsys, name):
    out = tmp_path / "out"
    fails(capsys, argv(out, f"run.name={name}"), "'run.name' must be a relative folder name inside --out")
    fails(capsys, argv(out, name=name), "'name' must be a relative folder name inside --out")
    assert os.listdir(tmp_path) == [], "a refused name must not create a folder, inside --out or beside it"
    assert not os.path.exists("/tmp/abs_run")


def test_same_data_under_another_spelling_or_device_resumes(tmp_path, capsys):
    succeeds(capsys, argv(tmp_path, "data.root=/data/x", "run.device=cpu", name="same"))
    before = (tmp_path / "same" / "result.json").read_text()
    # the finished run is recognised (not a conflict): another spelling of the root, device auto
    succeeds(capsys, argv(tmp_path, "data.root=/data/x/", "run.device=auto", name="same"))
    assert (tmp_path / "same" / "result.json").read_text() == before


def test_an_imbalance_that_empties_the_tail(tmp_path, capsys):
    fails(capsys, argv(tmp_path, "data.imbalance=1e9"), "data.imbalance is 1e+09, which leaves class",
          "with no training images", "use at most data.imbalance=")


def test_a_key_given_twice_in_a_yaml_file_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\noptim:\n  lr: 0.5\ndata: {name: digits}\noptim:\n  epochs: 3\n")
    fails(capsys, ["--config", str(cfg)], f"config file {cfg}", "the key 'optim' appears twice",
          "lines 2 and 5", "merge the two")


def test_yaml_file_mistakes(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\ndata:\n  name: digits\n  noise: {kind: sym, rat: 0.4}\n")
    fails(capsys, ["--config", str(cfg)], "unknown config key 'data.noise.rat'", "did you mean 'data.noise.rate'")
    cfg.write_text("epochz: 3\n")
    fails(capsys, ["--config", str(cfg)], "unknown config key 'epochz'", "valid keys here: ", "optim")
    cfg.write_text("data: {name: digits\n")
    fails(capsys, ["--config", str(cfg)], f"config file {cfg} is not valid YAML")
    fails(capsys, ["--config", str(tmp_path / "nope.yaml")], "config file not found")
    fails(capsys, ["--set", "optim.lr"], "--set takes key=value")
    fails(capsys, ["--sett", "x"], "unrecognized arguments: --sett", "--help")


def test_meta_set_larger_than_a_class(tmp_path, capsys):
    # digits with imbalance 10: the tail class keeps 12 training images
    fails(capsys, argv(tmp_path, "data.imbalance=10", "data.meta.kind=clean", "data.meta.per_class=50",
                       "method.name=cmwnet"),
          "data.meta.per_class is 50 but 6 classes have fewer training samples", "class 9 has 12",
          "lower data.meta.per_class to at most 12")


# -- data files ----------------------------------------------------------------------------------------
def _cifar_tree(root, per_class_batch=2):
    """A tiny canonical CIFAR-10 tree: five train batches and a test batch of 20 images each."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(name):
        labels = [c for c in range(10) for _ in range(per_class_batch)]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f)
    for i in range(1, 6):
        batch(f"data_batch_{i}")
    batch("test_batch")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return folder


CIFAR = ["data.name=cifar10", "model.name=tiny_cnn", "optim.epochs=1", "data.augment.normalize=cifar"]


def test_missing_and_truncated_cifar_files(tmp_path, capsys):
    root = tmp_path / "data"
    folder = _cifar_tree(root)
    succeeds(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={root}", name="ok"))   # the tree itself is fine
    fails(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={tmp_path / 'nowhere'}"),
          "cifar10 not found: no folder", "set data.root to the folder that holds it")
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fails(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={root}"),
          f"CIFAR file {path} is truncated or corrupt", "delete the folder and fetch it again")
    (folder / "test_batch").unlink()
    path.unlink()
    fails(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={root}"), "CIFAR file missing: ", "fetch it again")


def test_cifar_files_of_the_wrong_structure(tmp_path, capsys):
    root = tmp_path / "data"
    folder = _cifar_tree(root)
    path = folder / "data_batch_2"
    with open(path, "wb") as f:
        pickle.dump([1, 2, 3], f)
    fails(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={root}"),
          f"CIFAR file {path} holds a list, not the canonical batch dict")
    with open(path, "wb") as f:
        pickle.dump({"images": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, f)
    fails(capsys, argv(tmp_path / "runs", *CIFAR, f"data.root={root}"),
          f"CIFAR file {path} has no 'data' entry", "not the canonical python batch")


def test_changed_noisy_label_file_is_refused(tmp_path, capsys):
    succeeds(capsys, argv(tmp_path, "optim.epochs=1", name="probe"))
    import json

    n = json.loads((tmp_path / "probe" / "result.json").read_text())["data"]["train_size"]
    labels = np.random.default_rng(0).integers(0, 10, n)
    path = tmp_path / "labels.npy"
    write_label_file(path, labels, {"kind": "test"}, num_classes=10)
    succeeds(capsys, argv(tmp_path, f"data.noise.file={path}", "optim.epochs=1", name="withfile"))
    changed = labels.copy()
    changed[0] = (changed[0] + 1) % 10
    np.save(path, changed)
    fails(capsys, argv(tmp_path, f"data.noise.file={path}", "optim.epochs=1", name="withfile2"),
          f"noisy-label file {path} changed since it was written", "delete both files and generate the labels again")
    fails(capsys, argv(tmp_path, f"data.noise.file={tmp_path / 'none.npy'}", name="nofile"),
          "noisy-label file not found", "fix data.noise.file")
    short = tmp_path / "short.npy"
    write_label_file(short, labels[:10], num_classes=10)
    fails(capsys, argv(tmp_path, f"data.noise.file={short}", name="short"),
          "holds 10 labels but the training set has", "point data.noise.file at the right file")


# -- run folders ---------------------------------------------------------------------------------------
def test_corrupt_checkpoint_is_kept_not_overwritten(tmp_path, capsys):
    args = argv(tmp_path, name="ck")
    succeeds(capsys, args)
    run = tmp_path / "ck"
    (run / "result.json").unlink()            # as if killed before the end
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    before = ckpt.read_bytes()
    fails(capsys, args, f"checkpoint {ckpt} is corrupt or unreadable", "it was left as it is",
          "move it away to restart the run from scratch, or rerun with --force")
    assert ckpt.read_bytes() == before
    torch.save({"weights": torch.zeros(3)}, ckpt)   # loads, but is not ours
    before = ckpt.read_bytes()
    fails(capsys, args, "is not a cmwnet training checkpoint", "rerun with --force")
    assert ckpt.read_bytes() == before
    # --force moves the damaged run aside (never deletes it) and starts over
    succeeds(capsys, args + ["--force"])
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("ck.old-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def test_run_folder_with_another_config(tmp_path, capsys):
    succeeds(capsys, argv(tmp_path, name="r"))
    fails(capsys, argv(tmp_path, "optim.lr=0.05", name="r"), "run folder", "holds a different config",
          "optim.lr: 0.1 -> 0.05", "set another run.name", "--force")
    # presentation-only keys may differ; the finished run is reported, not retrained
    capsys.readouterr()
    assert run_cli(main, [a if a != "run.progress=false" else "run.progress=true" for a in argv(tmp_path, name="r")]) == 0
    succeeds(capsys, argv(tmp_path, "optim.lr=0.05", name="r", extra=["--force"]))
    assert any(p.name.startswith("r.old-") for p in tmp_path.iterdir())
    (tmp_path / "r" / "config.yaml").write_text("{{ not yaml")
    fails(capsys, argv(tmp_path, name="r"), "holds an unreadable config.yaml", "--force")


def test_checkpoint_from_another_config_or_other_labels(tmp_path, capsys):
    args = argv(tmp_path, "data.noise.kind=sym", "data.noise.rate=0.2", name="fp")
    succeeds(capsys, args)
    run = tmp_path / "fp"
    (run / "result.json").unlink()
    blob = torch.load(run / "checkpoint.pt", weights_only=False)
    blob["config"]["optim"]["lr"] = 0.5
    torch.save(blob, run / "checkpoint.pt")
    fails(capsys, args, "was written for a different config (optim.lr: 0.5 -> 0.1)", "--force")
    blob["config"]["optim"]["lr"] = 0.1
    blob["data_fingerprint"] = "0" * 64
    torch.save(blob, run / "checkpoint.pt")
    fails(capsys, args, "was trained on different labels", "restore the data, or rerun with --force")


def test_run_folder_in_use(tmp_path, capsys):
    with RunLock(str(tmp_path / "busy")):
        fails(capsys, argv(tmp_path, name="busy"), "is in use by another process", f"pid {os.getpid()}",
              "wait for it to finish")
    succeeds(capsys, argv(tmp_path, name="busy", extra=[]))   # released: the same command now runs


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # lr x 1e30 from epoch 1 on: the weights overflow within a few steps of the second epoch
    line = fails(capsys, argv(tmp_path, "optim.epochs=3", "optim.schedule.milestones=[1]", "optim.schedule.gamma=1e30",
                              name="nan"),
                 "the training loss became NaN/Inf in step", "of epoch 2/3", "stopped without saving",
                 "saved after epoch 1/3) is kept", "the lr has grown to", "lower optim.schedule.gamma")
    blob = load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert blob["epoch"] == 1 and blob["step"] == 0 and blob["mid_epoch"] is None
    assert all(torch.isfinite(v).all() for v in blob["model"].values() if v.is_floating_point())
    assert not (tmp_path / "nan" / "result.json").exists()
    assert line.split("in step ")[1].split("/")[0].isdigit()


def test_nan_in_the_first_epoch_says_nothing_was_saved(tmp_path, capsys):
    fails(capsys, argv(tmp_path, "optim.lr=1e30", "optim.momentum=0", name="nan0"),
          "of epoch 1/2", "no checkpoint had been written yet", "lower optim.lr (now 1e+30")


def test_meta_learning_without_a_meta_set_says_so(tmp_path, capsys):
    fails(capsys, argv(tmp_path, "method.name=cmwnet", "data.meta.kind=none"),
          "method cmwnet meta-learns on a meta set, but data.meta.kind is none", "set data.meta.kind to clean")
    assert not (tmp_path / "nan0" / "checkpoint.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_missing_device(tmp_path, capsys):
    fails(capsys, argv(tmp_path, "run.device=cuda"), "no CUDA device is available", "use run.device=cpu")


@pytest.mark.parametrize("case", ["unknown_key", "corrupt_checkpoint"])
def test_subprocess_gives_one_line_and_status_2(tmp_path, case):
    """The same guarantees through `python -m cmwnet.train` itself."""
    args = argv(tmp_path, name="sp")
    if case == "unknown_key":
        args = argv(tmp_path, "data.imbalanse=10", name="sp")
        needle = "did you mean 'data.imbalance'"
    else:
        run = tmp_path / "sp"
        assert run_cli(main, args) == 0
        (run / "result.json").unlink()
        (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
        needle = "is corrupt or unreadable"
    proc = subprocess.run([sys.executable, "-m", "cmwnet.train", *args], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert needle in proc.stderr
