"""Multi-process training (torchrun, gloo, CPU) computes what one process computes on the whole batch.

The test launches `torchrun --nproc_per_node 2` on this file (its `__main__` part is the worker), and two
torchrun launchers with `--nnodes 2` (one process each, as two machines meeting over TCP on 127.0.0.1), and
compares, on a model without BatchNorm, the final parameters and metrics with a one-process run of the
same config and global batch: ERM, CMW-Net (meta step: global virtual step, averaged weight-net
gradients, meta set chosen from losses split across ranks) and PRODEN + CMW-Net (per-sample
confidences, sum-normalised weights). For CMW-Net-SL (mixup partners are drawn per rank, so it is not
the one-process run) it checks that the per-sample pseudo labels stay identical on both ranks.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from cmwnet import distributed
from cmwnet.errors import CmwnetError

BASE = {
    "data": {"name": "digits", "train_subset": 240, "test_subset": 200, "batch_size": 40, "test_batch_size": 64,
             "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
    "model": {"name": "tiny_mlp", "args": {"image_size": 8}},   # no BatchNorm
    "optim": {"lr": 0.1, "epochs": 2},
    "run": {"device": "cpu", "progress": False, "plot": False},
}
JOBS = {
    "erm": {"method": {"name": "erm"}},
    "cmwnet": {"data": {"meta": {"kind": "lowest_loss", "model": "model", "per_class": 4, "batch_size": 24}},
               "method": {"name": "cmwnet", "interval": 2, "normalize": "sum", "weight_net": {"lr": 1e-2}}},
    "proden_cmwnet": {"data": {"partial": {"kind": "binomial", "rate": 0.3},
                               "meta": {"per_class": 4, "batch_size": 24, "augment": False}},
                      "method": {"name": "proden_cmwnet", "start_epoch": 1, "interval": 2,
                                 "normalize": "sum_detached", "weight_net": {"lr": 1e-2}}},
    "cmwnet_sl": {"data": {"noise": {"kind": "sym", "rate": 0.3},
                           "meta": {"kind": "lowest_loss", "per_class": 4, "batch_size": 24}},
                  "ema": {"decay": 0.9},
                  "method": {"name": "cmwnet_sl", "sl": {"warmup": 1, "pseudo_momentum": 0.5}}},
}
PER_SAMPLE = ("confidence", "pseudo")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_jobs(out: str, names) -> None:
    """Train each job under `out` and save its final state as `<job>.rank<r>.pt` (used by both sides)."""
    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer

    rank = distributed.init("cpu").rank
    for name in names:
        cfg = config_from_dict(_merge(BASE, _merge(JOBS[name], {"name": name, "run": {"out": out}})))
        t = Trainer(cfg, quiet=True)
        t.run()
        state = {"params": {k: v.clone() for k, v in t.model.state_dict().items()},
                 "history": t.state.history,
                 "per_sample": {k: getattr(t.method, k) for k in PER_SAMPLE if getattr(t.method, k, None) is not None}}
        if t.method.weight_net is not None:
            state["weight_net"] = {k: v.clone() for k, v in t.method.weight_net.state_dict().items()}
        torch.save(state, os.path.join(out, f"{name}.rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), __file__, str(root / "two"), *JOBS]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    torch.set_num_threads(1)
    run_jobs(str(root / "one"), [j for j in JOBS if j != "cmwnet_sl"])   # meanwhile, the one-process runs
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    load = lambda side, job, r=0: torch.load(root / side / f"{job}.rank{r}.pt", weights_only=False)  # noqa: E731
    return root, load


@pytest.fixture(scope="module")
def two_nodes(runs):
    """The same jobs on two "nodes": two torchrun launchers (--nnodes 2, one process each, node ranks 0 and 1)
    meeting over TCP on 127.0.0.1, as on two machines; compared with the one-process runs of `runs`."""
    root, load = runs
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", port,
                               __file__, str(root / "nodes"), "erm", "cmwnet"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for node in (0, 1)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    return root, load


@pytest.mark.parametrize("job", ["erm", "cmwnet"])
def test_two_nodes_equal_one_process(two_nodes, job):
    root, load = two_nodes
    one, n0, n1 = load("one", job), load("nodes", job, 0), load("nodes", job, 1)
    assert _close(one["params"], n0["params"]) and _close(n0["params"], n1["params"], atol=0)
    if "weight_net" in one:
        assert _close(one["weight_net"], n0["weight_net"]) and _close(n0["weight_net"], n1["weight_net"], atol=0)
    for h1, h2 in zip(one["history"], n0["history"], strict=True):
        assert h2["test_top1"] == pytest.approx(h1["test_top1"], abs=1e-4)
    r = json.loads((root / "nodes" / job / "result.json").read_text())   # written by global rank 0 (node 0)
    assert r["last_top1"] == pytest.approx(one["history"][-1]["test_top1"], abs=1e-4)


def _close(a, b, atol=1e-5):
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


@pytest.mark.parametrize("job", ["erm", "cmwnet", "proden_cmwnet"])
def test_two_ranks_equal_one_process(runs, job):
    root, load = runs
    one, r0, r1 = load("one", job), load("two", job, 0), load("two", job, 1)
    assert _close(one["params"], r0["params"]) and _close(r0["params"], r1["params"], atol=0)
    if "weight_net" in one:   # the meta step: averaged meta-gradients of the global virtual step
        assert _close(one["weight_net"], r0["weight_net"]) and _close(r0["weight_net"], r1["weight_net"], atol=0)
    for name, table in one["per_sample"].items():
        assert torch.allclose(table.float(), r0["per_sample"][name].float(), atol=1e-5)
        assert torch.equal(r0["per_sample"][name], r1["per_sample"][name])
    for h1, h2 in zip(one["history"], r0["history"], strict=True):
        for key in ("train_loss", "train_acc", "test_top1", "test_top5", "meta_loss", "mean_weight"):
            if key in h1:
                assert h2[key] == pytest.approx(h1[key], abs=1e-4), (key, h1["epoch"])
    # rank 0 alone wrote the run folder, with the one-process result
    r = json.loads((root / "two" / job / "result.json").read_text())
    assert r["last_top1"] == pytest.approx(one["history"][-1]["test_top1"], abs=1e-4)


def test_per_sample_state_identical_across_ranks(runs):
    root, load = runs
    r0, r1 = load("two", "cmwnet_sl", 0), load("two", "cmwnet_sl", 1)
    p0, p1 = r0["per_sample"]["pseudo"], r1["per_sample"]["pseudo"]
    assert torch.equal(p0, p1)
    # every row was refreshed (not only the rank's own slices): none is the one-hot initial value
    assert (p0.max(1).values < 1.0).all()
    assert _close(r0["params"], r1["params"], atol=0) and _close(r0["weight_net"], r1["weight_net"], atol=0)
    assert r0["history"][-1]["test_top1"] == r1["history"][-1]["test_top1"]


def test_shard_cuts_the_global_batch_into_contiguous_slices():
    pos = torch.arange(10, 17)
    x, y = pos.float()[:, None], pos * 2
    parts = [distributed.Distributed(rank=r, world_size=3).shard(x, y, pos) for r in range(3)]
    assert [p[2].tolist() for p in parts] == [[10, 11, 12], [13, 14], [15, 16]]
    assert all(torch.equal(p[1], p[2] * 2) for p in parts)
    d = distributed.Distributed(rank=1, world_size=3)
    d.shard(x, y, pos)
    assert d.share == pytest.approx(2 / 7) and [c.tolist() for c in d.chunks][1] == [13, 14]
    assert list(d.shard_batches(range(8))) == [1, 4, 7]
    one = distributed.Distributed()
    assert one.shard(x, y, pos)[2] is pos and one.meta_grad_hook is None


def test_batch_that_does_not_split_is_a_clear_error(tmp_path):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(CmwnetError, match="multiple of 4"):
        distributed.Distributed(rank=0, world_size=4).attach(opt, batch_size=30, n_train=61, drop_last=False)
    with pytest.raises(CmwnetError, match="last batch"):
        distributed.Distributed(rank=0, world_size=2).attach(opt, batch_size=30, n_train=61, drop_last=False)


if __name__ == "__main__":   # a torchrun worker: python -m torch.distributed.run ... test_ddp.py OUT JOB...
    torch.set_num_threads(1)
    run_jobs(sys.argv[1], sys.argv[2:])
    distributed.shutdown()
