"""PRODEN and PRODEN + CMW-Net: the loss and confidence update by hand, the step, the switch, resume."""
import copy
import json
import math
import signal

import pytest
import torch
import torch.nn.functional as F

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer, train
from cmwnet.errors import CmwnetError
from cmwnet.methods.proden import proden_confidence, proden_loss, uniform_confidence


def _cfg(tmp_path, method="proden", name="p", **method_extra):
    return config_from_dict({
        "name": name,
        "data": {"name": "digits", "train_subset": 300, "batch_size": 50, "test_batch_size": 200,
                 "partial": {"kind": "binomial", "rate": 0.3, "seed": 1},
                 "meta": {"per_class": 3, "batch_size": 30, "augment": False},
                 "augment": {"crop_pad": 0, "flip": False, "normalize": "half"}},
        "model": {"name": "tiny_mlp", "args": {"image_size": 8}},
        "optim": {"lr": 0.1, "epochs": 3},
        "method": {"name": method, "start_epoch": 1, "interval": 2, "normalize": "sum_detached",
                   "weight_net": {"lr": 1e-3}, **method_extra},
        "run": {"out": str(tmp_path), "device": "cpu", "progress": False, "plot": False}})


def test_loss_and_confidence_by_hand():
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    cand = torch.tensor([[True, True, False]])
    conf = uniform_confidence(cand)
    assert torch.allclose(conf, torch.tensor([[0.5, 0.5, 0.0]]))
    # p = (1, 2, 1) / 4: loss = -(0.5 log 1/4 + 0.5 log 2/4) = 1.5 log 2
    assert proden_loss(logits, conf).item() == pytest.approx(1.5 * math.log(2.0), rel=1e-6)
    # softmax restricted to {0, 1} and renormalised: (1, 2) / 3
    assert torch.allclose(proden_confidence(logits, cand), torch.tensor([[1 / 3, 2 / 3, 0.0]]))
    # far-apart logits do not underflow to 0/0
    far = proden_confidence(torch.tensor([[200.0, -200.0, 0.0]]), torch.tensor([[False, True, True]]))
    assert torch.isfinite(far).all() and far[0, 2].item() == pytest.approx(1.0)


def test_step_trains_on_confidences_and_updates_only_the_batch(tmp_path):
    t = Trainer(_cfg(tmp_path), quiet=True)
    m = t.method
    assert m.candidates[torch.arange(len(t.data.train)), t.data.train.clean_labels].all()
    model0 = copy.deepcopy(t.model)
    pos = torch.tensor([3, 7, 11, 19])
    x = t.data.train.augment.to_float(t.data.train.images[pos])
    conf_before = m.confidence.clone()
    # the engine's labels are not read: pass nonsense
    m.train_step(x, torch.full((4,), 9), pos, 0)
    logits0 = model0(x)
    expected = F.softmax(logits0, 1) * m.candidates[pos]
    expected = expected / expected.sum(1, keepdim=True)
    assert torch.allclose(m.confidence[pos], expected, atol=1e-6)
    rest = torch.ones(len(m.confidence), dtype=torch.bool)
    rest[pos] = False
    assert torch.equal(m.confidence[rest], conf_before[rest])
    # the update is plain SGD on the mean PRODEN loss against the confidences from before the step
    opt = torch.optim.SGD(model0.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    proden_loss(model0(x), conf_before[pos]).mean().backward()
    opt.step()
    for a, b in zip(model0.parameters(), t.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_pipeline_switches_to_cmwnet_at_start_epoch(tmp_path):
    base = train(_cfg(tmp_path, "proden", "base"), quiet=True)
    t = Trainer(_cfg(tmp_path, "proden_cmwnet", "pipe"), quiet=True)
    m = t.method
    t.run()
    hist = [json.loads(x) for x in open(tmp_path / "pipe" / "metrics.jsonl")]
    base_hist = [json.loads(x) for x in open(tmp_path / "base" / "metrics.jsonl")]
    # epoch 0 is PRODEN in both runs, identically; from start_epoch on, CMW-Net reweights
    for key in ("train_loss", "train_acc", "test_top1"):
        assert hist[0][key] == base_hist[0][key]
    assert "mean_weight" not in hist[0] and "mean_weight" in hist[1] and "meta_loss" in hist[1]
    assert hist[2]["test_top1"] != base_hist[2]["test_top1"] or hist[2]["train_loss"] != base_hist[2]["train_loss"]
    # fixed hard pseudo labels: the argmax of the confidences at the switch, always a candidate
    assert m.pseudo is not None and m.candidates[torch.arange(len(m.pseudo)), m.pseudo].all()
    assert torch.equal(m.pseudo, m.confidence.argmax(1))
    assert m.meta_step.meta_updates == 2 * 3   # epochs 1 and 2, 6 steps each, every 2nd step
    # the meta set: per pseudo class the 3 lowest-loss samples, labelled with pseudo labels
    labels = m.pseudo[m.meta_positions]
    assert torch.bincount(labels, minlength=10).max() <= 3
    counts = torch.bincount(m.pseudo, minlength=10).tolist()
    assert m.weight_net.class_counts == counts
    r = json.loads(open(tmp_path / "pipe" / "result.json").read())
    assert r["data"]["partial"]["switch_epoch"] == 1 and 0 < r["data"]["partial"]["pseudo_label_accuracy"] <= 1
    assert base["best_top1"] > 30.0   # far above chance (10%) after 3 short epochs on digits


def test_resume_mid_epoch_after_the_switch_is_exact(tmp_path):
    full = Trainer(_cfg(tmp_path, "proden_cmwnet", "full"), quiet=True)
    full.run()
    cut = Trainer(_cfg(tmp_path, "proden_cmwnet", "cut"), quiet=True)
    cut._run_epoch()                       # epoch 0: PRODEN
    cut._stop_signal = signal.SIGTERM      # stop after the first step of epoch 1 (CMW-Net active)
    cut._run_epoch()
    assert cut.state.epoch == 1 and cut.state.step == 1
    resumed = Trainer(_cfg(tmp_path, "proden_cmwnet", "cut"), quiet=True)
    resumed.run()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(full.method.pseudo, resumed.method.pseudo)
    assert torch.equal(full.method.confidence, resumed.method.confidence)
    # the switch's record survives the resume (issue 11: it was lost from result.json)
    import json
    a = json.loads((tmp_path / "full" / "result.json").read_text())
    b = json.loads((tmp_path / "cut" / "result.json").read_text())
    for key in ("switch_epoch", "pseudo_label_accuracy"):
        assert key in json.dumps(a) and key in json.dumps(b)
    assert a["data"] == b["data"] and a.get("method_info") == b.get("method_info")


def test_without_candidate_sets_is_a_clear_error(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.data.partial.kind = "none"
    with pytest.raises(CmwnetError, match="data.partial.kind"):
        Trainer(cfg, quiet=True)
