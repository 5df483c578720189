"""The MetaLearner component and the run context: phase gate, meta batches, state round trip, and that
no method reads the Trainer."""
import pathlib
import re

import torch

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.methods.meta_learner import MetaLearner


def _trainer(tmp_path, kind="balanced_train", **method):
    return Trainer(config_from_dict({
        "name": "ml",
        "data": {"name": "digits", "train_subset": 300, "batch_size": 50, "test_batch_size": 200,
                 "meta": {"kind": kind, "per_class": 3, "batch_size": 20},
                 "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
        "model": {"name": "tiny_mlp", "args": {"image_size": 8}},
        "optim": {"lr": 0.1, "epochs": 2},
        "method": {"name": "cmwnet", "start_epoch": 1, "interval": 2, "weight_net": {"lr": 1e-3}, **method},
        "run": {"out": str(tmp_path), "device": "cpu", "progress": False, "plot": False}}), quiet=True)


def test_phase_gate_and_meta_batches(tmp_path):
    t = _trainer(tmp_path)
    ml = t.method.meta_learner
    assert isinstance(ml, MetaLearner) and t.method.weight_net is ml.weight_net and t.method.meta_step is ml.step
    assert [ml.active(e) for e in range(3)] == [False, True, True]
    ml.on_epoch_start(0)                        # before start_epoch: no meta set chosen
    assert ml.batches.cycle is None
    ml.on_epoch_start(1)
    assert ml.batches.cycle is not None and len(ml.batches.positions) == 3 * 10
    mx, my = ml.next_batch(0)                   # interval 2: due at 0, 2, ...
    assert mx.shape[0] == 20 and my.shape == (20,)
    assert ml.next_batch(1) == (None, None)


def test_state_round_trip_continues_the_same_meta_stream(tmp_path):
    t = _trainer(tmp_path)
    ml = t.method.meta_learner
    t.ctx.epoch = 1
    ml.on_epoch_start(1)
    ml.next_batch(0)
    x, y = torch.randn(50, 1, 8, 8), torch.randint(0, 10, (50,))
    ml.step.step(x, y, *ml.next_batch(2), 2)    # one meta update: the weight net and Adam's state move
    state = ml.state_dict()
    assert set(state) == {"weight_net", "meta_optimizer", "meta"}   # the checkpoint keys of before issue 10
    gen_state = t.ctx.generator.get_state()
    expected = ml.next_batch(4)

    other_trainer = _trainer(tmp_path / "other")
    other = other_trainer.method.meta_learner
    other.load_state_dict(state)
    other_trainer.ctx.generator.set_state(gen_state)   # as the engine restores a mid-epoch checkpoint's generators
    for a, b in zip(ml.weight_net.parameters(), other.weight_net.parameters()):
        assert torch.equal(a, b)
    assert other.meta_optimizer.state_dict()["state"][0]["step"] == ml.meta_optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(other.batches.positions, ml.batches.positions)
    got = other.next_batch(4)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_the_context_follows_the_engine(tmp_path):
    t = _trainer(tmp_path)
    t._begin_epoch(1)
    assert t.ctx.epoch == 1 and t.ctx.np_rng is t.np_rng and t.ctx.generator is t.generator
    assert t.method.ctx is t.ctx


def test_no_method_reads_the_trainer():
    root = pathlib.Path(__file__).resolve().parents[1] / "cmwnet" / "methods"
    for path in sorted(root.glob("*.py")):
        code = path.read_text()
        assert not re.search(r"\btrainer\.", code), f"{path.name} reads the Trainer: use self.ctx (RunContext)"
        assert "from ..engine" not in code and "import Trainer" not in code, path.name
