"""What every paper table is made of: the paper's numbers (`Paper`, parsed from the authors' README
layout) and the config plumbing a table's cells share (nested overrides, base YAML files)."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import yaml

from ..errors import CmwnetError


@dataclass(frozen=True)
class Paper:
    """One number of the paper: mean, std (None when the paper gives none), None mean = "-"."""
    mean: float | None
    std: float | None = None

    def text(self, digits: int = 2) -> str:
        if self.mean is None:
            return "–"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def parse_value(text: str) -> Paper:
    t = text.strip().replace("{", "").replace("}", "")
    if t in ("-", "–", ""):
        return Paper(None)
    if "±" in t:
        m, s = t.split("±")
        return Paper(float(m), float(s))
    return Paper(float(t))


def parse_block(block: str, columns: list[str], transpose: bool = False) -> dict[tuple[str, str], Paper]:
    """Lines "key | v | v ..." -> {(row key, setting key): Paper}. Without transpose a line is a row
    (method) and columns are settings; with transpose a line is a setting and columns are rows."""
    out = {}
    for line in block.strip().splitlines():
        key, *values = [p.strip() for p in line.split("|")]
        if len(values) != len(columns):
            raise ValueError(f"paper block line '{key}' has {len(values)} values for {len(columns)} columns")
        for col, v in zip(columns, values):
            out[(col, key) if transpose else (key, col)] = parse_value(v)
    return out


def deep_update(d: dict, u: dict) -> dict:
    """Merge nested dict `u` into `d` (in place; lists and scalars replace)."""
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            deep_update(d[k], v)
        else:
            d[k] = copy.deepcopy(v)
    return d


def load_yaml(path: str) -> dict:
    if not os.path.exists(path):
        raise CmwnetError(f"base config {path} not found: the package's configs/ folder is incomplete")
    with open(path) as f:
        return yaml.safe_load(f) or {}
