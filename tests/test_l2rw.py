"""L2RW weights: the clipped, normalised negative meta-gradient of per-sample eps at 0 (Ren et al. 2018)."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from cmwnet.bilevel import MetaStep
from cmwnet.config import config_from_dict
from cmwnet.errors import CmwnetError
from cmwnet.losses import CrossEntropy
from cmwnet.methods.l2rw import PerSampleEps, clip_and_normalise, l2rw_weights
from helpers import TinyBN


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _case(seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    mx = torch.randn(5, 4, generator=g, dtype=torch.float64)
    my = torch.randint(0, 3, (5,), generator=g)
    return x, y, mx, my


def _step(model, backend, lr=0.5):
    eps = PerSampleEps()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return MetaStep(model, opt, eps, None, backend=backend, loss_fn=CrossEntropy()), eps


def test_clip_and_normalise_by_hand():
    w = clip_and_normalise(torch.tensor([-1.0, 2.0, -3.0, 0.0]))
    assert torch.allclose(w, torch.tensor([0.25, 0.0, 0.75, 0.0]))
    assert torch.equal(clip_and_normalise(torch.tensor([1.0, 2.0])), torch.zeros(2))   # nothing helps: no update


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_weights_of_a_linear_model_match_the_hand_derivation(backend):
    """For a linear softmax model, -d meta/d eps_i at eps = 0 is lr * <grad meta, grad l_i>, and
    grad_W CE = (p - e_y) x^T, grad_b CE = p - e_y: the weights follow with numpy alone."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x, y, mx, my = _case()
    step, eps = _step(model, backend)
    w, meta = l2rw_weights(step, eps, x, y, mx, my)

    W, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    X, Y, MX, MY = x.numpy(), y.numpy(), mx.numpy(), my.numpy()
    r = _softmax(X @ W.T + b) - np.eye(3)[Y]                  # (8, 3): p_i - e_yi
    rm = _softmax(MX @ W.T + b) - np.eye(3)[MY]               # (5, 3)
    g_w, g_b = rm.T @ MX / len(MY), rm.mean(0)                # gradient of the mean meta CE
    u = 0.5 * (np.einsum("ic,cd,id->i", r, g_w, X) + r @ g_b)  # lr * <grad meta, grad l_i>
    want = np.maximum(u, 0) / np.maximum(u, 0).sum()
    assert (u < 0).sum() >= 2 and (u > 0).sum() >= 2, "degenerate case"
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-9, atol=1e-12)
    assert w.sum().item() == pytest.approx(1.0)
    meta_want = -np.log(_softmax(MX @ W.T + b)[np.arange(5), MY]).mean()
    assert meta.item() == pytest.approx(meta_want)




@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_weights_match_brute_force_meta_loss_differences_with_batchnorm(backend):
    """Central differences of the meta loss in each eps_i (virtual step written out by hand)."""
    torch.manual_seed(1)
    model = TinyBN().double().train()
    x, y, mx, my = _case(5)
    lr = 0.3
    step, eps = _step(model, backend, lr)
    buffers_before = {n: b.clone() for n, b in model.named_buffers()}
    w, _ = l2rw_weights(step, eps, x, y, mx, my)
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers_before[n]), "the virtual pass moved BN statistics"

    names = [n for n, _ in model.named_parameters()]

    def meta_at(e):
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        state = {**dict(zip(names, params)), **{n: b.clone() for n, b in model.named_buffers()}}
        losses = F.cross_entropy(functional_call(model, state, (x,)), y, reduction="none")
        grads = torch.autograd.grad((e * losses).sum(), params)
        state2 = {**{n: p - lr * g for n, p, g in zip(names, params, grads)},
                  **{n: b.clone() for n, b in model.named_buffers()}}
        return F.cross_entropy(functional_call(model, state2, (mx,)), my).item()

    h, u = 1e-6, []
    for i in range(len(y)):
        e = torch.zeros(len(y), dtype=torch.float64)
        e[i] = h
        up = meta_at(e)
        e[i] = -h
        u.append(-(up - meta_at(e)) / (2 * h))
    u = np.array(u)
    want = np.maximum(u, 0) / np.maximum(u, 0).sum()
    assert (u > 0).sum() >= 2 and (u < 0).sum() >= 1
    np.testing.assert_allclose(w.numpy(), want, atol=1e-6)


def _cfg(tmp_path, **method):
    return config_from_dict({
        "name": "l2rw", "data": {"name": "digits", "imbalance": 5, "batch_size": 32,
                                  "meta": {"kind": "balanced_train", "per_class": 3, "batch_size": 20},
                                  "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
        "model": {"name": "digits_mlp"}, "optim": {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.0, "epochs": 2},
        "method": {"name": "l2rw", **method},
        "run": {"out": str(tmp_path), "max_steps": 3, "progress": False, "plot": False}})


def test_l2rw_trains_two_epochs_through_the_engine(tmp_path):
    from cmwnet.engine import Trainer

    t = Trainer(_cfg(tmp_path, start_epoch=1), quiet=True)
    r = t.run()
    assert r["epochs"] == 2
    h = t.state.history
    assert "meta_loss" not in h[0] and math.isfinite(h[1]["meta_loss"])   # ERM before start_epoch
    assert all(math.isfinite(e["train_loss"]) for e in h)


def test_real_step_minimises_the_weighted_sum(tmp_path):
    """One L2RW step: the returned weights are those of the current model, and the parameters move by
    -lr * grad sum_i w_i l_i (plain SGD here)."""
    from cmwnet.engine import Trainer

    t = Trainer(_cfg(tmp_path, backend="torch.func"), quiet=True)
    t._begin_epoch(0)
    m = t.method
    x, y = t.data.train.augment.to_float(t.data.train.images[:16]), t.data.train.labels[:16]
    mx, my = t.data.train.augment.to_float(t.data.train.images[16:36]), t.data.train.labels[16:36]
    m.meta.next = lambda: (mx, my)
    ref = copy.deepcopy(t.model)
    ref_step, ref_eps = _step(ref, "higher", lr=t.optimizer.param_groups[0]["lr"])
    w_ref, _ = l2rw_weights(ref_step, ref_eps, x, y, mx, my)
    loss = (w_ref * F.cross_entropy(ref(x), y, reduction="none")).sum()
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    lr = t.optimizer.param_groups[0]["lr"]
    stats = m.train_step(x, y, torch.arange(16), 0)
    assert torch.allclose(stats["weights"], w_ref, atol=1e-6)
    assert stats["weights"].sum().item() == pytest.approx(1.0, abs=1e-5)
    for p, q, g in zip(t.model.parameters(), ref.parameters(), grads):
        assert torch.allclose(p, q - lr * g, atol=1e-6)


def test_l2rw_needs_interval_one(tmp_path):
    from cmwnet.engine import Trainer

    with pytest.raises(CmwnetError, match="method.interval"):
        Trainer(_cfg(tmp_path, interval=5), quiet=True)


def test_an_l2rw_run_records_its_per_batch_weights(tmp_path):
    """L2RW has no weight net, but its weights are the method: the epoch records carry their AUC and the run
    leaves final_weights.npz, as a weighting run does (its per-class profile beside a learned weighting's)."""
    import json

    import numpy as np

    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer

    cfg = config_from_dict({"name": "l2", "data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4},
                                                   "meta": {"kind": "clean", "per_class": 3}},
                            "model": {"name": "digits_mlp"}, "optim": {"epochs": 2}, "method": {"name": "l2rw"},
                            "run": {"out": str(tmp_path), "progress": False, "plot": False, "max_steps": 4}})
    Trainer(cfg, quiet=True).run()
    z = np.load(tmp_path / "l2" / "final_weights.npz")
    seen = ~np.isnan(z["weights"])
    assert seen.sum() >= 4 * 100 - 100 and (z["weights"][seen] >= 0).all()
    last = json.loads((tmp_path / "l2" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "weight_auc" in last and "mean_weight" in last
