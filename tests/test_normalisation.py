"""Why `mean` normalisation inverts the learned weighting of an under-fitted net, pinned as two facts
(README, "The weighting's settings"):

1. With `mean`, the meta-gradient has a uniform part: scaling every weight up scales the virtual step,
   which lowers the meta loss whenever training on the batch helps the meta batch (an under-fitted net).
   With `sum` it has none: the meta objective is invariant to scaling all weights (Euler: sum_i w_i dL/dw_i = 0).
2. Adam, the weight net's optimizer, turns a uniform "raise every weight" push into a curve that rises
   with the loss (each head weight moves by about lr whatever its gradient's size, and the ReLU features
   that grow with the loss are unbounded while those that shrink are capped), i.e. mislabelled (high-loss)
   samples end up with the higher weights. Plain SGD raises the curve uniformly.
"""
import pytest
import torch

from cmwnet import MetaStep
from cmwnet.methods.l2rw import PerSampleEps
from cmwnet.weighting import build_weight_net
from helpers import TinyBN


def _meta_grad_of_weights(normalize: str) -> tuple[torch.Tensor, torch.Tensor]:
    """dL_meta/dw_i at weights w (one per sample of the batch), exactly, through MetaStep."""
    torch.manual_seed(0)
    model = TinyBN().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    eps = PerSampleEps()
    step = MetaStep(model, opt, eps, None, normalize=normalize)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
    mx, my = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (9,), generator=g)
    w = torch.rand(12, generator=g, dtype=torch.float64) * 0.8 + 0.1
    eps.eps = torch.nn.Parameter(w.clone())
    grads, _ = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    return w, grads[0]


def test_sum_has_no_uniform_meta_gradient_and_mean_has_one():
    w, g_sum = _meta_grad_of_weights("sum")
    assert abs(float((w * g_sum).sum())) < 1e-12 * float(g_sum.abs().sum())      # scale-free
    w, g_mean = _meta_grad_of_weights("mean")
    assert abs(float((w * g_mean).sum())) > 1e-3 * float(g_mean.abs().sum())     # a uniform push exists


@pytest.mark.parametrize("init", [None, 0.5])
def test_adam_turns_a_uniform_push_into_a_curve_rising_with_the_loss(init):
    losses, grid = torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 3, torch.tensor([0.2, 1.5, 3.0])
    change = {}
    for name in ("adam", "sgd"):
        torch.manual_seed(1)
        net = build_weight_net("mwnet", 10, [1] * 10, init_output=init)
        opt = torch.optim.Adam(net.parameters(), 1e-3) if name == "adam" else torch.optim.SGD(net.parameters(), 1.0)
        with torch.no_grad():
            before = net(grid)
        for _ in range(50):
            opt.zero_grad()
            (-net(losses).mean()).backward()      # every sample's weight wants up by the same amount
            opt.step()
        with torch.no_grad():
            change[name] = net(grid) - before
    a, s = change["adam"], change["sgd"]
    assert (a > 0).all() and float(a[2] - a[0]) > 0.08                   # Adam: rises more at high loss
    assert float((s - s.mean()).abs().max()) < 0.35 * float(a[2] - a[0])  # SGD: nearly uniform


PAPER_CONFIGS = ["table1", "table2", "table4", "animal10n_cmwnet", "animal10n_cmwnet_sl", "mini_webvision_cmwnet",
                 "mini_webvision_cmwnet_sl", "pll_cifar10", "pll_cifar100", "webfg_cmwnet", "webfg_cmwnet_sl"]


def test_library_defaults_and_paper_configs_keep_the_authors_choices():
    import os

    from cmwnet.config import load_config

    d = load_config(None).method
    assert d.normalize == "sum" and d.weight_net.init_output == 0.9     # chosen by measurement (README)
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    for name in PAPER_CONFIGS:
        cfg = load_config(os.path.join(root, f"{name}.yaml"))
        assert cfg.method.weight_net.init_output is None, name          # the authors' default nn.Linear init
        assert cfg.method.normalize in ("mean", "sum_detached"), name    # the authors' normalisation


def test_weighted_mean_needs_one_weight_per_loss():
    """A (B, 1) weight column used to broadcast against (B,) losses to a B x B sum (6.0 for the value 1.0)."""
    import pytest
    import torch

    from cmwnet import weighted_mean
    from cmwnet.errors import CmwnetError

    losses = torch.tensor([1.0, 2.0, 3.0])
    column = torch.tensor([[1.0], [0.0], [0.0]])
    for normalize in ("sum", "sum_detached"):
        assert weighted_mean(losses, column, normalize).item() == pytest.approx(1.0)
    assert weighted_mean(losses, column, "mean").item() == pytest.approx(1.0 / 3)
    with pytest.raises(CmwnetError, match="one weight per loss"):
        weighted_mean(losses, torch.tensor([1.0, 0.0]))
    with pytest.raises(CmwnetError, match="one weight per loss"):
        weighted_mean(losses[None], torch.ones(1, 3))
    empty = weighted_mean(torch.zeros(0), torch.zeros(0), "mean")
    assert empty.item() == 0.0
