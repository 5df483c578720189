"""Fig. 9 (paper Sec. 7.1): PRODEN alone vs PRODEN + CMW-Net, test accuracy per epoch, on CIFAR-10
(partial rates 0.1, 0.3, 0.5, 0.7) and CIFAR-100 (0.03, 0.05, 0.07, 0.10), binomial candidate sets.

Every (data set, rate, method, seed) is one run of configs/pll_<ds>.yaml (`proden` or `proden_cmwnet`,
which share their PRODEN epochs; see cmwnet/methods/proden.py). The runs go through cmwnet.runner
(finished ones are skipped, interrupted ones resumed); then OUT/fig9.png draws the curves (mean over
seeds), and OUT/fig9.md lists best and last accuracy per cell beside what the paper reports. The paper
gives Fig. 9 as curves only (no numbers in the text or the authors' README), so the comparison is the
paper's claim: PRODEN + CMW-Net above PRODEN at every rate, on both data sets.

--smoke: synthetic CIFAR-shaped data (cmwnet.paper.synthetic), ResNet-8, 4 short epochs (CMW-Net from
epoch 2), the CPU: every cell and the figure in about a minute (CI).
"""
from __future__ import annotations

import glob
import os
import re

from ..resources import CONFIG_DIR as CONFIGS
from .results import load_results, mean_std, read_history
from .schema import Row, Setting, Table
from ..run_folder.layout import RESULT

RATES = {"cifar10": (0.1, 0.3, 0.5, 0.7), "cifar100": (0.03, 0.05, 0.07, 0.10)}
NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
METHODS = {"proden": "PRODEN", "proden_cmwnet": "PRODEN + CMW-Net"}
SMOKE_DATA = {"cifar10": {"train_per_class": 60, "test_per_class": 20},
              "cifar100": {"train_per_class": 8, "test_per_class": 3}}
SMOKE = ["model.name=resnet8", "optim.epochs=4", "optim.schedule.milestones=[3]", "method.start_epoch=2",
         "method.interval=2", "data.batch_size=64", "data.test_batch_size=500", "data.meta.per_class=3",
         "data.meta.batch_size=50", "run.max_steps=5", "run.device=cpu"]


TITLE = "Fig. 9: PRODEN with and without CMW-Net on partial labels (CIFAR-10, CIFAR-100)"
SWITCH_EPOCH = 45      # CMW-Net starts here (configs/pll_*.yaml); 2 in smoke runs


# --scale cpu: CIFAR-10 at two rates, configs/cpu_fig9.yaml (ResNet-8, 10,000 images, 20 epochs, CMW-Net from 14,
# chosen on val there)
CPU_RATES = {"cifar10": (0.3, 0.5)}
CPU_SWITCH_EPOCH = 14
CPU_TITLE = ("Fig. 9 at CPU scale: PRODEN with and without CMW-Net on CIFAR-10 partial labels (10,000 images, "
             "ResNet-8, 20 epochs)")


def figure9(rates: dict[str, tuple[float, ...]] | None = None, scale: str = "paper") -> Table:
    """Fig. 9 as data: settings (data set, partial rate) x rows (PRODEN, PRODEN + CMW-Net) x seeds, one run
    each; `rates` (default the paper's, or CPU_RATES at scale "cpu") chooses the settings. The paper gives
    curves only (no numbers)."""
    cpu = scale == "cpu"
    rates = dict(CPU_RATES if cpu else RATES) if rates is None else rates
    settings = [Setting(f"{ds}_q{rate}", NAMES[ds], f"q={rate}", {"data": {"name": ds, "partial": {"rate": rate}}})
                for ds, ds_rates in rates.items() for rate in ds_rates]
    rows = [Row(key, label) for key, label in METHODS.items()]
    return Table("fig9", CPU_TITLE if cpu else TITLE, "cpu_fig9.yaml" if cpu else None, settings, rows, {},
                 kind="figure", paper_epoch="unstated", out_dir="cpu" if cpu else "section7",
                 figure_rows=("proden_cmwnet",), switch_epoch=CPU_SWITCH_EPOCH if cpu else SWITCH_EPOCH,
                 build=table_cells, scale=scale)


def rates_of(table: Table) -> dict[str, tuple[float, ...]]:
    """data set -> partial rates of the figure's settings, in their order."""
    out: dict[str, list[float]] = {}
    for s in table.settings:
        out.setdefault(s.dataset, []).append(s.overrides["data"]["partial"]["rate"])
    return {ds: tuple(r) for ds, r in out.items()}


def table_cells(table: Table, seeds=(1,), data_root: str = "DATA", smoke: bool = False, epochs: int | None = None,
                filters: tuple[str, ...] = ()) -> list:
    """`Table.cells` of the figure."""
    return [c for c in make_cells(rates_of(table), seeds, data_root, smoke, epochs, table.config)
            if not filters or any(f in c.name for f in filters)]


def found_runs(out: str) -> tuple[dict[str, tuple[float, ...]], list[int]]:
    """The (data set -> rates) and seeds of the finished Fig. 9 runs under OUT."""
    rates: dict[str, set[float]] = {}
    seeds: set[int] = set()
    for path in glob.glob(os.path.join(out, "*_q*", "*", "s*", RESULT)):
        m = re.fullmatch(r"(cifar10|cifar100)_q([0-9.]+)/(\w+)/s(-?\d+)", os.path.relpath(os.path.dirname(path), out))
        if m and m.group(3) in METHODS:
            rates.setdefault(m.group(1), set()).add(float(m.group(2)))
            seeds.add(int(m.group(4)))
    return {ds: tuple(sorted(rates[ds])) for ds in sorted(rates)}, sorted(seeds)


def write_figure(out: str, rates: dict, seeds, switch_epoch: int, to: str | None = None) -> str:
    """Draw OUT/fig9.png and write fig9.md (into `to`, default OUT); returns the text to print."""
    to = to or out
    os.makedirs(to, exist_ok=True)
    path = draw(out, rates, seeds, switch_epoch, to)
    text = summary(out, rates, seeds)
    with open(os.path.join(to, "fig9.md"), "w") as f:
        f.write(f"# Fig. 9: PRODEN vs PRODEN + CMW-Net (test top-1 %, mean over seeds {list(seeds)})\n\n{text}\n")
    return f"figure: {path}\n\n{text}\n"


def make_cells(rates: dict, seeds, data_root: str, smoke: bool, epochs: int | None, config: str | None = None):
    """The runs of the figure: configs/pll_<ds>.yaml, or `config` (the CPU scale's) for every data set."""
    from .runner import Cell

    cells = []
    for ds, ds_rates in rates.items():
        for rate in ds_rates:
            for method in METHODS:
                for seed in seeds:
                    o = [f"data.root={data_root}", f"data.partial.rate={rate}", f"method.name={method}",
                         f"seed={seed}"]
                    if smoke:
                        o += SMOKE + (["data.val_size=50", "data.train_subset=null"] if config else [])
                    elif epochs is not None:
                        o.append(f"optim.epochs={epochs}")
                    path = os.path.join(CONFIGS, config or f"pll_{ds}.yaml")
                    cells.append(Cell(f"{ds}_q{rate}/{method}/s{seed}", path, o,
                                      f"{METHODS[method]}, {NAMES[ds]} q={rate}, seed {seed}"))
    return cells


def curves(out: str, name: str) -> list[float] | None:
    """Test top-1 per epoch of one finished run."""
    history = read_history(out, name)
    return None if history is None else [h["test_top1"] for h in history]


def mean_curve(out: str, ds: str, rate: float, method: str, seeds) -> list[float] | None:
    found = [c for c in (curves(out, f"{ds}_q{rate}/{method}/s{s}") for s in seeds) if c]
    if not found:
        return None
    n = min(len(c) for c in found)
    return [sum(c[i] for c in found) / len(found) for i in range(n)]


def draw(out: str, rates: dict, seeds, switch_epoch: int, to: str | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..run_folder.plotting import save_figure

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
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=9)
    fig.suptitle("Fig. 9: PRODEN with and without CMW-Net (dotted line: CMW-Net starts)")
    fig.tight_layout()
    return save_figure(fig, os.path.join(to or out, "fig9.png"))


def summary(out: str, rates: dict, seeds) -> str:
    """Best and last test accuracy per cell (mean over seeds), CMW-Net's gain, and the paper's claim."""
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
