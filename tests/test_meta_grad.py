"""The meta-gradient modes (`MetaStep(meta_grad=...)`, `method.meta_grad`) against the exact one.

`forward` is the exact meta-gradient computed another way, so it must equal `exact` to float rounding;
`head` is the exact meta-gradient of the head-only problem, so it must equal `exact` with
`virtual_params="head"`, and `tail` that of the problem through the last block (`exact` with those parameters
named). How close `head` and `tail` come to the full exact meta-gradient is a property of the
net and the batch, not a guarantee: that cosine is measured and printed (`-s` shows it), not asserted.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cmwnet import CMWNet, MetaStep, MWNet
from cmwnet.errors import CmwnetError
from cmwnet.models import create_model, tail_names
from helpers import TinyBN


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def _cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def _setup(model_fn, mode, virtual_params="all", normalize="sum", weight="cmwnet", seed=0):
    torch.manual_seed(seed)
    model = model_fn().double()
    vnet = (CMWNet([0, 1, 2], num_families=3, hidden=8) if weight == "cmwnet" else MWNet(hidden=8)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=5e-4)
    mopt = torch.optim.Adam(vnet.parameters(), lr=1e-2)
    return model, vnet, MetaStep(model, opt, vnet, mopt, meta_grad=mode, virtual_params=virtual_params,
                                 normalize=normalize)


def _batches(shape, n=8, m=6, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g),
            torch.randn(m, *shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (m,), generator=g))


def _meta_grad(model_fn, shape, mode, virtual_params="all", normalize="sum", weight="cmwnet"):
    _, _, step = _setup(model_fn, mode, virtual_params, normalize, weight)
    grads, outer = step.meta_gradient(*step.reweighting_losses(*_batches(shape)))
    return _flat(grads), outer


@pytest.mark.parametrize("normalize", ["sum", "sum_detached", "mean"])
@pytest.mark.parametrize("weight", ["cmwnet", "mwnet"])
def test_forward_mode_is_the_exact_meta_gradient(normalize, weight):
    exact, o1 = _meta_grad(TinyBN, (4,), "exact", normalize=normalize, weight=weight)
    fwd, o2 = _meta_grad(TinyBN, (4,), "forward", normalize=normalize, weight=weight)
    assert exact.abs().max() > 1e-4, "degenerate case"
    assert torch.allclose(fwd, exact, rtol=1e-9, atol=1e-12)
    assert torch.allclose(o1, o2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_head_mode_is_the_exact_head_only_meta_gradient(normalize):
    exact_head, _ = _meta_grad(TinyBN, (4,), "exact", virtual_params="head", normalize=normalize)
    head, _ = _meta_grad(TinyBN, (4,), "head", normalize=normalize)
    assert exact_head.abs().max() > 1e-4
    assert torch.allclose(head, exact_head, rtol=1e-9, atol=1e-12)
    exact_all, _ = _meta_grad(TinyBN, (4,), "exact", normalize=normalize)
    assert not torch.allclose(head, exact_all, rtol=1e-3, atol=0), "head only should differ from all"


def test_tail_mode_is_the_exact_meta_gradient_through_the_last_block():
    resnet = lambda: create_model("resnet8", 3, 3)  # noqa: E731
    names = tail_names(resnet())
    assert names[0] == "layer3.0.conv1.weight" and names[-2:] == ["fc.weight", "fc.bias"]
    tail, _ = _meta_grad(resnet, (3, 16, 16), "tail")
    listed, _ = _meta_grad(resnet, (3, 16, 16), "exact", virtual_params=names)
    assert tail.abs().max() > 1e-6 and torch.allclose(tail, listed, rtol=1e-12, atol=0)
    head, _ = _meta_grad(resnet, (3, 16, 16), "head")
    assert not torch.allclose(tail, head, rtol=1e-3, atol=0), "the last block's virtual step should count"


@pytest.mark.parametrize("name,first", [("resnet32", "layer3.4."), ("preact_resnet18", "layer4.1."),
                                        ("resnet50", "layer4.2."), ("digits_mlp", "body.5.")])
def test_tail_is_the_last_block_and_everything_after_it(name, first):
    model = create_model(name, 10, 1 if name.startswith("digits") else 3)
    names, tail = [n for n, _ in model.named_parameters()], tail_names(model)
    assert tail[0].startswith(first) and tail == names[names.index(tail[0]):]   # a contiguous end, head included
    assert len(tail) < len(names)
    model.tail_name = "fc"
    assert tail_names(model) == ["fc.weight", "fc.bias"]
    model.tail_name = "nothing"
    with pytest.raises(CmwnetError, match="names no module"):
        tail_names(model)


def test_report_cosines_to_the_exact_meta_gradient_on_a_small_resnet(record_property):
    """Cosine of each mode's meta-gradient with the exact one on ResNet-8 (CIFAR-shaped batch of 16)."""
    resnet = lambda: create_model("resnet8", 3, 3)  # noqa: E731
    exact, _ = _meta_grad(resnet, (3, 16, 16), "exact")
    cosines = {}
    for mode in ("forward", "head", "tail"):
        g, _ = _meta_grad(resnet, (3, 16, 16), mode)
        cosines[mode] = _cosine(g, exact)
        record_property(f"cosine_{mode}", cosines[mode])
    print(f"\ncosine with the exact meta-gradient, ResNet-8: {cosines}")
    assert cosines["forward"] > 1 - 1e-9          # the same quantity, computed another way
    assert -1.0 <= cosines["head"] <= 1.0 and -1.0 <= cosines["tail"] <= 1.0   # measured, not asserted


@pytest.mark.parametrize("mode,reference", [("forward", ("exact", "all")), ("head", ("exact", "head")),
                                            ("tail", ("exact", ["body.1", "fc"]))])   # TinyBN: its BatchNorm and head
def test_whole_steps_equal_their_exact_reference(mode, reference):
    """Three whole iterations (meta update + real update, the training forward shared in the fast modes):
    the model, its BatchNorm buffers and the weight net end where the exact reference ends."""
    data = _batches((4,))
    ends = {}
    for key, (m, vp) in {"fast": (mode, "all"), "ref": reference}.items():
        model, vnet, step = _setup(TinyBN, m, vp)
        for i in range(3):
            step.step(*data, iteration=i)
        ends[key] = (_flat(model.parameters()), _flat(model.buffers()).double(), _flat(vnet.parameters()))
        assert step.meta_updates == 3
    for a, b in zip(ends["fast"], ends["ref"]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_fast_modes_leave_the_virtual_pass_out_of_the_bn_buffers():
    """The real forward moves the running statistics once per iteration, as in the exact mode."""
    x, y, mx, my = _batches((4,))
    buffers = {}
    for mode in ("exact", "head", "forward"):
        model, _, step = _setup(TinyBN, mode)
        step.step(x, y, mx, my, iteration=0)
        buffers[mode] = _flat(model.buffers()).double()
    plain = copy.deepcopy(_setup(TinyBN, "exact")[0])
    plain(x)   # one train-mode forward of the training batch
    assert torch.allclose(buffers["exact"], _flat(plain.buffers()).double())
    for mode in ("head", "forward"):
        assert torch.allclose(buffers[mode], buffers["exact"], rtol=1e-12, atol=0)


def test_general_closures_work_in_every_mode():
    """meta_update with closures of one's own (as label correction writes them): forward mode equals exact."""
    x, y, mx, my = _batches((4,))
    out = {}
    for mode in ("exact", "forward", "head"):
        _, vnet, step = _setup(TinyBN, mode)

        def virtual_loss(forward):
            logits = forward(x)
            ce = F.cross_entropy(logits, y, reduction="none")
            soft = -(F.log_softmax(logits, 1) * F.softmax(logits.detach() * 0.5, 1)).sum(1)
            v = vnet(ce.detach(), y)
            return (v * ce + (1 - v) * soft).mean()

        def meta_loss(forward):
            return F.cross_entropy(forward(mx), my)
        out[mode] = _flat(step.meta_gradient(virtual_loss, meta_loss)[0])
    assert torch.allclose(out["forward"], out["exact"], rtol=1e-9, atol=1e-12)
    assert torch.isfinite(out["head"]).all() and out["head"].abs().max() > 0


class AfterHead(nn.Module):
    """A model that changes the head's output (temperature): the head-only forward would skip it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.body(x)) / 2.0


def test_mode_mistakes_are_one_line_errors():
    model, vnet = TinyBN(), MWNet()
    opt, mopt = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(vnet.parameters())
    with pytest.raises(CmwnetError, match="unknown meta-gradient mode 'fast'"):
        MetaStep(model, opt, vnet, mopt, meta_grad="fast")
    with pytest.raises(CmwnetError, match="virtual_params must be all or head"):
        MetaStep(model, opt, vnet, mopt, meta_grad="head", virtual_params=["body.0.weight"])
    with pytest.raises(CmwnetError, match="virtual_params must be all or tail"):
        MetaStep(model, opt, vnet, mopt, meta_grad="tail", virtual_params="head")
    other = AfterHead()
    step = MetaStep(other, torch.optim.SGD(other.parameters(), lr=0.1), vnet, mopt, meta_grad="head")
    x, y, mx, my = (t.float() if t.is_floating_point() else t for t in _batches((4,)))
    with pytest.raises(CmwnetError, match="output is its head"):
        step.step(x, y, mx, my, iteration=0)


@pytest.mark.parametrize("method", ["mwnet", "cmwnet_sl", "l2rw"])
def test_every_meta_learning_method_trains_with_the_fast_modes(tmp_path, method):
    """method.meta_grad reaches MetaStep in the methods (reweighting, label correction, L2RW): a short
    digits run per mode ends with finite numbers."""
    from cmwnet.config import load_config
    from cmwnet.engine import Trainer
    import json
    import os

    for mode in ("head", "forward", "tail"):
        sets = [f"method.name={method}", f"method.meta_grad={mode}", "optim.epochs=2", "run.progress=false",
                "run.plot=false", f"run.out={tmp_path}", f"name={method}_{mode}", "method.start_epoch=0",
                "method.sl.warmup=0", "run.max_steps=4", "optim.schedule.milestones=[1]"]
        if method == "cmwnet_sl":
            sets += ["ema.decay=0.9"]
        cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "digits_cmwnet.yaml"), sets)
        Trainer(cfg, quiet=True).run()
        run = os.path.join(tmp_path, f"{method}_{mode}")
        assert f"meta_grad: {mode}" in open(os.path.join(run, "config.yaml")).read()
        result = json.load(open(os.path.join(run, "result.json")))
        assert 0.0 <= result["last_top1"] <= 100.0
