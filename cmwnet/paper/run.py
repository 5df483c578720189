"""Run one table or figure: `run_table` is the one launch function of Tables 1-10 and Fig. 9. It asks
the table's kind for a `Plan` (its data prepared, its cells in stages), lists them (--dry-run) or runs
the stages through `runner.run_cells` (skip finished, resume interrupted; subprocess, worker or
in-process launch), then writes the table with `report.write_table` (Markdown, CSV, figures).

The kinds differ only in what a cell needs before it can start: Tables 4-5 train PLC's posterior
network and write label files first (a first stage), Table 8 runs two steps (a first stage whose
failed cells hold back their second step), rows of Tables 6, 7, 10 need an external file.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..errors import CmwnetError
from . import partial_figure, report, tables, tables_real
from .runner import Cell, RunReport, run_cells, slots_from_options
from .schema import Table


def _with_device(cells: list[Cell], device: str | None) -> None:
    if device:
        for c in cells:
            c.overrides.append(f"run.device={device}")


def _finish(text: str, reports: list[RunReport], out: str) -> int:
    print()
    print(text, flush=True)
    if any(r.interrupted for r in reports):
        return 130
    failed = [n for r in reports for n, s in r.statuses.items() if s.status in ("failed", "conflict")]
    if failed:
        print(f"{len(failed)} run(s) failed or blocked: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}; "
              f"see the logs in {os.path.join(out, 'logs')}", file=sys.stderr)
        return 1
    return 0


def _data_line(check: Callable[[], object], root: str) -> str:
    """--dry-run: one comment line saying whether the cells' data is where they expect it."""
    try:
        check()
    except CmwnetError as e:
        return f"# data: MISSING: {e}"
    return f"# data: found under {root}"


def _conflicts(reports: list[RunReport]) -> set[str]:
    return {n for r in reports for n, st in r.statuses.items() if st.status == "conflict"}


@dataclass
class Stage:
    """Cells that run together. `note` is printed first; `hold(reports)` names cells of this stage that
    wait (an earlier stage did not finish what they start from); `done(report)` runs after the stage and
    says whether the next stages may start."""
    cells: list[Cell]
    note: str = ""
    hold: Callable[[list[RunReport]], set[str]] | None = None
    done: Callable[[RunReport], bool] | None = None


@dataclass
class Plan:
    """What a table's run needs: where it goes, its stages, how to launch, how to write the table."""
    table: Table
    out: str
    stages: list[Stage]
    seeds: tuple[int, ...]
    device: str | None
    launch: str
    per_gpu: int = 1
    all_cores: bool = False              # one slot per core even without --smoke (Fig. 9's small runs)
    header: str = ""
    data_lines: list[str] = field(default_factory=list)   # --dry-run: where the data is, or what is missing
    report: dict = field(default_factory=dict)   # extra arguments of report.write_table


def _plan_section4(table: Table, a: argparse.Namespace) -> Plan:
    """Tables 1-5: (Tables 4-5) PLC's posterior network and the label files, then the cells."""
    out = os.path.abspath(a.out or (tables.SMOKE_OUT if a.smoke else tables.DEFAULT_OUT))
    seeds = tuple(a.seeds or ((1,) if a.smoke else tables.DEFAULT_SEEDS))
    noise_dir = os.path.abspath(a.noise_dir or os.path.join(out, "noisy_labels"))
    filters = tuple(a.filter)
    selected = [s for s in table.settings
                if not filters or any(f in f"{s.key}/{r.key}" for f in filters for r in table.run_rows())]
    print(f"{table.title}\nruns and tables in {out}")
    datasets = {s.dataset for s in selected}
    data_lines = []
    if a.dry_run:
        data_root = os.path.abspath(a.data_root)
        data_lines = [] if a.smoke else [_data_line(lambda: tables.check_real_data(a.data_root, datasets), data_root)]
    elif a.smoke:
        data_root = tables.prepare_smoke_data(out, datasets)
    else:
        data_root = tables.prepare_real_data(a.data_root, out, datasets)
    cells = table.cells(seeds, data_root, noise_dir, a.smoke, a.epochs, filters)
    posteriors = tables.posterior_cells(table, selected, data_root, a.smoke)
    stages = []
    if posteriors:
        def noise_files(rep: RunReport) -> bool:
            if rep.ok:
                tables.make_noise_files(table, selected, posteriors, out, noise_dir, strict=not a.smoke)
                return True
            print("the posterior network did not finish, so the table's cells wait for it (rerun to resume)")
            return False
        stages.append(Stage(list(posteriors.values()), "feature-dependent noise: PLC's posterior network first "
                            "(one run per data set)", done=noise_files))
    stages.append(Stage(cells))
    return Plan(table, out, stages, seeds, a.device or ("cpu" if a.smoke else None),
                a.launch or ("worker" if a.smoke else "subprocess"), data_lines=data_lines)


def _plan_real(table: Table, a: argparse.Namespace) -> Plan:
    """Tables 6, 7, 8, 10 (and the Sec. 6 transfer row of Table 6): external files, two-step rows."""
    out = os.path.abspath(a.out or os.path.join(tables_real.SMOKE_OUT if a.smoke else tables_real.DEFAULT_OUT,
                                                table.out_dir))
    seeds = tuple(a.seeds or ((1,) if a.smoke else tables_real.DEFAULT_SEEDS))
    filters = tuple(a.filter)
    data_lines: list[str] = []
    print(f"{table.title}\nruns and table in {out}", flush=True)
    if a.smoke:
        data_root, files = tables_real.prepare_smoke(table, out)
        missing = {r.key: f"needs --{r.needs.replace('_', '-')}" for r in table.run_rows()
                   if r.needs and r.needs not in files}
    else:
        data_root = os.path.abspath(a.data_root)
        if not a.dry_run:
            tables_real.check_data(table, data_root, filters)
        else:
            data_lines = [_data_line(lambda: tables_real.check_data(table, data_root, filters), data_root)]
        files, missing = tables_real.real_files(table, a, out)
    first, final, names = tables_real.build_cells(table, out, seeds, data_root, files, a.smoke, a.epochs, filters)
    if not first and not final:   # every selected row needs a file not given: say so (it used to print nothing)
        needs = sorted({why for why in missing.values()})
        raise CmwnetError(f"table {table.number}: no cell can run, every selected row ({', '.join(sorted(missing))}) "
                          f"{' or '.join(needs)}: give {' and '.join(n.split()[-1] + ' PATH' for n in needs)}")

    def step1_failed(reports: list[RunReport]) -> set[str]:
        return {c.name.replace("/step1/", "/") for c in first
                if reports and reports[0].statuses[c.name].status not in ("ran", "skipped")}
    stages = ([Stage(first, "step 1 (frozen features) of the two-step rows first")] if first else []) + \
        [Stage(final, hold=step1_failed if first else None)]
    return Plan(table, out, stages, seeds, a.device or ("cpu" if a.smoke else None),
                a.launch or ("inprocess" if a.smoke else "subprocess"), data_lines=data_lines,
                report={"missing": missing, "names": names, "seeds": seeds})


def _plan_figure(fig: Table, a: argparse.Namespace) -> Plan:
    """Fig. 9: PRODEN with and without CMW-Net, at the selected data sets and partial rates."""
    out = os.path.abspath(a.out or os.path.join("runs", "smoke" if a.smoke else "", "section7"))
    if a.epochs is not None and a.epochs < 1:
        raise CmwnetError(f"--epochs must be >= 1, got {a.epochs}")
    paper_rates = partial_figure.rates_of(fig)   # the paper's, or the CPU scale's
    datasets = a.datasets or sorted(paper_rates)
    missing = [ds for ds in datasets if ds not in paper_rates and not a.rates]
    if missing:
        raise CmwnetError(f"fig9 at {fig.scale} scale has no rates for {', '.join(missing)}: give --rates, or leave "
                          "out --datasets")
    if a.smoke:
        from .synthetic import ensure_synthetic_cifar

        data_root = os.path.join(out, "data")
        if not a.dry_run:
            for ds in datasets:
                ensure_synthetic_cifar(data_root, ds, **partial_figure.SMOKE_DATA[ds])
    else:
        data_root = os.path.abspath(a.data_root) if a.dry_run else tables.prepare_real_data(a.data_root, out,
                                                                                            set(datasets))
    rates = {ds: tuple(a.rates) if a.rates else paper_rates[ds] for ds in datasets}
    bad = [r for rs in rates.values() for r in rs if not 0 < r <= 1]
    if bad:
        raise CmwnetError(f"--rates must lie in (0, 1], got {bad[0]}")
    seeds = tuple(a.seeds or [1])
    fig = partial_figure.figure9(rates, fig.scale)          # the settings selected
    fig.switch_epoch = 2 if a.smoke else fig.switch_epoch
    cells = fig.cells(seeds, data_root, a.smoke, a.epochs, tuple(a.filter))
    if a.epochs is not None and not a.smoke and a.epochs <= fig.switch_epoch:
        print(f"note: --epochs {a.epochs} ends before CMW-Net starts (epoch {fig.switch_epoch}): both curves are PRODEN",
              file=sys.stderr)
    return Plan(fig, out, [Stage(cells)], seeds, a.device or ("cpu" if a.smoke else None),
                a.launch or ("worker" if a.smoke else "subprocess"), per_gpu=4, all_cores=True,
                header=f"Fig. 9 (partial labels): {len(cells)} runs in {out}", report={"seeds": list(seeds)})


PLANS: dict[str, Callable[[Table, argparse.Namespace], Plan]] = {
    "section4": _plan_section4, "real": _plan_real, "figure": _plan_figure}


def run_table(table: Table, a: argparse.Namespace) -> int:
    """The one launch function of every table and Fig. 9: plan, list (--dry-run) or run, then write it."""
    from . import submitit_launch

    plan = PLANS[table.kind](table, a)
    cells = [c for st in plan.stages for c in st.cells]
    _with_device(cells, plan.device)
    jobs = submitit_launch.options_from_args(a, plan.out, dry_run=a.dry_run)   # --launch submitit: cluster jobs
    if a.dry_run:
        for c in cells:
            print(shlex.join(c.command(plan.out, write=False)))
        from .cost import cpu_speed, summarize

        cpu = table.scale in ("cpu", "full")
        lines = summarize(cells, plan.out, getattr(a, "bench", None), cpu_speed() if cpu else None,
                          slots=(a.jobs or 1) if cpu else 1)
        for line in lines + plan.data_lines:
            print(line)
        if jobs is not None:
            print(submitit_launch.plan(jobs, len(cells)))
        return 0
    if jobs is not None:
        from .runner import make_slots

        plan.launch, parallel = submitit_launch.launch_options(jobs)
        slots = make_slots(jobs=parallel, threads=1)
    else:
        slots = slots_from_options(a, plan.device, a.smoke, plan.per_gpu, plan.all_cores)
    if plan.header:
        print(plan.header, flush=True)
    reports: list[RunReport] = []
    for st in plan.stages:
        held = st.hold(reports) if st.hold else set()
        todo = [c for c in st.cells if c.name not in held]
        if not todo:
            continue
        if st.note:
            print(st.note, flush=True)
        rep = run_cells(todo, plan.out, slots, plan.launch)
        reports.append(rep)
        go_on = st.done(rep) if st.done is not None else True
        if rep.interrupted or not go_on:
            break
    text = report.write_table(plan.table, plan.out, exclude=_conflicts(reports), **plan.report)
    return _finish(text, reports, plan.out)
