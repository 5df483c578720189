"""Property test of the Python API's rule (issue 17), the sibling of test_config_fuzz.py: whatever batch
shapes, dtypes, devices, NaN/Inf values, labels and class counts a user hands `CMWNet.from_counts`,
`MWNet`/`MCWNet` and `MetaStep.step`, the result is a step with finite parameters or one clear error (a
`CmwnetError` that is a ValueError or TypeError, one line) that left the model and weight net as they
were; never an exception from inside torch, never NaN parameters."""
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cmwnet
from cmwnet.errors import CmwnetError

pytestmark = pytest.mark.usefixtures("one_thread")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool]
LABEL_DTYPES = [torch.int64, torch.int32, torch.float32, torch.uint8]
SPECIAL = [None, float("nan"), float("inf"), float("-inf")]


def one_clear_error(e: BaseException) -> None:
    assert isinstance(e, CmwnetError) and isinstance(e, (ValueError, TypeError)), repr(e)
    assert "\n" not in str(e) and len(str(e)) < 600, str(e)


def snapshot(*modules):
    """Copies of every tensor (a weight net on the meta device, which holds no values, is skipped)."""
    return [t.detach().clone() for m in modules for t in m.state_dict().values() if t.device.type != "meta"]


def unchanged(before, *modules):
    after = snapshot(*modules)
    return len(before) == len(after) and all(torch.equal(a, b) for a, b in zip(before, after))


@st.composite
def batches(draw, name):
    n = draw(st.integers(0, 6))
    features = draw(st.sampled_from([4, 4, 4, 5]))
    shape = draw(st.sampled_from([(n, features), (n, features), (n,), (n, 2, 2)]))
    dtype = draw(st.sampled_from(DTYPES))
    x = torch.randn(shape).to(dtype) if dtype != torch.bool else torch.zeros(shape, dtype=torch.bool)
    special = draw(st.sampled_from(SPECIAL))
    if special is not None and x.is_floating_point() and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = special
    n_labels = draw(st.sampled_from([n, n, n, max(0, n - 1), n + 1]))
    labels = torch.tensor(draw(st.lists(st.integers(-1, 4), min_size=n_labels, max_size=n_labels)), dtype=torch.long)
    return x, labels.to(draw(st.sampled_from(LABEL_DTYPES)))


COUNTS = st.lists(st.one_of(st.integers(-2, 60), st.sampled_from([2.5, float("nan")])), min_size=0, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["cmwnet", "mwnet", "mcwnet"]), counts=COUNTS, k=st.integers(0, 4),
       train=st.lists(batches("x"), min_size=1, max_size=3), meta=st.lists(batches("meta_x"), min_size=1, max_size=3),
       use_meta=st.booleans(), wn_device=st.sampled_from(["cpu", "cpu", "cpu", "meta"]),
       interval=st.integers(1, 2))
def test_metastep_gives_a_step_or_one_clear_error(kind, counts, k, train, meta, use_meta, wn_device, interval):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    try:
        if kind == "cmwnet":
            vnet = cmwnet.CMWNet.from_counts(counts, k=k)
        elif kind == "mwnet":
            vnet = cmwnet.MWNet()
        else:
            vnet = cmwnet.MCWNet(3)
    except Exception as e:  # noqa: BLE001 - the rule is about what is raised
        one_clear_error(e)
        return
    vnet.to(wn_device)
    step = cmwnet.MetaStep(model, torch.optim.SGD(model.parameters(), lr=0.1), vnet, cmwnet.weight_net_optimizer(vnet),
                           interval=interval)
    for it, ((x, y), (mx, my)) in enumerate(zip(train, meta)):
        before = snapshot(model, vnet)
        try:
            out = step.step(x, y, mx if use_meta else None, my if use_meta else None, iteration=it)
        except Exception as e:  # noqa: BLE001
            one_clear_error(e)
            assert unchanged(before, model, vnet)
            continue
        assert torch.isfinite(out["loss"]) and bool(torch.isfinite(out["weights"]).all())
        for p in list(model.parameters()) + list(vnet.parameters()):
            assert p.device.type == "meta" or bool(torch.isfinite(p).all())


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["cmwnet", "mwnet", "mcwnet"]), n=st.integers(0, 5), m=st.integers(0, 6),
       loss_dtype=st.sampled_from(DTYPES), label_dtype=st.sampled_from(LABEL_DTYPES),
       special=st.sampled_from(SPECIAL), low=st.integers(-2, 3))
def test_weight_nets_give_weights_or_one_clear_error(kind, n, m, loss_dtype, label_dtype, special, low):
    net = {"cmwnet": lambda: cmwnet.CMWNet.from_counts([40, 20, 5]), "mwnet": cmwnet.MWNet,
           "mcwnet": lambda: cmwnet.MCWNet(3)}[kind]()
    losses = (torch.rand(n) * 5).to(loss_dtype) if loss_dtype != torch.bool else torch.zeros(n, dtype=torch.bool)
    if special is not None and losses.is_floating_point() and n:
        losses[0] = special
    labels = torch.arange(low, low + m).clamp_max(5).to(label_dtype)
    try:
        w = net(losses, labels)
    except Exception as e:  # noqa: BLE001
        one_clear_error(e)
        return
    assert w.shape == (n,) and bool(torch.isfinite(w).all()) and bool(((w >= 0) & (w <= 1)).all())
