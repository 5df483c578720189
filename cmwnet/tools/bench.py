"""`python -m cmwnet.tools.bench`: speed and memory of a training step, every variant in one process and one run.

    python -m cmwnet.tools.bench                      # GPU: ResNet-32 (batch 100) and PreAct ResNet-18 (batch 128)
    python -m cmwnet.tools.bench --quick              # CI size: a tiny CNN on the CPU, a few iterations (< 30 s)
    python -m cmwnet.tools.bench --models resnet32 --iters 200 --json runs/bench/h100.json --pack 2 4

Rows, per model (same data, fresh model and optimizers per row, medians over `--iters` iterations
after a warm-up, each iteration timed between two device synchronisations):
- `ERM step (eager)`: one plain SGD step (the baseline every ratio "x ERM" divides by);
- `CMW-Net, authors' way`: one CMW-Net iteration (virtual step + meta update + real update) written
  as the authors' code runs it -- a fresh model per meta step, a per-sample Python loop over the
  weight net's heads (`cmwnet.reference`; the baseline of the "x ref" speed-ups);
- `MetaStep <backend> (eager)`: our bi-level step with each backend;
- `... fast ...`: the fast path (`cmwnet.fast`): the whole ERM step / meta iteration as one CUDA graph,
  in fp32 (cuDNN TF32 off, the default; and TF32 on), bf16 autocast, bf16 + channels-last. On a
  machine without CUDA these rows run the same code eagerly (their note says so).
Then, where asked: a CMW-Net-SL epoch (Table 2 setting: PreAct ResNet-18, batch 128, meta step every
10 iterations, EMA, mixup) through the real `Trainer` on synthetic CIFAR-10-sized data, eager vs fast
(`--sl`, default on in the full form); runs packed as K processes on one GPU (`--pack K ...`); and the
GPU-hours a full Table 1 (24 cells x 200 epochs: 160 ERM + 40 meta epochs, CIFAR-10/100-LT sizes
from `long_tail_counts`) takes at the measured speeds.

JSON (`--json`, default runs/bench/bench.json):
  version, created (UTC ISO time), mode ("quick" | "full"), device {type, name, torch, cuda, cudnn},
  settings {iters, warmup, seed},
  rows: [{model, batch, meta_batch, name, kind ("erm" | "meta"), impl ("eager" | "reference" | "fast"),
          backend, amp, channels_last, conv_tf32, graphed (a CUDA graph was replayed), ms (median
          ms/iteration), ms_p10, ms_p90, iters, peak_mib (peak CUDA memory allocated during the row,
          null on the CPU), x_ref (reference ms / ms), x_erm (ms / eager ERM ms), note}],
  sl_epoch: null | {model, batch, train_size, steps, rows: [{name, fast, amp, channels_last, epoch_s
          (whole epoch: meta-set selection, steps, evaluation, checkpoint), train_s (the steps only),
          x_authors (41 s / epoch_s, the authors' script on an H100)}]},
  packing: null | {model, variant, iters, rows: [{processes, it_per_s (all processes together),
          x_single (it_per_s / one process's)}]},
  table1: {cells, epochs, erm_epochs, meta_epochs, batch, overhead_ms (per step outside the step:
          batch gather, augmentation, running sums), eval_s (per epoch), variants: [{name, erm_ms,
          meta_ms, gpu_hours, packed_gpu_hours (null unless measured)}]} or null without ResNet-32 rows
          (the quick form estimates with the tiny model, labelled so),
  targets: {name: {value, target, reached}} (only meaningful on a GPU),
  frozen_weighting: [{model, batch, iters, erm_ms, frozen_ms, x_erm (frozen_ms / erm_ms), target (1.1), reached}]
          (an ERM step against one weighted by a frozen CMW-Net, the transferred weighting of Sec. 6, timed
          alternately),
  backends: [{model, batch, meta_batch, iters, higher_ms, torch_func_ms, higher_over_torch_func, faster}]
          (eager MetaStep iterations of the two backends timed alternately; `--backends-only` runs just this).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..bilevel import MetaStep, per_sample_ce
from ..data.imbalance import long_tail_counts
from ..errors import CmwnetError, run_cli
from ..fast import FastPath, make_capturable
from ..methods.base import erm_iteration
from ..models import create_model
from .reference import AuthorsWayIteration
from ..weighting import CMWNet

AUTHORS_SL_EPOCH_S = 41.0      # the authors' CMW-Net-SL script, CIFAR-10, PreAct ResNet-18, one H100 (issue 4)
TABLE1 = {"cells": 24, "epochs": 200, "erm_epochs": 160, "meta_epochs": 40, "batch": 100,
          "imbalance": (1, 10, 20, 50, 100, 200), "losses": ("ce", "ldam"),
          "datasets": {"cifar10": (5000, 10), "cifar100": (500, 100)}}


@dataclass(frozen=True)
class Case:
    """A model at its paper batch size on CIFAR-shaped data."""
    model: str
    batch: int
    meta_batch: int
    num_classes: int = 10
    channels: int = 3
    size: int = 32
    imbalance: float = 100.0     # class counts for the CMW-Net task families (Table 1: CIFAR-10-LT)

    @property
    def label(self) -> str:
        return f"{self.model} b{self.batch}"

    def counts(self) -> list[int]:
        return long_tail_counts(5000, self.num_classes, self.imbalance)


CASES = {
    "resnet32": Case("resnet32", 100, 100),
    "resnet8": Case("resnet8", 100, 100),
    "preact_resnet18": Case("preact_resnet18", 128, 100, imbalance=1.0),
    "tiny": Case("tiny_cnn", 32, 32, size=16),
}


# -- helpers -------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _data(case: Case, device: torch.device, n: int = 4, seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """A few fixed batches (x, y, meta_x, meta_y) on the device, cycled through by the timed loop."""
    g = torch.Generator().manual_seed(seed)
    shape = (case.channels, case.size, case.size)
    out = []
    for _ in range(n):
        x = torch.randn(case.batch, *shape, generator=g)
        y = torch.randint(0, case.num_classes, (case.batch,), generator=g)
        mx = torch.randn(case.meta_batch, *shape, generator=g)
        my = torch.randint(0, case.num_classes, (case.meta_batch,), generator=g)
        out.append(tuple(t.to(device) for t in (x, y, mx, my)))
    return out


def _classifier(case: Case, device: torch.device, fast: FastPath, seed: int = 0):
    torch.manual_seed(seed)
    model = create_model(case.model, case.num_classes, case.channels).to(device)
    fast.prepare_models(model)
    # Table 1's optimizer (SGD, nesterov, wd 5e-4); the virtual step uses its lr
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return model, opt


def _weight_net(case: Case, device: torch.device):
    vnet = CMWNet.from_counts(case.counts()).to(device)
    mopt = torch.optim.Adam(vnet.parameters(), lr=1e-4, weight_decay=1e-5, amsgrad=True)
    return vnet, mopt


def _time(step: Callable[[int], Any], warmup: int, iters: int, device: torch.device) -> list[float]:
    for i in range(warmup):
        step(i)
    _sync(device)
    times = []
    for i in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        step(warmup + i)
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# -- the rows --------------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    kind: str                  # erm | meta
    impl: str                  # eager | reference | fast
    backend: str | None = None
    amp: str = "off"
    channels_last: bool = False
    conv_tf32: bool = False
    meta_grad: str = "exact"   # MetaStep's meta-gradient mode (cmwnet.meta_grad)


MODE_ROWS = (("exact", "MetaStep higher (eager)"), ("head", "MetaStep meta_grad=head (eager)"),
             ("forward", "MetaStep meta_grad=forward (eager)"), ("tail", "MetaStep meta_grad=tail (eager)"))


def variants(device: torch.device) -> list[Variant]:
    cuda = device.type == "cuda"
    rows = [
        Variant("ERM step (eager)", "erm", "eager"),
        Variant("CMW-Net, authors' way", "meta", "reference"),
        Variant("MetaStep higher (eager)", "meta", "eager", "higher"),
        Variant("MetaStep torch.func (eager)", "meta", "eager", "torch.func"),
        Variant(MODE_ROWS[1][1], "meta", "eager", "higher", meta_grad="head"),
        Variant(MODE_ROWS[2][1], "meta", "eager", "higher", meta_grad="forward"),
        Variant(MODE_ROWS[3][1], "meta", "eager", "higher", meta_grad="tail"),
        Variant("ERM step fast fp32", "erm", "fast"),
        Variant("MetaStep torch.func fast fp32", "meta", "fast", "torch.func"),
    ]
    if cuda:  # precision and layout variants only mean something on a GPU
        rows += [
            Variant("ERM step fast fp32 (TF32 conv)", "erm", "fast", conv_tf32=True),
            Variant("ERM step fast bf16", "erm", "fast", amp="bf16"),
            Variant("ERM step fast bf16+CL", "erm", "fast", amp="bf16", channels_last=True),
            Variant("MetaStep higher fast fp32", "meta", "fast", "higher"),
            Variant("MetaStep meta_grad=head fast fp32", "meta", "fast", "torch.func", meta_grad="head"),
            Variant("MetaStep meta_grad=forward fast fp32", "meta", "fast", "torch.func", meta_grad="forward"),
            Variant("MetaStep meta_grad=tail fast fp32", "meta", "fast", "torch.func", meta_grad="tail"),
            Variant("MetaStep torch.func fast fp32 (TF32 conv)", "meta", "fast", "torch.func", conv_tf32=True),
            Variant("MetaStep torch.func fast bf16", "meta", "fast", "torch.func", amp="bf16"),
            Variant("MetaStep torch.func fast bf16+CL", "meta", "fast", "torch.func", amp="bf16", channels_last=True),
        ]
    return rows


def _fast_for(v: Variant, device: torch.device) -> FastPath:
    if v.impl != "fast":
        return FastPath.plain(device)
    # fallbacks are reported in the row's note (from the StepGraph), not printed mid-table
    return FastPath(device, graphs=True, amp=torch.bfloat16 if v.amp == "bf16" else None,
                    channels_last=v.channels_last, conv_tf32=v.conv_tf32, notify=lambda message: None)


def build_step(case: Case, v: Variant, device: torch.device) -> tuple[Callable[[int], Any], list]:
    """A callable running one iteration of the variant (on batch i of a fixed pool), and the StepGraphs
    it uses (to report whether a graph was replayed)."""
    fast = _fast_for(v, device)
    model, opt = _classifier(case, device, fast)
    batches = _data(case, device)
    graphs: list = []
    if v.kind == "erm":
        fn = lambda x, y: erm_iteration(model, opt, per_sample_ce, fast, x, y)  # noqa: E731
        run = fast.graph(fn, "ERM step", prepare=lambda: make_capturable(opt))
        graphs.append(run)

        def step(i: int) -> Any:
            x, y, _, _ = batches[i % len(batches)]
            return run(fast.input(x), y)
        return step, graphs
    vnet, mopt = _weight_net(case, device)
    if v.kind == "frozen":   # a transferred weighting (Sec. 6): weights from a frozen net, no meta step
        vnet.requires_grad_(False)
        frozen = MetaStep(model, opt, vnet, None, backend=v.backend or "higher", normalize="sum", fast=fast)
        return (lambda i: frozen.step(*batches[i % len(batches)][:2], None, None, iteration=i)), graphs
    if v.impl == "reference":
        it = AuthorsWayIteration(lambda: create_model(case.model, case.num_classes, case.channels), model, opt,
                                 vnet, mopt, normalize="sum_detached")
        return (lambda i: it.step(*batches[i % len(batches)])), graphs
    ms = MetaStep(model, opt, vnet, mopt, backend=v.backend, normalize="sum_detached", fast=fast, meta_grad=v.meta_grad)
    graphs.append(ms.runner(True))
    return (lambda i: ms.step(*batches[i % len(batches)], iteration=i)), graphs


def run_row(case: Case, v: Variant, device: torch.device, warmup: int, iters: int) -> dict[str, Any]:
    _free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, graphs = build_step(case, v, device)
    n = iters if v.impl != "reference" else max(5, iters // 2)
    times = _time(step, warmup, n, device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    graphed = bool(graphs) and all(g.replays > 0 for g in graphs)
    note = ""
    if v.impl == "fast" and not graphed:
        reasons = [g.fallback_reason for g in graphs if g.fallback_reason]
        note = "eager fallback: " + (reasons[0] if reasons else "no CUDA device")
    del step, graphs
    _free(device)
    return {"model": case.model, "batch": case.batch, "meta_batch": case.meta_batch, "name": v.name,
            "kind": v.kind, "impl": v.impl, "backend": v.backend, "amp": v.amp, "channels_last": v.channels_last,
            "conv_tf32": v.conv_tf32 if device.type == "cuda" else None, "graphed": graphed,
            "ms": statistics.median(times), "ms_p10": _percentile(times, 0.1), "ms_p90": _percentile(times, 0.9),
            "iters": n, "peak_mib": peak, "x_ref": None, "x_erm": None, "note": note,
            "meta_grad": v.meta_grad if v.kind == "meta" else None}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for rs in by_model.values():
        ref = next((r["ms"] for r in rs if r["impl"] == "reference"), None)
        erm = next((r["ms"] for r in rs if r["kind"] == "erm" and r["impl"] == "eager"), None)
        for r in rs:
            r["x_ref"] = None if ref is None else ref / r["ms"]
            r["x_erm"] = None if erm is None else r["ms"] / erm


def interleaved_ms(steps: dict[str, Callable[[int], Any]], device: torch.device, warmup: int, iters: int
                   ) -> dict[str, float]:
    """Median ms per iteration of each step, timed in turn within every round (the order rotating each
    round), so that load on a shared machine hits all of them alike."""
    names = list(steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + iters):
        for n in names[i % len(names):] + names[:i % len(names)]:
            _sync(device)
            t0 = time.perf_counter()
            steps[n](i)
            _sync(device)
            if i >= warmup:
                times[n].append((time.perf_counter() - t0) * 1e3)
    return {n: statistics.median(t) for n, t in times.items()}


def backend_race(case: Case, device: torch.device, warmup: int, iters: int) -> dict[str, Any]:
    """`higher` vs `torch.func` eager MetaStep iterations timed alternately (one of each per round), so that
    load on a shared machine hits both alike; the figure behind the default `method.backend`."""
    steps = {}
    for backend in ("higher", "torch.func"):
        steps[backend], _ = build_step(case, Variant(f"MetaStep {backend} (eager)", "meta", "eager", backend), device)
    ms = interleaved_ms(steps, device, warmup, iters)
    h, f = ms["higher"], ms["torch.func"]
    del steps
    _free(device)
    return {"model": case.model, "batch": case.batch, "meta_batch": case.meta_batch, "iters": iters,
            "higher_ms": h, "torch_func_ms": f, "higher_over_torch_func": h / f,
            "faster": "torch.func" if f < h else "higher"}


FROZEN_TARGET = 1.1   # a transferred (frozen) weighting costs at most 1.1x an ERM step


def frozen_race(case: Case, device: torch.device, warmup: int, iters: int) -> dict[str, Any]:
    """An ERM step against a step weighted by a frozen CMW-Net (the transferred weighting of Sec. 6: weights
    from the net, no meta step), timed alternately so load on a shared machine hits both alike."""
    steps = {"erm": build_step(case, Variant("ERM step (eager)", "erm", "eager"), device)[0],
             "frozen": build_step(case, Variant("Frozen weighting (eager)", "frozen", "eager"), device)[0]}
    ms = interleaved_ms(steps, device, warmup, iters)
    del steps
    _free(device)
    ratio = ms["frozen"] / ms["erm"]
    return {"model": case.model, "batch": case.batch, "iters": iters, "erm_ms": ms["erm"], "frozen_ms": ms["frozen"],
            "x_erm": ratio, "target": FROZEN_TARGET, "reached": ratio <= FROZEN_TARGET}


def _variant(name: str, device: torch.device) -> Variant:
    if name == "ERM step (eager)":
        return Variant(name, "erm", "eager")
    return next(v for v in variants(device) if v.name == name)


def peak_memory_mib(case: Case, name: str, device: torch.device, iters: int = 3) -> float | None:
    """Peak memory of `iters` iterations of one row above what the process held before them: on a GPU
    the peak CUDA allocation; on the CPU the peak resident set of a fresh child process (this process's
    allocator keeps what earlier rows freed, so its peak would hide theirs)."""
    if device.type == "cuda":
        _free(device)
        step, _ = build_step(case, _variant(name, device), device)
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for i in range(iters):
            step(i)
        _sync(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        del step
        _free(device)
        return peak
    import subprocess
    key = next(k for k, c in CASES.items() if c == case)
    code = ("import json, sys, torch; from cmwnet.tools.bench import _child_peak_rss; "
            f"print(json.dumps(_child_peak_rss({key!r}, {name!r}, {iters})))")
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def _child_peak_rss(case_key: str, name: str, iters: int) -> float | None:
    """In a fresh process: peak resident memory (VmHWM) of `iters` iterations above the resident memory
    after building the row (the peak is reset first through /proc/self/clear_refs)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.device("cpu")
    step, _ = build_step(CASES[case_key], _variant(name, device), device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss_mib("VmRSS")
        for i in range(iters):
            step(i)
        return _rss_mib("VmHWM") - base
    except OSError:    # not Linux: no peak resident figure
        return None


def mode_race(case: Case, device: torch.device, warmup: int, iters: int) -> dict[str, Any]:
    """ERM and every meta-gradient mode (`method.meta_grad`) timed alternately (one of each per round, the
    order rotating), so that load on a shared machine hits all alike; then each one's peak memory. Ratios
    are to the ERM step of the same round's timings."""
    names = ["ERM step (eager)"] + [n for _, n in MODE_ROWS]
    steps = {n: build_step(case, _variant(n, device), device)[0] for n in names}
    ms = interleaved_ms(steps, device, warmup, iters)
    del steps
    _free(device)
    peaks = {n: peak_memory_mib(case, n, device) for n in names}
    erm_ms, erm_peak = ms[names[0]], peaks[names[0]]
    rows = []
    for mode, n in [("erm", names[0])] + list(MODE_ROWS):
        rows.append({"mode": mode, "name": n, "ms": ms[n], "x_erm": ms[n] / erm_ms, "peak_mib": peaks[n],
                     "peak_x_erm": None if peaks[n] is None or not erm_peak else peaks[n] / erm_peak})
    return {"model": case.model, "batch": case.batch, "meta_batch": case.meta_batch, "iters": iters,
            "memory": "peak CUDA allocation" if device.type == "cuda" else "peak resident set of a fresh process",
            "rows": rows}


def format_modes(race: dict[str, Any]) -> str:
    lines = [f"meta-gradient modes, {race['model']} b{race['batch']} (interleaved, {race['iters']} rounds; memory: "
             f"{race['memory']}):",
             f"  {'mode':<9} {'ms/iter':>9} {'x ERM':>7} {'peak MiB':>9} {'x ERM':>7}"]
    for r in race["rows"]:
        lines.append(f"  {r['mode']:<9} {r['ms']:>9.1f} {r['x_erm']:>7.2f} {_fmt(r['peak_mib'], '.0f'):>9} "
                     f"{_fmt(r['peak_x_erm'], '.2f'):>7}")
    return "\n".join(lines)


# -- engine overhead and evaluation, for the Table 1 estimate ---------------------------------------------
def engine_overhead_ms(case: Case, device: torch.device, iters: int) -> float:
    """Per step, what the engine does outside the method's step: gather the batch from the device-resident
    uint8 images, augment it, accumulate the epoch's running sums."""
    from ..data.gpu import Augment, DeviceImages
    from ..engine import EpochSums

    n = 20 * case.batch
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, case.channels, case.size, case.size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, case.num_classes, (n,), generator=g)
    train = DeviceImages(images.to(device), labels.to(device), Augment(4, "reflect", True, "cifar_lt"))
    gen = torch.Generator(device=device).manual_seed(0)
    sums = EpochSums.zeros(device, n, with_weights=True)
    logits = torch.randn(case.batch, case.num_classes, device=device)
    stats = {"loss": logits.mean(), "logits": logits, "weights": torch.rand(case.batch, device=device),
             "meta_loss": logits.mean()}
    order = torch.randperm(n, device=device)

    def step(i: int) -> None:
        pos = order[(i % 20) * case.batch:((i % 20) + 1) * case.batch]
        train.augment(train.images[pos], gen)
        sums.add(stats, train.labels[pos], pos, i)
    return statistics.median(_time(step, 3, iters, device))


def eval_seconds(case: Case, device: torch.device, test_size: int) -> float:
    """One evaluation pass of the test set (the engine evaluates net and, where used, EMA every epoch)."""
    from ..data.gpu import Augment, DeviceImages
    from ..engine import evaluate

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (test_size, case.channels, case.size, case.size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, case.num_classes, (test_size,), generator=g)
    test = DeviceImages(images.to(device), labels.to(device), Augment(normalize="cifar_lt"))
    model = create_model(case.model, case.num_classes, case.channels).to(device)
    evaluate(model, test, 1000)
    _sync(device)
    t0 = time.perf_counter()
    evaluate(model, test, 1000)
    _sync(device)
    return time.perf_counter() - t0


def table1_estimate(rows: list[dict[str, Any]], model: str, overhead_ms: float, eval_s: float,
                    packing: float | None) -> dict[str, Any]:
    """GPU-hours of Table 1 (24 cells x 200 epochs) at the measured per-step times of `model`."""
    steps_per_epoch = []
    for n_max, c in TABLE1["datasets"].values():
        for imb in TABLE1["imbalance"]:
            n = sum(long_tail_counts(n_max, c, imb))
            steps_per_epoch += [math.ceil(n / TABLE1["batch"])] * len(TABLE1["losses"])
    assert len(steps_per_epoch) == TABLE1["cells"]
    mine = [r for r in rows if r["model"] == model]

    def ms(name: str) -> float | None:
        return next((r["ms"] for r in mine if r["name"] == name), None)

    def best(kind: str, impl: str) -> float | None:   # the exact meta-gradient only: the table as specified
        vals = [r["ms"] for r in mine if r["kind"] == kind and r["impl"] == impl and r.get("meta_grad") in (None, "exact")]
        return min(vals) if vals else None

    plans = [("authors' way (eager ERM + reference meta)", ms("ERM step (eager)"), ms("CMW-Net, authors' way")),
             ("ours, eager", ms("ERM step (eager)"), best("meta", "eager")),
             ("ours, fast fp32", ms("ERM step fast fp32"), ms("MetaStep torch.func fast fp32")),
             ("ours, fastest variant", best("erm", "fast"), best("meta", "fast"))]
    out = []
    for name, erm_ms, meta_ms in plans:
        if erm_ms is None or meta_ms is None:
            continue
        seconds = sum(s * (TABLE1["erm_epochs"] * (erm_ms + overhead_ms) + TABLE1["meta_epochs"] * (meta_ms + overhead_ms))
                      / 1e3 + TABLE1["epochs"] * eval_s for s in steps_per_epoch)
        hours = seconds / 3600
        out.append({"name": name, "erm_ms": erm_ms, "meta_ms": meta_ms, "gpu_hours": hours,
                    "packed_gpu_hours": None if not packing else hours / packing})
    return {k: TABLE1[k] for k in ("cells", "epochs", "erm_epochs", "meta_epochs", "batch")} | {
        "model": model, "steps_per_epoch": steps_per_epoch, "overhead_ms": overhead_ms, "eval_s": eval_s,
        "packing_factor": packing, "variants": out}


# -- a CMW-Net-SL epoch through the Trainer ----------------------------------------------------------------
def _register_synthetic(case: Case) -> str:
    """A data set of random uint8 images with the case's shape (sizes from data.train_subset/test_subset),
    registered under a bench-only name: the SL epoch runs the real engine without reading CIFAR."""
    from ..data.builder import BUNDLE_BUILDERS, DataBundle
    from ..data.gpu import Augment, DeviceImages
    from ..data.imbalance import class_counts

    name = f"bench-synthetic-{case.channels}x{case.size}-c{case.num_classes}"

    def build(cfg, device):
        g = torch.Generator().manual_seed(cfg.split_seed)
        c = case.num_classes

        def part(n: int) -> DeviceImages:
            x = torch.randint(0, 256, (n, case.channels, case.size, case.size), dtype=torch.uint8, generator=g)
            y = torch.randint(0, c, (n,), generator=g)
            a = cfg.augment
            return DeviceImages(x.to(device), y.to(device), Augment(a.crop_pad, a.pad_mode, a.flip, a.normalize))
        train, test = part(cfg.train_subset), part(cfg.test_subset)
        counts = class_counts(train.labels.cpu().numpy(), c)
        return DataBundle(train, test, None, c, counts, {"dataset": name, "synthetic": True})
    BUNDLE_BUILDERS.setdefault(name, build)
    return name


def sl_epoch(case: Case, device: torch.device, train_size: int, test_size: int, quick: bool) -> dict[str, Any]:
    """Seconds per CMW-Net-SL epoch (Table 2's CIFAR-10 setting) through `Trainer`, eager vs fast.
    Epoch 0 warms up (and captures the graphs); epoch 1 is timed."""
    from ..config import config_from_dict
    from ..engine import Trainer

    data_name = _register_synthetic(case)
    settings = [("eager (fast=off)", "off", "off", False), ("fast fp32", "on", "off", False)]
    if device.type == "cuda":
        settings.append(("fast bf16+CL", "on", "bf16", True))
    rows = []
    steps = math.ceil(train_size / case.batch)
    for name, fast, amp, cl in settings:
        _free(device)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config_from_dict({
                "name": "bench-sl", "seed": 0,
                "data": {"name": data_name, "train_subset": train_size, "test_subset": test_size,
                         "batch_size": case.batch, "test_batch_size": 1000,
                         "meta": {"kind": "lowest_loss", "per_class": 10, "batch_size": 100},
                         "augment": {"crop_pad": 4, "flip": True, "normalize": "cifar"}},
                "model": {"name": case.model},
                "optim": {"lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 300,
                          "schedule": {"kind": "multistep", "milestones": [150]}},
                "method": {"name": "cmwnet_sl", "interval": 10,
                           "sl": {"warmup": 0, "mixup_alpha": 1.0, "meta_mixup_alpha": 1.0},
                           "weight_net": {"lr": 1e-4, "weight_decay": 1e-4}},
                "ema": {"decay": 0.997},
                "run": {"out": tmp, "progress": False, "plot": False, "device": str(device),
                        "fast": fast, "amp": amp, "channels_last": cl},
            })
            trainer = Trainer(cfg, quiet=True)
            os.makedirs(trainer.run_dir, exist_ok=True)
            seconds = []
            for _ in range(2):
                _sync(device)
                t0 = time.perf_counter()
                trainer._run_epoch()  # the engine's own epoch: meta-set selection, steps, eval, checkpoint
                _sync(device)
                seconds.append(time.perf_counter() - t0)
            train_s = trainer.state.history[-1]["epoch_time_s"]
            del trainer
        rows.append({"name": name, "fast": fast, "amp": amp, "channels_last": cl, "epoch_s": seconds[-1],
                     "warmup_epoch_s": seconds[0], "train_s": train_s,
                     "x_authors": None if quick else AUTHORS_SL_EPOCH_S / seconds[-1]})
    return {"model": case.model, "batch": case.batch, "train_size": train_size, "test_size": test_size,
            "steps": steps, "rows": rows}


# -- packing: K processes on one GPU --------------------------------------------------------------------------
def _pack_child(case: Case, v: Variant, device: str, warmup: int, iters: int, barrier, queue) -> None:
    dev = torch.device(device)
    step, _ = build_step(case, v, dev)
    for i in range(warmup):
        step(i)
    _sync(dev)
    barrier.wait(timeout=900)
    t0 = time.perf_counter()
    for i in range(iters):
        step(warmup + i)
    _sync(dev)
    queue.put(time.perf_counter() - t0)


def packing(case: Case, v: Variant, device: torch.device, counts: list[int], warmup: int, iters: int) -> dict[str, Any]:
    """Throughput of K independent training processes sharing the device (what the table runner does)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rows = []
    for k in sorted(set([1] + counts)):
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_pack_child, args=(case, v, str(device), warmup, iters, barrier, queue))
                 for _ in range(k)]
        for p in procs:
            p.start()
        elapsed: list[float] = []
        while len(elapsed) < k:
            try:
                elapsed.append(queue.get(timeout=5))
            except Exception:  # noqa: BLE001 - queue.Empty: check that the children still run
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed or all(p.exitcode is not None for p in procs) and queue.empty():
                    for p in procs:
                        p.kill()
                    raise CmwnetError(f"a packed bench process failed (exit codes {[p.exitcode for p in procs]}); "
                                      "rerun without --pack to see its error") from None
        for p in procs:
            p.join()
        rows.append({"processes": k, "it_per_s": k * iters / max(elapsed)})
    single = rows[0]["it_per_s"]
    for r in rows:
        r["x_single"] = r["it_per_s"] / single
    return {"model": case.model, "variant": v.name, "iters": iters, "rows": rows}


# -- output ----------------------------------------------------------------------------------------------------
def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'model':<20} {'variant':<44} {'ms/iter':>9} {'p10-p90':>15} {'peak MiB':>9} {'x ref':>7} {'x ERM':>7}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        spread = f"{r['ms_p10']:.2f}-{r['ms_p90']:.2f}"
        lines.append(f"{r['model'] + ' b' + str(r['batch']):<20} {r['name']:<44} {r['ms']:>9.2f} {spread:>15} "
                     f"{_fmt(r['peak_mib'], '.0f'):>9} {_fmt(r['x_ref'], '.2f'):>7} {_fmt(r['x_erm'], '.2f'):>7}  "
                     f"{r['note']}")
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]], sl: dict | None) -> dict[str, Any]:
    """The issue's targets on an H100, checked against this run's numbers."""
    out: dict[str, Any] = {}
    r32 = [r for r in rows if r["model"] == "resnet32"]
    meta = [r for r in r32 if r["kind"] == "meta" and r["impl"] == "fast" and r["graphed"] and r.get("meta_grad", "exact") == "exact"]
    erm = [r for r in r32 if r["kind"] == "erm" and r["impl"] == "fast" and r["graphed"]]
    if meta:
        best = min(meta, key=lambda r: r["ms"])
        out["resnet32 CMW-Net iteration ms (<= 30)"] = {"value": best["ms"], "target": 30.0,
                                                         "reached": best["ms"] <= 30.0, "variant": best["name"]}
        if best["x_ref"] is not None:
            out["resnet32 CMW-Net speed-up over the authors' way (>= 5)"] = {
                "value": best["x_ref"], "target": 5.0, "reached": best["x_ref"] >= 5.0, "variant": best["name"]}
    if erm:
        best = min(erm, key=lambda r: r["ms"])
        out["resnet32 ERM step ms (<= 4)"] = {"value": best["ms"], "target": 4.0, "reached": best["ms"] <= 4.0,
                                               "variant": best["name"]}
    if sl and sl["model"] == "preact_resnet18" and sl["train_size"] == 50000:
        fast_rows = [r for r in sl["rows"] if r["fast"] == "on"]
        if fast_rows:
            best = min(fast_rows, key=lambda r: r["epoch_s"])
            out["CMW-Net-SL epoch speed-up over 41 s (>= 4)"] = {
                "value": best["x_authors"], "target": 4.0, "reached": best["x_authors"] >= 4.0, "variant": best["name"]}
    return out


def _device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    info["name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return info


# -- main ---------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmwnet.tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI size: tiny model on the CPU, few iterations")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--models", nargs="+", choices=sorted(CASES), help="default: resnet32 preact_resnet18 on a "
                   "GPU, tiny on the CPU")
    p.add_argument("--iters", type=int, help="timed iterations per row (default 100 on a GPU, 20 on the CPU, 3 quick)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default 10; 5 quick; fast rows need > 3)")
    p.add_argument("--sl", choices=("auto", "on", "off"), default="auto",
                   help="time a CMW-Net-SL epoch through the Trainer (auto: on, full-size on a GPU)")
    p.add_argument("--pack", type=int, nargs="*", default=None, metavar="K",
                   help="also time K processes sharing the device (default on a GPU: 2 4; none on the CPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (CPU runs only; default 1: steady figures on a shared machine)")
    p.add_argument("--backends-only", action="store_true",
                   help="only the interleaved higher vs torch.func race (the measurement behind method.backend)")
    p.add_argument("--modes-only", action="store_true",
                   help="only the interleaved race of ERM and every meta-gradient mode (method.meta_grad), with "
                        "peak memory")
    p.add_argument("--json", default=os.path.join("runs", "bench", "bench.json"), help="where to write the JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    threads = torch.get_num_threads()
    try:
        return _main(parse_args(argv))
    finally:
        torch.set_num_threads(threads)


def _main(args: argparse.Namespace) -> int:
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CmwnetError(f"--device {args.device} but no CUDA device is available: use --device cpu")
    cuda = device.type == "cuda"
    quick = args.quick
    if not cuda:
        torch.set_num_threads(max(1, args.threads))
    models = args.models or (["tiny"] if (quick or not cuda) else ["resnet32", "preact_resnet18"])
    iters = args.iters or (3 if quick else 100 if cuda else 20)
    warmup = args.warmup if args.warmup is not None else (5 if quick else 10)
    if iters < 1 or warmup < 0:
        raise CmwnetError("--iters must be >= 1 and --warmup >= 0")
    if warmup <= 3:
        print("note: fast rows need more than 3 warm-up iterations to capture their graph; they run eagerly",
              file=sys.stderr)
    print(f"cmwnet bench on {_device_info(device)['name']} (torch {torch.__version__}): "
          f"{'quick, ' if quick else ''}{iters} timed iterations per row after {warmup} warm-up", flush=True)

    def header(mode: str) -> dict[str, Any]:
        return {"version": 1, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "mode": mode, "device": _device_info(device),
                "settings": {"iters": iters, "warmup": warmup, "seed": 0,
                             "threads": None if cuda else torch.get_num_threads()}}

    modes = []
    for m in models if not args.backends_only else ():
        modes.append(mode_race(CASES[m], device, warmup, iters))
        print(format_modes(modes[-1]), flush=True)
    if args.modes_only:
        return _write(args.json, header("modes") | {"meta_grad_modes": modes})

    races = []
    for m in models:
        races.append(backend_race(CASES[m], device, warmup, iters))
        r = races[-1]
        print(f"  {CASES[m].label:<20} backends, interleaved: higher {r['higher_ms']:.2f} ms, torch.func "
              f"{r['torch_func_ms']:.2f} ms: higher / torch.func = {r['higher_over_torch_func']:.2f}", flush=True)
    if args.backends_only:
        return _write(args.json, header("backends") | {"backends": races})
    frozen = []
    for m in models:
        frozen.append(frozen_race(CASES[m], device, warmup, iters))
        r = frozen[-1]
        print(f"  {CASES[m].label:<20} frozen weighting vs ERM, interleaved: ERM {r['erm_ms']:.2f} ms, frozen "
              f"{r['frozen_ms']:.2f} ms: {r['x_erm']:.2f}x ERM (target <= {FROZEN_TARGET}: "
              f"{'reached' if r['reached'] else 'MISSED'})", flush=True)

    rows = []
    for m in models:
        case = CASES[m]
        run_row(case, variants(device)[0], device, warmup, min(iters, 5))  # throw-away: process warm-up
        for v in variants(device):
            row = run_row(case, v, device, warmup, iters)
            rows.append(row)
            print(f"  {case.label:<20} {v.name:<44} {row['ms']:9.2f} ms{('  (' + row['note'] + ')') if row['note'] else ''}",
                  flush=True)
    add_ratios(rows)

    sl = None
    if args.sl != "off":
        sl_case = CASES["preact_resnet18"] if (cuda and not quick and "tiny" not in models) else CASES["tiny"]
        train_size, test_size = ((50000, 10000) if sl_case.model == "preact_resnet18"
                                 else (4 * sl_case.batch, 128) if quick else (16 * sl_case.batch, 512))
        print(f"  CMW-Net-SL epoch, {sl_case.label}, {train_size} synthetic images ...", flush=True)
        sl = sl_epoch(sl_case, device, train_size, test_size, quick or not cuda)

    pack = None
    pack_counts = args.pack if args.pack is not None else ([2, 4] if cuda and not quick else [])
    if pack_counts:
        case = CASES["resnet32"] if "resnet32" in models else CASES[models[0]]
        fast_meta = [v for v in variants(device) if v.kind == "meta" and v.impl == "fast" and v.meta_grad == "exact"]
        mine = [r for r in rows if r["model"] == case.model and r["kind"] == "meta" and r["impl"] == "fast"
                and r.get("meta_grad", "exact") == "exact"]
        best = min(mine, key=lambda r: r["ms"])["name"] if mine else fast_meta[0].name
        v = next(x for x in fast_meta if x.name == best)
        print(f"  packing {pack_counts} processes of '{v.name}' ...", flush=True)
        pack = packing(case, v, device, pack_counts, warmup, iters)

    t1_model = "resnet32" if "resnet32" in models else models[0]
    t1_case = CASES[t1_model]
    factor = max((r["x_single"] for r in pack["rows"]), default=None) if pack else None
    table1 = table1_estimate(rows, t1_case.model, engine_overhead_ms(t1_case, device, max(iters, 5)),
                             eval_seconds(t1_case, device, 10000 if t1_model == "resnet32" else 500), factor)
    if t1_model != "resnet32":
        table1["note"] = f"estimated with {t1_case.model} (no ResNet-32 rows in this run): not the real figure"

    result = header("quick" if quick else "full") | {
        "rows": rows, "sl_epoch": sl, "packing": pack, "table1": table1, "backends": races, "meta_grad_modes": modes,
        "frozen_weighting": frozen,
        "targets": targets(rows, sl) if cuda else {}}
    print()
    print(format_table(rows))
    print("x ref = the authors' way's ms / this row's ms (speed-up); x ERM = this row's ms / the eager ERM step's ms")
    if sl:
        print(f"\nCMW-Net-SL epoch ({sl['model']} b{sl['batch']}, {sl['train_size']} images, {sl['steps']} steps; "
              "whole epoch incl. meta-set selection, evaluation and checkpoint):")
        for r in sl["rows"]:
            ratio = f"  {r['x_authors']:.2f}x faster than the authors' 41 s" if r["x_authors"] else ""
            print(f"  {r['name']:<18} {r['epoch_s']:8.2f} s/epoch (steps {r['train_s']:.2f} s){ratio}")
    if pack:
        print(f"\npacked processes ({pack['model']}, {pack['variant']}):")
        for r in pack["rows"]:
            print(f"  {r['processes']} x  {r['it_per_s']:8.1f} it/s together  ({r['x_single']:.2f}x one process)")
    print(f"\nTable 1 ({table1['cells']} cells x {table1['epochs']} epochs = {table1['erm_epochs']} ERM + "
          f"{table1['meta_epochs']} meta; {table1['model']}; +{table1['overhead_ms']:.2f} ms/step outside the step, "
          f"{table1['eval_s']:.2f} s eval/epoch){'  ' + table1['note'] if 'note' in table1 else ''}:")
    for r in table1["variants"]:
        packed = f"   packed: {r['packed_gpu_hours']:.1f} GPU-hours" if r["packed_gpu_hours"] else ""
        print(f"  {r['name']:<44} {r['gpu_hours']:8.1f} GPU-hours{packed}")
    if result["targets"]:
        print("\ntargets (H100):")
        for name, t in result["targets"].items():
            print(f"  {name:<58} {t['value']:8.2f}  {'reached' if t['reached'] else 'MISSED'}  ({t['variant']})")
    return _write(args.json, result)


def _write(path: str, result: dict[str, Any]) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
