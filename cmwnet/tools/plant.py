"""`python -m cmwnet.tools.plant`: an image folder with mislabelled files you know, and how well a run finds them.

Before trusting a suspect list on your own folder, try it on one whose errors are known: `make` writes an image
folder of CIFAR-10 classes from the offline copy, moves a share of each class's training files into other classes'
folders, and lists the moved files in `planted.txt`; `score` ranks a finished run's training files
(`cmwnet.run_folder.suspects`, as `inspect --suspects` does) and says how many planted files come first, beside
cleanlab's `find_label_issues` on the same run's probabilities (its export, in-sample) when cleanlab is installed.

    python -m cmwnet.tools.plant make my_data --classes bird deer frog ship truck --rate 0.15
    python -m cmwnet.train --config configs/image_folder_cmwnet.yaml --set data.root=my_data
    python -m cmwnet.tools.plant score runs/image_folder_cmwnet --planted my_data/planted.txt
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from ..errors import CmwnetError, OneLineParser, run_cli
from ..label_metrics import Ranking, cleanlab_ranking, ranking_metrics

PLANTED = "planted.txt"


def make_folder(out: str, npz: str, classes: list[str], per_class: int, val_per_class: int, rate: float,
                seed: int) -> list[str]:
    """Write out/train/<class>/ (with a `rate` share of each class's files moved to a random other class) and
    out/val/<class>/ (right labels, from the test split); returns the planted files, relative to `out`."""
    if os.path.exists(out) and os.listdir(out):
        raise CmwnetError(f"{out} exists and is not empty: give a new folder (nothing is overwritten)")
    if not 0.0 <= rate < 1.0:
        raise CmwnetError(f"--rate must be in [0, 1), got {rate}: the share of each class's files to move")
    if not os.path.isfile(npz):
        raise CmwnetError(f"{npz} not found: copy the offline CIFAR-10 (cp ../shared/data/cifar10-jpeg.npz data/) or "
                          "give --data PATH")
    z = np.load(npz)
    names = [str(c) for c in z["classes"]]
    unknown = [c for c in classes if c not in names]
    if unknown or len(set(classes)) < 2 or len(set(classes)) != len(classes):
        raise CmwnetError(f"--classes must name at least 2 different CIFAR-10 classes ({', '.join(names)}), got "
                          f"{' '.join(classes)}")
    rng = np.random.default_rng(seed)
    planted = []
    for split, source, n in (("train", "train", per_class), ("val", "test", val_per_class)):
        labels, offsets, blob = z[f"{source}_labels"], z[f"{source}_offsets"], z[f"{source}_jpeg"]
        for c in classes:
            pool = np.flatnonzero(labels == names.index(c))
            if n > len(pool):
                raise CmwnetError(f"{c} has {len(pool)} images in CIFAR-10's {source} split: ask for at most that many")
            for i in rng.choice(pool, n, replace=False):
                folder = c
                if split == "train" and rng.random() < rate:
                    folder = str(rng.choice([k for k in classes if k != c]))
                rel = os.path.join(split, folder, f"{c}_{i}.jpg")     # the file name keeps the true class
                os.makedirs(os.path.join(out, split, folder), exist_ok=True)
                with open(os.path.join(out, rel), "wb") as f:
                    f.write(blob[offsets[i]:offsets[i + 1]].tobytes())
                if folder != c:
                    planted.append(rel)
    with open(os.path.join(out, PLANTED), "w") as f:
        f.write("".join(p + "\n" for p in planted))
    return planted


def score_run(run: str, planted_file: str, rank_by: str = "auto") -> list[str]:
    """The run's suspect list (and cleanlab on its in-sample probabilities) against the planted files."""
    from ..run_folder.suspects import suspect_list

    if not os.path.isfile(planted_file):
        raise CmwnetError(f"{planted_file} not found: give the planted.txt that `plant make` wrote")
    # match on train/<folder>/<file>, so the folder may have moved since and planted paths may be absolute
    with open(planted_file) as f:
        planted = {tuple(os.path.normpath(p.strip()).split(os.sep)[-3:]) for p in f if p.strip()}
    s = suspect_list(run, rank_by)
    paths = s.table.get("paths")
    if paths is None or not any(str(p) for p in paths):
        raise CmwnetError(f"{run} has no file paths for its samples: score runs trained on an image folder")
    index = np.asarray(s.table["index"])
    hit = np.array([tuple(os.path.normpath(str(p)).split(os.sep)[-3:]) in planted for p in paths])
    if not hit.any():
        raise CmwnetError(f"none of {run}'s files is in {planted_file}: was the run trained on that folder?")
    mislabelled = index[hit]
    m = ranking_metrics(Ranking(index[s.order], flagged=index[s.issue]), mislabelled)
    first = min(50, len(s.order))
    lines = [s.note,
             f"{run}: {m['mislabelled']} of {m['samples']} training files planted; ROC AUC {m['auc']:.3f}, precision "
             f"at k {m['precision_at_k']:.3f}, planted among the first {first}: {int(hit[s.order[:first]].sum())}; "
             f"flagged {m['flagged']} (precision {m['flag_precision']:.3f}, recall {m['flag_recall']:.3f})"]
    if "probs" not in s.table:
        return lines + ["cleanlab not scored: the run's samples.npz holds no class probabilities"]
    try:
        c = ranking_metrics(cleanlab_ranking(index, s.table["labels"], s.table["probs"]), mislabelled)
        lines.append(f"cleanlab find_label_issues on the same run's probabilities (in-sample, as --export gives them): "
                     f"ROC AUC {c['auc']:.3f}, precision at k {c['precision_at_k']:.3f}; flagged {c['flagged']} "
                     f"(precision {c['flag_precision']:.3f}, recall {c['flag_recall']:.3f})")
    except CmwnetError as e:
        lines.append(f"cleanlab not scored: {e}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.tools.plant", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="write an image folder with planted label errors")
    mk.add_argument("out", help="the new folder (must not exist or be empty)")
    mk.add_argument("--data", default="data/cifar10-jpeg.npz", help="the offline CIFAR-10 copy")
    mk.add_argument("--classes", nargs="+", default=["bird", "deer", "frog", "ship", "truck"],
                    help="CIFAR-10 class names (default: bird deer frog ship truck)")
    mk.add_argument("--per-class", type=int, default=400, help="training files per class (default 400)")
    mk.add_argument("--val-per-class", type=int, default=100, help="val/ files per class, right labels (default 100)")
    mk.add_argument("--rate", type=float, default=0.15, help="share of each class's training files moved (default 0.15)")
    mk.add_argument("--seed", type=int, default=7)
    sc = sub.add_parser("score", help="how many planted files a run's suspect list puts first")
    sc.add_argument("run", help="a finished run trained on the folder")
    sc.add_argument("--planted", required=True, help="the folder's planted.txt")
    sc.add_argument("--rank-by", default="auto", choices=("auto", "weight", "loss", "mean_loss"),
                    help="as inspect --suspects --rank-by (default auto)")
    a = p.parse_args(argv)
    if a.command == "make" and (a.per_class < 1 or a.val_per_class < 0):
        p.error("--per-class must be at least 1 and --val-per-class at least 0")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.command == "make":
        planted = make_folder(a.out, a.data, a.classes, a.per_class, a.val_per_class, a.rate, a.seed)
        print(f"{a.out}: {len(a.classes)} classes x {a.per_class} training files, {len(planted)} of them in another "
              f"class's folder (listed in {os.path.join(a.out, PLANTED)}; each file's name starts with its true class)")
        return 0
    print("\n".join(score_run(a.run, a.planted, a.rank_by)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
