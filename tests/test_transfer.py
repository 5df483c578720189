"""Transfer (paper Sec. 6): a saved weight net used frozen on a new data set, families from its counts."""
import json

import pytest
import torch

from cmwnet import CMWNet, load_weighting, task_families
from cmwnet.config import config_from_dict
from cmwnet.paper import fake_trees as ft
from cmwnet.engine import Trainer, train
from cmwnet.errors import CmwnetError
from cmwnet.tools.transfer import AUTHORS_HEAD_ORDER, convert, main, reorder_heads, to_authors_layout
from cmwnet.weighting import MCWNet, MWNet

GRID = torch.linspace(0, 12, 25)


def authors_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    net = CMWNet([0, 1, 2], 3)
    torch.save({k: v for k, v in to_authors_layout(net).items()}, path)
    return net


def test_authors_layout_round_trip_and_head_order(tmp_path):
    src = authors_checkpoint(tmp_path / "vnet_119.pth")
    state = torch.load(tmp_path / "vnet_119.pth")
    assert sorted(state) == ["classfier.layers.0.0.bias", "classfier.layers.0.0.weight", "classfier.layers.1.0.bias",
                             "classfier.layers.1.0.weight", "classfier.layers.2.0.bias", "classfier.layers.2.0.weight",
                             "feature.layer.0.bias", "feature.layer.0.weight"]
    back = load_weighting(tmp_path / "vnet_119.pth", families=[0])
    assert torch.allclose(back.curves(GRID), src.curves(GRID))
    out = convert(str(tmp_path / "vnet_119.pth"), str(tmp_path / "ours.pt"))
    for f, branch in enumerate(AUTHORS_HEAD_ORDER):       # our family f = the authors' branch head_order[f]
        assert torch.allclose(out.curves(GRID)[f], src.curves(GRID)[branch])
    counts = [900, 880, 400, 390, 60, 50, 45, 40]
    net = load_weighting(tmp_path / "ours.pt", class_counts=counts)
    assert net.families.tolist() == task_families(counts).tolist() == [0, 0, 1, 1, 2, 2, 2, 2]
    w = net(torch.full((8,), 2.0), torch.arange(8))
    expected = src.curves(torch.tensor([2.0]))[:, 0]      # authors' branches at loss 2
    assert torch.allclose(w, expected[[AUTHORS_HEAD_ORDER[f] for f in net.families.tolist()]])
    with pytest.raises(CmwnetError, match="permutation"):
        reorder_heads(src, [0, 0, 1])


def test_transfer_cli_convert_and_show(tmp_path, capsys):
    authors_checkpoint(tmp_path / "v.pth")
    assert main(["convert", str(tmp_path / "v.pth"), str(tmp_path / "o.pt"), "--head-order", "2,0,1"]) == 0
    assert "head 0  head 1  head 2" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "v.pth")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("loss") and len(lines) == 6


def test_convert_refuses_a_file_already_in_our_format(tmp_path):
    authors_checkpoint(tmp_path / "v.pth")
    first = convert(str(tmp_path / "v.pth"), str(tmp_path / "o.pt"))
    before = (tmp_path / "o.pt").read_bytes()
    with pytest.raises(CmwnetError, match="already a cmwnet weight-net file .* use it as method.weight_net.init"):
        convert(str(tmp_path / "o.pt"), str(tmp_path / "o2.pt"))   # a second reorder would swap two heads
    assert not (tmp_path / "o2.pt").exists() and (tmp_path / "o.pt").read_bytes() == before
    assert torch.allclose(load_weighting(tmp_path / "o.pt", class_counts=[5, 3, 1]).curves(GRID), first.curves(GRID))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CmwnetError, match="cannot read weight net file"):
        convert(str(tmp_path / "junk.pt"), str(tmp_path / "o3.pt"))


def _digits_run(tmp_path):
    d = {"name": "source", "seed": 0,
         "data": {"name": "digits", "imbalance": 10, "noise": {"kind": "sym", "rate": 0.3},
                  "meta": {"kind": "clean", "per_class": 3, "batch_size": 30},
                  "augment": {"crop_pad": 0, "flip": False, "normalize": "half"}, "batch_size": 64, "train_subset": 600},
         "model": {"name": "digits_mlp"}, "optim": {"lr": 0.1, "epochs": 2},
         "method": {"name": "cmwnet", "start_epoch": 1, "weight_net": {"lr": 1e-2}},
         "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu", "max_steps": 3}}
    train(config_from_dict(d), quiet=True)
    return tmp_path / "source" / "weight_net.pt"


def _target(tmp_path, init, method="cmwnet_sl"):
    root = tmp_path / "folder"
    if not root.exists():
        ft.make_image_folder(str(root), classes=("a", "b", "c", "d"), per_class=[9, 8, 3, 2], noise_rate=0.25)
    d = {"name": f"target_{method}", "seed": 1,
         "data": {"name": "image_folder_32px", "root": str(root), "batch_size": 6, "test_batch_size": 8,
                  "augment": {"crop_pad": 0, "flip": True, "normalize": "imagenet"}},
         "model": {"name": "tiny_cnn"}, "optim": {"lr": 0.05, "epochs": 2},
         "method": {"name": method, "start_epoch": 0, "weight_net": {"init": str(init), "frozen": True},
                    "sl": {"warmup": 1, "mixup_alpha": 1.0, "pseudo_momentum": 0.9}},
         "ema": {"decay": 0.9}, "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu"}}
    return config_from_dict(d)


def test_a_weight_net_from_a_digits_run_used_frozen_on_another_data_set(tmp_path):
    path = _digits_run(tmp_path)
    saved = load_weighting(path)
    assert isinstance(saved, CMWNet) and len(saved.families) == 10
    cfg = _target(tmp_path, path)
    trainer = Trainer(cfg, quiet=True)
    net = trainer.method.weight_net
    counts = trainer.data.class_counts
    assert sorted(counts, reverse=True) != sorted(saved.class_counts, reverse=True)[:4]
    assert net.families.tolist() == task_families(counts).tolist()           # re-derived for the new data
    assert net.class_counts == counts
    assert torch.allclose(net.curves(GRID), saved.curves(GRID))             # the same weighting functions
    learner = trainer.method.meta_learner
    assert learner.frozen and learner.meta_optimizer is None and learner.batches is None
    assert not any(p.requires_grad for p in net.parameters())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # frozen through training
    history = [json.loads(line) for line in open(tmp_path / cfg.name / "metrics.jsonl")]
    assert "mean_weight" not in history[0] and 0 < history[1]["mean_weight"] < 1   # SL phase used the weights


def test_the_authors_layout_used_frozen_by_reweighting(tmp_path):
    src = authors_checkpoint(tmp_path / "vnet_119.pth", seed=3)
    ours = tmp_path / "converted.pt"
    convert(str(tmp_path / "vnet_119.pth"), str(ours))
    trainer = Trainer(_target(tmp_path, ours, method="cmwnet"), quiet=True)
    net = trainer.method.weight_net
    fam = net.families.tolist()
    x = torch.tensor([0.5, 3.0, 1.0, 7.0])
    labels = torch.arange(4)
    expected = torch.stack([src.curves(x[i:i + 1])[AUTHORS_HEAD_ORDER[fam[i]], 0] for i in range(4)])
    assert torch.allclose(net(x, labels), expected)
    assert trainer.run()["epochs"] == 2


def test_frozen_needs_a_file_and_a_cmwnet(tmp_path):
    with pytest.raises(CmwnetError, match="weight net file not found"):
        Trainer(_target(tmp_path, tmp_path / "missing.pt"), quiet=True)
    MWNet(8, [5, 5]).save(tmp_path / "mw.pt")
    with pytest.raises(CmwnetError, match="method cmwnet learns a cmwnet weighting, but .* holds a mwnet net"):
        Trainer(_target(tmp_path, tmp_path / "mw.pt", method="cmwnet"), quiet=True)


def test_a_weight_net_of_the_wrong_kind_or_size_is_refused(tmp_path):
    path = _digits_run(tmp_path)                                  # a CMW-Net
    for method, kind in (("mwnet", "mwnet"), ("mcw", "mcwnet")):
        with pytest.raises(CmwnetError, match=f"method {method} learns a {kind} weighting, but .* holds a cmwnet net"):
            Trainer(_target(tmp_path, path, method=method), quiet=True)
    MCWNet(10, 8, [5] * 10).save(tmp_path / "mcw10.pt")            # the target data has 4 classes
    with pytest.raises(CmwnetError, match="MCW net of 10 classes, but the data has 4"):
        Trainer(_target(tmp_path, tmp_path / "mcw10.pt", method="mcw"), quiet=True)
    with pytest.raises(CmwnetError, match="method erm has no learned weighting"):
        Trainer(_target(tmp_path, tmp_path / "garbage.pt", method="erm"), quiet=True)
