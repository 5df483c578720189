"""`python -m cmwnet.tools.bench` runs on the CPU and writes its documented JSON; the authors'-way reference it
compares against computes what MetaStep computes. (Speed figures live in the bench, never here.)"""
import copy
import json
import math

import pytest
import torch

from cmwnet import CMWNet, MetaStep, MWNet
from cmwnet.tools.bench import TABLE1, main, table1_estimate
from cmwnet.data.imbalance import long_tail_counts
from cmwnet.errors import run_cli
from cmwnet.tools.reference import AuthorsWayIteration, per_sample_head_loop
from helpers import TinyBN




def _pair(normalize, weight="cmwnet"):
    """The same model, weight net and optimizers twice (float64): one for MetaStep, one for the reference."""
    torch.manual_seed(0)
    model = TinyBN().double()
    vnet = (CMWNet([0, 1, 2], num_families=3, hidden=5) if weight == "cmwnet" else MWNet(hidden=5)).double()
    out = []
    for _ in range(2):
        m, v = copy.deepcopy(model), copy.deepcopy(vnet)
        opt = torch.optim.SGD(m.parameters(), lr=0.3, momentum=0.9, nesterov=True, weight_decay=5e-4)
        mopt = torch.optim.Adam(v.parameters(), lr=1e-2, amsgrad=True)
        out.append((m, opt, v, mopt))
    (m1, o1, v1, mo1), (m2, o2, v2, mo2) = out
    step = MetaStep(m1, o1, v1, mo1, backend="torch.func", normalize=normalize)
    ref = AuthorsWayIteration(lambda: TinyBN().double(), m2, o2, v2, mo2, normalize=normalize)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g),
             torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g))
            for _ in range(3)]
    return step, ref, data


def test_head_loop_is_the_gathered_cmwnet():
    torch.manual_seed(0)
    vnet = CMWNet([2, 0, 1, 1], num_families=3, hidden=7)
    losses, labels = torch.rand(9) * 3, torch.randint(0, 4, (9,))
    assert torch.allclose(per_sample_head_loop(vnet, losses, labels), vnet(losses, labels), atol=1e-7, rtol=0)


@pytest.mark.parametrize("normalize", ["sum", "sum_detached", "mean"])
def test_reference_meta_gradient_equals_metastep_float64(normalize):
    step, ref, data = _pair(normalize)
    x, y, mx, my = data[0]
    g1, o1 = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    g2, o2 = ref.meta_gradient(x, y, mx, my)
    flat1, flat2 = torch.cat([g.reshape(-1) for g in g1]), torch.cat([g.reshape(-1) for g in g2])
    assert flat1.abs().max() > 1e-4, "degenerate case"
    assert torch.allclose(flat1, flat2, rtol=1e-10, atol=1e-13)
    assert torch.allclose(o1, o2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("weight", ["cmwnet", "mwnet"])
def test_reference_iterations_equal_metastep_iterations(weight):
    step, ref, data = _pair("sum_detached", weight)
    models = (step.model, ref.model)
    buffers_before = {k: v.clone() for k, v in models[1].state_dict().items()}
    for it, (x, y, mx, my) in enumerate(data):
        a = step.step(x, y, mx, my, it)
        b = ref.step(x, y, mx, my)
        assert torch.allclose(a["weights"], b["weights"], rtol=1e-10, atol=1e-13)
        assert torch.allclose(a["meta_loss"], b["meta_loss"], rtol=1e-10, atol=0)
    s1, s2 = models[0].state_dict(), models[1].state_dict()
    for k in s1:
        assert torch.allclose(s1[k].double(), s2[k].double(), rtol=1e-9, atol=1e-12), k
    assert not torch.equal(s2["body.0.weight"], buffers_before["body.0.weight"]), "the model moved"
    for p, q in zip(step.weight_net.parameters(), ref.weight_net.parameters()):
        assert torch.allclose(p, q, rtol=1e-9, atol=1e-12)


def test_table1_estimate_by_hand():
    steps = []
    for n_max, c in TABLE1["datasets"].values():
        for imb in TABLE1["imbalance"]:
            steps += [math.ceil(sum(long_tail_counts(n_max, c, imb)) / 100)] * 2
    assert len(steps) == 24 and steps[:2] == [500, 500] and 125 in steps  # C-10 IF1: 50000, IF100: 12406 images
    rows = [{"model": "m", "name": "ERM step (eager)", "kind": "erm", "impl": "eager", "ms": 1.0},
            {"model": "m", "name": "CMW-Net, authors' way", "kind": "meta", "impl": "reference", "ms": 10.0},
            {"model": "m", "name": "MetaStep torch.func (eager)", "kind": "meta", "impl": "eager", "ms": 4.0},
            {"model": "m", "name": "MetaStep higher (eager)", "kind": "meta", "impl": "eager", "ms": 5.0}]
    t = table1_estimate(rows, "m", overhead_ms=0.5, eval_s=2.0, packing=2.0)
    by = {v["name"]: v for v in t["variants"]}
    assert set(by) == {"authors' way (eager ERM + reference meta)", "ours, eager"}
    # per cell: steps * (160 * (1 + 0.5) + 40 * (4 + 0.5)) ms + 200 epochs * 2 s of evaluation
    expected = sum(s * (160 * 1.5 + 40 * 4.5) / 1e3 + 400.0 for s in steps) / 3600
    assert by["ours, eager"]["gpu_hours"] == pytest.approx(expected, rel=1e-12)
    assert by["ours, eager"]["packed_gpu_hours"] == pytest.approx(expected / 2)
    assert by["ours, eager"]["meta_ms"] == 4.0, "the faster eager backend"


def test_quick_bench_on_the_cpu_writes_the_documented_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["--quick", "--device", "cpu", "--iters", "2", "--warmup", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "x ref" in out and "Table 1" in out and "CMW-Net-SL epoch" in out
    r = json.loads(path.read_text())
    assert r["version"] == 1 and r["mode"] == "quick" and r["device"]["type"] == "cpu"
    assert r["settings"]["iters"] == 2 and r["targets"] == {}
    names = [row["name"] for row in r["rows"]]
    assert names == ["ERM step (eager)", "CMW-Net, authors' way", "MetaStep higher (eager)",
                     "MetaStep torch.func (eager)", "MetaStep meta_grad=head (eager)",
                     "MetaStep meta_grad=forward (eager)", "MetaStep meta_grad=tail (eager)",
                     "ERM step fast fp32", "MetaStep torch.func fast fp32"]
    fields = {"model", "batch", "meta_batch", "name", "kind", "impl", "backend", "amp", "channels_last", "conv_tf32",
              "graphed", "ms", "ms_p10", "ms_p90", "iters", "peak_mib", "x_ref", "x_erm", "note", "meta_grad"}
    for row in r["rows"]:
        assert set(row) == fields
        assert row["ms"] > 0 and row["ms_p10"] <= row["ms"] <= row["ms_p90"] and row["peak_mib"] is None
        assert row["x_ref"] > 0 and row["x_erm"] > 0
    ref = next(row for row in r["rows"] if row["impl"] == "reference")
    erm = r["rows"][0]
    assert ref["x_ref"] == 1.0 and erm["x_erm"] == 1.0 and ref["x_erm"] == pytest.approx(ref["ms"] / erm["ms"])
    assert all(not row["graphed"] and "no CUDA" in row["note"] for row in r["rows"] if row["impl"] == "fast")
    sl = r["sl_epoch"]
    assert [x["name"] for x in sl["rows"]] == ["eager (fast=off)", "fast fp32"]
    assert all(x["epoch_s"] > 0 and x["train_s"] > 0 for x in sl["rows"])
    t1 = r["table1"]
    assert t1["cells"] == 24 and t1["epochs"] == 200 and "note" in t1 and len(t1["steps_per_epoch"]) == 24
    assert {v["name"] for v in t1["variants"]} >= {"authors' way (eager ERM + reference meta)", "ours, eager"}
    assert all(v["gpu_hours"] > 0 and v["packed_gpu_hours"] is None for v in t1["variants"])
    assert r["packing"] is None
    # every meta-gradient mode beside ERM, time and peak memory as ratios (CPU: a fresh process's peak RSS)
    (race,) = r["meta_grad_modes"]
    assert [x["mode"] for x in race["rows"]] == ["erm", "exact", "head", "forward", "tail"]
    assert race["rows"][0]["x_erm"] == 1.0 and all(x["x_erm"] > 0 for x in race["rows"])
    assert all(x["peak_mib"] is not None and x["peak_mib"] > 0 for x in race["rows"])
    assert "meta-gradient modes" in out
    # the transferred (frozen) weighting against ERM, timed alternately
    (frozen,) = r["frozen_weighting"]
    assert frozen["x_erm"] == pytest.approx(frozen["frozen_ms"] / frozen["erm_ms"]) and frozen["target"] == 1.1
    assert frozen["reached"] == (frozen["x_erm"] <= 1.1) and "frozen weighting vs ERM" in out


def test_bench_refuses_a_missing_gpu_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_cli(main, ["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--device cpu" in err


@pytest.mark.slow
def test_packing_runs_processes(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["--quick", "--device", "cpu", "--iters", "2", "--warmup", "1", "--sl", "off", "--pack", "2",
                 "--json", str(path)]) == 0
    pack = json.loads(path.read_text())["packing"]
    assert [r["processes"] for r in pack["rows"]] == [1, 2] and pack["rows"][0]["x_single"] == 1.0


def test_backends_only_race_writes_both_backends(tmp_path):
    import json

    from cmwnet.tools import bench

    out = tmp_path / "b.json"
    assert bench.main(["--quick", "--backends-only", "--iters", "1", "--warmup", "1", "--json", str(out)]) == 0
    race = json.loads(out.read_text())["backends"][0]
    assert race["model"] == "tiny_cnn" and race["higher_ms"] > 0 and race["torch_func_ms"] > 0
    assert race["higher_over_torch_func"] == race["higher_ms"] / race["torch_func_ms"]
