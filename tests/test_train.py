"""`python -m cmwnet.train`: a real run writes everything a user expects, and reruns skip or resume."""
import json
import os
import subprocess
import sys

import pytest

from cmwnet import load_weighting
from cmwnet.config import config_from_dict
from cmwnet.engine import train
from cmwnet.train import main

TINY = ["data.name=digits", "data.imbalance=5", "data.noise.kind=sym", "data.noise.rate=0.3",
        "data.meta.kind=clean", "data.meta.per_class=3", "data.augment.normalize=half", "data.augment.flip=false",
        "data.batch_size=64", "model.name=digits_mlp", "optim.epochs=3", "run.progress=false"]


def _argv(out, *extra):
    args = ["--out", str(out)]
    for s in TINY + list(extra):
        args += ["--set", s]
    return args


def test_cli_run_writes_the_run_folder(tmp_path, capsys):
    assert main(_argv(tmp_path, "method.name=cmwnet", "name=t1")) == 0
    run = tmp_path / "t1"
    for f in ("config.yaml", "metrics.jsonl", "result.json", "checkpoint.pt", "weight_net.pt", "weighting.png"):
        assert (run / f).exists(), f
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [0, 1, 2]
    for key in ("lr", "train_loss", "train_acc", "test_top1", "test_top5", "mean_weight", "weight_auc", "meta_loss"):
        assert key in lines[-1], key
    r = json.loads((run / "result.json").read_text())
    assert r["best_top1"] == max(x["test_top1"] for x in lines) and r["last_top1"] == lines[-1]["test_top1"]
    assert r["data"]["noise"]["kind"] == "sym" and 0 < r["data"]["noise"]["realised_rate"] < 0.3
    assert (run / "weighting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vnet = load_weighting(run / "weight_net.pt")
    assert vnet.kind == "cmwnet" and vnet.class_counts == r["data"]["class_counts"]
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "best_top1" in out
    # the same command again: finished runs are skipped, not retrained
    assert main(_argv(tmp_path, "method.name=cmwnet", "name=t1")) == 0
    assert "already finished" in capsys.readouterr().out


def test_the_weight_net_is_meta_learned(tmp_path):
    cfg = config_from_dict({"name": "moves", "data": {"name": "digits", "meta": {"kind": "clean", "per_class": 3},
                                                      "augment": {"normalize": "half", "flip": False}},
                            "model": {"name": "digits_mlp"}, "optim": {"epochs": 1},
                            "method": {"name": "mwnet", "weight_net": {"lr": 1e-2}},
                            "run": {"out": str(tmp_path), "progress": False, "max_steps": 5}})
    from cmwnet.engine import Trainer

    t = Trainer(cfg, quiet=True)
    before = [p.detach().clone() for p in t.method.weight_net.parameters()]
    t.run()
    after = list(t.method.weight_net.parameters())
    assert all(not (a == b).all() for a, b in zip(before, after)), "every weight-net tensor must move (MW-Net issue #3)"


def test_label_correction_run_reports_the_ema_net(tmp_path):
    over = {"name": "sl", "data": {"name": "digits", "noise": {"kind": "sym", "rate": 0.4},
                                   "meta": {"kind": "lowest_loss", "per_class": 3, "batch_size": 30},
                                   "augment": {"normalize": "half", "flip": False}, "batch_size": 64},
            "model": {"name": "digits_cnn"}, "optim": {"epochs": 3, "lr": 0.05}, "ema": {"decay": 0.99},
            "method": {"name": "cmwnet_sl", "interval": 2, "sl": {"warmup": 1, "mixup_alpha": 1.0, "meta_mixup_alpha": 1.0}},
            "run": {"out": str(tmp_path), "progress": False}}
    r = train(config_from_dict(over), quiet=True)
    assert r["ema"] is not None and 0 <= r["ema"]["last_top1"] <= 100
    lines = [json.loads(x) for x in (tmp_path / "sl" / "metrics.jsonl").read_text().splitlines()]
    assert "meta_loss" not in lines[0] and "meta_loss" in lines[2]   # warm-up epoch: plain CE
    assert "weight_auc" in lines[2]


def test_print_config_and_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cmwnet.train", "--config", "configs/digits_cmwnet.yaml",
                           "--set", "optim.lr=0.05", "--print-config"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.05" in proc.stdout and "name: cmwnet" in proc.stdout


@pytest.mark.parametrize("bad,msg", [("optim.lr=fast", "must be a number"), ("method.nmae=erm", "did you mean 'method.name'"),
                                     ("method.name=cmwnett", "did you mean 'cmwnet'")])
def test_cli_errors_are_one_line(tmp_path, bad, msg):
    proc = subprocess.run([sys.executable, "-m", "cmwnet.train", *_argv(tmp_path, bad)], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 2 and msg in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_a_batch_of_one_sample_never_reaches_batchnorm(tmp_path):
    """129 training images in batches of 64 leave one over, and a meta set of 50 in batches of 49 leaves
    one over: both used to crash BatchNorm (at the first meta-learning epoch, too late to fix cheaply)."""
    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer

    cfg = config_from_dict({
        "name": "one", "data": {"name": "digits", "train_subset": 179, "batch_size": 64,
                                "meta": {"kind": "clean", "per_class": 5, "batch_size": 49},
                                "augment": {"normalize": "half", "flip": False, "crop_pad": 0}},
        "model": {"name": "digits_cnn"}, "optim": {"epochs": 2}, "method": {"name": "cmwnet", "start_epoch": 0},
        "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu"}})
    trainer = Trainer(cfg, quiet=True)
    assert len(trainer.data.train) == 129 and len(trainer.data.meta) == 50
    assert trainer.steps_per_epoch() == 2       # the lone 129th image waits for another epoch's order
    result = trainer.run()
    assert result["epochs"] == 2
