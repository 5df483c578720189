"""What produced a result: the reproducibility record every result.json carries.

Exact resume and bit-identical reruns hold on the same machine with the same thread count and the
same versions; this record says which those were, so a difference can be traced instead of guessed.
"""
from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import torch

from . import __version__


def git_commit() -> str | None:
    """The commit of the checkout cmwnet runs from (None for an installed wheel or without git);
    '+dirty' when tracked files differ from it."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(here, ".git")):
        return None
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", here, "diff", "--quiet", "HEAD", "--", "cmwnet"],
                               capture_output=True, timeout=5).returncode != 0
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(device: torch.device, *, world_size: int = 1, fast_path: str = "eager+fp32",
                       deterministic: bool = False) -> dict[str, Any]:
    """Versions, device, threads and the speed options a run actually used."""
    record: dict[str, Any] = {
        "cmwnet": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
        "world_size": int(world_size), "fast_path": fast_path, "deterministic": bool(deterministic),
        "host": platform.node(),
    }
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
    return record
