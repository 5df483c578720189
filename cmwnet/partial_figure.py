"""Fig. 9 (paper Sec. 7.1): PRODEN alone vs PRODEN + CMW-Net, test accuracy per epoch, on CIFAR-10
(partial rates 0.1, 0.3, 0.5, 0.7) and CIFAR-100 (0.03, 0.05, 0.07, 0.10), binomial candidate sets.

Every (data set, rate, method, seed) is one run of configs/pll_<ds>.yaml (`proden` or `proden_cmwnet`,
which share their PRODEN epochs; see cmwnet/methods/proden.py). The runs go through cmwnet.runner
(finished ones are skipped, interrupted ones resumed); then OUT/fig9.png draws the curves (mean over
seeds), and OUT/fig9.md lists best and last accuracy per cell beside what the paper reports. The paper
gives Fig. 9 as curves only (no numbers in the text or the authors' README), so the comparison is the
paper's claim: PRODEN + CMW-Net above PRODEN at every rate, on both data sets.

--smoke: synthetic CIFAR-shaped data (cmwnet.data.synthetic), ResNet-8, 4 short epochs (CMW-Net from
epoch 2), the CPU: every cell and the figure in about a minute (CI).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import CmwnetError, run_cli
from .runner import add_slot_options

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
RATES = {"cifar10": (0.1, 0.3, 0.5, 0.7), "cifar100": (0.03, 0.05, 0.07, 0.10)}
NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
METHODS = {"proden": "PRODEN", "proden_cmwnet": "PRODEN + CMW-Net"}
SMOKE_DATA = {"cifar10": {"train_per_class": 60, "test_per_class": 20},
              "cifar100": {"train_per_class": 8, "test_per_class": 3}}
SMOKE = ["model.name=resnet8", "optim.epochs=4", "optim.schedule.milestones=[3]", "method.start_epoch=2",
         "method.interval=2", "data.batch_size=64", "data.test_batch_size=500", "data.meta.per_class=3",
         "data.meta.batch_size=50", "run.max_steps=5", "run.device=cpu"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="section7/Partial-Label_Learning/fig9.sh", description=__doc__.splitlines()[0])
    p.add_argument("--out", help="folder of the runs and the figure (default runs/section7; --smoke: runs/smoke/section7)")
    p.add_argument("--smoke", action="store_true", help="synthetic data, tiny model, 4 short epochs on the CPU (CI)")
    p.add_argument("--data-root", default="data", help="folder holding cifar-10-batches-py / cifar-100-python, or "
                   "cifar10-jpeg.npz (with --datasets cifar10)")
    p.add_argument("--datasets", nargs="+", choices=sorted(RATES), default=sorted(RATES))
    p.add_argument("--rates", type=float, nargs="+", default=None, help="partial rates to run on every selected "
                   "data set (default: the paper's, 0.1 0.3 0.5 0.7 on CIFAR-10, 0.03 0.05 0.07 0.10 on CIFAR-100)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds per cell (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="stop every run after this many epochs, schedule "
                   "unchanged (CMW-Net from 45, lr drops at 80 and 100; the authors' default is 500)")
    add_slot_options(p, per_gpu=4, jobs_default="the number of cores")
    return p.parse_args(argv)


def make_cells(rates: dict, seeds, data_root: str, smoke: bool, epochs: int | None):
    from .runner import Cell

    cells = []
    for ds, ds_rates in rates.items():
        for rate in ds_rates:
            for method in METHODS:
                for seed in seeds:
                    o = [f"data.root={data_root}", f"data.partial.rate={rate}", f"method.name={method}",
                         f"seed={seed}"]
                    if smoke:
                        o += SMOKE
                    elif epochs is not None:
                        o.append(f"optim.epochs={epochs}")
                    cells.append(Cell(f"{ds}_q{rate}/{method}/s{seed}", os.path.join(CONFIGS, f"pll_{ds}.yaml"), o,
                                      f"{METHODS[method]}, {NAMES[ds]} q={rate}, seed {seed}"))
    return cells


def curves(out: str, name: str) -> list[float] | None:
    """Test top-1 per epoch of one finished run."""
    path = os.path.join(out, name, "metrics.jsonl")
    if not os.path.exists(os.path.join(out, name, "result.json")):
        return None
    with open(path) as f:
        return [json.loads(line)["test_top1"] for line in f if line.strip()]


def mean_curve(out: str, ds: str, rate: float, method: str, seeds) -> list[float] | None:
    found = [c for c in (curves(out, f"{ds}_q{rate}/{method}/s{s}") for s in seeds) if c]
    if not found:
        return None
    n = min(len(c) for c in found)
    return [sum(c[i] for c in found) / len(found) for i in range(n)]


def draw(out: str, rates: dict, seeds, switch_epoch: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import save_figure

    cols = max(len(r) for r in rates.values())
    fig, axes = plt.subplots(len(rates), cols, figsize=(4 * cols, 3.6 * len(rates)), squeeze=False)
    for row, (ds, ds_rates) in enumerate(rates.items()):
        for ax in axes[row][len(ds_rates):]:
            ax.axis("off")
        for col, rate in enumerate(ds_rates):
            ax = axes[row][col]
            for method, style in zip(METHODS, ("--", "-")):
                c = mean_curve(out, ds, rate, method, seeds)
                if c:
                    ax.plot(range(1, len(c) + 1), c, style, label=METHODS[method])
            ax.axvline(switch_epoch + 0.5, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{NAMES[ds]}, partial rate {rate}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Fig. 9: PRODEN with and without CMW-Net (dotted line: CMW-Net starts)")
    fig.tight_layout()
    return save_figure(fig, os.path.join(out, "fig9.png"))


def summary(out: str, rates: dict, seeds) -> str:
    """Best and last test accuracy per cell (mean over seeds), CMW-Net's gain, and the paper's claim."""
    from .runner import load_results, mean_std

    lines = ["| data set | rate | PRODEN best / last | PRODEN + CMW-Net best / last | gain (last) |",
             "|---|---|---|---|---|"]
    for ds, ds_rates in rates.items():
        for rate in ds_rates:
            cells = []
            lasts = []
            for method in METHODS:
                names = [f"{ds}_q{rate}/{method}/s{s}" for s in seeds]
                res = list(load_results(out, names).values())
                if not res:
                    cells.append("not run")
                    lasts.append(None)
                    continue
                best = mean_std([r["best_top1"] for r in res])[0]
                last = mean_std([r["last_top1"] for r in res])[0]
                cells.append(f"{best:.2f} / {last:.2f}" + ("" if len(res) == len(seeds) else f" ({len(res)} seeds)"))
                lasts.append(last)
            gain = f"{lasts[1] - lasts[0]:+.2f}" if None not in lasts else "–"
            lines.append(f"| {NAMES[ds]} | {rate} | {cells[0]} | {cells[1]} | {gain} |")
    return "\n".join(lines) + "\n\n" + PAPER


PAPER = ("Paper (Fig. 9, Sec. 7.1): curves only, no numbers in the paper's text or the authors' README; its claim is "
         "that PRODEN + CMW-Net is above PRODEN at every partial rate on both CIFAR-10 and CIFAR-100. Compare the "
         "gain column's sign (and fig9.png) with that claim; smoke runs (synthetic data, 4 epochs) say nothing "
         "about it.")


def main(argv: list[str] | None = None) -> int:
    from .runner import make_slots, run_cells, visible_gpus
    from .tables import prepare_real_data

    a = parse_args(argv)
    out = os.path.abspath(a.out or os.path.join("runs", "smoke" if a.smoke else "", "section7"))
    if a.epochs is not None and a.epochs < 1:
        raise CmwnetError(f"--epochs must be >= 1, got {a.epochs}")
    if a.smoke:
        from .data.synthetic import ensure_synthetic_cifar

        data_root = os.path.join(out, "data")
        for ds in a.datasets:
            ensure_synthetic_cifar(data_root, ds, **SMOKE_DATA[ds])
    else:
        data_root = prepare_real_data(a.data_root, out, set(a.datasets))
    rates = {ds: tuple(a.rates) if a.rates else RATES[ds] for ds in a.datasets}
    bad = [r for rs in rates.values() for r in rs if not 0 < r <= 1]
    if bad:
        raise CmwnetError(f"--rates must lie in (0, 1], got {bad[0]}")
    cells = make_cells(rates, a.seeds, data_root, a.smoke, a.epochs)
    switch = 2 if a.smoke else 45
    if a.epochs is not None and not a.smoke and a.epochs <= switch:
        print(f"note: --epochs {a.epochs} ends before CMW-Net starts (epoch {switch}): both curves are PRODEN",
              file=sys.stderr)
    gpus = None if a.smoke else ((a.gpus or "all") if (a.gpus or visible_gpus()) else None)
    slots = make_slots(gpus, a.per_gpu, a.jobs or (os.cpu_count() or 1), a.threads or (1 if a.smoke else None))
    print(f"Fig. 9 (partial labels): {len(cells)} runs in {out}", flush=True)
    report = run_cells(cells, out, slots, "worker" if a.smoke else "subprocess")
    path = draw(out, rates, a.seeds, switch)
    text = summary(out, rates, a.seeds)
    with open(os.path.join(out, "fig9.md"), "w") as f:
        f.write(f"# Fig. 9: PRODEN vs PRODEN + CMW-Net (test top-1 %, mean over seeds {a.seeds})\n\n{text}\n")
    print(f"\nfigure: {path}\n\n{text}\n")
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
