"""What a table costs before it is launched (`python -m cmwnet.paper run N --dry-run`): per cell its epochs,
training iterations and meta iterations, and an *estimate* of the device-hours.

The estimate multiplies, for every cell, its iterations by a per-iteration time:
- the time of an ERM step comes from a bench file (`python -m cmwnet.tools.bench --json FILE` on the GPU that
  will run the table): measured directly for a benched model, scaled by the batch size; other models are
  scaled by their training FLOPs (counted once per model and image size) against the benched model's, i.e. at
  the throughput the bench measured. Without a bench file an assumed throughput is used and said so;
- a meta iteration costs the bench's ratio of its meta-gradient mode (`method.meta_grad`) to ERM; without
  a bench file, the ratios this project measured on the CPU bench (ResNet-32, batch 100, README "Speed").
Training sizes are the data sets' published split sizes after `val_size`, `train_subset`, the long tail
and a clean meta set taken from the training split. Evaluation and data loading are not counted.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import CmwnetError

# Published training-split sizes (images) and the input size the models see.
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "animal10n": 50_000, "mini_webvision": 65_944,
               "webvision": 2_439_574, "web_bird": 18_388, "web_aircraft": 13_503, "web_car": 21_448}
IMAGE_SIZES = {"cifar10": 32, "cifar100": 32, "animal10n": 64, "mini_webvision": 299, "webvision": 299,
               "web_bird": 448, "web_aircraft": 448, "web_car": 448}
CLASSES = {"cifar10": 10, "cifar100": 100, "animal10n": 10, "mini_webvision": 50, "webvision": 1000,
           "web_bird": 200, "web_aircraft": 100, "web_car": 196}
META_METHODS = {"mwnet", "cmwnet", "mcw", "l2rw", "cmwnet_sl", "proden_cmwnet", "cmwnet_sade"}
# Without a bench file: meta iteration / ERM step on this project's CPU bench (ResNet-32, batch 100, README
# "Speed"), and an assumed effective training throughput: about what the authors' CMW-Net-SL script reaches on
# an H100 (41 s per CIFAR-10 epoch of PreAct ResNet-18, 3.3 GFLOP per training image, plus a meta step every
# 10 iterations: ~200 TFLOP in 41 s; cmwnet.tools.bench.AUTHORS_SL_EPOCH_S).
DEFAULT_META_RATIOS = {"exact": 6.58, "forward": 4.35, "head": 1.39, "tail": 1.89}
ASSUMED_TFLOPS = 5.0


@dataclass
class CellCost:
    name: str
    dataset: str
    model: str
    epochs: int
    train_size: int | None       # None: a data set of unknown size
    batch: int
    steps: int | None            # training iterations
    meta_steps: int | None       # of which meta iterations
    meta_grad: str
    flops_per_image: float | None = None   # one training forward + backward, 3x the forward FLOPs


def train_size(cfg) -> int | None:
    """The training images a run keeps, from the published split size (None when unknown)."""
    d = cfg.data
    n = TRAIN_SIZES.get(d.name)
    if n is None:
        return None
    c = CLASSES[d.name]
    n -= d.val_size
    if d.train_subset:
        n = min(n, d.train_subset)
    if d.imbalance and d.imbalance > 1:
        from ..data.imbalance import long_tail_counts

        n = sum(long_tail_counts(n // c, c, d.imbalance))
    if d.meta.kind == "clean" and d.name.startswith("cifar"):
        n -= (d.meta.per_class or 0) * c
    return max(n, 0)


def cell_cost(name: str, cfg) -> CellCost:
    """Epochs, iterations and meta iterations of one resolved cell config."""
    n = train_size(cfg)
    b = cfg.data.batch_size
    epochs = cfg.optim.epochs
    per_epoch = None if n is None else (n // b if cfg.data.drop_last else math.ceil(n / b))
    steps = meta = None
    if per_epoch is not None:
        steps = per_epoch * epochs
        meta = 0
        if cfg.method.name in META_METHODS:
            start = cfg.method.sl.warmup if cfg.method.name == "cmwnet_sl" else cfg.method.start_epoch
            meta = math.ceil(per_epoch / max(cfg.method.interval, 1)) * max(epochs - start, 0)
    return CellCost(name, cfg.data.name, cfg.model.name, epochs, n, b, steps, meta, cfg.method.meta_grad)


_FLOPS: dict[tuple, float] = {}


def training_flops(model: str, args: dict, classes: int, size: int) -> float:
    """FLOPs of one training image (forward + backward, taken as 3x the forward), counted once per key."""
    key = (model, json.dumps(args, sort_keys=True), classes, size)
    if key not in _FLOPS:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from ..models import create_model

        net = create_model(model, classes, **args).eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            net(torch.zeros(1, 3, size, size))
        _FLOPS[key] = 3.0 * counter.get_total_flops()
    return _FLOPS[key]


@dataclass
class Speed:
    """Per-image training FLOPs per millisecond, the meta/ERM ratios, and what they came from."""
    flops_per_ms: float
    meta_ratios: dict[str, float]
    device: str
    source: str
    measured: bool


def load_bench(path: str | None) -> Speed:
    """The speed of a bench file (its first model with an eager ERM row), or the stated assumption."""
    if not path or not os.path.exists(path):
        return Speed(ASSUMED_TFLOPS * 1e9, dict(DEFAULT_META_RATIOS), "GPU",
                     f"no bench file{' at ' + path if path else ''}: an assumed {ASSUMED_TFLOPS:.0f} TFLOP/s and the "
                     "CPU bench's meta/ERM ratios; run `python -m cmwnet.tools.bench --json runs/bench/bench.json` "
                     "on the GPU for a measured figure", False)
    try:
        with open(path) as f:
            bench = json.load(f)
        rows = bench["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CmwnetError(f"--bench {path} is not a bench JSON ({e}): write one with python -m cmwnet.tools.bench "
                          "--json PATH") from None

    def damaged(what: str) -> CmwnetError:
        return CmwnetError(f"--bench {path} is damaged: {what}; write it again with python -m cmwnet.tools.bench "
                           "--json PATH")

    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise damaged('"rows" is not a list of rows')
    erm = next((r for r in rows if r.get("name") == "ERM step (eager)"), None)
    if erm is None:
        raise CmwnetError(f"--bench {path} has no 'ERM step (eager)' row: rerun the bench without --modes-only")
    from ..models import MODELS

    model, batch = erm.get("model"), erm.get("batch")
    if model not in MODELS.names():
        raise damaged(f"the ERM row's model is {model!r}, not a model cmwnet has")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise damaged(f"the ERM row's batch is {batch!r}, not a batch size >= 1")

    def good_ms(r: dict) -> bool:
        v = r.get("ms")
        return not isinstance(v, bool) and isinstance(v, (int, float)) and 0 < v < float("inf")
    if not good_ms(erm):
        raise damaged(f"the ERM row's time is {erm.get('ms')!r} ms, not a positive number")
    mine = [r for r in rows if r.get("model") == model and r.get("kind") == "meta" and r.get("impl") == "eager"]
    ratios = {}
    for mode in DEFAULT_META_RATIOS:
        ms = [r["ms"] for r in mine if (r.get("meta_grad") or "exact") == mode and r.get("backend") != "reference"
              and "authors" not in str(r.get("name", "")) and good_ms(r)]
        ratios[mode] = min(ms) / erm["ms"] if ms else DEFAULT_META_RATIOS[mode]
    flops = training_flops(model, {}, 10, 16 if model == "tiny_cnn" else 32) * batch   # the bench's CIFAR-shaped cases
    dev = bench.get("device", {})
    if not isinstance(dev, dict):
        raise damaged(f'"device" is {dev!r}, not a record of the device')
    device = dev.get("name") or dev.get("type") or "device"
    return Speed(flops / erm["ms"], ratios, "GPU" if dev.get("type") == "cuda" else f"CPU ({device})",
                 f"{path}: {model} b{batch} ERM {erm['ms']:.1f} ms/iteration on {device}; other models scaled by "
                 "FLOPs", True)


# The cpu scale (`--scale cpu`): ResNet-8, batch 100, one thread per run with a second run beside it on this
# project's 2-core machine: an ERM iteration and the exact meta iteration, from the epoch times of
# runs/probe_lt (epochs 0-15 ERM, 16-19 CMW-Net every iteration; `epoch_time_s` in metrics.jsonl).
CPU_ERM_MS = {"model": "resnet8", "batch": 100, "ms": 95.0}
CPU_META_RATIO = 5.7


def cpu_speed() -> Speed:
    """The measured speed of a cpu-scale run on a 2-core CPU, two one-thread runs at a time."""
    flops = training_flops(CPU_ERM_MS["model"], {}, 10, 32) * CPU_ERM_MS["batch"]
    ratios = {m: CPU_META_RATIO * r / DEFAULT_META_RATIOS["exact"] for m, r in DEFAULT_META_RATIOS.items()}
    return Speed(flops / CPU_ERM_MS["ms"], ratios, "CPU-core",
                 f"ResNet-8 b100 ERM {CPU_ERM_MS['ms']:.0f} ms/iteration on one core of a 2-core CPU with a second "
                 f"run beside it, the exact meta iteration {CPU_META_RATIO}x that (measured); other models scaled by "
                 "FLOPs", True)


def cell_hours(cost: CellCost, cfg, speed: Speed) -> float | None:
    """Estimated device-hours of one cell's training iterations."""
    if cost.steps is None:
        return None
    size = IMAGE_SIZES[cost.dataset]
    flops = training_flops(cfg.model.name, dict(cfg.model.args), CLASSES[cost.dataset], size)
    cost.flops_per_image = flops
    erm_ms = flops * cost.batch / speed.flops_per_ms
    ratio = speed.meta_ratios.get(cost.meta_grad, speed.meta_ratios["exact"])
    ms = (cost.steps - cost.meta_steps) * erm_ms + cost.meta_steps * erm_ms * ratio
    return ms / 3.6e6


def summarize(cells: Sequence, out: str, bench: str | None, speed: Speed | None = None,
              slots: int = 1) -> list[str]:
    """Lines (shell comments) that total a dry run's cells: per top-level group and overall (`speed`: the
    bench file's unless given; with `slots` > 1 the wall time of that many runs at once too)."""
    speed = speed or load_bench(bench)
    groups: dict[str, dict[str, Any]] = {}
    unknown = set()
    for c in cells:
        cfg = c.resolve(out)
        cost = cell_cost(c.name, cfg)
        hours = cell_hours(cost, cfg, speed)
        g = groups.setdefault(c.name.split("/")[0], {"cells": 0, "epochs": 0, "steps": 0, "meta": 0, "hours": 0.0})
        g["cells"] += 1
        g["epochs"] += cost.epochs
        if hours is None:
            unknown.add(cost.dataset)
            continue
        g["steps"] += cost.steps
        g["meta"] += cost.meta_steps
        g["hours"] += hours
    unit = f"{speed.device}-hours" if speed.device != "GPU" else "GPU-hours"
    lines = [f"# cost estimate ({'measured speed' if speed.measured else 'ASSUMED speed'}; {speed.source})"]
    for name, g in groups.items():
        lines.append(f"#   {name}: {g['cells']} cells, {g['epochs']:,} epochs, {g['steps']:,} iterations "
                     f"({g['meta']:,} meta), about {g['hours']:.1f} {unit}")
    tot = {k: sum(g[k] for g in groups.values()) for k in ("cells", "epochs", "steps", "meta", "hours")}
    lines.append(f"# total: {tot['cells']} cells, {tot['epochs']:,} epochs, {tot['steps']:,} iterations "
                 f"({tot['meta']:,} meta), about {tot['hours']:.1f} {unit} (an estimate: training steps only, "
                 "no evaluation or data loading)")
    if slots > 1:
        lines.append(f"# wall time with {slots} runs at once: about {tot['hours'] / slots:.1f} hours")
    if unknown:
        lines.append(f"# not estimated: {', '.join(sorted(unknown))} (size unknown to cmwnet.paper.cost)")
    return lines
