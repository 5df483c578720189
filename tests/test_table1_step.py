"""Table 1's CMW-Net iteration equals the authors' way of computing it, in float64, over 3 full iterations.

Settings come from configs/table1.yaml (so the test follows the config): SGD lr 0.1, momentum 0.9,
nesterov, wd 5e-4; weight net Adam 1e-4, wd 1e-5, amsgrad; a meta step every iteration; sum(w*l)/sum(w)
with the denominator detached. The authors' way (`cmwnet.reference`): a fresh classifier instance
loaded with the live state at every meta step, the K-head weight net evaluated sample by sample, a
plain-SGD virtual step at the optimizer's current lr. Its weighted loss is replaced here by the
authors' formula written out (sum(l * v) / sum(v).detach()), so no normalisation code is shared with
MetaStep. Compared: the meta-gradient and meta loss before every step, the weights of every real
update, and after 3 iterations the classifier (parameters and BN buffers), its momentum buffers and
the weight net. A MetaStep with gradients through the denominator ("sum") must disagree.
"""
import copy
import os

import pytest
import torch

from cmwnet import CMWNet, MetaStep
from cmwnet.tools import reference
from cmwnet.config import load_config
from cmwnet.tools.reference import AuthorsWayIteration
from helpers import TinyBN

TABLE1 = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "table1.yaml"))


def authors_weighted_loss(losses, v, normalize):
    """LT1.py: torch.sum(cost * v_lambda) / torch.sum(v_lambda).detach()."""
    assert normalize == "sum_detached"
    return torch.sum(losses * v) / torch.sum(v).detach()


def _optimizers(model, vnet):
    o, w = TABLE1.optim, TABLE1.method.weight_net
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay)
    mopt = torch.optim.Adam(vnet.parameters(), lr=w.lr, weight_decay=w.weight_decay, amsgrad=w.amsgrad)
    return opt, mopt


def _setup(backend, normalize=None):
    torch.manual_seed(0)
    model = TinyBN().double()
    vnet = CMWNet([0, 1, 2], num_families=3, hidden=TABLE1.method.weight_net.hidden).double()
    m1, v1, m2, v2 = copy.deepcopy(model), copy.deepcopy(vnet), copy.deepcopy(model), copy.deepcopy(vnet)
    o1, mo1 = _optimizers(m1, v1)
    o2, mo2 = _optimizers(m2, v2)
    step = MetaStep(m1, o1, v1, mo1, backend=backend, interval=TABLE1.method.interval,
                    normalize=normalize or TABLE1.method.normalize)
    ref = AuthorsWayIteration(lambda: TinyBN().double(), m2, o2, v2, mo2, normalize=TABLE1.method.normalize)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g),
             torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g))
            for _ in range(3)]
    return step, ref, data


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def test_table1_config_is_what_this_test_assumes():
    o, m = TABLE1.optim, TABLE1.method
    assert (o.name, o.lr, o.momentum, o.nesterov, o.weight_decay) == ("sgd", 0.1, 0.9, True, 5e-4)
    assert (m.name, m.interval, m.normalize) == ("cmwnet", 1, "sum_detached")
    assert (m.weight_net.lr, m.weight_net.weight_decay, m.weight_net.amsgrad) == (1e-4, 1e-5, True)


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_three_table1_iterations_equal_the_authors_way(backend, monkeypatch):
    monkeypatch.setattr(reference, "weighted_mean", authors_weighted_loss)
    step, ref, data = _setup(backend)
    start = copy.deepcopy(ref.model.state_dict())
    for it, (x, y, mx, my) in enumerate(data):
        g1, o1 = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
        g2, o2 = ref.meta_gradient(x, y, mx, my)
        assert _flat(g1).abs().max() > 1e-6, "degenerate case"
        torch.testing.assert_close(_flat(g1), _flat(g2), rtol=1e-11, atol=1e-14)
        torch.testing.assert_close(o1, o2, rtol=1e-13, atol=0)
        a, b = step.step(x, y, mx, my, it), ref.step(x, y, mx, my)
        torch.testing.assert_close(a["weights"], b["weights"], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(a["loss"], b["loss"], rtol=1e-12, atol=0)
    assert step.meta_updates == 3
    s1, s2 = step.model.state_dict(), ref.model.state_dict()
    for k in s1:
        torch.testing.assert_close(s1[k].double(), s2[k].double(), rtol=1e-11, atol=1e-14, msg=k)
        if s1[k].is_floating_point():
            assert not torch.equal(s2[k], start[k]), f"{k} did not move"
    m1, m2 = step.optimizer.state, ref.optimizer.state
    for p, q in zip(step.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(m1[p]["momentum_buffer"], m2[q]["momentum_buffer"], rtol=1e-11, atol=1e-14)
    for p, q in zip(step.weight_net.parameters(), ref.weight_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-14)


def test_a_different_normalisation_is_noticed(monkeypatch):
    """The comparison can fail: MetaStep with gradients through sum(w) gives another meta-gradient."""
    monkeypatch.setattr(reference, "weighted_mean", authors_weighted_loss)
    step, ref, data = _setup("torch.func", normalize="sum")
    x, y, mx, my = data[0]
    g1, _ = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    g2, _ = ref.meta_gradient(x, y, mx, my)
    assert (_flat(g1) - _flat(g2)).abs().max() > 1e-3 * _flat(g2).abs().max()
