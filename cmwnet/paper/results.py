"""The one results reader of the paper wing: what a folder of runs holds, for every table and figure.

A run folder is `OUT/<name>` (names like `<setting>/<row>/s<seed>`); it is finished when its
`result.json` exists (the engine writes it atomically, last). `metrics.jsonl` holds one line per epoch.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
from typing import Iterable, Sequence
from ..run_folder.layout import METRICS, RESULT



def run_dir(out: str, name: str) -> str:
    return os.path.join(out, name)


def seed_runs(out: str, prefix: str) -> list[str]:
    """Names `<prefix>/s<seed>` of the finished runs under OUT, sorted by seed."""
    names = []
    for path in glob.glob(os.path.join(out, prefix, "s*", RESULT)):
        folder = os.path.dirname(path)
        if re.fullmatch(r"s-?\d+", os.path.basename(folder)):
            names.append(os.path.relpath(folder, out))
    return sorted(names, key=lambda n: int(n.rsplit("/s", 1)[1]))


def read_history(out: str, name: str) -> list[dict] | None:
    """The per-epoch records of a finished run (None while it is not finished)."""
    folder = run_dir(out, name)
    if not os.path.exists(os.path.join(folder, RESULT)):
        return None
    try:
        with open(os.path.join(folder, METRICS)) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None


def read_result(out: str, name: str) -> dict | None:
    path = os.path.join(run_dir(out, name), RESULT)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_results(out: str, names: Iterable[str]) -> dict[str, dict]:
    """name -> result.json dict, for the cells that finished."""
    results = {}
    for name in names:
        r = read_result(out, name)
        if r is not None:
            results[name] = r
    return results


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    if n == 1:
        return m, math.nan
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
