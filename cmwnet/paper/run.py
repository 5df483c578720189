"""Run one table or figure: prepare its data, run its cells through `runner.run_cells` (skip finished,
resume interrupted; subprocess, worker or in-process launch), then print it with `report.render`.

One function per kind of table, because they differ in what a cell needs before it can start:
Tables 4-5 train PLC's posterior network and write label files first, Table 8 runs two steps, rows of
Tables 6, 7, 10 need an external file; the loop that runs cells and the report are shared.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..errors import CmwnetError
from . import partial_figure, report, tables, tables_real
from .runner import Cell, RunReport, make_slots, run_cells, visible_gpus


def _slots(a: argparse.Namespace, device: str | None, smoke: bool):
    use_gpu = device in (None, "auto") or str(device).startswith("cuda")
    gpus = (a.gpus or "all") if use_gpu and (a.gpus or visible_gpus()) else None
    jobs = a.jobs or ((os.cpu_count() or 1) if smoke else 1)
    # tiny smoke models gain nothing from intra-op threads, and spinning threads hurt on a busy machine
    return make_slots(gpus, a.per_gpu or 1, jobs, a.threads or (1 if smoke else None))


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


def _conflicts(reports: list[RunReport]) -> set[str]:
    return {n for r in reports for n, st in r.statuses.items() if st.status == "conflict"}


def run_section4(table: tables.Table, a: argparse.Namespace) -> int:
    """Tables 1-5."""
    out = os.path.abspath(a.out or (tables.SMOKE_OUT if a.smoke else tables.DEFAULT_OUT))
    seeds = tuple(a.seeds or ((1,) if a.smoke else tables.DEFAULT_SEEDS))
    noise_dir = os.path.abspath(a.noise_dir or os.path.join(out, "noisy_labels"))
    filters = tuple(a.filter)
    selected = [s for s in table.settings
                if not filters or any(f in f"{s.key}/{r.key}" for f in filters for r in table.run_rows())]
    print(f"{table.title}\nruns and tables in {out}")
    datasets = {s.dataset for s in selected}
    if a.dry_run:
        data_root = os.path.abspath(a.data_root)
    elif a.smoke:
        data_root = tables.prepare_smoke_data(out, datasets)
    else:
        data_root = tables.prepare_real_data(a.data_root, out, datasets)
    cells = table.cells(seeds, data_root, noise_dir, a.smoke, a.epochs, filters)
    posteriors = tables.posterior_cells(table, selected, data_root, a.smoke)
    device = a.device or ("cpu" if a.smoke else None)
    _with_device(cells + list(posteriors.values()), device)
    if a.dry_run:
        for c in list(posteriors.values()) + cells:
            print(shlex.join(c.command(out, write=False)))
        return 0
    slots = _slots(a, device, a.smoke)
    mode = a.launch or ("worker" if a.smoke else "subprocess")
    interrupted = blocked = False
    reports = []
    if posteriors:
        print("feature-dependent noise: PLC's posterior network first (one run per data set)")
        rep = run_cells(list(posteriors.values()), out, slots, mode)
        reports.append(rep)
        interrupted = rep.interrupted
        if rep.ok:
            tables.make_noise_files(table, selected, posteriors, out, noise_dir, strict=not a.smoke)
        else:
            blocked = True
            print("the posterior network did not finish, so the table's cells wait for it (rerun to resume)")
    if not (interrupted or blocked):
        reports.append(run_cells(cells, out, slots, mode))
    return _finish(report.write_table(table, out, exclude=_conflicts(reports)), reports, out)


def run_real(table: tables_real.RealTable, a: argparse.Namespace) -> int:
    """Tables 6, 7, 8, 10 (and the Sec. 6 transfer row of Table 6)."""
    out = os.path.abspath(a.out or os.path.join(tables_real.SMOKE_OUT if a.smoke else tables_real.DEFAULT_OUT,
                                                table.out_dir))
    seeds = tuple(a.seeds or ((1,) if a.smoke else tables_real.DEFAULT_SEEDS))
    filters = tuple(a.filter)
    print(f"{table.title}\nruns and table in {out}", flush=True)
    if a.smoke:
        data_root, files = tables_real.prepare_smoke(table, out)
        missing = {r.key: f"needs --{r.needs.replace('_', '-')}" for r in table.run_rows()
                   if r.needs and r.needs not in files}
    else:
        data_root = os.path.abspath(a.data_root)
        if not a.dry_run:
            tables_real.check_data(table, data_root, filters)
        files, missing = tables_real.real_files(table, a, out)
    first, final, names = tables_real.build_cells(table, out, seeds, data_root, files, a.smoke, a.epochs, filters)
    if not first and not final:   # every selected row needs a file not given: say so (it used to print nothing)
        needs = sorted({why for why in missing.values()})
        raise CmwnetError(f"table {table.number}: no cell can run, every selected row ({', '.join(sorted(missing))}) "
                          f"{' or '.join(needs)}: give {' and '.join(n.split()[-1] + ' PATH' for n in needs)}")
    device = a.device or ("cpu" if a.smoke else None)
    _with_device(first + final, device)
    if a.dry_run:
        for c in first + final:
            print(shlex.join(c.command(out, write=False)))
        return 0
    slots = _slots(a, device, a.smoke)
    mode = a.launch or ("inprocess" if a.smoke else "subprocess")
    reports = []
    if first:
        print("step 1 (frozen features) of the two-step rows first", flush=True)
        reports.append(run_cells(first, out, slots, mode))
    if not (reports and reports[-1].interrupted):
        blocked = {c.name.replace("/step1/", "/") for c in first
                   if reports and reports[0].statuses[c.name].status not in ("ran", "skipped")}
        todo = [c for c in final if c.name not in blocked]
        if todo:
            reports.append(run_cells(todo, out, slots, mode))
    text = tables_real.format_table(table, tables_real.collect(table, out, names, _conflicts(reports)), missing, seeds)
    from ..checkpoint import atomic_write_text

    atomic_write_text(text, os.path.join(out, f"table{table.number}.md"))
    curves = report.setting_curves(table, out, os.path.join(out, f"table{table.number}_curves"))
    if curves:
        text += f"\nwritten: {len(curves)} learning-curve PNGs in {os.path.dirname(curves[0])}\n"
    return _finish(text, reports, out)


def run_figure(fig: partial_figure.Figure9, a: argparse.Namespace) -> int:
    """Fig. 9: PRODEN with and without CMW-Net."""
    out = os.path.abspath(a.out or os.path.join("runs", "smoke" if a.smoke else "", "section7"))
    if a.epochs is not None and a.epochs < 1:
        raise CmwnetError(f"--epochs must be >= 1, got {a.epochs}")
    datasets = a.datasets or sorted(fig.rates)
    if a.smoke:
        from .synthetic import ensure_synthetic_cifar

        data_root = os.path.join(out, "data")
        if not a.dry_run:
            for ds in datasets:
                ensure_synthetic_cifar(data_root, ds, **partial_figure.SMOKE_DATA[ds])
    else:
        data_root = os.path.abspath(a.data_root) if a.dry_run else tables.prepare_real_data(a.data_root, out,
                                                                                            set(datasets))
    rates = {ds: tuple(a.rates) if a.rates else fig.rates[ds] for ds in datasets}
    bad = [r for rs in rates.values() for r in rs if not 0 < r <= 1]
    if bad:
        raise CmwnetError(f"--rates must lie in (0, 1], got {bad[0]}")
    seeds = a.seeds or [1]
    cells = [c for c in partial_figure.make_cells(rates, seeds, data_root, a.smoke, a.epochs)
             if not a.filter or any(f in c.name for f in a.filter)]
    switch = 2 if a.smoke else fig.switch_epoch
    if a.epochs is not None and not a.smoke and a.epochs <= switch:
        print(f"note: --epochs {a.epochs} ends before CMW-Net starts (epoch {switch}): both curves are PRODEN",
              file=sys.stderr)
    device = a.device or ("cpu" if a.smoke else None)
    _with_device(cells, device)
    if a.dry_run:
        for c in cells:
            print(shlex.join(c.command(out, write=False)))
        return 0
    use_gpu = device in (None, "auto") or str(device).startswith("cuda")
    gpus = (a.gpus or "all") if use_gpu and (a.gpus or visible_gpus()) else None
    slots = make_slots(gpus, a.per_gpu or 4, a.jobs or (os.cpu_count() or 1), a.threads or (1 if a.smoke else None))
    print(f"Fig. 9 (partial labels): {len(cells)} runs in {out}", flush=True)
    rep = run_cells(cells, out, slots, a.launch or ("worker" if a.smoke else "subprocess"))
    text = partial_figure.write_figure(out, rates, seeds, switch)
    print(f"\n{text}")
    if rep.interrupted:
        return 130
    return 0 if rep.ok else 1


RUNNERS = {"section4": run_section4, "real": run_real, "figure": run_figure}
