"""The measurements behind the weighting defaults (README, "The weighting's settings: what we
measured, and the defaults"): why the learned weighting can rank mislabelled samples above clean ones, and which settings
avoid it, on digits and on real CIFAR-10 at CPU scale.

    python -m cmwnet.studies run digits [--out runs/study] [--jobs 2]   # 81 runs, about 5 min on 2 cores (measured)
    python -m cmwnet.studies run cifar  [--out runs/study] [--jobs 2]   # 13 runs of ResNet-8, about 45 min
    python -m cmwnet.studies run digits_asym                            # the digits grid, 40% asymmetric noise
    python -m cmwnet.studies run cifar_asym                             # the CIFAR grid, 40% asymmetric noise
    python -m cmwnet.studies signal --config configs/cpu_noisy.yaml --epochs 8 --set method.name=mwnet ...
    python -m cmwnet.studies signal --run runs/cpu_full/cifar10_asym0.4/cmwnet/s1  # at a run's checkpoint, no training
    python -m cmwnet.studies classes RUN [RUN ...]                      # per class: weights, losses, AUC
    python -m cmwnet.studies targets RUN [RUN ...]                      # CMW-Net-SL: how right ỹ = v·y + (1-v)·z is

`run` trains a grid (normalisation x when meta-learning starts x the weight net's initial output x its
learning rate x the meta set), skipping finished runs, and prints per setting the last epoch's weight
AUC (clean vs mislabelled), the mean weights of clean and mislabelled samples and the held-out
validation top-1 (mean ± std over seeds); the test split is not used. `signal` trains a config for a few
epochs (or loads a run's checkpoint), then measures on 3,000 training samples the exact meta-gradient of every
sample's weight at the run's current weights, under `mean` and under `sum`, and prints it by loss quintile and
by observed class (for CMW-Net also per task family), beside the part of it that is not shared by the sample's
class: what the bi-level objective asks of the weighting, apart from what the weight net makes of it. `classes` reads finished
runs' final_weights.npz and prints, per observed class, how many samples are mislabelled, their mean
loss and weight against the clean ones', the weight AUC within the class and that of a low loss alone (over all
classes: the ceiling of any single falling curve of the loss): where a single curve of
the loss must rank across classes (asymmetric noise), this shows which classes turn the ranking over.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import sys
from typing import Any

from ..errors import CmwnetError, run_cli
from ..paper.runner import Cell, make_slots, mean_std, run_cells

from ..resources import CONFIG_DIR  # the configs ship inside the package
from ..run_folder.layout import CHECKPOINT, CONFIG, FINAL_WEIGHTS, METRICS, RESULT
DEFAULT_OUT = os.path.join("runs", "study")

# digits with 40% symmetric noise, no imbalance (configs/digits_cmwnet.yaml's model and schedule), MW-Net
DIGITS_BASE = ["method.name=mwnet", "data.imbalance=1", "data.noise={kind: sym, rate: 0.4}", "data.val_size=250",
               "method.weight_net.lr=1e-3", "method.weight_net.weight_decay=1e-4"]


# asymmetric noise: 40% of five classes' labels flip to one look-alike class each (as the authors' CIFAR-10 map
# flips five classes), so mislabelled samples are systematic, not spread over all classes
DIGITS_ASYM = "data.noise={kind: asym, rate: 0.4, flip_map: {1: 7, 3: 8, 5: 6, 7: 1, 9: 4}}"
CIFAR_ASYM = "data.noise={kind: asym, rate: 0.4, seed: 123}"   # the authors' CIFAR-10 map


def _init(v: float | None) -> str:
    return f"method.weight_net.init_output={'null' if v is None else v}"


def digits_grid() -> dict[str, list[str]]:
    """name -> overrides (without the seed)."""
    grid = {"erm": ["method.name=erm"]}
    for norm, start, init in itertools.product(("sum", "mean", "sum_detached"), (0, 5), (None, 0.5, 0.9)):
        grid[f"{norm}/start{start}/init_{init or 'authors'}"] = [f"method.normalize={norm}", f"method.start_epoch={start}",
                                                                 _init(init)]
    for norm in ("sum", "mean"):
        base = [f"method.normalize={norm}", "method.start_epoch=5", _init(0.9)]
        grid[f"{norm}/start5/init_0.9/lr1e-4"] = base + ["method.weight_net.lr=1e-4"]
        grid[f"{norm}/start5/init_0.9/lr1e-2"] = base + ["method.weight_net.lr=1e-2"]
        grid[f"{norm}/start5/init_0.9/meta20"] = base + ["data.meta.per_class=20"]
        grid[f"{norm}/start5/init_0.9/lowest_loss"] = base + ["data.meta={kind: lowest_loss, per_class: 10, "
                                                              "batch_size: 50, model: model}"]
    return grid


def cifar_grid() -> dict[str, list[str]]:
    """configs/cpu_noisy.yaml (ResNet-8, 40% symmetric noise); the settings the README's table shows."""
    mw = ["method.name=mwnet"]
    return {
        "erm": ["method.name=erm"],
        "mean/start0/init_authors": mw + ["method.normalize=mean", "method.start_epoch=0", _init(None)],
        "sum/start0/init_authors": mw + ["method.normalize=sum", "method.start_epoch=0", _init(None)],
        "sum_detached/start0/init_authors": mw + ["method.normalize=sum_detached", "method.start_epoch=0", _init(None)],
        "mean/start5/init_authors": mw + ["method.normalize=mean", "method.start_epoch=5", _init(None)],
        "sum/start5/init_authors": mw + ["method.normalize=sum", "method.start_epoch=5", _init(None)],
        "mean/start5/init_0.9": mw + ["method.normalize=mean", "method.start_epoch=5", _init(0.9)],
        "sum/start5/init_0.5": mw + ["method.normalize=sum", "method.start_epoch=5", _init(0.5)],
        "sum/start5/init_0.9": mw + ["method.normalize=sum", "method.start_epoch=5", _init(0.9)],
        "sum/start0/init_0.9": mw + ["method.normalize=sum", "method.start_epoch=0", _init(0.9)],
        "sum/start5/init_0.9/lr1e-4": mw + ["method.normalize=sum", "method.start_epoch=5", _init(0.9),
                                            "method.weight_net.lr=1e-4"],
        "mean/start5/init_0.9/lr1e-2": mw + ["method.normalize=mean", "method.start_epoch=5", _init(0.9),
                                             "method.weight_net.lr=1e-2"],
        "sum/start5/init_0.5/meta50": mw + ["method.normalize=sum", "method.start_epoch=5", _init(0.5),
                                            "data.meta.per_class=50"],
    }


STUDIES: dict[str, dict[str, Any]] = {
    "digits": {"config": "digits_cmwnet.yaml", "base": DIGITS_BASE, "grid": digits_grid, "seeds": (0, 1, 2)},
    "cifar": {"config": "cpu_noisy.yaml", "base": [], "grid": cifar_grid, "seeds": (1,)},
    "digits_asym": {"config": "digits_cmwnet.yaml", "base": DIGITS_BASE + [DIGITS_ASYM], "grid": digits_grid,
                    "seeds": (0, 1, 2)},
    "cifar_asym": {"config": "cpu_noisy.yaml", "base": [CIFAR_ASYM], "grid": cifar_grid, "seeds": (1,)},
}


def study_cells(name: str, seeds: tuple[int, ...], data_root: str | None = None) -> list[Cell]:
    s = STUDIES[name]
    extra = [f"data.root={data_root}"] if data_root else []
    return [Cell(f"{name}/{key}/s{seed}", os.path.join(CONFIG_DIR, s["config"]),
                 list(s["base"]) + overrides + extra + [f"seed={seed}", "run.progress=false"])
            for key, overrides in s["grid"]().items() for seed in seeds]


def summarize(out: str, name: str, seeds: tuple[int, ...]) -> str:
    """One line per setting: last-epoch weight AUC, mean weights clean / mislabelled, validation top-1."""
    rows = []
    for key in STUDIES[name]["grid"]():
        lasts = []
        for seed in seeds:
            path = os.path.join(out, name, key, f"s{seed}", METRICS)
            if os.path.exists(os.path.join(out, name, key, f"s{seed}", RESULT)):
                with open(path) as f:
                    lasts.append([json.loads(x) for x in f if x.strip()][-1])
        if not lasts:
            continue

        def col(k: str, digits: int) -> str:
            vals = [x[k] for x in lasts if x.get(k) is not None]
            if not vals:
                return "-"
            m, sd = mean_std(vals)
            return f"{m:.{digits}f}" + ("" if sd != sd else f" ± {sd:.{digits}f}")
        rows.append([key, str(len(lasts)), col("weight_auc", 3), col("mean_weight_clean", 3),
                     col("mean_weight_noisy", 3), col("val_top1", 2)])
    header = ["setting (normalize/start/init...)", "seeds", "weight AUC", "w clean", "w mislabelled", "val top-1"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header)] + [fmt(r) for r in rows])


# -- the per-sample meta-gradient ---------------------------------------------------------------------
def meta_signal(trainer, samples: int = 3000, batch: int = 100, seed: int = 0) -> dict[str, Any]:
    """Exact d meta_loss / d w_i at the run's current weights (the weight net's output, or 1 for ERM),
    under `mean` and `sum`, for `samples` training samples in batches of `batch` against the run's meta
    batches. Returns, per normalisation, the AUC with which "wants a higher weight" picks clean samples,
    the mean signal, the signal by loss quintile (`_signal_summary`) and by observed class, and for a
    class-aware weight net (CMW-Net) the same per task family, whose one curve must follow that family's
    profile."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from ..bilevel import MetaStep
    from ..methods.l2rw import PerSampleEps
    from ..methods.meta_learner import MetaBatches

    model, train, method = trainer.model, trainer.data.train, trainer.method
    meta = None if method.meta_learner is None else method.meta_learner.batches
    if meta is None:   # ERM, or a frozen weighting: the config's meta set all the same
        meta = MetaBatches(trainer.ctx)
    if meta.cycle is None:   # before the method's first meta-learning epoch
        meta.refresh(trainer.state.epoch)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:samples]
    eps = PerSampleEps()
    counts = np.bincount(train.labels.cpu().numpy())   # training samples per observed class
    families = getattr(method.weight_net, "families", None)
    families = None if families is None else families.cpu().numpy()
    out = {}
    for norm in ("mean", "sum"):
        step = MetaStep(model, trainer.optimizer, eps, None, normalize=norm)
        losses, signal, clean, labels = [], [], [], []
        for b in range(0, len(order), batch):
            pos = order[b:b + batch].to(trainer.device)
            x, y = train.augment(train.images[pos], trainer.generator), train.labels[pos]
            mx, my = meta.next()
            with torch.no_grad():
                loss = F.cross_entropy(model(x), y, reduction="none")
                w = method.weight_net(loss, y) if method.weight_net is not None else torch.ones_like(loss)
            eps.eps = torch.nn.Parameter(w.clone())
            grads, _ = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
            losses.append(loss.cpu()), signal.append(-grads[0].detach().cpu())
            clean.append((train.clean_labels[pos] == y).cpu()), labels.append(y.cpu())
        ell, g, c, ys = (torch.cat(t).numpy() for t in (losses, signal, clean, labels))
        g = g / np.abs(g).mean()
        # the part of each sample's signal its class does not share: what a per-class re-balancing leaves
        seen = np.maximum(np.bincount(ys, minlength=len(counts)), 1)
        class_mean = np.bincount(ys, weights=g, minlength=len(counts)) / seen
        within = g - class_mean[ys]
        # per observed class: does the objective ask to raise a whole class (re-balancing) beside the noise?
        by_class = [{"class": int(k), "train_samples": int(counts[k]), "mean_loss": float(ell[ys == k].mean()),
                     "signal": float(g[ys == k].mean()), "fraction_clean": float(c[ys == k].mean())}
                    for k in np.unique(ys)]
        out[norm] = {**_signal_summary(ell, g, within, c), "mean_signal": float(g.mean()), "by_class": by_class}
        if families is not None:   # CMW-Net: one curve per task family, so the same questions per family
            fam = families[ys]
            out[norm]["by_family"] = [
                {"family": int(f), "classes": [int(k) for k in np.flatnonzero(families == f)],
                 **_signal_summary(ell[fam == f], g[fam == f], within[fam == f], c[fam == f])}
                for f in np.unique(fam)]
    return out


def _signal_summary(ell, g, within, c) -> dict[str, Any]:
    """AUC of "wants a higher weight" for clean samples, and the mean signal by loss quintile: all, clean,
    mislabelled, fraction clean, and `within_class` (the signal less its class's mean, so a rise here is
    not re-balancing between classes)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    edges = np.quantile(ell, np.linspace(0, 1, 6))
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = (ell >= lo) & (ell <= hi)
        bins.append({"loss_from": float(lo), "all": float(g[k].mean()),
                     "clean": float(g[k & c].mean()) if (k & c).any() else None,
                     "mislabelled": float(g[k & ~c].mean()) if (k & ~c).any() else None,
                     "within_class": float(within[k].mean()), "fraction_clean": float(c[k].mean())})
    return {"auc_wants_up_clean": float(roc_auc_score(c, g)) if 0 < c.sum() < len(c) else None,
            "by_loss_quintile": bins}


# -- per class ------------------------------------------------------------------------------------------
def class_breakdown(run_dirs: list[str]) -> list[dict[str, Any]]:
    """Per observed class, pooled over the runs (seeds): samples, fraction mislabelled, mean loss and weight of
    clean and of mislabelled samples, and the weight AUC (clean above mislabelled) within the class, from each
    run's final_weights.npz."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ..run_folder.sample_table import read_npz

    parts: dict[str, list] = {"w": [], "loss": [], "y": [], "clean": []}
    names_of_first = None
    for run in run_dirs:
        path = os.path.join(run, FINAL_WEIGHTS)
        if not os.path.exists(path):
            raise CmwnetError(f"{run} has no {FINAL_WEIGHTS}: give finished runs of a method with a learned weighting")
        z = read_npz(path)
        names = [str(c) for c in z["class_names"]] if "class_names" in z else None
        if names_of_first is None:
            names_of_first = (run, names)
        elif names != names_of_first[1]:
            raise CmwnetError(f"{run} and {names_of_first[0]} have different classes, so their samples cannot be pooled "
                              "per class: give runs of one data set (seeds of one setting)")
        if "clean_labels" not in z or "losses" not in z:
            raise CmwnetError(f"{path} holds no true labels or losses: the per-class breakdown needs a run with "
                              "synthetic noise")
        parts["w"].append(z["weights"]), parts["loss"].append(z["losses"])
        parts["y"].append(z["labels"]), parts["clean"].append(z["labels"] == z["clean_labels"])
    w, loss, y, clean = (np.concatenate(v) for v in parts.values())
    seen = ~np.isnan(w)
    def mean(v: np.ndarray, m: np.ndarray) -> float | None:
        return float(v[m].mean()) if m.any() else None

    def auc(score: np.ndarray, k: np.ndarray) -> float | None:
        return float(roc_auc_score(clean[k], score[k])) if 0 < clean[k].sum() < k.sum() else None

    def row(name: Any, k: np.ndarray) -> dict[str, Any]:
        ok, bad = k & clean, k & ~clean
        return {"class": name, "samples": int(k.sum()), "mislabelled": float(bad.sum() / max(k.sum(), 1)),
                "loss_clean": mean(loss, ok), "loss_mislabelled": mean(loss, bad),
                "w_clean": mean(w, ok), "w_mislabelled": mean(w, bad), "auc": auc(w, k), "loss_auc": auc(-loss, k)}

    # loss_auc: how well a low loss alone tells clean from mislabelled; over all classes it is the best weight
    # AUC any single falling curve of the loss can reach (a class-blind weighting sees nothing else)
    rows = [row(int(c), (y == c) & seen) for c in np.unique(y)]
    return rows + [row("all", seen)]


def cmd_classes(a: argparse.Namespace) -> int:
    rows = class_breakdown(a.runs)
    f = lambda v, d=3: "  -  " if v is None else f"{v:.{d}f}"  # noqa: E731
    print("class  samples  mislabelled  loss clean  loss mislab.  w clean  w mislab.  weight AUC  low-loss AUC")
    for r in rows:
        print(f"{r['class']:>5}  {r['samples']:>7}  {r['mislabelled']:>11.2f}  {f(r['loss_clean']):>10}  "
              f"{f(r['loss_mislabelled']):>12}  {f(r['w_clean']):>7}  {f(r['w_mislabelled']):>9}  {f(r['auc']):>10}  "
              f"{f(r['loss_auc']):>12}")
    print("weight AUC: weights rank clean above mislabelled (within the class; 'all': over every sample); low-loss "
          "AUC: the same for a low loss alone, over 'all' the most any single falling curve of the loss can reach")
    return _maybe_json(a.json, rows)


def cmd_signal(a: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine import Trainer

    presentation = [f"run.out={a.out}", "run.progress=false", "run.plot=false"]
    if a.run:   # a run's own state: its config and checkpoint, nothing trained and nothing written there
        config, ckpt = os.path.join(a.run, CONFIG), os.path.join(a.run, CHECKPOINT)
        if not (os.path.exists(config) and os.path.exists(ckpt)):
            raise CmwnetError(f"{a.run} holds no config.yaml and {CHECKPOINT}: give a run folder (finished or "
                              "interrupted), or --config with --epochs to train one here")
        trainer = Trainer(load_config(config, list(a.set) + presentation))
        trainer.load_checkpoint(ckpt)
        print(f"{a.run}: the meta-gradient at its checkpoint")
        results = {trainer.state.epoch: meta_signal(trainer)}
    else:
        if not a.epochs:
            raise CmwnetError("signal --config needs --epochs N [N ...] (epochs to train first); or give --run RUN")
        if min(a.epochs) < 0:
            raise CmwnetError(f"--epochs {min(a.epochs)}: a number of epochs to train first is >= 0 (0: measure at the "
                              "start)")
        trainer = Trainer(load_config(a.config, list(a.set) + presentation))
        results = {}
        for epochs in sorted(set(a.epochs)):
            while trainer.state.epoch < epochs:
                trainer._run_epoch()   # the engine's own epoch (logs its line), without finishing the run
            with _state_kept(trainer):   # measuring must not change how the later epochs train
                results[epochs] = meta_signal(trainer)
    for epoch, result in results.items():
        print(f"\n== after epoch {epoch}")
        _print_signal(result)
    print("within class: the signal less its class's mean (what re-balancing between classes leaves)")
    # one measurement: its numbers; several (--epochs 8 12 16): keyed by the epoch they were taken after
    return _maybe_json(a.json, next(iter(results.values())) if len(results) == 1 else
                       {str(e): r for e, r in results.items()})


@contextlib.contextmanager
def _state_kept(trainer):
    """Put the net, its optimizer, the method (weight net, meta batches) and every random stream back as they
    were: the measurement runs forwards in training mode (BatchNorm statistics) and draws batches."""
    import copy

    saved = copy.deepcopy({"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                           "method": trainer.method.state_dict(), "rng": trainer._rng_state()})
    try:
        yield
    finally:
        trainer.model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        trainer.method.load_state_dict(saved["method"])
        trainer._set_rng_state(saved["rng"])


def _print_signal(result: dict[str, Any]) -> None:
    for norm, r in result.items():
        print(f"\n{norm}: AUC of 'wants a higher weight' for clean samples {r['auc_wants_up_clean']:.3f}, "
              f"mean signal {r['mean_signal']:+.3f} (units: mean |signal|)")
        _print_quintiles(r["by_loss_quintile"])
        print("  class  training samples  mean loss  signal   fraction clean")
        for k in r["by_class"]:
            print(f"  {k['class']:>5}  {k['train_samples']:>16}  {k['mean_loss']:9.3f}  {k['signal']:+.3f}   "
                  f"{k['fraction_clean']:.2f}")
        for fam in r.get("by_family", []):
            auc = fam["auc_wants_up_clean"]
            print(f"  family {fam['family']} (classes {fam['classes']}): AUC of 'wants a higher weight' for clean "
                  f"samples {'-' if auc is None else f'{auc:.3f}'}")
            _print_quintiles(fam["by_loss_quintile"], indent="    ")


def _print_quintiles(bins: list[dict[str, Any]], indent: str = "  ") -> None:
    f = lambda v: "   -   " if v is None else f"{v:+.3f}"  # noqa: E731
    print(f"{indent}loss from   all      clean    mislabelled  within class  fraction clean")
    for b in bins:
        print(f"{indent}{b['loss_from']:6.2f}    {f(b['all'])}   {f(b['clean'])}   {f(b['mislabelled'])}       "
              f"{f(b['within_class'])}       {b['fraction_clean']:.2f}")


def _maybe_json(path: str | None, data: Any) -> int:
    """--json: the numbers beside the printed table; an unwritable path names --json (not an --out these
    commands do not have)."""
    if path:
        from ..checkpoint import atomic_write_text
        from ..errors import CmwnetError

        try:
            atomic_write_text(json.dumps(data, indent=1), path)
        except OSError as e:
            raise CmwnetError(f"--json {path} cannot be written ({e.strerror or e}): give --json a file in a folder "
                              "you can write to") from None
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    if a.name not in STUDIES:
        from ..errors import unknown_name
        raise unknown_name("study", a.name, STUDIES)
    from ..paper.launch_options import check_launch_options

    check_launch_options(a)
    seeds = tuple(a.seeds or STUDIES[a.name]["seeds"])
    patterns = []
    for f in a.filter:   # checked before any data or cell: an invalid regex was an internal error
        try:
            patterns.append(re.compile(f))
        except re.error as e:
            raise CmwnetError(f"--filter {f!r} is not a regular expression ({e}): escape special characters, e.g. "
                              f"{re.escape(f)!r}") from None
    if patterns:
        names = [c.name for c in study_cells(a.name, seeds, "DATA")]
        if not any(p.search(n) for p in patterns for n in names):
            shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
            raise CmwnetError(f"--filter {' '.join(a.filter)} matches no cell of study {a.name}: the cells are {shown}")
    data_root = None
    if a.name.startswith("cifar"):
        if not os.path.exists(a.data_root):
            raise CmwnetError(f"no CIFAR-10 at {a.data_root}: give --data-root the offline copy cifar10-jpeg.npz "
                              "or a folder holding cifar-10-batches-py")
        from ..paper.tables import prepare_real_data

        data_root = prepare_real_data(a.data_root, a.out, {"cifar10"})
    cells = study_cells(a.name, seeds, data_root)
    if a.filter:
        cells = [c for c in cells if any(p.search(c.name) for p in patterns)]
    report = run_cells(cells, a.out, make_slots(jobs=a.jobs, threads=1), "worker" if a.name == "digits" else "subprocess")
    print("\n" + summarize(a.out, a.name, seeds))
    return 0 if report.ok else (130 if report.interrupted else 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmwnet.studies", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train a study's grid and print its table")
    r.add_argument("name", help=f"one of {', '.join(STUDIES)}")
    r.add_argument("--out", default=DEFAULT_OUT)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--seeds", type=int, nargs="+")
    r.add_argument("--filter", action="append", default=[], help="regular expression on 'study/setting/seed'")
    r.add_argument("--data-root", default=os.path.join("..", "shared", "data", "cifar10-jpeg.npz"))
    s = sub.add_parser("signal", help="the per-sample meta-gradient by loss quintile, after a few epochs or at a "
                                      "run's checkpoint")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="train this config for --epochs, then measure")
    where.add_argument("--run", help="measure at this run folder's checkpoint (its own config; nothing is trained)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--epochs", type=int, nargs="+", help="with --config: train this many epochs, then measure "
                                                         "(several: measure after each)")
    s.add_argument("--out", default=os.path.join(DEFAULT_OUT, "signal"))
    s.add_argument("--json", help="also write the numbers here")
    k = sub.add_parser("classes", help="per observed class: mislabelled share, losses, weights, AUC in the class")
    k.add_argument("runs", nargs="+", help="finished run folders (seeds of one setting are pooled)")
    k.add_argument("--json", help="also write the numbers here")
    t = sub.add_parser("targets", help="how right the targets a run trained on are: CMW-Net-SL's corrected ones "
                                       "beside the labels and the teacher's, or a reweighting run's weighted labels")
    t.add_argument("runs", nargs="+", help="finished run folders of a meta-learning method (synthetic noise); "
                                           "MW-Net/CMW-Net runs get the weighted labels' true-class share")
    t.add_argument("--json", help="also write the numbers here")
    k = sub.add_parser("rankings", help="which score finds a weighting run's mislabelled samples best: its weights, "
                                        "the final loss or the mean training loss (every run under a folder)")
    k.add_argument("root", help="a folder of finished runs with known label noise (e.g. runs/cpu)")
    k.add_argument("--json", help="also write the numbers here")
    return p.parse_args(argv)


def cmd_rankings(a: argparse.Namespace) -> int:
    from .rankings import format_rankings, ranking_study

    rows = ranking_study(a.root)
    print(format_rankings(rows))
    return _maybe_json(a.json, rows)


def cmd_targets(a: argparse.Namespace) -> int:
    from .corrected_targets import corrected_targets, format_corrected

    results = {run: corrected_targets(run) for run in a.runs}
    print("\n".join(format_corrected(run, r) for run, r in results.items()))
    return _maybe_json(a.json, results)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    return {"signal": cmd_signal, "classes": cmd_classes, "targets": cmd_targets,
            "rankings": cmd_rankings}.get(a.command, cmd_run)(a)


if __name__ == "__main__":
    sys.exit(run_cli(main))
