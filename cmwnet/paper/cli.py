"""`python -m cmwnet.paper run N | list [N] | report N OUT`: the one command line of the paper wing.

N is a table number (1-8, 10) or fig9. `run` runs every cell of it (skipping finished ones, resuming
interrupted ones) and prints it beside the paper's numbers; `list` shows the tables or one table's
cells; `report` prints a table again from any folder of runs. Options a table does not use are refused.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import CmwnetError, run_cli
from . import report, tables, tables_real
from .registry import KEYS, get_table, kind
from .cpu_tables import CPU_LIKE, SCALES
from .run import run_table
from .launch_options import check_launch_options
from .runner import add_slot_options

# options beyond the shared ones, and the kinds of table they apply to
ONLY = {"settings": ("section4",), "noise_dir": ("section4",), "weight_net": ("real",), "pretrained": ("real",),
        "datasets": ("figure",), "rates": ("figure",)}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """`--settings`, the same on run, list and report."""
    parser.add_argument("--settings", nargs="+", metavar="KEY", help="Tables 1-5: only these of the table's settings "
                        "(e.g. cifar10_if50); at --scale cpu/full any CIFAR-10 setting of the paper's table, trained "
                        "with the scale's schedule (default: the scale's own; `list N` shows the keys)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmwnet.paper", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run every cell of a table, then print it")
    r.add_argument("table", help=f"table: {', '.join(KEYS)}")
    r.add_argument("--out", help="folder of the runs and the table (relative to the current directory; default "
                   "runs/section4, runs/section5/tableN, runs/section6/table10, runs/section7; --smoke: under runs/smoke)")
    r.add_argument("--scale", default="paper", choices=SCALES, help="paper (default): the paper's data "
                   "sets, models and schedules; cpu: the table's CIFAR-10 settings with ResNet-8 and a 20-epoch "
                   "schedule chosen on held-out training images, seeds 1 2, two one-thread runs at a time, into "
                   "runs/cpu, from data/cifar10-jpeg.npz (Tables 1, 2, 4, 5, fig9); full: Table 2 on all 45,000 "
                   "images, 25 epochs, seed 1, into runs/cpu_full")
    r.add_argument("--data-root", default=None, help="Tables 1-5, fig9: the folder holding cifar-10-batches-py / "
                   "cifar-100-python, or cifar10-jpeg.npz (CIFAR-10 only); Tables 6-10: the folder holding animal10n/, "
                   "webvision/ (with imagenet/val/) and webfg/; ignored with --smoke (default: data; --scale cpu: "
                   "data/cifar10-jpeg.npz)")
    add_slot_options(r, per_gpu=None, jobs_default="1; with --smoke or for fig9: the number of cores")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds per cell (default 1 2 3; --smoke "
                   "and fig9: 1)")
    r.add_argument("--epochs", type=int, default=None, help="shortened schedule: this many epochs per run, every "
                   "milestone, warm-up and start epoch scaled in proportion (fig9: stop after this many epochs)")
    r.add_argument("--smoke", action="store_true", help="generated data in each data set's format, tiny models, a "
                   "few steps on the CPU: every cell end to end in seconds (CI)")
    _add_settings(r)
    r.add_argument("--filter", action="append", default=[], help="run only cells whose 'setting/row' contains this "
                   "text (repeatable), e.g. --filter cifar10_ --filter /cmwnet")
    r.add_argument("--launch", choices=("subprocess", "worker", "inprocess", "submitit"), default=None,
                   help="one process per run (default), one long-lived worker per slot, every run inside this "
                   "process (smoke defaults: worker for Tables 1-5 and fig9, inprocess for 6-10), or one cluster "
                   "job per run through submitit (the flags below; docs/cluster.md)")
    r.add_argument("--device", default=None, help="run.device of every cell (default: auto; --smoke: cpu)")
    from .submitit_launch import add_submitit_options

    add_submitit_options(r)
    r.add_argument("--dry-run", action="store_true", help="list the cells' commands, then their epochs, iterations "
                   "and estimated device-hours, and whether the data is where they expect it; run nothing")
    r.add_argument("--bench", default=os.path.join("runs", "bench", "bench.json"), help="--dry-run: the bench JSON "
                   "(python -m cmwnet.tools.bench --json PATH on the target GPU) whose speed the estimate uses "
                   "(default runs/bench/bench.json; without one, an assumed speed, said so)")
    r.add_argument("--noise-dir", help="Tables 4-5: folder of the feature-dependent noisy-label files "
                   "(default OUT/noisy_labels)")
    r.add_argument("--weight-net", help="Tables 6, 10: frozen weighting for the transfer rows: the authors' "
                   f"vnet_119.pth or our weight_net.pt (default: {tables_real.TABLE5_WEIGHT_NET} when it exists)")
    r.add_argument("--pretrained", help="Table 7: the C2D ResNet-50 checkpoint; Table 8: torchvision's ImageNet "
                   "VGG-16 weights (vgg16-397923af.pth)")
    r.add_argument("--datasets", nargs="+", choices=("cifar10", "cifar100"), help="fig9: data sets (default both)")
    r.add_argument("--rates", type=float, nargs="+", help="fig9: partial rates on every selected data set "
                   "(default: the paper's, 0.1 0.3 0.5 0.7 on CIFAR-10, 0.03 0.05 0.07 0.10 on CIFAR-100)")
    ls = sub.add_parser("list", help="list the tables, or the cells of one table")
    ls.add_argument("table", nargs="?")
    ls.add_argument("--smoke", action="store_true")
    _add_settings(ls)
    ls.add_argument("--scale", default="paper", choices=SCALES, help="the cells at the paper's or at a CPU scale")
    rep = sub.add_parser("report", help="print a table (or every table found) from a folder of runs")
    rep.add_argument("table", help=f"{', '.join(KEYS)}, or 'all' (every table with a finished run in OUT)")
    rep.add_argument("out", help="the folder the runs are in (a run's --out)")
    rep.add_argument("--to", help="where to write the table's files (default: OUT)")
    rep.add_argument("--no-figure", action="store_true", help="skip the weighting-function figure (Tables 1-5)")
    rep.add_argument("--scale", default="paper", choices=SCALES, help="the table's rows and settings at the "
                     "paper's or at a CPU scale (what the runs in OUT were trained at)")
    _add_settings(rep)
    return p.parse_args(argv)


def cmd_list(a: argparse.Namespace) -> int:
    if a.table is None and a.settings:
        raise CmwnetError("--settings needs a table: `python -m cmwnet.paper list N --settings KEY`")
    if a.table is None:
        for key in KEYS:
            spec = get_table(key)
            if kind(spec) == "figure":
                print(f"fig9: {spec.title} ({len(spec.settings)} settings x {len(spec.rows)} methods)")
            else:
                print(f"{key}: {spec.title} ({len(spec.settings)} settings x {len(spec.run_rows())} rows run by us, "
                      f"{len(spec.rows) - len(spec.run_rows())} quoted or not reproduced)")
        return 0
    spec = get_table(a.table, a.scale, a.settings)
    extra = {}
    if kind(spec) == "section4":
        from .cpu_tables import DEFAULT_OUTS

        out = tables.SMOKE_OUT if a.smoke else DEFAULT_OUTS.get(a.scale, tables.DEFAULT_OUT)
        extra = {"noise_dir": os.path.join(out, "noisy_labels")}
    for cell in spec.cells(seeds=(1,), smoke=a.smoke, **extra):
        print(f"{cell.name}: {' '.join(cell.overrides)}")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    spec = get_table(a.table, a.scale, a.settings)
    if a.scale in CPU_LIKE:
        from .cpu_tables import apply_cpu_defaults

        apply_cpu_defaults(a)
    elif a.data_root is None:
        a.data_root = "data"
    k = kind(spec)
    for opt, kinds in ONLY.items():
        if getattr(a, opt) is not None and k not in kinds:
            raise CmwnetError(f"--{opt.replace('_', '-')} does not apply to table {a.table}")
    check_launch_options(a, table=a.table)
    check_filters(spec, a.table, a.filter)
    return run_table(spec, a)


def check_filters(spec, table: str, filters: list[str]) -> None:
    """A --filter that matches no cell used to run nothing and write an empty table: refuse it, listing
    the cell names."""
    if not filters:
        return
    if kind(spec) == "figure":
        names = sorted({c.name.rsplit("/", 1)[0] for c in spec.cells((1,), "DATA", False, None)})
    else:
        names = [f"{s.key}/{r.key}" for s in spec.settings for r in spec.run_rows()]
    if not any(f in name for f in filters for name in names):
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        raise CmwnetError(f"--filter {' '.join(filters)} matches no cell of table {table}: a filter is a part of a cell "
                          f"name; the cells are {shown}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.command == "list":
        return cmd_list(a)
    if a.command == "report":
        keys = None if a.table == "all" else [a.table]
        if a.settings and keys is None:
            raise CmwnetError("--settings needs one table: name it instead of 'all'")
        return report.report_main(a.out, keys, a.to, not a.no_figure, a.scale, a.settings)
    return cmd_run(a)


def console_main() -> None:
    """The `cmwnet-paper` console script: the same one-line errors as `python -m cmwnet.paper`."""
    sys.exit(run_cli(main))


if __name__ == "__main__":
    console_main()
