"""One check of the options every command that launches runs shares (devices, GPUs, threads, jobs, seeds, epochs,
filters, files): `check_launch_options(args)`. A new command calls it first, so it cannot bring back the defect of
checking its options only inside the runs."""
from __future__ import annotations

import argparse
import os

from ..errors import CmwnetError


def check_launch_options(a: argparse.Namespace, table: str | None = None) -> None:
    """The options of a command that launches runs, checked before any data is prepared or any run starts (a bad
    value used to start the runs and end in "N run(s) failed" with the cause only in a run's log). Every such
    command (`paper run`, the sweep, `cpu_transfer`, the studies) calls this with its parsed
    arguments; options a command does not have are skipped."""
    opt = lambda name, default=None: getattr(a, name, default)  # noqa: E731
    check_device(opt("device"))
    for name in ("threads", "jobs", "per_gpu", "epochs"):
        v = opt(name)
        if v is not None and v < 1:
            raise CmwnetError(f"--{name.replace('_', '-')} must be >= 1, got {v}: give a positive integer, or leave it "
                              "out for the default")
    check_gpus(opt("gpus"))
    seeds = opt("seeds")
    if seeds is not None:
        bad = [s for s in seeds if not 0 <= s < 2 ** 32]
        if bad:
            raise CmwnetError(f"--seeds {bad[0]}: a seed is an integer in [0, 2^32), e.g. --seeds 1 2 3")
        if len(set(seeds)) != len(seeds):
            raise CmwnetError(f"--seeds {' '.join(map(str, seeds))} repeats a seed: each seed is one run per cell, "
                              "give each once")
    out = opt("out")
    if out is not None and not str(out).strip():
        raise CmwnetError(f"--out {out!r} is empty: give the folder for the runs, or leave --out out for the default")
    posterior = opt("posterior")
    if posterior is not None and not str(posterior).strip():
        raise CmwnetError("--posterior '' is empty: give a finished posterior network's run folder, or leave it out")
    if any(not f.strip() for f in opt("filter") or []):
        where = f"python -m cmwnet.paper list {table}" if table else "--dry-run"
        raise CmwnetError(f"--filter '' matches every cell: give a part of a cell name (see {where})")
    for name in ("weight_net", "pretrained", "noise_dir"):
        path = opt(name)
        flag = "--" + name.replace("_", "-")
        if path is None:
            continue
        if opt("smoke", False) and name != "noise_dir":
            raise CmwnetError(f"{flag} does not apply with --smoke, which generates its own stand-in files: drop "
                              f"{flag}, or run without --smoke")
        if name == "noise_dir":
            if os.path.exists(path) and not os.path.isdir(path):
                raise CmwnetError(f"--noise-dir {path} is a file: give a folder (it is created when missing)")
        elif not os.path.isfile(path):
            raise CmwnetError(f"{flag} {path} not found: give the path of the file")


def check_device(device: str | None) -> None:
    """--device: auto, cpu, cuda, cuda:N (that GPU visible) or mps."""
    import re

    if device is None:
        return
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise CmwnetError(f"--device {device!r} is not a device: use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise CmwnetError(f"--device {device} but no CUDA device is available: use --device cpu")
        n = torch.cuda.device_count()
        if ":" in device and int(device.split(":")[1]) >= n:
            raise CmwnetError(f"--device {device}: only {n} CUDA device(s) are visible (cuda:0..cuda:{n - 1})")


def check_gpus(gpus: str | None) -> None:
    """--gpus: all, or GPU numbers that are visible (no silent fall-back to the CPU)."""
    if gpus is None or gpus in ("all", "auto"):
        return
    ids = [g.strip() for g in gpus.split(",")]
    if not ids or not all(g.isdigit() for g in ids):
        raise CmwnetError(f"--gpus {gpus!r} is not a GPU list: use all, or GPU numbers like 0,1")
    from .runner import visible_gpus

    visible = visible_gpus()
    unknown = [g for g in ids if g not in visible]
    if unknown:
        have = ", ".join(visible) if visible else "none"
        raise CmwnetError(f"--gpus {gpus}: GPU {unknown[0]} is not visible (visible GPUs: {have}); use --gpus all, or "
                          "--device cpu")
