"""The paper's real-data tables as data, and `python -m cmwnet.paper run N` to reproduce one.

Tables 6 (ANIMAL-10N), 7 (mini-WebVision), 8 (WebFG-496) and 10 (full WebVision, a transferred
weighting). Unlike Tables 1-5 one run gives several numbers (top-1/top-5 on two validation sets),
so a table here is rows (methods) x settings (data sets; Table 8 has three) x columns (numbers of one
run). Cells run through `cmwnet.runner` (skip finished, resume interrupted, parallel slots); the
table is printed with the paper's numbers (the authors' README) beside ours, mean ± std over seeds.

Decisions (also printed under each table):
- Every row we run follows the authors' script of that table (`configs/animal10n_*.yaml`,
  `mini_webvision_*.yaml`, `webfg_*.yaml`, `webvision_transfer.yaml`). Rows without code in the
  authors' repository use the same schedule with the method swapped: ERM (plain CE, no EMA), MW-Net
  and CMW-Net (meta step every 10 iterations from the SL warm-up epoch on the 10 lowest-loss samples
  per observed class under the current net, mean of the weighted losses). Other baselines are quoted.
- Which epoch: the authors print every epoch for Tables 6 and 7 (no selection); we report the last
  epoch of the net. Tables 8 and 10 take the best epoch of max(net, EMA) on the test set, as their
  code does ("Best Accuracy").
- Table 7: the authors start ResNet-50 from a self-supervised WebVision checkpoint (C2D); that row
  ("CMW-Net-SL+C2D") needs `--pretrained PATH`. The other rows train ResNet-50 from scratch.
- Table 8: two steps as the authors' launchers intend (their table8.sh swaps the scripts): step 1
  trains the classifier on frozen ImageNet VGG-16 features (`--pretrained`: torchvision's VGG-16
  weights file) and moves only it in the virtual step; step 2 trains everything from step 1's model.
  Our label correction uses the "two-weight" mixup form for every table (WebFG's code mixes targets
  first); Adam's beta1 stays 0.9 (theirs drops to 0.1 at epoch 40).
- Table 10 and the ANIMAL-10N transfer row use a frozen weight net (`--weight-net PATH`): the
  authors' `vnet_119.pth` (converted with `cmwnet.tools.transfer`, heads in order (0, 2, 1)) or ours from
  Table 5 (CIFAR-10, 35% Type-I + 30% asymmetric, CMW-Net-SL), the default when that run exists.
- `--smoke`: trees in each data set's real format with a few 32-pixel images per class
  (`cmwnet.paper.fake_trees`; 80 pixels for Inception-ResNet-v2), narrow models, stand-in weight
  files, 2 epochs of 2 steps on the CPU, one seed. Large backbones move only their head in the
  smoke's virtual step (second order through ResNet-50 costs seconds per step on a CPU).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
from typing import Any

from ..errors import CmwnetError
from ..resources import CONFIG_DIR
from .results import mean_std, read_history, seed_runs
from .schema import TOP1, Column, Paper, Row, Setting, Table, deep_update, load_yaml, parse_value
from ..run_folder.layout import CHECKPOINT


def run_row(key: str, label: str, config: str, overrides: dict | None = None, **kw: Any) -> Row:
    """A row we run, on its own base config (`configs/<config>`)."""
    return Row(key, label, overrides or {}, config=config, **kw)


def quoted(key: str, label: str, source: str) -> Row:
    """A row the paper quotes from other work (its number only)."""
    return Row(key, label, status="quoted", source=source)


def _table(number: int, title: str, out_dir: str, settings: list[Setting], rows: list[Row], columns: list[Column],
           paper: dict, select: str, smoke: dict, step2: dict | None = None, **kw: Any) -> Table:
    """A real-data table: rows on their own configs, our number from the `select` epoch of each run."""
    return Table(number, title, None, settings, rows, paper, kind="real", select=select, columns=columns, out_dir=out_dir,
                 paper_epoch="unstated" if select == "last" else "best", smoke=smoke, step2=step2 or {},
                 build=all_cells, **kw)

DEFAULT_OUT = "runs"                        # + section5/tableN or section6/table10
SMOKE_OUT = os.path.join("runs", "smoke")
DEFAULT_SEEDS = (1, 2, 3)
TABLE5_WEIGHT_NET = os.path.join("runs", "section4", "cifar10_type1_0.35+flip0.3", "cmwnet_sl", "s1", "weight_net.pt")


# -- the paper's numbers (README) ------------------------------------------------------------------------
def _paper(block: str, setting_keys: list[str], column_keys: list[str]) -> dict[tuple, Paper]:
    """Lines 'row | v | v ...': values in setting-major order (one per setting x column), keyed (row, setting,
    column) (`Table.paper`)."""
    out = {}
    pairs = [(s, c) for s in setting_keys for c in column_keys]
    for line in block.strip().splitlines():
        key, *values = [p.strip() for p in line.split("|")]
        if len(values) != len(pairs):
            raise ValueError(f"paper line '{key}' has {len(values)} values for {len(pairs)}")
        for (s, c), v in zip(pairs, values):
            out[(key, s, c)] = parse_value(v)
    return out


NO_EMA = {"ema": {"decay": 0.0}}


def _reweight_rows(config: str, current_net: bool = True) -> list[Row]:
    """ERM / MW-Net / CMW-Net rows on a table's reweighting config."""
    meta = {"data": {"meta": {"model": "model"}}} if current_net else {}
    return [run_row("erm", "ERM", config, {"method": {"name": "erm"}}),
            run_row("mwnet", "MW-Net", config, {"method": {"name": "mwnet"}, **meta}),
            run_row("cmwnet", "CMW-Net", config, {"method": {"name": "cmwnet"}, **meta})]


ACC = [TOP1]
IMAGENET_WEBVISION = [Column("inet_top1", "ILSVRC12 top1", "imagenet", 1), Column("inet_top5", "ILSVRC12 top5", "imagenet", 5),
                      Column("wv_top1", "WebVision top1", "test", 1), Column("wv_top5", "WebVision top5", "test", 5)]


def table6() -> Table:
    q = quoted
    rows = [_reweight_rows("animal10n_cmwnet.yaml")[0],
            q("activebias", "ActiveBias", "Chang et al., NeurIPS 2017 (quoted by the paper)"),
            q("coteaching", "Co-teaching", "Han et al., NeurIPS 2018 (quoted)"),
            q("selfie", "SELFIE", "Song et al., ICML 2019 (quoted)"),
            q("plc", "PLC", "Zhang et al., ICLR 2021 (quoted)"),
            *_reweight_rows("animal10n_cmwnet.yaml")[1:],
            run_row("cmwnet_sl", "CMW-Net-SL", "animal10n_cmwnet_sl.yaml"),
            run_row("transfer", "CMW-Net-SL, transferred weighting (Sec. 6)", "animal10n_transfer.yaml",
                    needs="weight_net")]
    paper = _paper("""
erm        | 79.4
activebias | 80.5
coteaching | 80.2
selfie     | 81.8
plc        | 83.4
mwnet      | 80.7
cmwnet     | 80.9
cmwnet_sl  | 84.7
transfer   | -
""", ["animal10n"], ["top1"])
    smoke = {"model": {"args": {"width": 0.125, "hidden": 64}},
             "data": {"batch_size": 16, "test_batch_size": 64, "meta": {"per_class": 2, "batch_size": 16}}}
    return _table(6, "Table 6: test accuracy (%) on ANIMAL-10N (VGG-19-BN)", os.path.join("section5", "table6"),
                  [Setting("animal10n", label="ANIMAL-10N")], rows, ACC, paper, "last", smoke, digits=1,
                  figure_rows=("mwnet", "cmwnet", "cmwnet_sl"),
                     notes=("Ours: the last epoch of the net (the authors print every epoch, no selection).",
                            "The transfer row has no number in the paper (Sec. 6 shows it in a figure)."))


def table7() -> Table:
    q = quoted
    rows = [q("forward", "Forward", "Patrini et al., CVPR 2017 (quoted)"),
            q("mentornet", "MentorNet", "Jiang et al., ICML 2018 (quoted)"),
            q("coteaching", "Co-teaching", "Han et al., NeurIPS 2018 (quoted)"),
            q("iterative_cv", "Iterative-CV", "Chen et al., ICML 2019 (quoted)"),
            *_reweight_rows("mini_webvision_cmwnet.yaml")[1:],
            q("dividemix", "DivideMix", "Li et al., ICLR 2020 (quoted)"),
            q("elr", "ELR", "Liu et al., NeurIPS 2020 (quoted)"),
            q("dividemix_r50", "DivideMix (2nd entry)", "the paper's second DivideMix row (quoted)"),
            run_row("cmwnet_sl", "CMW-Net-SL", "mini_webvision_cmwnet_sl.yaml"),
            q("dividemix_c2d", "DivideMix with C2D", "Zheltonozhskii et al., WACV 2022 (quoted)"),
            run_row("cmwnet_sl_c2d", "CMW-Net-SL+C2D", "mini_webvision_cmwnet_sl.yaml", needs="pretrained")]
    paper = _paper("""
forward       | 61.12 | 82.68 | 57.36 | 82.36
mentornet     | 63.00 | 81.40 | 57.80 | 79.92
coteaching    | 63.58 | 85.20 | 61.48 | 84.70
iterative_cv  | 65.24 | 85.34 | 61.60 | 84.98
mwnet         | 69.34 | 87.44 | 65.80 | 87.52
cmwnet        | 70.56 | 88.76 | 66.44 | 87.68
dividemix     | 77.32 | 91.64 | 75.20 | 90.84
elr           | 77.78 | 91.68 | 70.29 | 89.76
dividemix_r50 | 76.32 | 90.65 | 74.42 | 91.21
cmwnet_sl     | 78.08 | 92.96 | 75.72 | 92.52
dividemix_c2d | 79.42 | 92.32 | 78.57 | 93.04
cmwnet_sl_c2d | 80.44 | 93.36 | 77.36 | 93.48
""", ["mini_webvision"], [c.key for c in IMAGENET_WEBVISION])
    smoke = {"model": {"args": {"layers": [1, 1, 1, 1], "width_per_group": 16}},
             "data": {"batch_size": 8, "test_batch_size": 32, "meta": {"per_class": 2, "batch_size": 8}},
             "method": {"virtual_params": "head"}}
    return _table(7, "Table 7: top-1/top-5 accuracy (%) on mini-WebVision, tested on ILSVRC12 and WebVision "
                  "validation (ResNet-50)", os.path.join("section5", "table7"),
                  [Setting("mini_webvision", label="mini-WebVision")], rows, IMAGENET_WEBVISION, paper, "last", smoke,
                  figure_rows=("mwnet", "cmwnet", "cmwnet_sl", "cmwnet_sl_c2d"),
                     notes=("Ours: the last epoch of the net (the authors print every epoch, no selection).",
                            "CMW-Net-SL+C2D starts from the C2D checkpoint given with --pretrained (the authors' "
                            "script); the other rows train ResNet-50 from scratch."))


def table8() -> Table:
    q = quoted
    cfg = "webfg_cmwnet.yaml"
    rows = [run_row("erm", "ERM", cfg, {"method": {"name": "erm"}}, needs="pretrained", two_step=True),
            q("decoupling", "Decoupling", "Malach & Shalev-Shwartz, NeurIPS 2017 (quoted)"),
            q("coteaching", "Co-teaching", "Han et al., NeurIPS 2018 (quoted)"),
            q("peer_learning", "Peer-learning", "Sun et al., ICCV 2021 (quoted)"),
            run_row("mwnet", "MW-Net", cfg, {"method": {"name": "mwnet"}}, needs="pretrained", two_step=True),
            run_row("cmwnet", "CMW-Net", cfg, {"method": {"name": "cmwnet"}}, needs="pretrained", two_step=True),
            run_row("cmwnet_sl", "CMW-Net-SL", "webfg_cmwnet_sl.yaml", needs="pretrained", two_step=True)]
    settings = [Setting(f"web_{s}", label=f"Web-{s.capitalize()}", overrides={"data": {"name": f"web_{s}"}})
                for s in ("bird", "aircraft", "car")]
    paper = _paper("""
erm           | 66.56 | 64.33 | 67.42
decoupling    | 70.56 | 75.97 | 75.00
coteaching    | 73.85 | 72.76 | 73.10
peer_learning | 76.48 | 74.38 | 78.52
mwnet         | 75.60 | 72.93 | 77.33
cmwnet        | 75.72 | 73.72 | 77.42
cmwnet_sl     | 77.41 | 76.48 | 79.70
""", [s.key for s in settings], ["top1"])
    step2 = {"optim": {"lr": 1.0e-4, "weight_decay": 1.0e-5}, "data": {"batch_size": 32, "meta": {"batch_size": 32}},
             "model": {"args": {"freeze_features": False, "pretrained": None}},
             "method": {"virtual_params": "all"}}
    smoke = {"model": {"args": {"width": 0.125}},
             "data": {"batch_size": 8, "test_batch_size": 32, "meta": {"per_class": 2, "batch_size": 8}}}
    return _table(8, "Table 8: test accuracy (%) on WebFG-496 (bilinear CNN on VGG-16)",
                  os.path.join("section5", "table8"), settings, rows, ACC, paper, "best_max_ema", smoke, step2,
                  average=True, figure_rows=("mwnet", "cmwnet", "cmwnet_sl"),
                     notes=("Ours: the best epoch of max(net, EMA) of step 2 (the authors' 'Best Accuracy').",
                            "Meta set: the first 10 training images per class of FGVC-Aircraft, CUB-200-2011 or "
                            "Stanford Cars (clean), matched to the web classes by name."))


def table10() -> Table:
    q = quoted
    cfg = "webvision_transfer.yaml"
    rows = [run_row("erm", "ERM", cfg, {"method": {"name": "erm", "weight_net": {"frozen": False}}}),
            q("mentornet", "MentorNet", "Jiang et al., ICML 2018 (quoted)"),
            q("mentormix", "MentorMix", "Jiang et al., ICML 2020 (quoted)"),
            q("har", "HAR", "Cao et al., ICLR 2021 (quoted)"),
            q("mile", "MILE", "quoted by the paper"),
            q("heteroscedastic", "Heteroscedastic", "Collier et al., CVPR 2021 (quoted)"),
            q("curriculumnet", "CurriculumNet", "Guo et al., ECCV 2018 (quoted)"),
            run_row("cmwnet_sl", "ERM + CMW-Net-SL (transferred)", cfg, needs="weight_net")]
    paper = _paper("""
erm             | 69.7 | 87.0 | 62.9 | 83.6
mentornet       | 70.8 | 88.0 | 62.5 | 83.0
mentormix       | 74.3 | 90.5 | 67.5 | 87.2
har             | 75.0 | 90.6 | 67.1 | 86.7
mile            | 76.5 | 90.9 | 68.7 | 86.4
heteroscedastic | 76.6 | 92.1 | 68.6 | 87.1
curriculumnet   | 79.3 | 93.6 | -    | -
cmwnet_sl       | 77.9 | 92.6 | 69.6 | 88.5
""", ["webvision"], [c.key for c in IMAGENET_WEBVISION])
    smoke = {"model": {"args": {"blocks": [1, 1, 1], "width": 0.125}},
             "data": {"batch_size": 4, "test_batch_size": 16}}
    return _table(10, "Table 10: top-1/top-5 accuracy (%) on full WebVision with a transferred CMW-Net "
                  "(Inception-ResNet-v2)", os.path.join("section6", "table10"), [Setting("webvision", label="WebVision")],
                  rows, IMAGENET_WEBVISION, paper, "best_max_ema", smoke, digits=1,
                     notes=("Ours: the epoch with the best WebVision top-1 of max(net, EMA) (the authors' "
                            "selection); ILSVRC12 numbers of the same model and epoch.",
                            "The weighting is learned on CIFAR-10 (35% Type-I + 30% asymmetric noise) and used "
                            "frozen; class -> family from K-means on WebVision's class counts."))


TABLES = {6: table6, 7: table7, 8: table8, 10: table10}
SMOKE_DATA = {"animal10n": "animal10n", "mini_webvision": "webvision", "webvision": "webvision",
              "web_bird": "webfg", "web_aircraft": "webfg", "web_car": "webfg"}
SMOKE_NAMES = {"mini_webvision": "mini_webvision_32px", "webvision": "webvision_80px",
               "web_bird": "web_bird_32px", "web_aircraft": "web_aircraft_32px", "web_car": "web_car_32px"}
REAL_DATA = {"animal10n": "animal10n", "mini_webvision": "webvision", "webvision": "webvision",
             "web_bird": "webfg", "web_aircraft": "webfg", "web_car": "webfg"}


def get_table(number: int | str) -> Table:
    try:
        n = int(number)
    except (TypeError, ValueError):
        n = None
    if n not in TABLES:
        raise CmwnetError(f"unknown table '{number}': tables here are {', '.join(map(str, sorted(TABLES)))} "
                          "(every table: python -m cmwnet.paper list)")
    return TABLES[n]()


# -- cells -------------------------------------------------------------------------------------------
def _dataset(table: Table, row: Row, setting: Setting) -> str:
    d = load_yaml(os.path.join(CONFIG_DIR, row.config))
    deep_update(d, copy.deepcopy(row.overrides or {}))
    deep_update(d, copy.deepcopy(setting.overrides))
    return d["data"]["name"]


SMOKE_RUN = {"optim": {"epochs": 2}, "run": {"device": "cpu", "max_steps": 2, "plot": False}}
SMOKE_PHASES = {"method": {"start_epoch": 1, "sl": {"warmup": 1}}}


def cell_overrides(table: Table, row: Row, setting: Setting, files: dict[str, str], data_root: str,
                   smoke: bool, step: int | None = None, step1_dir: str | None = None) -> dict:
    """The nested overrides of one cell (before the seed)."""
    d: dict = {}
    deep_update(d, copy.deepcopy(row.overrides or {}))
    deep_update(d, copy.deepcopy(setting.overrides))
    name = _dataset(table, row, setting)
    sub = (SMOKE_DATA if smoke else REAL_DATA)[name]
    deep_update(d, {"data": {"root": os.path.join(data_root, sub)}})
    if smoke:
        deep_update(d, {"data": {"name": SMOKE_NAMES.get(name, name)}})
        deep_update(d, copy.deepcopy(SMOKE_RUN))
        base = load_yaml(os.path.join(CONFIG_DIR, row.config))
        if base["method"]["name"] == "cmwnet_sl" or d.get("method", {}).get("name") in ("mwnet", "cmwnet"):
            deep_update(d, copy.deepcopy(SMOKE_PHASES))
        sched = base["optim"].get("schedule", {})
        if sched.get("milestones"):
            deep_update(d, {"optim": {"schedule": {"milestones": [1]}}})
        if sched.get("warmup_epochs"):
            deep_update(d, {"optim": {"schedule": {"warmup_epochs": 2}}})
        deep_update(d, copy.deepcopy(table.smoke))
    if row.needs == "weight_net":
        deep_update(d, {"method": {"weight_net": {"init": files["weight_net"]}}})
    if row.needs == "pretrained":
        deep_update(d, {"model": {"args": {"pretrained": files["pretrained"]}}})
    if step == 1:
        deep_update(d, {"model": {"args": {"freeze_features": True}}, "method": {"virtual_params": "head"}})
    if step == 2:
        deep_update(d, copy.deepcopy(table.step2))
        deep_update(d, {"model": {"args": {"init": os.path.join(step1_dir, CHECKPOINT)}}})
    return d


def build_cells(table: Table, out: str, seeds, data_root: str, files: dict[str, str], smoke: bool,
                epochs: int | None = None, filters: tuple[str, ...] = ()) -> tuple[list, list, dict]:
    """(step-1 cells, final cells, {(row, setting): [final cell names]}). Rows whose external file is
    missing are left out (their table cell says what they need)."""
    from .runner import Cell, overrides_from_dict, shorten

    first, final, names = [], [], {}
    for setting in table.settings:
        for row in table.run_rows():
            if filters and not any(f in f"{setting.key}/{row.key}" for f in filters):
                continue
            if row.needs and row.needs not in files:
                continue
            config = os.path.join(CONFIG_DIR, row.config)
            steps = (1, 2) if row.two_step else (None,)
            for seed in seeds:
                step1_dir = None
                for step in steps:
                    name = f"{setting.key}/{row.key}/" + (f"step1/s{seed}" if step == 1 else f"s{seed}")
                    d = cell_overrides(table, row, setting, files, data_root, smoke, step, step1_dir)
                    extra = []
                    if epochs is not None and not smoke:
                        full = load_yaml(config)
                        deep_update(full, copy.deepcopy(d))
                        extra = shorten(full, epochs)
                    cell = Cell(name, config, overrides_from_dict(d) + extra + [f"seed={seed}"],
                                f"{row.label}, {setting.label}" + (f", step {step}" if step else "") + f", seed {seed}")
                    (first if step == 1 else final).append(cell)
                    if step == 1:
                        step1_dir = os.path.join(out, name)
                    else:
                        names.setdefault((row.key, setting.key), []).append(name)
    return first, final, names


def all_cells(table: Table, seeds=DEFAULT_SEEDS, data_root: str = "DATA", smoke: bool = False,
              epochs: int | None = None, filters: tuple[str, ...] = (), out: str = "OUT",
              files: dict[str, str] | None = None) -> list:
    """`Table.cells` of a real-data table: step-1 cells, then the final ones (external files: placeholders
    unless given)."""
    files = {"weight_net": "WEIGHT_NET", "pretrained": "PRETRAINED"} if files is None else files
    first, final, _ = build_cells(table, out, seeds, data_root, files, smoke, epochs, filters)
    return first + final


# -- our numbers -------------------------------------------------------------------------------------
def run_numbers(history: list[dict], columns: list[Column], select: str) -> dict[str, float]:
    """The table's numbers of one finished run: `last` epoch of the net, or `best_max_ema`: the epoch
    and model (net or EMA) with the best test top-1, every column from that model and epoch."""
    def key(col: Column, ema: bool) -> str:
        prefix = {"test": "test", "imagenet": "imagenet"}[col.block]
        if ema:
            prefix = "ema" if col.block == "test" else f"{prefix}_ema"
        return f"{prefix}_top{col.k}"

    if select == "last":
        rec, ema = history[-1], False
    elif select == "best_max_ema":
        cands = [(h["test_top1"], -h["epoch"], False, h) for h in history]
        cands += [(h["ema_top1"], -h["epoch"], True, h) for h in history if "ema_top1" in h]
        _, _, ema, rec = max(cands, key=lambda c: (c[0], c[1], not c[2]))
    else:
        raise CmwnetError(f"unknown selection '{select}'")
    return {c.key: rec[key(c, ema)] for c in columns}


def collect(table: Table, out: str, names: dict,
            exclude: frozenset[str] | set[str] = frozenset()) -> dict[tuple[str, str, str], list[float]]:
    """(row, setting, column) -> values of the finished runs, except those named in `exclude`."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for (row, setting), runs in names.items():
        for name in runs:
            h = None if name in exclude else read_history(out, name)
            if h:
                for col, v in run_numbers(h, table.columns, table.select).items():
                    values.setdefault((row, setting, col), []).append(v)
    return values


def finished_names(table: Table, out: str) -> dict[tuple[str, str], list[str]]:
    """{(row, setting): finished seed runs} found under OUT (step 1 of two-step rows lies one level
    deeper, `step1/s<seed>`, so only the final runs are read)."""
    return {(r.key, s.key): seed_runs(out, f"{s.key}/{r.key}") for s in table.settings for r in table.run_rows()}


def _ours(vals: list[float] | None) -> str:
    if not vals:
        return "–"
    m, s = mean_std(vals)
    return f"{m:.2f}" if math.isnan(s) else f"{m:.2f} ± {s:.2f}"


def format_table(table: Table, values: dict, missing: dict[str, str], seeds) -> str:
    """Markdown: one line per row, for each setting x column the paper's number and ours."""
    heads, keys = [], []
    multi = len(table.settings) > 1
    for s in table.settings:
        for c in table.columns:
            heads.append(f"{s.label if multi else c.label}")
            keys.append((s.key, c.key))
    if table.average:
        heads.append("Average")
    lines = [f"## {table.title}", "",
             "| Method | " + " | ".join(f"{h} (paper) | {h} (ours)" for h in heads) + " |",
             "|---|" + "---|---|" * len(heads)]
    for row in table.rows:
        cells = []
        for s, c in keys:
            p = table.paper_number(row.key, s, c)
            ours = _ours(values.get((row.key, s, c))) if row.runs else "quoted"
            if row.runs and not values.get((row.key, s, c)) and row.key in missing:
                ours = missing[row.key]
            cells += [p.text(table.digits), ours]
        if table.average:
            ps = [table.paper_number(row.key, s.key).mean for s in table.settings]
            pa = Paper(sum(ps) / len(ps)) if all(v is not None for v in ps) else Paper(None)
            os_ = [values.get((row.key, s.key, "top1")) for s in table.settings]
            oa = "–" if not all(os_) else f"{sum(sum(v) / len(v) for v in os_) / len(os_):.2f}"
            cells += [pa.text(table.digits), oa if row.runs else "quoted"]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    lines += ["", f"Ours: mean ± std over seeds {', '.join(map(str, seeds))} (one seed: no std); '–': not run or "
              "not finished."]
    lines += [f"- {n}" for n in table.notes]
    quoted = [f"{r.label}: {r.source}" for r in table.rows if not r.runs]
    if quoted:
        lines.append("- Quoted rows: " + "; ".join(quoted) + ".")
    return "\n".join(lines) + "\n"


# -- external files and smoke data ---------------------------------------------------------------------
def prepare_weight_net(path: str, out: str, dry_run: bool = False) -> str:
    """A weight-net file ready for `weight_net.init`: ours as it is, the authors' layout converted
    (into OUT/weight_net/; with `dry_run`, only the path it would have)."""
    import torch

    from ..weight_transfer import AUTHORS_HEAD_ORDER, convert
    from ..weighting import FORMAT

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CmwnetError(f"--weight-net {path} not found") from None
    except Exception as e:  # noqa: BLE001
        raise CmwnetError(f"--weight-net {path} is unreadable ({type(e).__name__})") from None
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        return os.path.abspath(path)
    dst = os.path.join(out, "weight_net", "converted_" + os.path.splitext(os.path.basename(path))[0] + ".pt")
    if dry_run:
        return os.path.abspath(dst)
    convert(path, dst, AUTHORS_HEAD_ORDER)
    print(f"converted {path} (authors' layout, heads {AUTHORS_HEAD_ORDER}) -> {dst}")
    return os.path.abspath(dst)


def prepare_smoke(table: Table, out: str) -> tuple[str, dict[str, str]]:
    """Generated trees in the real formats (once per OUT) and stand-in weight files."""
    import torch

    from . import fake_trees as ft
    from ..models import create_model
    from ..weight_transfer import to_authors_layout
    from ..weighting import CMWNet

    root = os.path.abspath(os.path.join(out, "data"))
    marker = os.path.join(root, "{}.done")
    if not os.path.exists(marker.format("animal10n")):
        ft.make_animal10n(os.path.join(root, "animal10n"), per_class=[8, 8, 6, 6, 6, 4, 4, 4, 3, 3], test_per_class=2,
                          noise_rate=0.2)
        open(marker.format("animal10n"), "w").close()
    if not os.path.exists(marker.format("webvision")):
        ft.make_webvision(os.path.join(root, "webvision"), num_classes=6, per_class=[8, 6, 5, 4, 3, 2],
                          flickr_per_class=2, size=(40, 52), noise_rate=0.2)
        open(marker.format("webvision"), "w").close()
    if not os.path.exists(marker.format("webfg")):
        for i, sub in enumerate(("bird", "aircraft", "car")):
            ft.make_webfg(os.path.join(root, "webfg"), sub, num_classes=4, per_class=[6, 5, 4, 3], seed=i,
                          noise_rate=0.2)
        open(marker.format("webfg"), "w").close()
    files: dict[str, str] = {}
    fixtures = os.path.join(out, "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    torch.manual_seed(0)
    if any(r.needs == "weight_net" for r in table.rows):
        src = os.path.join(fixtures, "authors_layout_vnet.pth")
        if not os.path.exists(src):
            torch.save(to_authors_layout(CMWNet([0, 1, 2], 3)), src)
        files["weight_net"] = prepare_weight_net(src, out)
    args = table.smoke.get("model", {}).get("args", {})
    if table.number == 8:  # ImageNet VGG-16 in torchvision's layout, at the smoke's width
        path = os.path.join(fixtures, "vgg16_features_smoke.pth")
        if not os.path.exists(path):
            feats = create_model("bcnn", 4, **args).features
            torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
        files["pretrained"] = os.path.abspath(path)
    if table.number == 7:  # C2D's layout: {'model': {'module.encoder.<torchvision name>': ...}}, smoke-sized
        path = os.path.join(fixtures, "c2d_resnet50_smoke.pth")
        if not os.path.exists(path):
            sd = create_model("resnet50", 50, **args).state_dict()
            torch.save({"model": {f"module.encoder.{k}": v for k, v in sd.items() if not k.startswith("fc.")}}, path)
        files["pretrained"] = os.path.abspath(path)
    return root, files


def real_files(table: Table, a: argparse.Namespace, out: str) -> tuple[dict[str, str], dict[str, str]]:
    """(files given, row key -> why it is not run) for rows needing external files."""
    files, missing = {}, {}
    wn = a.weight_net or (TABLE5_WEIGHT_NET if os.path.exists(TABLE5_WEIGHT_NET) else None)
    for row in table.run_rows():
        if row.needs == "weight_net":
            if wn:
                files["weight_net"] = prepare_weight_net(wn, out, a.dry_run)
            else:
                missing[row.key] = "needs --weight-net"
        if row.needs == "pretrained":
            if a.pretrained:
                if not os.path.isfile(a.pretrained):
                    raise CmwnetError(f"--pretrained {a.pretrained} not found")
                files["pretrained"] = os.path.abspath(a.pretrained)
            else:
                missing[row.key] = "needs --pretrained"
    return files, missing


def check_data(table: Table, data_root: str, filters: tuple[str, ...]) -> None:
    """Fail before launching anything when a data set the cells need is missing (one line each)."""
    from ..data import folders

    needed = {_dataset(table, r, s) for s in table.settings for r in table.run_rows()
              if not filters or any(f in f"{s.key}/{r.key}" for f in filters)}
    for name in sorted(needed):
        root = os.path.join(data_root, REAL_DATA[name])
        if name == "animal10n":
            folders.read_animal10n(root)
        elif name in ("mini_webvision", "webvision"):
            if not os.path.isdir(os.path.join(root, "info")):
                raise folders._missing("WebVision info/ folder", os.path.join(root, "info"), "webvision")
            if not os.path.isfile(os.path.join(root, "imagenet", "val", "val.txt")):
                raise folders._missing("ImageNet val.txt", os.path.join(root, "imagenet", "val", "val.txt"), "imagenet")
        else:
            sub = name.split("_", 1)[1]
            if not os.path.isdir(os.path.join(root, f"web-{sub}")):
                raise folders._missing(f"WebFG-496 web-{sub}/ folder", os.path.join(root, f"web-{sub}"), "webfg")
