"""Real-data evidence at CPU scale: does the learned weighting rank clean images above mislabelled ones,
and does it beat ERM, on the offline CIFAR-10 copy within an hour on a 2-core CPU?

    bash section4/cpu_scale.sh [--data-root data/cifar10-jpeg.npz] [--out runs/cpu_scale] [--seeds 1 2]

Two settings, each a base config plus one override set per method (`python -m cmwnet.paper.cpu_scale --dry-run`
prints every command):
- `noisy`: configs/cpu_noisy.yaml, 40% symmetric noise: ERM, MW-Net, CMW-Net, CMW-Net-SL;
- `lt`: configs/cpu_lt.yaml, CIFAR-10-LT with imbalance factor 100: ERM, MW-Net, CMW-Net.
Both hold out 5,000 training images with their true labels (`data.val_size`), on which the settings were
chosen: the test split was only read once they were fixed. The script runs the cells two at a time with one
thread each (skipping finished cells, resuming interrupted ones), then prints per method the test and
validation top-1 (best and last epoch, mean ± std over seeds), the last epoch's weight AUC (clean vs
mislabelled) and mean weights, checks the targets of issue 9, and writes OUT/cpu_scale.md, .csv and
OUT/cpu_scale_weighting.png (every learned weighting function over a histogram of the last epoch's
losses).
`--scale full` (issue 15) is the larger preset: all 45,000 training images left after the val split,
configs/cpu_full_sym.yaml and cpu_full_asym.yaml (40% symmetric and 40% asymmetric noise), the same four
methods with the forward-mode meta-gradient, 25 epochs, one seed, into runs/cpu_full; it checks issue 15's
targets instead (method order, weight AUC, and whether the regime is one where noise hurts: ERM's last epoch
2 points below its best, or the EMA teacher above the labels' accuracy). `--scale full --diagnose` adds 7 runs
that take its misses apart (DIAGNOSTIC_ROWS: each method with the other's meta set, CMW-Net-SL's correction
from epoch 13) and checks the targets again on like data.
`--smoke` runs every cell for a few steps on generated data (what CI runs).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import CmwnetError, run_cli
from .runner import Cell, load_results, make_slots, mean_std, run_cells

from ..resources import CONFIG_DIR  # the configs ship inside the package
DEFAULT_DATA = os.path.join("data", "cifar10-jpeg.npz")   # inside the checkout (git-ignored)
DEFAULT_OUT = os.path.join("runs", "cpu_scale")
DEFAULT_SEEDS = (1, 2)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    overrides: tuple[str, ...]
    minutes: float          # measured wall time of one run (process start to exit) on the 2-core CPU, two at once


@dataclass(frozen=True)
class Setting:
    key: str
    title: str
    config: str
    rows: tuple[Row, ...]
    noisy: bool             # labels have synthetic noise, so the weight AUC is defined
    meta_grad: str = "exact"   # the meta-gradient mode of the rows as they are (the config's method.meta_grad)


SETTINGS = (
    Setting("noisy", "CIFAR-10, 40% symmetric noise", "cpu_noisy.yaml", (
        Row("erm", "ERM", ("method.name=erm",), 3.5),
        Row("mwnet", "MW-Net", ("method.name=mwnet",), 6.5),
        Row("cmwnet", "CMW-Net", ("method.name=cmwnet", "method.start_epoch=5"), 5.6),
        Row("cmwnet_sl", "CMW-Net-SL", ("method.name=cmwnet_sl", "ema.decay=0.99", "ema.bn=own",
                                         "data.meta={kind: lowest_loss, per_class: 10, batch_size: 100, model: ema}"),
            9.5),
    ), noisy=True),
    Setting("lt", "CIFAR-10-LT, imbalance factor 100", "cpu_lt.yaml", (
        Row("erm", "ERM", ("method.name=erm",), 4.2),
        Row("mwnet", "MW-Net", ("method.name=mwnet",), 6.6),
        Row("cmwnet", "CMW-Net", ("method.name=cmwnet",), 6.6),
    ), noisy=False),
)

_SL_METHOD = ("method.name=cmwnet_sl", "ema.decay=0.99", "ema.bn=own")
_SL = _SL_METHOD + ("data.meta={kind: lowest_loss, per_class: 10, batch_size: 100, model: ema}",)


def _full_rows(minutes: tuple[float, float, float, float]) -> tuple[Row, ...]:
    """The small noisy preset's four rows (same method settings), with the full preset's measured minutes."""
    return (Row("erm", "ERM", ("method.name=erm",), minutes[0]),
            Row("mwnet", "MW-Net", ("method.name=mwnet",), minutes[1]),
            Row("cmwnet", "CMW-Net", ("method.name=cmwnet", "method.start_epoch=5"), minutes[2]),
            Row("cmwnet_sl", "CMW-Net-SL", _SL, minutes[3]))


# --scale full (issue 15): all 45,000 training images left after the val split, 25 epochs, one seed,
# the forward-mode meta-gradient; symmetric and asymmetric 40% noise.
FULL_SETTINGS = (
    Setting("sym", "CIFAR-10 (45k), 40% symmetric noise", "cpu_full_sym.yaml", _full_rows((12, 25, 26, 28)),
            noisy=True, meta_grad="forward"),
    Setting("asym", "CIFAR-10 (45k), 40% asymmetric noise", "cpu_full_asym.yaml", _full_rows((12, 25, 26, 28)),
            noisy=True, meta_grad="forward"),
)
SCALES = {"small": SETTINGS, "full": FULL_SETTINGS}

# --diagnose (issue 15, --scale full only): rows that take the preset's misses apart. The preset gives MW-Net and
# CMW-Net 10 clean images per class as meta set and CMW-Net-SL none (the 10 lowest-loss training images per
# observed class, what the authors' noisy-label code gives every method: docs/method-as-published.md section 9,
# item 7); these rows swap the two, so each method is also seen with the other's meta data, and start
# CMW-Net-SL's correction where its EMA teacher passes the labels on symmetric noise (epoch 13 of the preset).
_LOWEST_BY_NET = "data.meta={kind: lowest_loss, per_class: 10, batch_size: 100, model: model}"
_CLEAN_META = "data.meta={kind: clean, per_class: 10, batch_size: 100}"
_SWAPPED_META = (Row("mwnet_lowest", "MW-Net [lowest-loss meta]", ("method.name=mwnet", _LOWEST_BY_NET), 25),
                 Row("cmwnet_lowest", "CMW-Net [lowest-loss meta]", ("method.name=cmwnet", "method.start_epoch=5",
                                                                      _LOWEST_BY_NET), 26),
                 Row("cmwnet_sl_clean", "CMW-Net-SL [clean meta]", _SL_METHOD + (_CLEAN_META,), 35))
DIAGNOSTIC_ROWS = {
    "sym": _SWAPPED_META + (Row("cmwnet_sl_late", "CMW-Net-SL [correction from epoch 13]",
                                _SL + ("method.sl.warmup=13",), 24),),
    "asym": _SWAPPED_META,
}


def with_diagnostics(settings: tuple[Setting, ...]) -> tuple[Setting, ...]:
    """The full preset's settings with DIAGNOSTIC_ROWS after their own rows (same --out, own cells)."""
    return tuple(Setting(s.key, s.title, s.config, s.rows + DIAGNOSTIC_ROWS.get(s.key, ()), s.noisy, s.meta_grad)
                 for s in settings)

DEFAULT_OUTS = {"small": DEFAULT_OUT, "full": os.path.join("runs", "cpu_full")}
DEFAULT_SEEDS_OF = {"small": DEFAULT_SEEDS, "full": (1,)}
MODE_LABELS = {"exact": "exact", "head": "head", "forward": "forward-mode", "tail": "tail"}


def with_modes(modes: tuple[str, ...], settings: tuple[Setting, ...] = SETTINGS) -> tuple[Setting, ...]:
    """The settings with, after each meta-learning row, one row per other meta-gradient mode
    (`method.meta_grad`): key `mwnet_head`, label "MW-Net [head]". The setting's own mode (`Setting.meta_grad`:
    exact for the small preset, forward for the full one) is the rows as they are (their cells, names and numbers
    unchanged); without it only ERM and the other modes' rows remain."""
    from ..meta_grad import check_meta_grad

    for m in modes:
        check_meta_grad(m)
    out = []
    for st in settings:
        rows: list[Row] = []
        for r in st.rows:
            meta = r.key != "erm"
            if not meta or st.meta_grad in modes:
                rows.append(r)
            if meta:
                rows += [Row(f"{r.key}_{m}", f"{r.label} [{MODE_LABELS[m]}]", r.overrides + (f"method.meta_grad={m}",),
                             r.minutes) for m in modes if m != st.meta_grad]
        out.append(Setting(st.key, st.title, st.config, tuple(rows), st.noisy, st.meta_grad))
    return tuple(out)


SMOKE = ("optim.epochs=2", "run.max_steps=3", "data.batch_size=20", "data.test_batch_size=200",
         "data.meta.batch_size=20", "data.val_size=100", "data.train_subset=null", "method.interval=1",
         "method.start_epoch=1", "method.sl.warmup=1", "optim.schedule.milestones=[1]", "model.args={width: 4}")


def cells(seeds: tuple[int, ...], data_root: str, smoke: bool = False, filters: tuple[str, ...] = (),
          settings: tuple[Setting, ...] = SETTINGS) -> list[Cell]:
    """Every (setting, method, seed) run, the longest first (so two slots finish together)."""
    out = []
    for s in settings:
        for r in s.rows:
            name = f"{s.key}/{r.key}"
            if filters and not any(f in name for f in filters):
                continue
            for seed in seeds:
                extra = list(r.overrides) + [f"seed={seed}", f"data.root={data_root}", "run.progress=false"]
                if smoke:
                    extra += list(SMOKE) + ["run.device=cpu"]
                out.append(Cell(f"{name}/s{seed}", os.path.join(CONFIG_DIR, s.config), extra, f"{s.title}: {r.label}"))
    minutes = {f"{s.key}/{r.key}": r.minutes for s in settings for r in s.rows}
    return sorted(out, key=lambda c: -minutes[c.name.rsplit("/", 1)[0]])


# -- the summary ---------------------------------------------------------------------------------------
def _history(out: str, name: str) -> list[dict]:
    path = os.path.join(out, name, "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(out: str, seeds: tuple[int, ...], settings: tuple[Setting, ...] = SETTINGS
              ) -> dict[tuple[str, str], dict[str, Any]]:
    """(setting, method) -> mean ± std over the finished seeds of every reported number."""
    table = {}
    for s in settings:
        for r in s.rows:
            names = [f"{s.key}/{r.key}/s{seed}" for seed in seeds]
            results = load_results(out, names)
            if not results:
                continue
            lasts = [_history(out, n)[-1] for n in results]
            cols: dict[str, list[float]] = {
                "test_best": [x["best_top1"] for x in results.values()],
                "test_last": [x["last_top1"] for x in results.values()],
                "val_best": [x["val"]["best_top1"] for x in results.values() if x.get("val")],
                "val_last": [x["val"]["last_top1"] for x in results.values() if x.get("val")],
                "minutes": [x["wall_time_s"] / 60 for x in results.values()],
                "ema_last": [x["ema"]["last_top1"] for x in results.values() if x.get("ema")],
                "label_acc": [100.0 * (1.0 - x["data"]["noise"]["realised_rate"]) for x in results.values()
                              if (x.get("data") or {}).get("noise", {}).get("realised_rate") is not None],
            }
            for key in ("weight_auc", "mean_weight_clean", "mean_weight_noisy", "mean_weight"):
                vals = [h[key] for h in lasts if h.get(key) is not None]
                if vals:
                    cols[key] = vals
            table[(s.key, r.key)] = {k: mean_std(v) for k, v in cols.items() if v} | {"n": len(results)}
    return table


def _fmt(ms: tuple[float, float] | None, digits: int = 2) -> str:
    if ms is None:
        return "-"
    m, sd = ms
    return f"{m:.{digits}f}" if sd != sd else f"{m:.{digits}f} ± {sd:.{digits}f}"


HEADER = ["method", "seeds", "test best", "test last", "val best", "val last", "weight AUC", "w clean", "w noisy",
          "min/run"]


def render(table: dict, smoke: bool = False, settings: tuple[Setting, ...] = SETTINGS) -> str:
    lines = []
    if smoke:
        lines.append("SMOKE RUN: generated data and a few steps; the numbers below mean nothing.\n")
    for s in settings:
        rows = [(r, table.get((s.key, r.key))) for r in s.rows]
        if not any(a for _, a in rows):
            continue
        lines.append(f"### {s.title} (test/val top-1 %, last-epoch weights)\n")
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        for r, a in rows:
            if a is None:
                lines.append(f"| {r.label} | 0 | " + " | ".join("-" * 1 for _ in HEADER[2:]) + " |")
                continue
            g = a.get
            lines.append(f"| {r.label} | {a['n']} | {_fmt(g('test_best'))} | {_fmt(g('test_last'))} | "
                         f"{_fmt(g('val_best'))} | {_fmt(g('val_last'))} | {_fmt(g('weight_auc'), 3)} | "
                         f"{_fmt(g('mean_weight_clean'), 3)} | {_fmt(g('mean_weight_noisy'), 3)} | "
                         f"{_fmt(g('minutes'), 1)} |")
        lines.append("")
    return "\n".join(lines)


def _checker(lines: list[str]):
    def check(text: str, value: float | None, bound: float | None, strict: bool = True) -> None:
        if value is None or bound is None:
            lines.append(f"[  n/a ] {text}: not run")
            return
        ok = value > bound if strict else value >= bound
        lines.append(f"[{'met' if ok else 'MISSED':^6}] {text}: {value:.3f} vs {bound:.3f} ({value - bound:+.3f})")
    return check


def _mean(table: dict, s: str, r: str, key: str) -> float | None:
    a = table.get((s, r), {}).get(key)
    return None if a is None else a[0]


def targets(table: dict) -> list[str]:
    """Issue 9's targets, each with by how much it is met or missed (means over seeds, last epoch)."""
    m = lambda s, r, key: _mean(table, s, r, key)  # noqa: E731
    lines: list[str] = []
    check = _checker(lines)
    for r in ("mwnet", "cmwnet"):
        check(f"noisy: {r} weight AUC >= 0.8", m("noisy", r, "weight_auc"), 0.8, strict=False)
        check(f"noisy: {r} beats ERM (last test top-1)", m("noisy", r, "test_last"), m("noisy", "erm", "test_last"))
    others = [m("noisy", r, "test_last") for r in ("erm", "mwnet", "cmwnet")]
    best_other = max((v for v in others if v is not None), default=None)
    check("noisy: cmwnet_sl beats all (last test top-1)", m("noisy", "cmwnet_sl", "test_last"), best_other)
    check("lt: cmwnet beats ERM (last test top-1)", m("lt", "cmwnet", "test_last"), m("lt", "erm", "test_last"))
    return lines


def full_targets(table: dict) -> list[str]:
    """Issue 15's targets for --scale full (last-epoch test top-1 and weight AUC), each with its margin, and the
    regime check: ERM memorises (best - last >= 2) or the EMA teacher passes the labels' accuracy."""
    m = lambda s, r, key: _mean(table, s, r, key)  # noqa: E731
    lines: list[str] = []
    check = _checker(lines)
    for s, strict_cmw in (("sym", False), ("asym", True)):
        top = lambda r: m(s, r, "test_last")  # noqa: E731
        check(f"{s}: cmwnet_sl > cmwnet", top("cmwnet_sl"), top("cmwnet"))
        check(f"{s}: cmwnet {'>' if strict_cmw else '>='} mwnet", top("cmwnet"), top("mwnet"), strict=strict_cmw)
        check(f"{s}: mwnet > erm", top("mwnet"), top("erm"))
        for r in (("mwnet", "cmwnet") if s == "sym" else ("cmwnet",)):
            check(f"{s}: {r} weight AUC >= 0.8", m(s, r, "weight_auc"), 0.8, strict=False)
        best, last = m(s, "erm", "test_best"), m(s, "erm", "test_last")
        drop = None if best is None or last is None else best - last
        check(f"{s} regime: ERM best - last >= 2 (memorisation)", drop, 2.0, strict=False)
        check(f"{s} regime: EMA teacher (cmwnet_sl, last test top-1) > labels' accuracy",
              m(s, "cmwnet_sl", "ema_last"), m(s, "cmwnet_sl", "label_acc"))
    return lines


def diagnostic_checks(table: dict) -> list[str]:
    """--diagnose: the targets again with both sides on the same meta data (no clean images: the lowest-loss rows
    and CMW-Net-SL; 10 clean per class: the preset's MW-Net, CMW-Net and CMW-Net-SL [clean meta]), and whether
    a later correction start helps CMW-Net-SL. Only the rows that ran are checked."""
    m = lambda s, r, key: _mean(table, s, r, key)  # noqa: E731
    lines: list[str] = []
    check = _checker(lines)
    for s in ("sym", "asym"):
        top = lambda r: m(s, r, "test_last")  # noqa: E731
        pairs = [("cmwnet_sl", "cmwnet_lowest", "no clean data"), ("cmwnet_lowest", "mwnet_lowest", "no clean data"),
                 ("mwnet_lowest", "erm", "no clean data"), ("cmwnet_sl_clean", "cmwnet", "clean meta set"),
                 ("cmwnet_sl_late", "cmwnet_sl", "correction from epoch 13")]
        for a, b, why in pairs:
            if (s, a) in table and (s, b) in table:
                check(f"{s} [{why}]: {a} > {b}", top(a), top(b))
        for r in ("mwnet_lowest", "cmwnet_lowest"):
            if (s, r) in table:
                check(f"{s} [no clean data]: {r} weight AUC >= 0.8", m(s, r, "weight_auc"), 0.8, strict=False)
    return lines


TARGETS = {"small": targets, "full": full_targets}


def write_csv(table: dict, path: str) -> None:
    import csv

    keys = ["test_best", "test_last", "val_best", "val_last", "weight_auc", "mean_weight_clean", "mean_weight_noisy",
            "minutes"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "method", "seeds"] + [f"{k}_{p}" for k in keys for p in ("mean", "std")])
        for (s, r), a in table.items():
            w.writerow([s, r, a["n"]] + [("" if a.get(k) is None else f"{a[k][i]:.4f}") for k in keys for i in (0, 1)])


# -- the figure ----------------------------------------------------------------------------------------
def weighting_figure(out: str, seeds: tuple[int, ...], path: str,
                     settings: tuple[Setting, ...] = SETTINGS) -> str | None:
    """One panel per (setting, meta-learning method), one row per setting: each seed's learned curves (one colour per task
    family) over the range of the final training losses, whose histogram (clean / mislabelled where known)
    lies beneath."""
    from ..plotting import draw_weighting, loss_range, save_figure
    from ..weighting import load_weighting

    panels = []
    for s in settings:
        for r in s.rows:
            nets = []
            for seed in seeds:
                wpath = os.path.join(out, s.key, r.key, f"s{seed}", "weight_net.pt")
                if os.path.exists(wpath):
                    nets.append(load_weighting(wpath))
            if nets:
                panels.append((s, r, nets, _final_losses(out, s.key, r.key, seeds)))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [s.key for s in settings if any(p[0].key == s.key for p in panels)]
    ncols = max(sum(p[0].key == k for p in panels) for k in keys)
    fig, axes = plt.subplots(len(keys), ncols, figsize=(4.6 * ncols, 4.6 * len(keys)), squeeze=False)
    placed = []
    for i, k in enumerate(keys):   # one row per setting
        row = [p for p in panels if p[0].key == k]
        placed += [(axes[i][j], p) for j, p in enumerate(row)]
        for j in range(len(row), ncols):
            axes[i][j].set_visible(False)
    for ax, (s, r, nets, losses) in placed:
        handles = draw_weighting(ax, nets, losses, loss_range(losses, 6.0))
        ax.set_title(f"{r.label}: {s.title}\n({len(nets)} seed{'s' if len(nets) > 1 else ''})", fontsize=9)
        ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _final_losses(out: str, setting: str, method: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The weight-net input losses of the last epoch (saved by the engine), split clean / mislabelled."""
    from ..engine import FINAL_WEIGHTS
    from ..plotting import load_final_losses

    return load_final_losses([os.path.join(out, setting, method, f"s{seed}", FINAL_WEIGHTS) for seed in seeds])


# -- the command ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmwnet.paper.cpu_scale", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=DEFAULT_DATA, help=f"cifar10-jpeg.npz or a folder holding "
                   f"cifar-10-batches-py (default {DEFAULT_DATA})")
    p.add_argument("--out", default=None, help=f"runs and the summary (default {DEFAULT_OUT}; --smoke: "
                   "runs/smoke/cpu_scale)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds per cell (default 1 2; --smoke: 1)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default 2, one thread each)")
    p.add_argument("--filter", action="append", default=[], help="only cells whose 'setting/method' contains this")
    p.add_argument("--scale", choices=tuple(SCALES), default="small",
                   help="small (default): 10,000 images, 40%% symmetric noise and the long tail, 2 seeds, exact "
                        "meta-gradient; full: all 45,000 images, 40%% symmetric and asymmetric noise, 1 seed, "
                        "forward-mode meta-gradient (default --out runs/cpu_full)")
    p.add_argument("--meta-grad", nargs="+", default=None, metavar="MODE",
                   help="meta-gradient modes of the meta-learning rows (method.meta_grad: exact head forward tail; default "
                        "the scale's own: exact for small, forward for full); other modes add rows such as "
                        "noisy/mwnet_head beside the scale's own, in the same --out")
    p.add_argument("--diagnose", action="store_true",
                   help="--scale full only: add the rows that take issue 15's misses apart (each method with the "
                        "other meta set, CMW-Net-SL's correction from epoch 13), in the same --out")
    p.add_argument("--smoke", action="store_true", help="generated CIFAR data, a few steps per cell (CI)")
    p.add_argument("--dry-run", action="store_true", help="print every cell's command, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from .launch_options import check_launch_options

    a = parse_args(argv)
    check_launch_options(a)
    smoke_out = os.path.join("runs", "smoke", "cpu_scale" if a.scale == "small" else "cpu_full")
    out = os.path.abspath(a.out or (smoke_out if a.smoke else DEFAULT_OUTS[a.scale]))
    seeds = tuple(a.seeds or ((1,) if a.smoke else DEFAULT_SEEDS_OF[a.scale]))
    if a.smoke:
        from .tables import prepare_smoke_data

        data_root = prepare_smoke_data(out, {"cifar10"})
    elif a.dry_run:
        data_root = os.path.abspath(a.data_root)
    else:
        if not os.path.exists(a.data_root):
            raise CmwnetError(f"no CIFAR-10 at {a.data_root}: put the offline copy cifar10-jpeg.npz there (or give "
                              "--data-root PATH), or a folder holding cifar-10-batches-py from "
                              "cs.toronto.edu/~kriz/cifar.html")
        from .tables import prepare_real_data

        data_root = prepare_real_data(a.data_root, out, {"cifar10"})
    base = SCALES[a.scale]
    if a.diagnose:
        if a.scale != "full":
            raise CmwnetError("--diagnose adds rows to the full preset only: give --scale full with it")
        base = with_diagnostics(base)
    settings = with_modes(tuple(dict.fromkeys(a.meta_grad or [base[0].meta_grad])), base)
    todo = cells(seeds, data_root, a.smoke, tuple(a.filter), settings)
    if a.dry_run:
        for c in todo:
            print(shlex.join(c.command(out, write=False)))
        return 0
    start = time.time()
    names = {c.name.rsplit("/", 1)[0] for c in todo}
    estimate = sum(r.minutes for s in settings for r in s.rows if f"{s.key}/{r.key}" in names) * len(seeds) / max(a.jobs, 1)
    if not a.smoke and estimate:
        print(f"{len(todo)} runs, about {estimate:.0f} minutes on a 2-core CPU with --jobs 2 "
              f"(measured; finished runs are skipped)", flush=True)
    report = run_cells(todo, out, make_slots(jobs=a.jobs, threads=1), "worker" if a.smoke else "subprocess")
    table = summarize(out, seeds, settings)
    text = render(table, a.smoke, settings)
    checks = TARGETS[a.scale](table) + (diagnostic_checks(table) if a.diagnose else [])
    print("\n" + text + "\n" + "\n".join(checks))
    with open(os.path.join(out, "cpu_scale.md"), "w") as f:
        f.write(text + "\n" + "\n".join(f"- {c}" for c in checks) + "\n")
    write_csv(table, os.path.join(out, "cpu_scale.csv"))
    fig = weighting_figure(out, seeds, os.path.join(out, "cpu_scale_weighting.png"), settings)
    print(f"\nwall time {(time.time() - start) / 60:.1f} min; written: {os.path.join(out, 'cpu_scale.md')}, "
          f"cpu_scale.csv{', ' + os.path.basename(fig) if fig else ''}")
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
