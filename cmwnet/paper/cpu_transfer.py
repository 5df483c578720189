"""Paper Sec. 6 at CPU scale: a CMW-Net weighting learned on one noisy data set, reused frozen on others.

    bash section6/cpu_transfer.sh            # = python -m cmwnet.paper.cpu_transfer [--out runs/cpu] [--seeds 1 2]

The weighting each seed learned on Table 5's CPU cell (CIFAR-10, 35% Type-I + 30% asymmetric noise:
`<out>/cifar10_type1_0.35+flip0.3/cmwnet/s<seed>/weight_net.pt`, from `table5.sh --scale cpu`) is loaded frozen
(`method.weight_net.frozen`: no meta data, no second-order step) into CMW-Net on Table 2's two CPU cells (40%
symmetric and 40% asymmetric noise), as the paper moves its CIFAR-learned net to WebVision and ANIMAL-10N. ERM and
in-place CMW-Net are Table 2's own CPU cells (the same run folders: finished ones are reused, not retrained). The
report gives per setting the last-epoch test and val top-1, how much of in-place CMW-Net's gain over ERM the
transferred weighting keeps, and its training time per epoch against ERM's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import CmwnetError, OneLineParser, run_cli
from .cpu_tables import DEFAULT_DATA, DEFAULT_OUT, DEFAULT_SEEDS
from .registry import get_table
from .results import mean_std, read_history, read_result
from .runner import Cell, make_slots, run_cells

SOURCE = "cifar10_type1_0.35+flip0.3/cmwnet"
ROWS = ("erm", "cmwnet", "cmwnet_transfer")
LABELS = {"erm": "ERM", "cmwnet": "CMW-Net (learned in place)", "cmwnet_transfer": "CMW-Net (transferred, frozen)"}


def source_net(out: str, seed: int) -> str:
    return os.path.join(out, SOURCE, f"s{seed}", "weight_net.pt")


def cells(out: str, seeds: tuple[int, ...], data_root: str, smoke: bool = False) -> list[Cell]:
    """Table 2's CPU cells of ERM and CMW-Net, and the transferred row beside them."""
    t2 = get_table(2, "cpu")
    shared = [c for c in t2.cells(seeds, data_root, None, smoke) if c.name.split("/")[1] in ("erm", "cmwnet")]
    out_cells = list(shared)
    for s in t2.settings:
        for seed in seeds:
            base = next(c for c in shared if c.name == f"{s.key}/cmwnet/s{seed}")
            frozen = [f"method.weight_net.init={os.path.abspath(source_net(out, seed))}", "method.weight_net.frozen=true"]
            out_cells.append(Cell(f"{s.key}/cmwnet_transfer/s{seed}", base.config, list(base.overrides) + frozen,
                                  f"CMW-Net transferred from Table 5, {s.label}, seed {seed}"))
    return out_cells


def _epoch_seconds(out: str, name: str) -> float | None:
    h = read_history(out, name)
    return None if not h else sum(r["epoch_time_s"] for r in h) / len(h)


def summarize(out: str, seeds: tuple[int, ...]) -> tuple[str, list[dict]]:
    """The Markdown report and its rows (setting, row, test/val last, epoch seconds)."""
    t2 = get_table(2, "cpu")
    lines = ["## Sec. 6 at CPU scale: a CMW-Net weighting learned on CIFAR-10 (35% Type-I + 30% asymmetric noise), "
             "reused frozen", "",
             "| setting | method | seeds | test top-1 (last) | val top-1 (last) | s per epoch | x ERM's time |",
             "|---|---|---|---|---|---|---|"]
    rows, notes = [], []
    for s in t2.settings:
        found = {}
        for r in ROWS:
            names = [f"{s.key}/{r}/s{seed}" for seed in seeds]
            res = [(n, read_result(out, n)) for n in names]
            res = [(n, x) for n, x in res if x]
            if not res:
                continue
            test = mean_std([x["last_top1"] for _, x in res])
            val = mean_std([x["val"]["last_top1"] for _, x in res if x.get("val")])
            secs = [t for n, _ in res for t in [_epoch_seconds(out, n)] if t]
            found[r] = {"setting": s.key, "row": r, "seeds": len(res), "test_last": test[0], "val_last": val[0],
                        "epoch_s": sum(secs) / len(secs) if secs else None}
        erm_s = (found.get("erm") or {}).get("epoch_s")
        for r, f in found.items():
            ratio = f"{f['epoch_s'] / erm_s:.2f}" if erm_s and f["epoch_s"] else "–"
            lines.append(f"| {s.label} | {LABELS[r]} | {f['seeds']} | {f['test_last']:.2f} | {f['val_last']:.2f} | "
                         f"{f['epoch_s']:.1f} | {ratio} |" if f["epoch_s"] else f"| {s.label} | {LABELS[r]} | ... |")
            rows.append(f)
        if all(k in found for k in ROWS):
            gain = found["cmwnet"]["test_last"] - found["erm"]["test_last"]
            kept = found["cmwnet_transfer"]["test_last"] - found["erm"]["test_last"]
            share = f"{100 * kept / gain:.0f}%" if gain > 0 else "n/a (in-place CMW-Net does not beat ERM)"
            notes.append(f"- {s.label}: in-place gain over ERM {gain:+.2f}, transferred {kept:+.2f}: it keeps {share}")
    return "\n".join(lines + [""] + notes) + "\n", rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.paper.cpu_transfer", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help=f"runs and report (default {DEFAULT_OUT}, where table5.sh --scale cpu "
                   "left the source weightings)")
    p.add_argument("--data-root", default=DEFAULT_DATA, help=f"cifar10-jpeg.npz or a folder (default {DEFAULT_DATA})")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 1 2; --smoke: 1)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    p.add_argument("--smoke", action="store_true", help="generated data, a few steps, a fresh source weighting (CI)")
    p.add_argument("--dry-run", action="store_true", help="list the runs' commands, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from .launch_options import check_launch_options

    a = parse_args(argv)
    check_launch_options(a)
    out = os.path.abspath(a.out or (os.path.join("runs", "smoke", "cpu") if a.smoke else DEFAULT_OUT))
    seeds = tuple(a.seeds or ((1,) if a.smoke else DEFAULT_SEEDS))
    from .tables import prepare_real_data, prepare_smoke_data

    if a.smoke:
        data_root = prepare_smoke_data(out, {"cifar10"})
        _smoke_sources(out, seeds)
    elif a.dry_run:
        data_root = os.path.abspath(a.data_root)
    else:
        data_root = prepare_real_data(a.data_root, out, {"cifar10"})
    missing = [source_net(out, s) for s in seeds if not os.path.exists(source_net(out, s))]
    if missing and not a.dry_run:
        raise CmwnetError(f"no source weighting {missing[0]}: run `bash section4/Feature-dependent_Label_Noise/"
                          f"table5.sh --scale cpu --filter /cmwnet --out {out}` first (it learns them)")
    todo = cells(out, seeds, data_root, a.smoke)
    if a.dry_run:
        import shlex

        for c in todo:
            print(shlex.join(c.command(out, write=False)))
        return 0
    report = run_cells(todo, out, make_slots(jobs=a.jobs, threads=1), "worker" if a.smoke else "subprocess")
    text, rows = summarize(out, seeds)
    print("\n" + text)
    from ..checkpoint import atomic_write_text

    atomic_write_text(text, os.path.join(out, "transfer.md"))
    atomic_write_text(json.dumps(rows, indent=1), os.path.join(out, "transfer.json"))
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


def _smoke_sources(out: str, seeds: tuple[int, ...]) -> None:
    """--smoke: a fresh CMW-Net weighting (curves flat at 0.9, then tilted) stands in for Table 5's."""
    import torch

    from ..weighting import CMWNet

    for s in seeds:
        path = source_net(out, s)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            net = CMWNet.from_counts([100] * 10)
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.01 * torch.randn_like(p))
            net.save(path, extra={"run": "smoke source"})


if __name__ == "__main__":
    sys.exit(run_cli(main))
