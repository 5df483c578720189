"""`python -m cmwnet.tools.sweep --config X.yaml --grid KEY=V1,V2 [--grid seed=1,2,3]`: a grid of own runs, one table.

Every combination of the grid's values is one run of the config (the table runner's cells: finished
runs are skipped, interrupted ones resume, runs go to parallel slots on GPUs or CPU cores). The runs
of one setting differ only by seed; the sweep ends in OUT/sweep.md and OUT/sweep.csv (mean ± std over
seeds of last and best test top-1, EMA top-1 and weight AUC where the runs have them, minutes per
run) and OUT/sweep_curves.png (learning curves, seeds of a setting in one colour).

Run folders are OUT/<setting>/s<seed>, the setting named by its grid values (`method-cmwnet__lr-0.05`);
OUT defaults to runs/sweep/<config name>. Rerunning the same command finishes what is missing; a grid
that changes a run's config under an existing folder is refused (use another --out).
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import sys
from dataclasses import dataclass

from ..errors import CmwnetError, OneLineParser, run_cli
from ..paper.runner import Cell, add_slot_options, cell_state, run_cells, slots_from_options
from .run_table import Row, markdown, run_metrics, write_tables

SEED = "seed"
_SAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def split_values(text: str) -> list[str]:
    """`a,b,[1,2]` -> ['a', 'b', '[1,2]']: commas inside brackets or quotes belong to the value."""
    values, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def _as_read(value: str) -> str:
    """A grid value as the config will read it (YAML), in a canonical text form."""
    import json

    import yaml

    try:
        return json.dumps(float(value))   # 0.1 and 1e-1 (which YAML reads as a string; the config as a number)
    except ValueError:
        pass
    try:
        return json.dumps(yaml.safe_load(value), sort_keys=True, default=str)
    except yaml.YAMLError:
        return value


@dataclass
class Axis:
    """One --grid: a config key and the values (as --set text) it takes."""
    key: str
    values: list[str]


def parse_grid(specs: list[str], sets: list[str]) -> list[Axis]:
    """The --grid options as axes; a malformed one is a one-line error saying what is wrong."""
    axes: list[Axis] = []
    set_keys = {s.split("=", 1)[0].strip() for s in sets if "=" in s}
    for spec in specs:
        if "=" not in spec:
            raise CmwnetError(f"--grid takes KEY=V1,V2,... (e.g. method.name=erm,cmwnet), got '{spec}'")
        key, raw = (part.strip() for part in spec.split("=", 1))
        values = split_values(raw)
        if not key or any(v == "" for v in values):
            raise CmwnetError(f"--grid {spec}: a key and non-empty values are needed (e.g. optim.lr=0.1,0.05)")
        if len(set(values)) != len(values) or len(set(map(_as_read, values))) != len(values):
            raise CmwnetError(f"--grid {key}: a value is repeated ({raw}; values are read as YAML, so 0.1 and 1e-1 "
                              "are one value)")
        if any(a.key == key for a in axes):
            raise CmwnetError(f"--grid {key} is given twice: give all its values in one --grid {key}=V1,V2")
        if key in set_keys:
            raise CmwnetError(f"{key} is both in --grid and in --set: keep one")
        if key == SEED and not all(re.fullmatch(r"-?\d+", v) for v in values):
            raise CmwnetError(f"--grid seed takes integers, got {raw}")
        axes.append(Axis(key, values))
    return axes


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each key's last part (`optim.lr` -> lr; `method.name` -> method) unless two keys share it; then the
    whole key."""
    def tail(key: str) -> str:
        parts = key.split(".")
        return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]

    last = {k: tail(k) for k in keys}
    return {k: (last[k] if list(last.values()).count(last[k]) == 1 else k) for k in keys}


def setting_name(assignment: dict[str, str], short: dict[str, str]) -> str:
    parts = [f"{short[k]}-{_SAFE.sub('_', v).strip('_') or 'x'}" for k, v in assignment.items()]
    return "__".join(parts)


def base_seed(config: str | None, sets: list[str]) -> int:
    from ..config import load_config

    return load_config(config, sets).seed


def make_cells(config: str | None, sets: list[str], axes: list[Axis], default_name: str) -> tuple[list[Cell], list[Row]]:
    """One cell per grid point, and the table's rows (one per setting, its seeds' cells in order)."""
    seed_axis = next((a for a in axes if a.key == SEED), None)
    seeds = [int(v) for v in seed_axis.values] if seed_axis else [base_seed(config, sets)]
    others = [a for a in axes if a.key != SEED]
    short = _short_names([a.key for a in others])
    cells: list[Cell] = []
    rows: list[Row] = []
    seen: dict[str, dict[str, str]] = {}
    for combo in itertools.product(*(a.values for a in others)):
        assignment = dict(zip((a.key for a in others), combo))
        setting = setting_name(assignment, short) if assignment else default_name
        if setting in seen:
            raise CmwnetError(f"grid values {seen[setting]} and {assignment} give the same folder name {setting}: "
                              "make the values differ in letters or digits")
        seen[setting] = assignment
        rows.append(Row({short[k]: v for k, v in assignment.items()}, expected=len(seeds)))
        for seed in seeds:
            overrides = list(sets) + [f"{k}={v}" for k, v in assignment.items()] + [f"{SEED}={seed}"]
            label = ", ".join(f"{short[k]}={v}" for k, v in assignment.items()) or default_name
            cells.append(Cell(f"{setting}/s{seed}", config, overrides, label=f"{label}, seed {seed}"))
    return cells, rows


def fill_rows(rows: list[Row], cells: list[Cell], out: str, configs: list | None = None) -> list[str]:
    """Put each finished cell's metrics into its row (cells are in row order, `expected` per row). Only a run
    whose folder holds this cell's config counts: a folder left by another sweep (another --set) is not this
    cell's result. Returns the names of the folders that hold another config."""
    it = iter(zip(cells, configs or [None] * len(cells)))
    other = []
    for row in rows:
        row.runs = []
        for _ in range(row.expected):
            cell, cfg = next(it)
            state = cell_state(cell, out, cfg)
            if state == "done":
                row.runs.append(run_metrics(os.path.join(out, cell.name)))
            elif state == "conflict":
                other.append(cell.name)
    return other


def draw_curves(cells: list[Cell], out: str, title: str) -> str | None:
    """OUT/sweep_curves.png from the runs that have metrics (None when none has any yet)."""
    from ..run_folder.curves import METRICS, Run, plot_curves, read_metrics, setting_of

    runs = [Run(c.name, setting_of(c.name), read_metrics(os.path.join(out, c.name, METRICS)))
            for c in cells if os.path.isfile(os.path.join(out, c.name, METRICS))]
    if not runs:
        return None
    return plot_curves(runs, os.path.join(out, "sweep_curves.png"), title=title)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.tools.sweep", description=__doc__.splitlines()[0],
                      epilog="example: python -m cmwnet.tools.sweep --config configs/digits_cmwnet.yaml "
                             "--grid method.name=erm,mwnet,cmwnet --grid seed=1,2,3 --jobs 2")
    p.add_argument("--config", "-c", help="the base YAML config of every run")
    p.add_argument("--grid", "-g", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and its values (repeatable; `seed=1,2,3` gives the seeds of each setting; "
                        "values holding commas go in brackets, e.g. optim.milestones=[60,80],[100,150])")
    p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                   help="an override shared by every run (repeatable)")
    p.add_argument("--out", help="folder of the runs and the table (default runs/sweep/<config name>)")
    add_slot_options(p, per_gpu=1, jobs_default="1")
    p.add_argument("--launch", choices=("subprocess", "worker", "inprocess", "submitit"), default="subprocess",
                   help="one process per run (default), one long-lived worker per slot, every run in this process, "
                   "or one cluster job per run through submitit (the flags below; docs/cluster.md)")
    p.add_argument("--device", default=None, help="run.device of every run (default: the config's)")
    from ..paper.submitit_launch import add_submitit_options

    add_submitit_options(p)
    p.add_argument("--dry-run", action="store_true", help="list the runs' commands and which are finished; run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ..paper.launch_options import check_launch_options

    a = parse_args(argv)
    check_launch_options(a)
    if a.config is None and not a.set:
        raise CmwnetError("--config is needed: the base config of every run, e.g. --config configs/digits_cmwnet.yaml")
    if not a.grid:
        raise CmwnetError("--grid is needed: at least one KEY=V1,V2 (e.g. --grid method.name=erm,cmwnet)")
    sets = list(a.set) + ([f"run.device={a.device}"] if a.device else [])
    axes = parse_grid(a.grid, sets)
    name = os.path.splitext(os.path.basename(a.config))[0] if a.config else "defaults"
    out = a.out or os.path.join("runs", "sweep", name)
    cells, rows = make_cells(a.config, sets, axes, name)
    owned = [k for k in [x.key for x in axes] + [o.split("=", 1)[0].strip() for o in sets] if k in ("run.out", "run.name")]
    if owned:
        raise CmwnetError(f"{owned[0]} is the sweep's to set (each run's folder is --out/<setting>/s<seed>): give --out "
                          "instead, and leave run.out / run.name out of --grid and --set")
    configs = [cell.resolve(out) for cell in cells]   # a typo in a key or value fails here, naming the run
    from ..engine import check_names

    for cell, cfg in zip(cells, configs):   # an unknown method, model, loss or data set: before any run starts
        try:
            check_names(cfg)
        except CmwnetError as e:
            raise CmwnetError(f"run {cell.name}: {e}") from None
    from ..paper import submitit_launch

    jobs = submitit_launch.options_from_args(a, os.path.abspath(out), dry_run=a.dry_run)
    if a.dry_run:
        for cell, cfg in zip(cells, configs):
            print(f"[{cell_state(cell, out, cfg)}] " + shlex.join(cell.command(out, python="python", write=False)))
        print(f"{len(cells)} runs ({len(rows)} settings x {rows[0].expected} seeds) into {out}")
        if jobs is not None:
            print(submitit_launch.plan(jobs, len(cells)))
        return 0
    device = a.device or configs[0].run.device
    if jobs is not None:
        from ..paper.runner import make_slots

        mode, parallel = submitit_launch.launch_options(jobs)
        report = run_cells(cells, out, make_slots(jobs=parallel, threads=1), mode)
    else:
        report = run_cells(cells, out, slots_from_options(a, device), a.launch)
    conflicts = fill_rows(rows, cells, out, configs)
    if conflicts:   # the folder holds another sweep: its table stays as it is
        print(f"{len(conflicts)} run folder(s) in {out} hold another sweep's config (e.g. {conflicts[0]}); its "
              "sweep.md, sweep.csv and sweep_curves.png were left as they are: give this sweep its own --out",
              file=sys.stderr)
        return 1
    title = f"sweep of {a.config or 'the defaults'}: " + "; ".join(f"{x.key} in {{{', '.join(x.values)}}}" for x in axes)
    if a.set:
        title += "; with " + ", ".join(a.set)
    md, cs = write_tables(rows, out, "sweep", title=f"**{title}**")
    png = draw_curves(cells, out, title)
    print("\n" + markdown(rows))
    print(f"{report.summary()}; table: {md}, {cs}" + (f"; curves: {png}" if png else ""))
    if conflicts:
        print(f"{len(conflicts)} run folder(s) in {out} hold another sweep's config (e.g. {conflicts[0]}), so their "
              "rows are empty here: give this sweep its own --out", file=sys.stderr)
        return 1
    if not report.ok:
        print("not every run finished: rerun the same command to finish the rest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
