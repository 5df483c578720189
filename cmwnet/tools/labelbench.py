"""`python -m cmwnet.tools.labelbench`: how well do the learned weights find mislabelled images, against cleanlab?

On the offline CIFAR-10 copy, all 45,000 training images left after 5,000 held out (the full CPU preset:
configs/cpu_full_sym.yaml, ResNet-8, 25 epochs, lr 0.1 x0.1 at 18 and 22, chosen on the held-out images), three
kinds of label noise: 40% symmetric, 40% asymmetric (the authors' flip map) and 35% feature-dependent Type-I (PLC's
PMD noise from a ResNet-8 posterior network trained 30 epochs on the clean 45,000, as Tables 4-5 at CPU scale).
Per setting, one seed, these runs (finished ones are skipped, interrupted ones resume):
- `erm`, `mwnet`, `cmwnet` (CMW-Net meta-learns from epoch 5): the preset's settings, except that no method gets
  clean data (cleanlab gets none): the meta set is the 10 lowest-loss images per observed class under the current
  net (`data.meta.kind: lowest_loss`, as the paper's Tables 4-5 and an image folder without `meta/`);
- `erm_fold0` .. `erm_fold{K-1}`: ERM without one of K folds (`data.fold`), for cleanlab's out-of-sample
  probabilities (its documented use: K-fold cross-validation of the same network and schedule).
Rankings compared on the same samples (`cmwnet.label_metrics`): CMW-Net's and MW-Net's last-epoch weights (lowest
first), CMW-Net's suspect list as `inspect --suspects` gives it (the loss where its weights invert), ERM's
last-epoch loss and its loss averaged over the epochs (`cmwnet.loss_trace`), and cleanlab's
`find_label_issues` / label-quality order. Per ranking: ROC AUC, precision at k (k = the number mislabelled),
recall at the top 5%, what it flags, and its compute (training epochs x images over its runs, and wall time).

    python -m cmwnet.tools.labelbench [--settings sym0.4 asym0.4 type1_0.35] [--folds 4] [--out runs/labelbench]
    python -m cmwnet.tools.labelbench --settings sym0.2 asym0.3 type3_0.7    # rates no issue names, same recipe
    python -m cmwnet.tools.labelbench --report --to results/labelbench    # the tables from the finished runs
    python -m cmwnet.tools.labelbench --smoke                              # generated data, a few steps (CI)

Writes OUT/labelbench.md, .csv and .png (ROC curves); `--to DIR` copies them there. Needs cleanlab
(`pip install -e '.[cleanlab]'`) for its row; the other rows are reported without it.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import CmwnetError, OneLineParser, run_cli
from ..label_metrics import Ranking, cleanlab_ranking, out_of_sample_probs, ranking_metrics
from ..paper.runner import Cell, make_slots, run_cells
from ..resources import CONFIG_DIR
from ..run_folder.layout import CONFIG, RESULT

DEFAULT_OUT = os.path.join("runs", "labelbench")
DEFAULT_DATA = os.path.join("data", "cifar10-jpeg.npz")
NAME = "labelbench"
MAX_FOLDS = 20


@dataclass(frozen=True)
class BenchSetting:
    key: str
    label: str
    config: str                      # under cmwnet/configs
    pmd: tuple[int, float] | None = None   # (PMD type, rate): a generated feature-dependent label file
    noise_rate: float | None = None        # a rate other than the config's 0.4 (sym / asym settings no issue names)


SETTINGS = (
    BenchSetting("sym0.4", "40% symmetric", "cpu_full_sym.yaml"),
    BenchSetting("asym0.4", "40% asymmetric", "cpu_full_asym.yaml"),
    BenchSetting("type1_0.35", "35% Type-I (feature-dependent)", "cpu_full_sym.yaml", pmd=(1, 0.35)),
)
# no clean data for anyone (cleanlab gets none): MW-Net and CMW-Net meta-learn on the 10 lowest-loss images per
# observed class under the current net, as the paper's Tables 4-5 and a user's image folder without meta/
META = "data.meta={kind: lowest_loss, per_class: 10, batch_size: 100, model: model}"
TRAINED = {"erm": ("method.name=erm",), "mwnet": ("method.name=mwnet",),
           "cmwnet": ("method.name=cmwnet", "method.start_epoch=5")}
# ranking key -> (label, run row, suspect_list's `by`)
RANKINGS = {
    "cmwnet_weight": ("CMW-Net weights", "cmwnet", "weight"),
    "cmwnet_suspects": ("CMW-Net suspect list: its net's final loss (inspect --suspects)", "cmwnet", "auto"),
    "mwnet_weight": ("MW-Net weights", "mwnet", "weight"),
    "erm_loss": ("ERM last-epoch loss", "erm", "loss"),
    "erm_mean_loss": ("ERM loss averaged over epochs", "erm", "mean_loss"),
    "cleanlab": ("cleanlab (K-fold)", None, None),
}
SMOKE = ("method.start_epoch=1", "data.train_subset=null", "data.val_size=100", "data.batch_size=16", "data.test_batch_size=500",
         "data.test_subset=200", "data.meta.per_class=5", "data.meta.batch_size=16", "optim.epochs=2",
         "run.max_steps=6", "run.plot=false", "run.device=cpu")


_KEY = re.compile(r"(sym|asym|type([123])_)(0?\.\d+)")


def parse_setting(key: str) -> BenchSetting:
    """A setting from its key, so that the benchmark reruns at rates no issue names: `sym<rate>`, `asym<rate>`
    (the authors' flip map) or `type<1|2|3>_<rate>` (PMD feature-dependent noise), the rate in (0, 1)."""
    m = _KEY.fullmatch(key)
    if m is None:
        raise CmwnetError(f"--settings {key}: not a benchmark setting; give sym<rate>, asym<rate> or "
                          f"type<1|2|3>_<rate> with the rate in (0, 1), e.g. sym0.2 asym0.3 type3_0.7")
    rate = float(m.group(3))
    if not 0.0 < rate < 1.0:
        raise CmwnetError(f"--settings {key}: the noise rate must be in (0, 1), got {rate}")
    kind, t = m.group(1), m.group(2)
    canonical = f"type{t}_{rate:g}" if t else f"{kind}{rate:g}"
    known = {s.key: s for s in SETTINGS}
    if canonical in known:   # sym0.40 is sym0.4: the same runs, not a second setting in the same folders
        return known[canonical]
    pct = f"{rate * 100:g}%"
    if t:
        return BenchSetting(canonical, f"{pct} Type-{'I' * int(t)} (feature-dependent)", "cpu_full_sym.yaml",
                            pmd=(int(t), rate))
    return BenchSetting(canonical, f"{pct} {'symmetric' if kind == 'sym' else 'asymmetric'}",
                        f"cpu_full_{kind}.yaml", noise_rate=rate)


def by_key(keys: list[str] | None) -> list[BenchSetting]:
    if not keys:
        return list(SETTINGS)
    return list({s.key: s for s in map(parse_setting, keys)}.values())


def posterior_cell(data_root: str, smoke: bool) -> Cell:
    """PLC's posterior network on the same 45,000 clean training images the cells train on."""
    from ..data.feature_noise import posterior_config
    from ..paper.cpu_tables import POSTERIOR_CPU
    from ..paper.schema import deep_update

    cfg = posterior_config("cifar10", data_root, None)
    deep_update(cfg, {"data": {"val_size": 5000}})
    deep_update(cfg, POSTERIOR_CPU)
    if smoke:
        deep_update(cfg, {"data": {"val_size": 100, "test_batch_size": 500, "test_subset": 200, "batch_size": 16},
                          "optim": {"epochs": 1}, "run": {"device": "cpu", "max_steps": 6}})
    return Cell("noise_models/cifar10_posteriors", cfg, [], "PLC posterior network, CIFAR-10 (45k)")


def label_file(out: str, pmd: tuple[int, float], strict: bool, posterior: str | None = None) -> str:
    """The Type-`pmd` label file generated from the posterior network's run (reused when it is there); `posterior`:
    another finished run of the same recipe to take the posteriors from (see `check_posterior_run`)."""
    from ..data.feature_noise import NoiseSpec
    from ..methods.record_posteriors import label_files_for

    spec = NoiseSpec("cifar10", pmd[0], pmd[1])
    runs = {"cifar10": posterior or os.path.join(out, "noise_models", "cifar10_posteriors")}
    return label_files_for([spec], os.path.join(out, "noisy_labels"), runs, strict=strict)[spec]


def cells(setting: BenchSetting, data_root: str, folds: int, seed: int, smoke: bool,
          noise_file: str | None = None) -> list[Cell]:
    """The setting's runs: ERM, MW-Net, CMW-Net and the K fold runs of ERM."""
    config = os.path.join(CONFIG_DIR, setting.config)
    from ..paper.runner import _yaml_value

    common = [f"data.root={_yaml_value(data_root)}", f"seed={seed}", META, "run.progress=false"] + (
        list(SMOKE) if smoke else [])
    if setting.pmd is not None:   # paths as YAML strings: a '#', ': ' or ', ' in a folder name stays in the path
        common += ["data.noise.kind=none", "data.noise.rate=0.0",
                   f"data.noise.file={_yaml_value(noise_file or 'LABEL_FILE')}"]
    elif setting.noise_rate is not None:
        common.append(f"data.noise.rate={setting.noise_rate!r}")
    out = [Cell(f"{setting.key}/{row}/s{seed}", config, list(ov) + common, f"{row}, {setting.label}, seed {seed}")
           for row, ov in TRAINED.items()]
    for k in range(folds):
        fold = f"data.fold={{folds: {folds}, index: {k}, seed: {seed}}}"
        out.append(Cell(f"{setting.key}/erm_fold{k}/s{seed}", config, ["method.name=erm", fold] + common,
                        f"ERM without fold {k + 1}/{folds}, {setting.label}, seed {seed}"))
    return out


# -- the report --------------------------------------------------------------------------------------------------
def _result(out: str, name: str) -> dict | None:
    path = os.path.join(out, name, RESULT)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _compute(results: list[dict]) -> tuple[float, float]:
    """(training epochs x images, wall seconds) summed over runs."""
    return (float(sum(r["epochs"] * r["data"]["train_size"] for r in results)),
            float(sum(r.get("wall_time_s") or 0.0 for r in results)))


def setting_rows(out: str, setting: BenchSetting, folds: int, seed: int) -> tuple[list[dict], dict]:
    """Per ranking of one setting: its metrics on the samples every ranking covers, and its compute; plus the
    curves (ranking key -> (suspicion order, mislabelled mask)) for the figure."""
    from ..run_folder.sample_table import HELDOUT, read_npz
    from ..run_folder.suspects import suspect_list

    found: dict[str, tuple[Ranking, list[dict]]] = {}
    mislabelled: set[int] = set()
    observed: tuple[np.ndarray, np.ndarray] | None = None   # the full runs' (index, observed label)
    for key, (_, row, by) in RANKINGS.items():
        if row is None:
            continue
        name = f"{setting.key}/{row}/s{seed}"
        res = _result(out, name)
        if res is None:
            continue
        s = suspect_list(os.path.join(out, name), by)
        t = s.table
        if observed is None:
            observed = (t["index"], t["labels"])
        mislabelled.update(int(i) for i in t["index"][t["labels"] != t["true_labels"]])
        flagged = t["index"][s.issue] if by in ("auto", "loss") else None   # the in-sample confident-learning flag
        found[key] = (Ranking(t["index"][s.order], flagged, s.note), [res])
    fold_names = [f"{setting.key}/erm_fold{k}/s{seed}" for k in range(folds)]
    fold_results = [_result(out, n) for n in fold_names]
    for name, res in zip(fold_names, fold_results):
        got = ((res or {}).get("data") or {}).get("fold", {}).get("folds")
        if res is not None and got != folds:
            raise CmwnetError(f"{os.path.join(out, name)} is fold {name.split('erm_fold')[1].split('/')[0]} of "
                              f"{got} folds, not of --folds {folds}: give the --folds the runs were made with")
    extra = os.path.join(out, setting.key, f"erm_fold{folds}", f"s{seed}", RESULT)
    if os.path.exists(extra):
        raise CmwnetError(f"{os.path.dirname(extra)} exists: the runs were made with more than --folds {folds} "
                          "folds; give that --folds")
    cleanlab_note = ""
    if folds and all(fold_results):
        for n in fold_names:
            if not os.path.exists(os.path.join(out, n, HELDOUT)):
                raise CmwnetError(f"{os.path.join(out, n)} has no {HELDOUT} (its held-out predictions): rerun that "
                                  "fold run with --force")
        held = [read_npz(os.path.join(out, n, HELDOUT)) for n in fold_names]
        index, labels, probs = out_of_sample_probs(held)
        if observed is not None:   # the folds must hold out the full runs' samples with the full runs' labels
            pos = {int(i): k for k, i in enumerate(observed[0])}
            common = [k for k, i in enumerate(index) if int(i) in pos]
            if any(labels[k] != observed[1][pos[int(index[k])]] for k in common):
                raise CmwnetError(f"the fold runs of {setting.key} were trained on other labels than its full runs "
                                  f"(e.g. {out}/{fold_names[0]}): rerun them with --force")
        for h in held:
            mislabelled.update(int(i) for i in h["index"][h["labels"] != h["true_labels"]])
        try:
            found["cleanlab"] = (cleanlab_ranking(index, labels, probs), fold_results)
        except CmwnetError as e:   # cleanlab not installed: the other rows still report
            cleanlab_note = str(e)
    if not found:
        return [], {}
    among = None
    for ranking, _ in found.values():
        idx = np.asarray(ranking.index)
        among = idx if among is None else np.intersect1d(among, idx)
    bad = np.asarray(sorted(mislabelled), np.int64)
    rows, curves = [], {}
    for key, (ranking, results) in found.items():
        m = ranking_metrics(ranking, bad, among)
        work, wall = _compute(results)
        rows.append({"setting": setting.key, "ranking": key, "label": RANKINGS[key][0], **m,
                     "epochs_x_images": work, "wall_s": wall, "runs": len(results), "note": ranking.note})
        order = np.asarray(ranking.index)
        order = order[np.isin(order, among)]
        curves[key] = np.isin(order, bad)
    if cleanlab_note:
        rows.append({"setting": setting.key, "ranking": "cleanlab", "label": RANKINGS["cleanlab"][0],
                     "note": cleanlab_note})
    return rows, curves


def targets(rows: list[dict], setting: BenchSetting) -> list[str]:
    """The issue's target per setting: CMW-Net's AUC >= cleanlab's at <= 1/3 of its compute."""
    got = {r["ranking"]: r for r in rows if "auc" in r}
    c, cl = got.get("cmwnet_weight"), got.get("cleanlab")
    if not c or not cl:
        return [f"- {setting.label}: target not checked (CMW-Net or cleanlab missing)"]
    lines = []
    for what, r in (("CMW-Net weight", c), ("CMW-Net's suspect list (its net's final loss)", got.get("cmwnet_suspects"))):
        if r:
            ok = r["auc"] >= cl["auc"]
            lines.append(f"- [{' met ' if ok else 'MISSED'}] {setting.label}: {what} AUC {r['auc']:.3f} vs cleanlab "
                         f"{cl['auc']:.3f} ({r['auc'] - cl['auc']:+.3f})")
    for what, a, b in (("epochs x images", c["epochs_x_images"], cl["epochs_x_images"]),
                       ("wall time", c["wall_s"], cl["wall_s"])):
        if b:
            ok = a <= b / 3 + 1e-9
            lines.append(f"- [{' met ' if ok else 'MISSED'}] {setting.label}: CMW-Net's {what} {a / b:.2f}x "
                         f"cleanlab's (target <= 0.33)")
    return lines


COLUMNS = ("setting", "ranking", "label", "samples", "mislabelled", "auc", "precision_at_k", "recall_at_5pct",
           "flagged", "flag_precision", "flag_recall", "epochs_x_images", "wall_s", "runs", "note")


def report(out: str, settings: list[BenchSetting], folds: int, seed: int, smoke: bool = False
           ) -> tuple[str, list[dict], dict]:
    """The Markdown report, its rows and the curves of every setting with finished runs."""
    data = "generated smoke data, a few steps per run (not a measurement)" if smoke else "CIFAR-10 (45k)"
    schedule = "a few steps per run" if smoke else "ResNet-8, 25 epochs (configs/cpu_full_sym.yaml)"
    lines = [f"# Finding mislabelled images: learned weights against cleanlab ({folds}-fold), {data}", "",
             schedule + ", seed %d; every ranking scored on the samples all of "
             "them cover. AUC: ROC AUC of the ranking against the mislabelled set; P@k: precision at k = the number "
             "mislabelled; R@5%%: recall in the first 5%%; flags: what the method flags as label issues (cleanlab: "
             "find_label_issues; ERM / suspect list: confident learning's rule on in-sample probabilities). Compute: "
             "training epochs x images over the ranking's runs, and their wall time (2-core CPU, two runs at once)."
             % seed, ""]
    all_rows, all_curves = [], {}
    for st in settings:
        rows, curves = setting_rows(out, st, folds, seed)
        if not rows:
            lines += [f"## {st.label}", "", "no finished runs yet", ""]
            continue
        n = next((r for r in rows if "samples" in r), None)
        share = f", {100 * n['mislabelled'] / n['samples']:.1f}% of {n['samples']:,} mislabelled" if n else ""
        lines += [f"## {st.label}{share}", "",
                  "| ranking | AUC | P@k | R@5% | flags | flag precision | flag recall | epochs x images | wall (min) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "auc" not in r:
                lines.append(f"| {r['label']} | {r['note']} |  |  |  |  |  |  |  |")
                continue
            flags = ("–", "–", "–") if "flagged" not in r else (
                f"{r['flagged']:,}", f"{r['flag_precision']:.3f}", f"{r['flag_recall']:.3f}")
            lines.append(f"| {r['label']} | {r['auc']:.3f} | {r['precision_at_k']:.3f} | {r['recall_at_5pct']:.3f} | "
                         f"{flags[0]} | {flags[1]} | {flags[2]} | {r['epochs_x_images'] / 1e6:.2f}M | "
                         f"{r['wall_s'] / 60:.1f} |")
        lines += [""] + targets(rows, st) + [""]
        notes = [f"- {r['label']}: {r['note']}" for r in rows if r.get("note") and "auc" in r]
        lines += notes + [""]
        all_rows += rows
        all_curves[st.key] = (st.label, curves)
    return "\n".join(lines), all_rows, all_curves


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def plot_curves(curves: dict, path: str, smoke: bool = False) -> None:
    """One panel per setting: each ranking's ROC curve (share of mislabelled found against share of clean
    samples passed), AUC in the legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..run_folder.plotting import save_figure

    n = max(1, len(curves))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    colours = {k: plt.get_cmap("tab10")(i) for i, k in enumerate(RANKINGS)}
    for ax, (key, (label, per_ranking)) in zip(axes[0], curves.items()):
        for rk, bad in per_ranking.items():
            tpr = np.concatenate([[0.0], np.cumsum(bad) / max(1, bad.sum())])
            fpr = np.concatenate([[0.0], np.cumsum(~bad) / max(1, (~bad).sum())])
            auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
            ax.plot(fpr, tpr, color=colours[rk], lw=1.6, ls="--" if rk == "cleanlab" else "-",
                    label=f"{RANKINGS[rk][0]} ({auc:.3f})")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
        ax.set(title=label, xlabel="share of clean samples passed", ylabel="share of mislabelled samples found",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower right", title="ranking (AUC)", title_fontsize=7)
    what = "generated smoke data (not a measurement)" if smoke else "CIFAR-10 images (45k, ResNet-8)"
    sep = ": " if n > 1 else ":\n"        # one panel is too narrow for the title on one line
    fig.suptitle(f"Finding mislabelled {what}{sep}ROC of each ranking", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def write_report(out: str, settings: list[BenchSetting], folds: int, seed: int, to: str | None,
                 smoke: bool = False) -> str:
    from ..checkpoint import atomic_write_text

    text, rows, curves = report(out, settings, folds, seed, smoke)
    if not rows:
        raise CmwnetError(f"no finished benchmark runs under {out} for seed {seed} (settings "
                          f"{', '.join(s.key for s in settings)}): run the benchmark first, or give its --out and "
                          "--seed; nothing was written")
    files = {f"{NAME}.md": text + "\n", f"{NAME}.csv": rows_csv(rows)}
    for name, content in files.items():
        atomic_write_text(content, os.path.join(out, name))
    if curves:
        plot_curves(curves, os.path.join(out, f"{NAME}.png"), smoke)
    if to:
        if os.path.exists(to) and not os.path.isdir(to):
            raise CmwnetError(f"--to {to} is a file: give a folder (it is created when missing)")
        try:
            os.makedirs(to, exist_ok=True)
        except OSError as e:
            raise CmwnetError(f"--to {to} cannot be made ({e.strerror}): give a folder path you can write to") from None
        if os.path.realpath(to) != os.path.realpath(out):   # --to OUT: already there
            for name in list(files) + ([f"{NAME}.png"] if curves else []):
                shutil.copyfile(os.path.join(out, name), os.path.join(to, name))
    return text


# -- the command -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.tools.labelbench", description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", metavar="KEY", help="which noise settings (default all: "
                   + ", ".join(s.key for s in SETTINGS) + "; other rates as sym<rate>, asym<rate>, "
                   "type<1|2|3>_<rate>)")
    p.add_argument("--folds", type=int, default=4, help="K of cleanlab's K-fold cross-validation (default 4)")
    p.add_argument("--seed", type=int, default=1, help="the runs' seed (default 1)")
    p.add_argument("--out", default=None, help=f"runs and report (default {DEFAULT_OUT}; --smoke: runs/smoke/labelbench)")
    p.add_argument("--data-root", default=DEFAULT_DATA, help=f"cifar10-jpeg.npz or a folder (default {DEFAULT_DATA})")
    p.add_argument("--posterior", metavar="RUN", help="a finished posterior network of the same recipe to take the "
                   "Type-I labels from instead of training one (Tables 4-5 at CPU scale train it into "
                   "runs/cpu/noise_models/cifar10_posteriors)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    p.add_argument("--to", metavar="DIR", help="also copy labelbench.md/.csv/.png into DIR (e.g. results/labelbench)")
    p.add_argument("--report", action="store_true", help="only write the report from the runs that have finished")
    p.add_argument("--smoke", action="store_true", help="generated data, a few steps per run (what CI runs)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their compute, run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ..paper.launch_options import check_launch_options
    from ..paper.tables import check_real_data, prepare_real_data, prepare_smoke_data

    a = parse_args(argv)
    check_launch_options(a)
    if a.folds < 2:
        raise CmwnetError(f"--folds {a.folds}: cross-validation needs at least 2 folds (cleanlab suggests 4 or 5)")
    if a.folds > MAX_FOLDS:
        raise CmwnetError(f"--folds {a.folds}: at most {MAX_FOLDS} (cleanlab's documentation uses 4 or 5; each fold "
                          "is one more training run)")
    if a.report and a.dry_run:
        raise CmwnetError("--report writes the report and --dry-run runs nothing: give one of them")
    if not 0 <= a.seed < 2 ** 32:
        raise CmwnetError(f"--seed {a.seed}: a seed is an integer in [0, 2^32)")
    settings = by_key(a.settings)
    out = os.path.abspath(a.out or (os.path.join("runs", "smoke", NAME) if a.smoke else DEFAULT_OUT))
    if a.report:
        print(write_report(out, settings, a.folds, a.seed, a.to, a.smoke))
        return 0
    if a.dry_run:   # nothing is written: the data is only looked for
        if not a.smoke:
            check_real_data(a.data_root, {"cifar10"})
        data_root = os.path.join(out, "data") if a.smoke else os.path.abspath(a.data_root)
    elif a.smoke:
        data_root = prepare_smoke_data(out, {"cifar10"})
    else:
        data_root = prepare_real_data(a.data_root, out, {"cifar10"})
    mode = "worker" if a.smoke else "subprocess"
    slots = make_slots(jobs=a.jobs, threads=1)
    if a.dry_run:
        return dry_run(settings, data_root, a, out)
    noise_files: dict[str, str] = {}
    if any(s.pmd for s in settings):
        post = posterior_cell(data_root, a.smoke)
        if a.posterior:
            check_posterior_run(a.posterior, post, out)
        elif not run_cells([post], out, slots[:1], mode).ok:
            print("the posterior network did not finish: rerun the same command to resume", file=sys.stderr)
            return 1
        noise_files = {s.key: label_file(out, s.pmd, strict=not a.smoke, posterior=a.posterior)
                       for s in settings if s.pmd}
    todo = [c for s in settings for c in cells(s, data_root, a.folds, a.seed, a.smoke, noise_files.get(s.key))]
    refuse_conflicts(todo, out)
    result = run_cells(todo, out, slots, mode)
    print("\n" + write_report(out, settings, a.folds, a.seed, a.to, a.smoke))
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def check_posterior_run(run: str, cell: Cell, out: str) -> None:
    """A posterior network trained elsewhere (Tables 4-5 at CPU scale train the same one into runs/cpu) is used
    only when it finished with this benchmark's recipe: the same data split, model, schedule and seed; where its
    data lives and where it was written may differ."""
    import yaml

    from ..config import config_differences

    path = os.path.join(run, CONFIG)
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(run, RESULT)):
        raise CmwnetError(f"--posterior {run} is not a finished run (no {CONFIG} and {RESULT}): give the folder of a "
                          "finished posterior network, e.g. runs/cpu/noise_models/cifar10_posteriors, or leave out "
                          "--posterior to train one")
    with open(path) as f:
        theirs = yaml.safe_load(f) or {}
    ours = cell.resolve(out).to_dict()
    for d in (theirs, ours):
        d.pop("run", None)
        d.pop("name", None)
        d.get("data", {}).pop("root", None)
    diffs = config_differences(theirs, ours)
    if diffs:
        raise CmwnetError(f"--posterior {run} was trained with another recipe ({diffs[0]}): its labels would not be "
                          "this benchmark's; leave out --posterior to train the benchmark's own")


def refuse_conflicts(todo: list[Cell], out: str) -> None:
    """A run folder holding another config (e.g. another --folds) stops the benchmark before anything trains."""
    from ..paper.runner import _first_difference, cell_state

    for cell in todo:
        if cell_state(cell, out, cell.resolve(out)) == "conflict":
            raise CmwnetError(f"{os.path.join(out, cell.name)} holds a run with another config "
                              f"({_first_difference(cell, out)}): give the options it was made with, or another --out")


def dry_run(settings: list[BenchSetting], data_root: str, a: argparse.Namespace, out: str) -> int:
    import shlex

    total = 0.0
    for s in settings:
        cs = cells(s, data_root, a.folds, a.seed, a.smoke)
        for c in cs:
            print(shlex.join(c.command(out, write=False)))
        cfg = [c.resolve(out) for c in cs]
        work = {c.name.split("/")[1]: x.optim.epochs for c, x in zip(cs, cfg)}
        total += sum(work.values())
        print(f"# {s.label}: {len(cs)} runs ({', '.join(work)}); the fold runs train on {a.folds - 1}/{a.folds} of "
              f"the images, so cleanlab's runs cost {a.folds - 1}x one full-data run, CMW-Net's one (plus its meta "
              "steps: measured ~2.1x ERM's wall time at this scale)")
    if any(s.pmd for s in settings):
        print("# first: PLC's posterior network (30 epochs on the 45,000 clean images) and the PMD label files")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
