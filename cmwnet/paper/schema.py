"""What every paper table is made of, Tables 1-10 and Fig. 9 alike: one spec (`Table`: settings x rows x
seeds, the paper's numbers, the metric, which epoch the paper reports), the paper's numbers (`Paper`,
parsed from the authors' README layout) and the config plumbing a table's cells share (nested
overrides, base YAML files). The modules that hold the tables as data (tables.py: 1-5, tables_real.py:
6-10, partial_figure.py: Fig. 9) each give their tables a `kind`, which says how the cells are built
(`build`) and how the report lays the numbers out; everything else is read the same way everywhere."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from ..errors import CmwnetError
from ..resources import CONFIG_DIR

KINDS = ("section4", "real", "figure")   # Tables 1-5 | 6-10 | Fig. 9


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


@dataclass
class Setting:
    """One column (or row group) of a table: a data set and how it is made noisy or long-tailed."""
    key: str                 # run-folder component, e.g. "cifar10_if100"
    group: str = ""          # the paper's column group / row group, e.g. "CIFAR-10-LT"
    label: str = ""          # the paper's column / row label within the group, e.g. "100"
    overrides: dict = field(default_factory=dict)   # nested config overrides
    noise: Any = None        # feature_noise.NoiseSpec of the label file the setting needs (Tables 4-5)

    @property
    def dataset(self) -> str:
        return self.overrides["data"]["name"]


@dataclass
class Row:
    """One method of a table: run by us (`status` "run"), or quoted / not reproduced (the paper's number only)."""
    key: str
    label: str
    overrides: dict | None = None      # nested config overrides of the row's cells
    status: str = "run"                # run | quoted | not_reproduced
    source: str = ""                   # where quoted numbers come from / why not reproduced
    smoke: dict = field(default_factory=dict)   # extra overrides of this row's smoke cells
    config: str | None = None          # the row's own base YAML in configs/ (Tables 6-10; else the table's)
    needs: str | None = None           # an external file the row needs: weight_net | pretrained
    two_step: bool = False             # WebFG: step 1 (frozen features) then step 2 from it

    @property
    def runs(self) -> bool:
        return self.status == "run"


@dataclass(frozen=True)
class Column:
    """One number of a run: top-k on the data set's test set or on ImageNet's val set beside it."""
    key: str
    label: str
    block: str = "test"      # test (the data set's test/val set) | imagenet (ImageNet val beside it)
    k: int = 1               # top-k


TOP1 = Column("top1", "Test accuracy")


@dataclass
class Table:
    """A paper table or figure as data: settings x rows x seeds, one training run per cell.

    `paper` maps (row key, setting key) to the paper's number (Tables 1-5), or (row, setting, column) where
    the table reads several numbers of a run (`columns`; Tables 6-10); `paper_number` reads either. `paper_epoch` says which epoch the paper reports (best,
    last or unstated); `select` which epoch and model our number takes where a run gives several (last, or
    best_max_ema: the epoch and model with the best test top-1), None: best and last are both shown.
    `figure_rows` are the rows whose learned weighting functions the report plots."""
    number: int | str
    title: str
    config: str | None                        # base YAML file name in configs/ (None: each row names its own)
    settings: list[Setting]
    rows: list[Row]
    paper: dict[tuple, Paper] = field(default_factory=dict)
    kind: str = "section4"                    # section4 | real | figure (KINDS)
    metric: str = "accuracy"                  # accuracy | error (100 - top-1)
    paper_epoch: str = "best"                 # best | last | unstated
    select: str | None = None                 # last | best_max_ema | None (best and last)
    columns: list[Column] = field(default_factory=lambda: [TOP1])
    out_dir: str = ""                         # default --out, under runs/ (and runs/smoke/)
    transpose: bool = False                   # paper layout: settings as rows, methods as columns
    cell_overrides: Callable[[Row, Setting], dict] | None = None
    smoke: dict = field(default_factory=dict)  # extra smoke overrides of this table
    step2: dict = field(default_factory=dict)  # two-step rows: overrides of step 2
    average: bool = False                     # an "Average" column over the settings (Table 8)
    digits: int = 2                           # decimals of the paper's numbers
    figure_rows: tuple[str, ...] = ()         # rows whose learned weighting functions the report plots
    notes: tuple[str, ...] = ()
    switch_epoch: int | None = None           # Fig. 9: the epoch CMW-Net starts
    build: Callable[..., list] | None = None  # (table, ...) -> its cells: the kind's cell builder
    scale: str = "paper"                      # paper | cpu | full (cpu_tables.at_cpu_scale)
    posterior: dict = field(default_factory=dict)   # Tables 4-5: overrides of PLC's posterior network (cpu scale)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"table {self.number}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def key(self) -> str:
        return str(self.number)

    @property
    def stem(self) -> str:
        """The report's file names: tableN.md / .csv / _weighting.png, or fig9.md / .csv / .png."""
        return f"table{self.number}" if isinstance(self.number, int) else str(self.number)

    @property
    def config_path(self) -> str:
        return os.path.join(CONFIG_DIR, self.config or "")

    def run_rows(self) -> list[Row]:
        return [r for r in self.rows if r.runs]

    def paper_number(self, row: str, setting: str, column: str = "top1") -> Paper:
        """The paper's number of one cell ('–' where the paper has none)."""
        p = self.paper.get((row, setting, column))
        if p is None and len(self.columns) == 1:
            p = self.paper.get((row, setting))
        return p if p is not None else Paper(None)

    def cells(self, *args: Any, **kwargs: Any) -> list:
        """Every cell of the table as a `runner.Cell` (the kind's builder: see its module)."""
        if self.build is None:
            raise CmwnetError(f"table {self.number} has no cell builder")
        return self.build(self, *args, **kwargs)


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
