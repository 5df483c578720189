"""`python -m cmwnet.inspect RUN [--lowest N | --highest N | --suspects [N] [--rank-by R] [--export DIR]] [--class NAME] [--out PNG]`

Which training samples did the learned weighting distrust? Reads a finished run's final_weights.npz and
prints the samples with the lowest (or highest) last-epoch weights: rank, the sample's index in the
reader's training split, its file (file-backed data sets), observed and true label, weight and loss. It
writes a contact sheet of their images (`lowest_weights.png` in the run folder unless --out): files are
opened from their paths; array data sets (digits, CIFAR) are read again through the reader the run used
(from its config.yaml) at the saved indices. `--figures` redraws the run's figures (cmwnet.run_folder.run_figures).
`--suspects` ranks every training sample of any run, most suspect first (`cmwnet.run_folder.suspects`: by default the
final net's loss, which found mislabelled samples better than the learned weights on most measured runs, saying
whether the weights rank against the losses; `--rank-by` picks weight, loss, or mean_loss, the training loss
averaged over the epochs), and `--export DIR`
hands the labels and the final net's probabilities to cleanlab.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from ..errors import CmwnetError, OneLineParser, run_cli
from .sample_table import class_name, load_sample_table
from .layout import CONFIG, FINAL_WEIGHTS, RESULT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.inspect", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder (holding result.json and final_weights.npz)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--lowest", type=int, metavar="N", help="the N samples of lowest weight (default 50)")
    which.add_argument("--highest", type=int, metavar="N", help="the N samples of highest weight")
    which.add_argument("--suspects", type=int, nargs="?", const=50, metavar="N", help="every training sample ranked "
                       "most suspect first (any run, ERM included: cmwnet.run_folder.suspects), the first N printed (default "
                       "50), all of them in RUN/suspects.csv, with given and predicted label, weight, loss and the "
                       "issue flag")
    p.add_argument("--export", metavar="DIR", help="with --suspects: write labels.npy and pred_probs.npy (cleanlab's "
                   "find_label_issues form), index.npy and paths.txt into DIR, ordered by the reader's index")
    p.add_argument("--rank-by", choices=("auto", "weight", "loss", "mean_loss"), default=None,
                   help="with --suspects: what ranks the samples (default auto: the final net's loss, highest first, "
                   "on every run, saying whether a learned weighting ranks against it; weight: the last-epoch weight, "
                   "lowest first; mean_loss: the training loss averaged over the epochs)")
    p.add_argument("--class", dest="cls", metavar="NAME", help="only samples whose observed label is this class")
    p.add_argument("--out", help="the contact sheet PNG (default RUN/lowest_weights.png or highest_weights.png)")
    p.add_argument("--no-sheet", action="store_true", help="print the table only")
    p.add_argument("--figures", action="store_true", help="redraw the run's figures and exit")
    return p.parse_args(argv)


def open_run(run: str) -> dict[str, np.ndarray]:
    """The run's sample table, or a one-line error saying what is missing."""
    if not os.path.isdir(run):
        raise CmwnetError(f"{run} is not a folder: give a run folder (run.out/run.name)")
    if not os.path.exists(os.path.join(run, CONFIG)):
        raise CmwnetError(f"{run} is not a run folder (no config.yaml): give the folder a training run wrote")
    path = os.path.join(run, FINAL_WEIGHTS)
    if not os.path.exists(path):
        why = "has not finished" if not os.path.exists(os.path.join(run, RESULT)) else "has no learned weighting"
        raise CmwnetError(f"{run} has no final_weights.npz (the run {why}; only methods with a weight net, e.g. "
                          "mwnet or cmwnet, write one): finish the run, or inspect a weighting method's run")
    return load_sample_table(path)   # an unreadable file is a one-line error there


def select(table: dict[str, np.ndarray], n: int, highest: bool = False, cls: str | None = None) -> np.ndarray:
    """Rows (training order) of the n lowest (highest) weights, skipping unweighted (NaN) samples."""
    names = [str(c) for c in table["class_names"]]
    keep = ~np.isnan(table["weights"])
    if cls is not None:
        if cls not in names:
            from ..errors import unknown_name

            raise unknown_name("class (--class)", cls, names)
        keep &= table["labels"] == names.index(cls)
    rows = np.flatnonzero(keep)
    order = np.argsort(table["weights"][rows], kind="stable")
    if highest:
        order = order[::-1]
    return rows[order[:n]]


def format_table(table: dict[str, np.ndarray], rows: np.ndarray) -> str:
    names = table["class_names"]
    losses = table.get("losses")
    has_paths = any(str(p) for p in table["paths"][rows])
    lines = [f"{'rank':>4}  {'index':>6}  {'observed':<14} {'true':<14} {'weight':>8} {'loss':>8}"
             + ("  path" if has_paths else "")]
    for rank, r in enumerate(rows, 1):
        obs, true = int(table["labels"][r]), int(table["true_labels"][r])
        mark = "" if true < 0 or true == obs else " *"
        loss = "" if losses is None or np.isnan(losses[r]) else f"{losses[r]:.3f}"
        line = (f"{rank:>4}  {int(table['index'][r]):>6}  {class_name(names, obs)[:14]:<14} "
                f"{(class_name(names, true) + mark)[:14]:<14} {table['weights'][r]:>8.4f} {loss:>8}")
        lines.append(line + (f"  {table['paths'][r]}" if has_paths else ""))
    if any(int(table["true_labels"][r]) < 0 for r in rows):
        lines.append("true label unknown: the data set's own label noise")
    elif any(int(table["true_labels"][r]) != int(table["labels"][r]) for r in rows):
        lines.append("* mislabelled (observed label differs from the true one)")
    return "\n".join(lines)


def load_images(run: str, table: dict[str, np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
    """H x W x 3 uint8 images of the rows: from their files, else through the run's array reader."""
    paths = [str(p) for p in table["paths"][rows]]
    if all(paths):
        from PIL import Image

        out = []
        for p in paths:
            try:
                with Image.open(p) as im:
                    out.append(np.asarray(im.convert("RGB")))
            except OSError:
                raise CmwnetError(f"image {p} of this run cannot be read: restore the data set where the run "
                                  "read it") from None
        return out
    from ..config import load_config
    from ..data.builder import ARRAY_DATASETS

    cfg = load_config(os.path.join(run, CONFIG))
    if cfg.data.name not in ARRAY_DATASETS:
        raise CmwnetError(f"{run}'s data set {cfg.data.name} saved no file paths: rerun the training with this "
                          "version of cmwnet")
    arrays = ARRAY_DATASETS.get(cfg.data.name)(cfg.data)
    x = arrays.train_x[table["index"][rows]]   # N x C x H x W uint8
    x = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x
    return [np.transpose(img, (1, 2, 0)) for img in x]


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], path: str, title: str) -> str:
    """A grid of thumbnails, each captioned (observed label, weight)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import save_figure

    n = max(len(images), 1)
    ncol = min(10, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.45 * ncol, 1.6 * nrow + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(cap, fontsize=6.5, color="tab:red" if cap.endswith("*") else "black")
    import textwrap

    fig.suptitle(textwrap.fill(title, max(40, int(17 * ncol))), fontsize=9)   # wrapped to the sheet's width
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.figures:
        if not os.path.exists(os.path.join(args.run, RESULT)):
            open_run(args.run)   # its error says what is missing
            raise CmwnetError(f"{args.run} has no result.json: the run has not finished; rerun its command")
        from .run_figures import write_run_figures

        for p in write_run_figures(args.run):
            print(p)
        return 0
    if args.rank_by is not None and args.suspects is None:
        raise CmwnetError("--rank-by orders the suspect list: give it with --suspects")
    if args.export is not None and not args.export.strip():
        raise CmwnetError("--export '' names no folder: give the folder to write labels.npy and pred_probs.npy into")
    if args.export is not None and args.suspects is None:
        raise CmwnetError("--export writes the suspect list's labels and probabilities: give it with --suspects")
    if args.suspects is not None:
        return show_suspects(args)
    table = open_run(args.run)
    highest = args.highest is not None
    n = args.highest if highest else (args.lowest if args.lowest is not None else 50)
    if n < 1:
        raise CmwnetError(f"--{'highest' if highest else 'lowest'} must be at least 1, got {n}")
    rows = select(table, n, highest, args.cls)
    if not len(rows):
        raise CmwnetError(f"{args.run} has no weighted sample" + (f" of class {args.cls}" if args.cls else ""))
    print(format_table(table, rows))
    if args.no_sheet:
        return 0
    names = table["class_names"]
    captions = []
    for r in rows:
        obs, true = int(table["labels"][r]), int(table["true_labels"][r])
        wrong = "*" if 0 <= true != obs else ""
        path = os.path.basename(str(table["paths"][r]))   # file-backed data: which file to open
        captions.append((f"{path[:18]}\n" if path else "") + f"{class_name(names, obs)[:12]} w={table['weights'][r]:.4f}{wrong}")
    word = "highest" if highest else "lowest"
    tag = "" if args.cls is None else "_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in args.cls)
    out = args.out or os.path.join(args.run, f"{word}_weights{tag}.png")   # --class NAME: its own sheet
    title = (f"{run_label(args.run)}: the {len(rows)} {word}-weight training samples"
             + (f" of class {args.cls}" if args.cls else "") + " (caption: observed label, weight; * mislabelled)")
    print(contact_sheet(load_images(args.run, table, rows), captions, out, title), file=sys.stderr)
    return 0


def run_label(run: str) -> str:
    """A run's name for a figure title: its folder below run.out (e.g. cifar10_if100/cmwnet/s1), not just "s1"."""
    parts = os.path.normpath(os.path.abspath(run)).split(os.sep)
    tail = parts[-3:] if parts[-1].startswith("s") and parts[-1][1:].isdigit() else parts[-1:]
    return "/".join(tail)


def show_suspects(args: argparse.Namespace) -> int:
    """--suspects: the ranking's note, the first N suspects, RUN/suspects.csv, and the cleanlab export."""
    from ..checkpoint import atomic_write_text
    from .suspects import export_cleanlab, format_suspects, suspect_list, suspects_csv

    if args.suspects < 1:
        raise CmwnetError(f"--suspects must be at least 1, got {args.suspects}")
    if args.cls or args.out:
        raise CmwnetError("--class and --out apply to --lowest/--highest: leave them out with --suspects")
    s = suspect_list(args.run, args.rank_by or "auto")
    # the files first, so `... --suspects | head` (which closes the pipe early) still leaves them written
    path = os.path.join(args.run, "suspects.csv")
    try:
        atomic_write_text(suspects_csv(s), path)
        messages = [f"every sample ranked: {path}"]
    except OSError as e:   # a read-only run folder: the list is printed, the export still goes where asked
        messages = [f"note: {path} could not be written ({e.strerror}); the list above is complete up to N, and "
                    "--export DIR writes the labels and probabilities elsewhere"]
    if args.export:
        messages += export_cleanlab(s, args.export)
    print(format_suspects(s, args.suspects))
    for m in messages:
        print(m, file=sys.stderr)
    return 0


def console_main() -> None:
    """The `cmwnet-inspect` console script."""
    sys.exit(run_cli(main))


if __name__ == "__main__":
    console_main()
