"""The fast path never changes what a step computes: on the CPU (no CUDA graphs) it runs the same code,
bit for bit, and its graph bookkeeping (static buffers, capture keys, fallback) is right.

CUDA graph capture itself needs a GPU; here `SimGraph` stands in for it: "capture" keeps static input
buffers and the flags, "replay" copies the new inputs into those buffers and runs the step on them,
so the methods' graph-routing code (static inputs, Python flags, counters kept outside) is exercised.
"""
import copy

import pytest
import torch
import torch.nn as nn

from cmwnet import CMWNet, MetaStep
from cmwnet.config import config_from_dict, load_config
from cmwnet.errors import CmwnetError
from cmwnet.fast import (FastPath, StepGraph, _Captured, make_capturable, module_signature, optimizer_signature, parse_amp,
                         parse_fast, release_capturable)
from helpers import TinyBN


class _Handle:
    """What SimGraph keeps instead of a CUDA graph: the flags of the capture, and whether it was reset."""

    def __init__(self, flags):
        self.flags, self.alive = dict(flags), True

    def reset(self):
        self.alive = False


class SimGraph(StepGraph):
    """A StepGraph whose capture/replay run on the CPU (see the module docstring)."""

    def __init__(self, *args, fail: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.enabled, self.fail = True, fail

    def _eager(self, inputs, flags):
        return self.fn(*inputs, **flags)

    def _capture(self, inputs, flags):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nsecond line")
        while len(self._graphs) >= self.max_graphs:
            self._drop(next(iter(self._graphs)))
        return _Captured(_Handle(flags), [None if t is None else t.detach().clone() for t in inputs], {})

    def _replay(self, captured, inputs):
        assert captured.graph.alive
        for buf, t in zip(captured.static_in, inputs):
            if buf is not None:
                buf.copy_(t)
        self.replays += 1
        out = self.fn(*captured.static_in, **captured.graph.flags)
        return {k: (v.clone() if v is not None else None) for k, v in out.items()}


@pytest.fixture
def simulated_graphs(monkeypatch):
    """As if a GPU were there: `run.fast=on` turns graphs on, and a FastPath with graphs on makes
    SimGraphs. Returns the list of SimGraphs made."""
    made = []
    original_graph, original_from_run = FastPath.graph, FastPath.from_run.__func__

    def graph(self, fn, name, signature=None, prepare=None, state=None):
        if not self.graphs:
            return original_graph(self, fn, name, signature=signature, prepare=prepare, state=state)
        g = SimGraph(fn, name, self, signature=signature, prepare=prepare, state=state)
        made.append(g)
        return g

    def from_run(cls, run, device, notify=FastPath.__dataclass_fields__["notify"].default):
        fp = original_from_run(cls, run, device, notify)
        fp.graphs = parse_fast(run.fast) == "on"
        fp.warmup = 1  # capture at the second call, so short runs replay every kind of step
        return fp
    monkeypatch.setattr(FastPath, "graph", graph)
    monkeypatch.setattr(FastPath, "from_run", classmethod(from_run))
    return made


# -- options -------------------------------------------------------------------------------------------
def test_mode_parsing_accepts_yaml_booleans_and_rejects_typos():
    assert parse_fast(True) == "on" and parse_fast(False) == "off" and parse_fast("Auto") == "auto"
    assert parse_amp(False) == "off" and parse_amp("bf16") == "bf16"
    with pytest.raises(CmwnetError, match="run.fast"):
        parse_fast("fastest")
    with pytest.raises(CmwnetError, match="bf16"):
        parse_amp(True)
    cfg = load_config(None, ["run.fast=on", "run.amp=off"])  # YAML turns these into True / False
    notes = []
    fp = FastPath.from_run(cfg.run, torch.device("cpu"), notify=notes.append)
    assert not fp.graphs and fp.amp is None
    assert len(notes) == 1 and "CUDA" in notes[0] and "\n" not in notes[0]
    assert not FastPath.from_run(load_config(None, []).run, torch.device("cpu"), notify=notes.append).graphs
    assert len(notes) == 1, "fast=auto on the CPU is silent"


def test_signatures_follow_what_a_graph_bakes_in():
    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 1.0
            self.weight = torch.ones(3)
    loss = Loss()
    s0 = module_signature(loss)
    loss.scale = 2.0
    s1 = module_signature(loss)
    loss.weight = torch.ones(3)  # a new tensor (e.g. set_epoch of a deferred re-weighting)
    s2 = module_signature(loss)
    loss.weight.mul_(2)  # in place: the graph sees the new values, no new capture needed
    assert len({s0, s1, s2}) == 3 and module_signature(loss) == s2
    p = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    o0 = optimizer_signature(opt)
    opt.param_groups[0]["lr"] = 0.01
    o1 = optimizer_signature(opt)
    p.grad = torch.ones(2)
    opt.step()
    o2 = optimizer_signature(opt)
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # new state tensors
    assert len({o0, o1, o2, optimizer_signature(opt)}) == 4


def test_make_capturable_and_back_on_the_cpu():
    p = nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()
    make_capturable(opt)
    assert opt.param_groups[0]["capturable"] is False, "CPU optimizers cannot capture: left alone"
    opt.param_groups[0]["capturable"] = True  # as a GPU run's checkpoint would say
    release_capturable(opt)
    assert opt.param_groups[0]["capturable"] is False
    opt.step()  # a CPU Adam still steps
    sgd = torch.optim.SGD([p], lr=0.1)
    make_capturable(sgd)  # SGD has no such option: nothing to do
    assert "capturable" not in sgd.param_groups[0]


# -- StepGraph bookkeeping ------------------------------------------------------------------------------
def _counting_step():
    calls = []

    def fn(x, scale=None, *, flag):
        calls.append(flag)
        out = x * 2 if scale is None else x * scale
        return {"y": out + (1 if flag else 0)}
    return fn, calls


def test_disabled_graph_is_a_plain_call():
    fn, calls = _counting_step()
    g = FastPath.plain("cpu").graph(fn, "step")
    assert not g.enabled
    assert torch.equal(g(torch.ones(2), flag=True)["y"], torch.full((2,), 3.0))
    assert calls == [True] and g.captures == 0


def test_capture_after_warmup_replay_and_recapture_on_new_keys():
    fn, calls = _counting_step()
    lr = {"v": 0.1}
    fast = FastPath(torch.device("cpu"), graphs=True, warmup=3)
    g = SimGraph(fn, "step", fast, signature=lambda: lr["v"])
    x = torch.arange(3.0)
    for i in range(3):
        assert torch.equal(g(x + i, flag=False)["y"], (x + i) * 2)
    assert g.captures == 0
    out = g(x + 10, flag=False)  # 4th call with this key: captured, then replayed
    assert g.captures == 1 and g.replays == 1 and torch.equal(out["y"], (x + 10) * 2)
    out["y"].add_(100)  # outputs are fresh tensors: changing one leaves the next replay alone
    assert torch.equal(g(x, flag=False)["y"], x * 2) and g.replays == 2
    # a shape seen now and then (a short last batch) warms up in between and gets its own graph
    short = torch.ones(5)
    for _ in range(3):
        assert torch.equal(g(short, flag=False)["y"], torch.full((5,), 2.0))
        assert torch.equal(g(x, flag=False)["y"], x * 2)
    assert g.captures == 1 and g.replays == 5
    g(short, flag=False)
    assert g.captures == 2 and g.replays == 6 and len(g._graphs) == 2
    g(x, flag=False)
    assert g.replays == 7
    # a new baked-in scalar (lr) is a new key: warm-up, then a capture that drops the least recently used
    oldest = g._graphs[next(iter(g._graphs))].graph
    lr["v"] = 0.01
    for _ in range(4):
        assert torch.equal(g(x, flag=False)["y"], x * 2)
    assert g.captures == 3 and len(g._graphs) == 2 and not oldest.alive
    # flags, and tensor arguments that are None, are part of the key too
    for _ in range(4):
        assert torch.equal(g(x, torch.tensor(3.0), flag=True)["y"], x * 3 + 1)
    assert g.captures == 4 and g.replays == 9
    g.release()
    assert not g.captured


def test_failed_capture_falls_back_with_a_one_line_notice():
    fn, calls = _counting_step()
    notes = []
    fast = FastPath(torch.device("cpu"), graphs=True, warmup=1, notify=notes.append)
    g = SimGraph(fn, "meta iteration", fast, fail=True)
    x = torch.arange(3.0)
    results = [g(x, flag=False)["y"] for _ in range(4)]
    assert all(torch.equal(r, x * 2) for r in results)
    assert not g.enabled and g.captures == 0 and len(calls) == 4
    assert len(notes) == 1 and "\n" not in notes[0] and "meta iteration runs eagerly" in notes[0]
    assert "RuntimeError: operation not permitted" in notes[0]


# -- MetaStep through (simulated) graphs ------------------------------------------------------------------


def _meta_setup(fast, backend="torch.func", interval=1):
    torch.manual_seed(0)
    model = TinyBN()
    vnet = CMWNet([0, 1, 2], num_families=3, hidden=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mopt = torch.optim.Adam(vnet.parameters(), lr=1e-2, amsgrad=True)
    return model, vnet, MetaStep(model, opt, vnet, mopt, backend=backend, interval=interval, fast=fast)


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_metastep_through_graphs_is_bit_identical(backend, simulated_graphs):
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g),
                torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(9)]
    plain = _meta_setup(None, backend, interval=2)
    graphed = _meta_setup(FastPath(torch.device("cpu"), graphs=True, warmup=2), backend, interval=2)
    for it, (x, y, mx, my) in enumerate(batches):
        a = plain[2].step(x, y, mx, my, it)
        b = graphed[2].step(x, y, mx, my, it)
        for k in a:
            assert torch.equal(a[k], b[k]) or (k == "meta_loss" and a[k].isnan() and b[k].isnan()), k
    for (m1, v1, s1), (m2, v2, s2) in [(plain, graphed)]:
        for p, q in zip(list(m1.state_dict().values()) + list(v1.parameters()),
                        list(m2.state_dict().values()) + list(v2.parameters())):
            assert torch.equal(p, q)
        assert s1.meta_updates == s2.meta_updates == 5
    runners = {r.name: r for r in simulated_graphs}
    assert runners["meta iteration"].replays > 0 and runners["reweighted step"].replays > 0


def test_bf16_autocast_keeps_losses_and_weights_fp32():
    fast = FastPath(torch.device("cpu"), amp=torch.bfloat16)
    model, vnet, step = _meta_setup(fast)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    out = step.step(x, y, torch.randn(6, 4), torch.randint(0, 3, (6,)), 0)
    assert out["logits"].dtype == out["weights"].dtype == out["loss"].dtype == torch.float32
    assert torch.isfinite(out["meta_loss"]) and all(p.dtype == torch.float32 for p in model.parameters())


# -- whole runs: fast=on on the CPU changes nothing ----------------------------------------------------------
BASE = {"name": "fast", "seed": 0,
        "data": {"name": "digits", "imbalance": 5, "noise": {"kind": "sym", "rate": 0.3},
                 "meta": {"kind": "clean", "per_class": 3, "batch_size": 15},
                 "augment": {"normalize": "half", "flip": False, "crop_pad": 1}, "batch_size": 32},
        "model": {"name": "digits_cnn"}, "optim": {"epochs": 2, "lr": 0.05},
        "run": {"progress": False, "plot": False, "device": "cpu", "max_steps": 6}}
METHODS = {
    "erm": {"name": "erm"},
    "cmwnet": {"name": "cmwnet", "start_epoch": 1, "interval": 2, "weight_net": {"lr": 1e-2}},
    "cmwnet_sl": {"name": "cmwnet_sl", "interval": 2,
                  "sl": {"warmup": 1, "meta_mixup_alpha": 1.0, "pseudo_momentum": 0.5}},
}


def _run(tmp_path, method, fast, name, **run):
    from cmwnet.engine import Trainer

    d = copy.deepcopy(BASE)
    d["method"] = METHODS[method]
    d["run"].update({"out": str(tmp_path), "name": name, "fast": fast, **run})
    if method == "cmwnet_sl":
        d["ema"] = {"decay": 0.9}
        d["data"]["meta"] = {"kind": "lowest_loss", "per_class": 3, "batch_size": 15}
    t = Trainer(config_from_dict(d), quiet=True)
    t.run()
    state = dict(t.model.state_dict())
    if t.method.weight_net is not None:
        state.update({"vnet." + k: v for k, v in t.method.weight_net.state_dict().items()})
    if hasattr(t.method, "meta_step"):
        state["meta_updates"] = torch.tensor(t.method.meta_step.meta_updates)
    if method == "cmwnet_sl":
        state["pseudo"] = t.method.pseudo
        state.update({"ema." + k: v for k, v in t.ema.model.state_dict().items()})
    return state, t.state.history


REPLAYED = {"erm": {"ERM step"}, "cmwnet": {"ERM step", "meta iteration", "reweighted step"},
            "cmwnet_sl": {"ERM step", "CMW-Net-SL meta iteration", "CMW-Net-SL step"}}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fast_on_runs_bit_identical_to_fast_off(tmp_path, method, simulated_graphs, capsys):
    off, hist_off = _run(tmp_path, method, "off", "off")
    assert not simulated_graphs, "fast=off builds no graphs"
    on, hist_on = _run(tmp_path, method, "on", "on")
    assert "CUDA graphs need a CUDA device" in capsys.readouterr().err
    # on the CPU fast=on is the eager step; with the simulated graphs, the graph-routing code runs too
    assert {g.name for g in simulated_graphs if g.replays > 0} == REPLAYED[method]
    assert off.keys() == on.keys()
    if "meta_updates" in off:
        assert int(off["meta_updates"]) == 3, "meta updates counted once per call, graphed or not"
    for k in off:
        assert torch.equal(off[k], on[k]), k
    for a, b in zip(hist_off, hist_on):
        for key in ("train_loss", "train_acc", "test_top1", "meta_loss", "mean_weight"):
            assert a.get(key) == b.get(key), key
    # every replayed step was checked against its eager twin once, and result.json says so
    import json

    checks = json.loads((tmp_path / "on" / "result.json").read_text())["environment"]["fast_path_checks"]
    assert set(checks) == REPLAYED[method] and all(v.startswith("replay = eager step") for v in checks.values())


def test_channels_last_runs_and_stays_close(tmp_path):
    off, _ = _run(tmp_path, "cmwnet", "off", "nchw")
    cl, _ = _run(tmp_path, "cmwnet", "off", "cl", channels_last=True)
    for k in off:
        assert torch.allclose(off[k].float(), cl[k].float(), rtol=1e-3, atol=1e-4), k


# -- on a GPU (skipped here): real capture, no host syncs, same numbers as eager ------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("backend", ["torch.func", "higher"])
def test_gpu_graphs_capture_without_syncs_and_match_eager(backend):
    from cmwnet.models import create_model

    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    data = [tuple(t.to(dev) for t in (torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g),
                                      torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)))
            for _ in range(3)]

    def setup(fast):
        torch.manual_seed(0)
        model = create_model("resnet8", 10).to(dev)
        vnet = CMWNet.from_counts([50, 40, 30, 20, 10, 9, 8, 7, 6, 5]).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        mopt = torch.optim.Adam(vnet.parameters(), lr=1e-3, amsgrad=True)
        return model, vnet, MetaStep(model, opt, vnet, mopt, backend=backend, interval=2, fast=fast)

    notes = []
    fast = FastPath(dev, graphs=True, warmup=2, notify=notes.append)
    runs = {"eager": setup(None), "graphs": setup(fast)}
    old_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the graphs capture with TF32 off: compare like with like
    try:
        for it in range(12):
            x, y, mx, my = data[it % 3]
            torch.cuda.set_sync_debug_mode("error")  # any host sync inside a step raises
            try:
                runs["eager"][2].step(x, y, mx, my, it)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            runs["graphs"][2].step(x, y, mx, my, it)
    finally:
        torch.backends.cudnn.allow_tf32 = old_tf32
    step = runs["graphs"][2]
    assert not notes, notes
    for meta in (True, False):
        r = step.runner(meta)
        assert r.fallback_reason is None and r.captures == 1 and r.replays >= 2, (meta, r.fallback_reason)
    assert step.meta_updates == runs["eager"][2].meta_updates == 6
    (m1, v1, _), (m2, v2, _) = runs["eager"], runs["graphs"]
    for (name, a), b in zip(list(m1.state_dict().items()) + list(v1.state_dict().items()),
                            list(m2.state_dict().values()) + list(v2.state_dict().values())):
        assert torch.allclose(a.float(), b.float(), rtol=1e-2, atol=1e-3), name  # kernel choice only
