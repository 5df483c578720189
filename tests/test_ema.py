"""The EMA net's BatchNorm statistics (`ema.bn`): "own" as the authors (only its own forwards move them),
"copy" as our alternative (the live net's after every update); both resume exactly."""
import signal

import pytest
import torch

from cmwnet.checkpoint import load_checkpoint
from cmwnet.config import config_from_dict
from cmwnet.ema import EMA
from cmwnet.engine import Trainer, train
from cmwnet.errors import CmwnetError
from cmwnet.tools.killtest import compare_runs

pytestmark = pytest.mark.usefixtures("one_thread")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))


def _train_live(net, steps=3):
    """A few SGD steps of the live net in train mode: parameters and BN buffers both move."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = 1.0 + 2.0 * torch.randn(8, 4, generator=g)
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _buffers(m):
    return {k: v.clone() for k, v in m.named_buffers()}


def test_own_update_leaves_the_buffers_and_its_own_forward_moves_them():
    live = _net()
    ema = EMA(live, 0.5, bn="own")
    before_b, before_p = _buffers(ema.model), [p.clone() for p in ema.model.parameters()]
    _train_live(live)
    ema.update(live)
    assert not torch.equal(live[1].running_mean, before_b["1.running_mean"]), "the live net's statistics moved"
    for k, v in _buffers(ema.model).items():
        assert torch.equal(v, before_b[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(ema.model.parameters(), before_p)), "parameters are averaged"
    assert torch.equal(ema.model[1].running_mean, torch.zeros(6)) and torch.equal(ema.model[1].running_var, torch.ones(6))
    with torch.no_grad():
        ema.model.train()(1.0 + torch.randn(8, 4, generator=torch.Generator().manual_seed(2)))
    assert not torch.equal(ema.model[1].running_mean, before_b["1.running_mean"])
    assert not torch.equal(ema.model[1].running_mean, live[1].running_mean)


def test_copy_update_takes_the_live_buffers():
    live = _net()
    ema = EMA(live, 0.5, bn="copy")
    _train_live(live)
    with torch.no_grad():
        ema.model.train()(torch.randn(8, 4))   # its own statistics are overwritten by the next update
    ema.update(live)
    for (k, v), (_, w) in zip(ema.model.named_buffers(), live.named_buffers()):
        assert torch.equal(v, w), k
    ema.update(live, decay=1.0)   # frozen parameters (Table 2 asym): the buffers still follow the live net
    assert torch.equal(ema.model[1].running_var, live[1].running_var)


def test_bad_mode_is_one_line():
    with pytest.raises(CmwnetError) as e:
        config_from_dict({"ema": {"decay": 0.9, "bn": "owm"}})
    assert "'ema.bn' must be copy or own, got 'owm'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CmwnetError, match="unknown ema.bn 'mean'"):
        EMA(_net(), 0.9, bn="mean")


# -- in a CMW-Net-SL run -----------------------------------------------------------------------------------
BASE = {"data": {"name": "digits", "noise": {"kind": "sym", "rate": 0.3}, "batch_size": 64,
                 "augment": {"normalize": "half", "flip": False, "crop_pad": 1},
                 "meta": {"kind": "lowest_loss", "per_class": 3, "batch_size": 20}},
        "model": {"name": "tiny_cnn"}, "optim": {"epochs": 3, "lr": 0.1},
        "method": {"name": "cmwnet_sl", "interval": 2, "sl": {"warmup": 1, "meta_mixup_alpha": 1.0}},
        "run": {"progress": False, "plot": False, "device": "cpu"}}


def _cfg(out, bn, name="r"):
    d = {**BASE, "name": name, "ema": {"decay": 0.9, "bn": bn}, "run": {**BASE["run"], "out": str(out)}}
    return config_from_dict(d)


def _bn_stats_by_epoch(cfg):
    """(EMA net, live net) running means of the first BN layer at the start of every epoch and at the end."""
    trainer = Trainer(cfg, quiet=True)
    seen, inner = [], trainer.method.on_epoch_start

    def on_epoch_start(epoch):
        seen.append((trainer.ema.model.body[1].running_mean.clone(), trainer.model.body[1].running_mean.clone()))
        inner(epoch)
    trainer.method.on_epoch_start = on_epoch_start
    trainer.run()
    seen.append((trainer.ema.model.body[1].running_mean.clone(), trainer.model.body[1].running_mean.clone()))
    return seen


def test_own_statistics_stay_initial_during_warm_up_and_move_with_label_correction(tmp_path):
    seen = _bn_stats_by_epoch(_cfg(tmp_path, "own"))
    (e0, _), (e1, l1), (e2, _) = seen[:3]
    assert torch.equal(e0, torch.zeros_like(e0)) and torch.equal(e1, e0), "no EMA forward in the CE warm-up"
    assert not torch.equal(l1, e1), "the live net's statistics did move"
    assert not torch.equal(e2, e1), "the pseudo-label forwards of epoch 1 moved them"


def test_copy_statistics_follow_the_live_net(tmp_path):
    for ema_mean, live_mean in _bn_stats_by_epoch(_cfg(tmp_path, "copy"))[1:]:
        assert torch.equal(ema_mean, live_mean)


@pytest.mark.parametrize("bn", ["own", "copy"])
def test_resume_mid_epoch_is_exact(bn, tmp_path):
    ref = tmp_path / "ref"
    train(_cfg(ref, bn), quiet=True)
    cfg = _cfg(tmp_path / "cut", bn)
    trainer = Trainer(cfg, quiet=True)
    inner = trainer.method.train_step

    def train_step(x, y, pos, s):
        if (trainer.epoch, s) == (2, 3):
            trainer._on_signal(signal.SIGTERM, None)
        return inner(x, y, pos, s)
    trainer.method.train_step = train_step
    with pytest.raises(SystemExit):
        trainer.run()
    blob = load_checkpoint(tmp_path / "cut" / "r" / "checkpoint.pt")
    assert (blob["epoch"], blob["step"]) == (2, 4)
    train(cfg, quiet=True)
    assert compare_runs(str(tmp_path / "cut" / "r"), str(ref / "r")) == []
