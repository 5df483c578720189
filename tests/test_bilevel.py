"""The meta-gradient is right (finite differences), backend-independent, BN-safe and on schedule."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from cmwnet import CMWNet, MetaStep, MWNet
from cmwnet.errors import CmwnetError
from helpers import TinyBN




def _setup(backend="higher", dtype=torch.float64, seed=0, normalize="sum", virtual_params="all", lr=0.3):
    torch.manual_seed(seed)
    model = TinyBN().to(dtype)
    vnet = CMWNet([0, 1, 2], num_families=3, hidden=5).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    mopt = torch.optim.SGD(vnet.parameters(), lr=0.1)
    step = MetaStep(model, opt, vnet, mopt, backend=backend, normalize=normalize, virtual_params=virtual_params)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (8,), generator=g)
    mx = torch.randn(6, 4, generator=g, dtype=dtype)
    my = torch.randint(0, 3, (6,), generator=g)
    return model, vnet, step, x, y, mx, my


def _meta_loss_plain(model, vnet, x, y, mx, my, lr, normalize, denominator=None):
    """The meta objective written out by hand with functional_call (no MetaStep code)."""
    with torch.enable_grad():
        return _meta_loss_inner(model, vnet, x, y, mx, my, lr, normalize, denominator)


def _meta_loss_inner(model, vnet, x, y, mx, my, lr, normalize, denominator):
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().requires_grad_() for p in model.parameters()]
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    st = {**dict(zip(names, params)), **buffers}
    losses = F.cross_entropy(functional_call(model, st, (x,)), y, reduction="none")
    w = vnet(losses.detach(), y)
    if normalize == "sum":
        loss = (w * losses).sum() / w.sum()
    elif normalize == "sum_detached":  # the denominator is a constant: its value at the unperturbed phi
        loss = (w * losses).sum() / denominator
    else:
        loss = (w * losses).mean()
    grads = torch.autograd.grad(loss, params)
    st2 = {**{n: p - lr * g for n, p, g in zip(names, params, grads)}, **buffers}
    return F.cross_entropy(functional_call(model, st2, (mx,)), my)


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
@pytest.mark.parametrize("normalize", ["sum", "sum_detached", "mean"])
def test_meta_gradient_matches_central_finite_differences(backend, normalize):
    model, vnet, step, x, y, mx, my = _setup(backend, normalize=normalize)
    with torch.no_grad():
        losses0 = F.cross_entropy(model(x), y, reduction="none")  # BN in train mode: batch statistics
        denominator = vnet(losses0, y).sum()
    grads, _ = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    analytic = torch.cat([g.reshape(-1) for g in grads])
    flat = [p for p in vnet.parameters()]
    numeric, eps = [], 1e-6
    with torch.no_grad():
        for p in flat:
            for i in range(p.numel()):
                old = p.view(-1)[i].item()
                p.view(-1)[i] = old + eps
                up = _meta_loss_plain(model, vnet, x, y, mx, my, step.lr, normalize, denominator).item()
                p.view(-1)[i] = old - eps
                down = _meta_loss_plain(model, vnet, x, y, mx, my, step.lr, normalize, denominator).item()
                p.view(-1)[i] = old
                numeric.append((up - down) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert analytic.abs().max() > 1e-4, "degenerate case: the meta-gradient is ~0"
    rel = (analytic - numeric).norm() / numeric.norm()
    assert rel < 1e-5, f"relative error {rel:.2e}"


@pytest.mark.parametrize("virtual_params", ["all", "head"])
def test_backends_agree(virtual_params):
    results = []
    for backend in ("higher", "torch.func"):
        model, vnet, step, x, y, mx, my = _setup(backend, dtype=torch.float32, virtual_params=virtual_params)
        grads, outer = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
        results.append((torch.cat([g.reshape(-1) for g in grads]), outer))
    (g1, o1), (g2, o2) = results
    assert g1.abs().max() > 1e-5
    assert torch.allclose(g1, g2, atol=1e-6, rtol=0)
    assert torch.allclose(o1, o2, atol=1e-6, rtol=0)


def test_head_only_differs_from_all():
    a = _setup("torch.func", virtual_params="all")
    h = _setup("torch.func", virtual_params="head")
    ga, _ = a[2].meta_gradient(*a[2].reweighting_losses(*a[3:]))
    gh, _ = h[2].meta_gradient(*h[2].reweighting_losses(*h[3:]))
    assert not torch.allclose(torch.cat([g.reshape(-1) for g in ga]), torch.cat([g.reshape(-1) for g in gh]))


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_virtual_pass_leaves_bn_buffers_and_model_untouched(backend):
    model, vnet, step, x, y, mx, my = _setup(backend, dtype=torch.float32)
    model.train()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    params = {n: p.clone() for n, p in model.named_parameters()}
    vnet_before = [p.clone() for p in vnet.parameters()]
    step.meta_update(*step.reweighting_losses(x, y, mx, my))
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), f"buffer {n} changed by the virtual pass"
    for n, p in model.named_parameters():
        assert torch.equal(p, params[n]), f"parameter {n} changed by the meta update"
        assert p.grad is None, "the meta update leaked gradients into the classifier"
    assert any(not torch.equal(a, b) for a, b in zip(vnet_before, vnet.parameters())), "weight net did not move"
    # the real step does update the running statistics
    step.step(x, y, mx, my, iteration=1)
    assert not torch.equal(model.body[1].running_mean, buffers["body.1.running_mean"])


def test_interval_is_honoured():
    torch.manual_seed(0)
    model = TinyBN().float()
    vnet = MWNet(hidden=5)
    step = MetaStep(model, torch.optim.SGD(model.parameters(), 0.1), vnet,
                    torch.optim.Adam(vnet.parameters(), 1e-2), interval=3)
    x, y, mx, my = torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.randn(4, 4), torch.randint(0, 3, (4,))
    ran = []
    for it in range(10):
        before = [p.clone() for p in vnet.parameters()]
        out = step.step(x, y, mx, my, iteration=it)
        moved = any(not torch.equal(a, b) for a, b in zip(before, vnet.parameters()))
        ran.append(moved)
        assert bool(torch.isnan(out["meta_loss"])) != moved
    assert ran == [it % 3 == 0 for it in range(10)]
    assert step.meta_updates == 4


def test_real_update_uses_updated_weights_and_moves_model():
    model, vnet, step, x, y, mx, my = _setup("torch.func", dtype=torch.float32)
    before = copy.deepcopy(model.state_dict())
    out = step.step(x, y, mx, my, iteration=0)
    expected = vnet(out["losses"], y)
    assert torch.allclose(out["weights"], expected)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_options_are_one_line_errors():
    model, vnet = TinyBN(), MWNet(hidden=3)
    opt, mopt = torch.optim.SGD(model.parameters(), 0.1), torch.optim.SGD(vnet.parameters(), 0.1)
    with pytest.raises(CmwnetError, match="backend"):
        MetaStep(model, opt, vnet, mopt, backend="jax")
    with pytest.raises(CmwnetError, match="interval"):
        MetaStep(model, opt, vnet, mopt, interval=0)
    with pytest.raises(CmwnetError, match="normalisation"):
        MetaStep(model, opt, vnet, mopt, normalize="max")


def test_meta_loss_uses_the_training_loss_logit_scale():
    """With LDAM's cosine logits the clean meta cross-entropy is taken on s * logits, as training is."""
    from cmwnet.losses import build_loss

    model, vnet, step, x, y, mx, my = _setup("torch.func", dtype=torch.float32)
    step.loss_fn = build_loss("ldam", 3, [30, 20, 10], s=7.0)
    _, meta_loss = step.reweighting_losses(x, y, mx, my)
    model.train()
    expected = F.cross_entropy(7.0 * model(mx), my)
    assert torch.allclose(meta_loss(model), expected)


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_a_frozen_parameter_stays_out_of_the_virtual_step(backend):
    """Fine-tuning with frozen layers: the virtual step moves only what trains, and the meta-gradient is
    the one of naming exactly the trainable parameters."""
    model, vnet, step, x, y, mx, my = _setup(backend)
    names = [n for n, _ in model.named_parameters()]
    frozen = names[0]
    dict(model.named_parameters())[frozen].requires_grad_(False)
    grads, _ = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    model2, _, step2, *batch = _setup(backend, virtual_params=names[1:])
    expected, _ = step2.meta_gradient(*step2.reweighting_losses(*batch))
    for a, b in zip(grads, expected):
        assert torch.allclose(a, b, atol=1e-12)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(CmwnetError, match="every parameter the virtual step would move is frozen"):
        step.meta_gradient(*step.reweighting_losses(x, y, mx, my))


def test_virtual_params_as_one_module_name():
    model, vnet, step, *_ = _setup()
    prefix = [n for n, _ in model.named_parameters()][-1].rsplit(".", 1)[0]     # the last layer's module
    _, _, by_name, *_ = _setup(virtual_params=prefix)
    assert by_name.moved == [n.startswith(prefix + ".") for n, _ in model.named_parameters()]
    assert sum(by_name.moved) >= 1 and not all(by_name.moved)
    with pytest.raises(CmwnetError, match="virtual_params names no parameter of the model: \\['fcc'\\]"):
        _setup(virtual_params="fcc")


def test_own_loop_mistakes_are_one_clear_error():
    """What a notebook user's own model and data can get wrong surfaces as a CmwnetError at the first step."""
    model, vnet, step, x, y, mx, my = _setup(dtype=torch.float32)

    class TupleModel(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            return self.inner(t), t

    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = MetaStep(TupleModel(model), step.optimizer, vnet, step.meta_optimizer)
    with pytest.raises(CmwnetError, match="returns logits of shape"):
        bad.step(x, y, mx, my, 0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the check leaves BN buffers"
    wrong_dtype = MetaStep(model, step.optimizer, vnet.double(), step.meta_optimizer)
    with pytest.raises(CmwnetError, match="the model is torch.float32 but the weight net is torch.float64"):
        wrong_dtype.step(x, y, mx, my, 0)
    vnet.float()
    with pytest.raises(CmwnetError, match="label 5 has no curve in the weight net, which knows 3 classes"):
        MetaStep(model, step.optimizer, vnet, step.meta_optimizer).step(x, torch.full_like(y, 5), mx, my, 0)
    with pytest.raises(CmwnetError, match="a meta batch of one sample"):
        MetaStep(model, step.optimizer, vnet, step.meta_optimizer).step(x, y, mx[:1], my[:1], 0)
    MetaStep(model, step.optimizer, vnet, step.meta_optimizer).step(x, y, mx, my, 0)    # and a good step runs


def test_metastep_state_dict_resumes_the_meta_learning_exactly():
    """Two MetaSteps, one saved and restored midway into fresh objects: the same weight net after both."""
    import copy

    import pytest
    import torch
    import torch.nn as nn

    from cmwnet import CMWNet, MetaStep, weight_net_optimizer
    from cmwnet.errors import CmwnetError

    def make():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        vnet = CMWNet.from_counts([10, 5, 2])
        return model, opt, vnet, MetaStep(model, opt, vnet, weight_net_optimizer(vnet, 1e-2))

    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]
    model_a, opt_a, vnet_a, step_a = make()
    for i, (x, y) in enumerate(batches):
        step_a.step(x, y, x, y, i)
    model_b, opt_b, vnet_b, step_b = make()
    for i, (x, y) in enumerate(batches[:3]):
        step_b.step(x, y, x, y, i)
    saved = copy.deepcopy((model_b.state_dict(), opt_b.state_dict(), step_b.state_dict()))
    model_c, opt_c, vnet_c, step_c = make()
    model_c.load_state_dict(saved[0]); opt_c.load_state_dict(saved[1]); step_c.load_state_dict(saved[2])
    assert step_c.meta_updates == 3
    for i, (x, y) in enumerate(batches[3:], start=3):
        step_c.step(x, y, x, y, i)
    for p, q in zip(vnet_a.parameters(), vnet_c.parameters()):
        assert torch.allclose(p, q, atol=1e-7)
    with pytest.raises(CmwnetError, match="takes what MetaStep.state_dict returned"):
        step_c.load_state_dict({"weights": 1})
