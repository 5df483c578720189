"""Which training labels does a run distrust? Every training sample ranked, most suspect first, with what the run
knows of it, in a form cleanlab reads.

    from cmwnet.run_folder.suspects import suspect_list, export_cleanlab
    s = suspect_list("runs/my_folder/cmwnet/s1")      # python -m cmwnet.inspect RUN --suspects [--export DIR]

The ranking score (`by`):
- "auto", every run: the final net's loss on the sample against its given label (eval mode, no augmentation),
  highest first. On a run with a learned weighting this is the net the weighting trained, and the note says whether
  its weights rank against its own losses (see `weights_inverted`). Why not the weights: on 38 CPU-scale weighting
  runs of Tables 2, 4, 5 and the Sec. 6 transfer (L2RW, MW-Net, CMW-Net, CMW-Net-SL, the transferred weighting; 5
  noise settings, 2 seeds) the final loss ranked the mislabelled samples better (ROC AUC) than the last-epoch weights
  on 34; the weights won only on 40% asymmetric noise with CMW-Net-SL and the transferred weighting
  (`python -m cmwnet.studies rankings runs/cpu`; docs/finding-mislabelled.md). The weights
  score samples by the loss of one augmented, train-mode pass through a curve shared by a whole task family, so
  they carry less per-sample information than the final loss itself;
- "weight": the last-epoch weight, lowest first (said to be inverted where it is);
- "loss": the final loss, also on a run with a weighting; "mean_loss": the training loss averaged over the run's
  epochs (`cmwnet.loss_trace`), highest first.

The issue flag (`issue`) is confident learning's rule (Northcutt, Jiang, Chuang, JAIR 2021), on the final net's
class probabilities for the training samples (eval mode, no augmentation; samples.npz): with t_j the mean
probability of class j over the samples labelled j, a sample labelled y is flagged when p_y < t_y and some other
class k has p_k >= t_k (it sits off the diagonal of the confident joint). The probabilities are in-sample (the net
trained on these labels), so the flag is conservative beside cleanlab's out-of-sample use (K-fold
cross-validation): a memorised wrong label looks right to it. `export_cleanlab` writes `labels.npy` and
`pred_probs.npy` (cleanlab's `find_label_issues(labels, pred_probs)`), ordered by the reader's index.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from ..errors import CmwnetError
from .sample_table import PREDICTIONS, class_name, load_predictions, load_sample_table
from .layout import CONFIG, FINAL_WEIGHTS, RESULT



@dataclass
class SuspectList:
    """Every training sample, most suspect first (`order`: rows of the tables in training order)."""
    order: np.ndarray
    score: str                 # "weight" (lowest first), "loss" or "mean_loss" (highest first)
    note: str                  # one line: what the ranking uses and why
    table: dict[str, np.ndarray]   # samples.npz's arrays (+ "weights", "losses" of a weighting run)
    issue: np.ndarray          # the confident-learning flag, per row
    inverted: bool | None = None   # a weighting run: do its weights rank against its losses? (None: none read)

    def rows(self, n: int | None = None) -> np.ndarray:
        return self.order if n is None else self.order[:n]


def issue_flags(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confident learning's off-diagonal rule (module docstring): True where the given label is below its class
    threshold and another class reaches its own."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    n, c = probs.shape
    if len(labels) != n:
        raise CmwnetError(f"issue_flags: {len(labels)} labels for {n} rows of probabilities")
    thresholds = np.full(c, np.inf)
    for j in range(c):
        mine = labels == j
        if mine.any():
            thresholds[j] = probs[mine, j].mean()
    given = probs[np.arange(n), labels]
    above = probs >= thresholds[None, :]
    above[np.arange(n), labels] = False
    return (given < thresholds[labels]) & above.any(1)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return 0.0 if denom == 0 else float((ra * rb).sum() / denom)


def weights_inverted(weights: np.ndarray, losses: np.ndarray, labels: np.ndarray,
                     min_per_class: int = 5) -> tuple[bool, str]:
    """Do the weights rank against the run's own losses? Per observed class with at least `min_per_class`
    weighted samples, the rank correlation of weight and loss: a weighting that distrusts high-loss samples gives
    it < 0. Inverted when it is > 0 (the weights rise with the loss) on more than half of those classes, so that
    the lowest weights fall on the samples the net fits best. Returns (inverted, a one-line account)."""
    seen = ~np.isnan(weights) & ~np.isnan(losses)
    rising = counted = 0
    for y in np.unique(labels[seen]):
        m = seen & (labels == y)
        if m.sum() < min_per_class or np.ptp(weights[m]) == 0:
            continue
        counted += 1
        rising += _spearman(weights[m], losses[m]) > 0
    if counted == 0:
        return False, "the weights do not vary within any class"
    return rising * 2 > counted, f"the weights rise with the loss on {rising} of {counted} classes"


RANK_BY = ("auto", "weight", "loss", "mean_loss")


def suspect_list(run: str, by: str = "auto") -> SuspectList:
    """The run's training samples ranked, most suspect first (module docstring).

    Args:
        run: the run folder (run.out/run.name).
        by: "auto" (the final net's loss, highest first, on every run; the note says whether a learned
            weighting ranks against the losses), "weight" (the learned weight, lowest first, even when inverted),
            "loss" (the final net's loss, highest first) or "mean_loss" (the training loss averaged over the run's
            epochs, highest first: `cmwnet.loss_trace`).
    """
    if by not in RANK_BY:
        from ..errors import unknown_name

        raise unknown_name("ranking (by)", str(by), list(RANK_BY))
    if not isinstance(run, (str, os.PathLike)):
        raise CmwnetError(f"suspect_list takes a run folder's path, got {type(run).__name__}: e.g. "
                          "suspect_list('runs/my_folder/cmwnet/s1')")
    run = os.fspath(run)
    if not os.path.isdir(run):
        raise CmwnetError(f"{run} is not a folder: give a run folder (run.out/run.name)")
    path = os.path.join(run, PREDICTIONS)
    if not os.path.exists(path) and not os.path.exists(os.path.join(run, CONFIG)):
        below = sorted(os.path.relpath(root, run) for root, _, files in os.walk(run) if PREDICTIONS in files)
        hint = f" (runs below it: {', '.join(below[:3])}{', ...' if len(below) > 3 else ''})" if below else ""
        raise CmwnetError(f"{run} is not a run folder (no config.yaml){hint}: give the folder one run wrote")
    if not os.path.exists(path):
        why = ("has not finished" if not os.path.exists(os.path.join(run, RESULT))
               else "was trained before cmwnet wrote samples.npz, or with run.sample_table=false")
        raise CmwnetError(f"{run} has no {PREDICTIONS} (the run {why}): finish the run, or rerun it with --force")
    table = load_predictions(path)   # an unreadable file is a one-line error there
    labels = table["labels"]
    issue = issue_flags(table["probs"], labels) if "probs" in table else table["pred"] != labels
    loss = table["final_losses"].astype(np.float64)
    by_loss = SuspectList(np.argsort(-loss, kind="stable"), "loss", "", table, issue)
    if by == "mean_loss":
        return _by_mean_loss(run, table, issue)
    weights_path = os.path.join(run, FINAL_WEIGHTS)
    if by == "loss" or not os.path.exists(weights_path):
        if by == "weight":
            raise CmwnetError(f"{run} has no {FINAL_WEIGHTS} (the run learned no weighting): rank it by loss or "
                              "mean_loss")
        by_loss.note = ("ranked by the final loss, highest first " +
                        ("(asked for)" if by == "loss" else "(the run learned no weighting)"))
        return by_loss
    weighted = load_sample_table(weights_path)
    if len(weighted["weights"]) != len(labels) or not np.array_equal(weighted["index"], table["index"]):
        raise CmwnetError(f"{weights_path} and {path} describe different samples: rerun the training with --force")
    w = weighted["weights"].astype(np.float64)
    table["weights"] = w
    if "losses" in weighted:
        table["losses"] = weighted["losses"]
    run_losses = weighted.get("losses", table["final_losses"]).astype(np.float64)
    inverted, why = weights_inverted(w, run_losses, labels)
    by_loss.inverted = inverted
    warn = "; they rank against the run's losses, so their lowest values fall on well-fitted samples" if inverted else ""
    if by == "weight":
        key = np.where(np.isnan(w), np.inf, w)       # unweighted samples last
        order = np.lexsort((-loss, key))             # lowest weight first, ties: higher loss first
        return SuspectList(order, "weight", f"ranked by the learned weight, lowest first ({why}{warn})", table, issue,
                           inverted)
    if inverted:
        by_loss.note = (f"ranked by the final loss, highest first: the learned weights rank against the run's losses "
                        f"({why}), so their lowest values fall on well-fitted samples")
    else:
        by_loss.note = (f"ranked by the final loss of the net the weighting trained, highest first (auto: it finds "
                        f"mislabelled samples better than the last-epoch weights on most measured runs; "
                        f"--rank-by weight for those; {why})")
    return by_loss


def _by_mean_loss(run: str, table: dict[str, np.ndarray], issue: np.ndarray) -> SuspectList:
    if "mean_train_losses" not in table:
        raise CmwnetError(f"{run}/{PREDICTIONS} has no training loss averaged over epochs (the run was trained before "
                          "cmwnet recorded it): rank it by loss, or rerun the training with --force")
    mean = table["mean_train_losses"].astype(np.float64)
    order = np.argsort(-np.where(np.isnan(mean), -np.inf, mean), kind="stable")   # never-trained samples last
    first = int(table.get("train_loss_first_epoch", 0))
    since = f" from epoch {first + 1} on" if first else ""
    unseen = int(np.isnan(mean).sum())
    left = f"; {unseen} samples the run never trained on come last" if unseen else ""
    return SuspectList(order, "mean_loss", f"ranked by the training loss averaged over the run's epochs{since}, "
                       f"highest first{left}", table, issue)


def suspects_csv(s: SuspectList) -> str:
    """Every sample, most suspect first: rank, index, path, given, predicted, weight, loss, issue, true label."""
    t, names = s.table, s.table["class_names"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "index", "path", "given", "given_name", "predicted", "predicted_name", "given_prob", "weight",
                "loss", "mean_train_loss", "issue", "true", "true_name"])
    weights = t.get("weights")
    mean = t.get("mean_train_losses")
    for rank, r in enumerate(s.order, 1):
        given, pred, true = int(t["labels"][r]), int(t["pred"][r]), int(t["true_labels"][r])
        wt = "" if weights is None or np.isnan(weights[r]) else f"{weights[r]:.6g}"
        ml = "" if mean is None or np.isnan(mean[r]) else f"{mean[r]:.6g}"
        w.writerow([rank, int(t["index"][r]), t["paths"][r], given, class_name(names, given), pred,
                    class_name(names, pred), f"{t['given_probs'][r]:.6g}", wt, f"{t['final_losses'][r]:.6g}", ml,
                    int(bool(s.issue[r])), true, class_name(names, true)])
    return buf.getvalue()


def _short(name: str, width: int = 12) -> str:
    """A class name cut in the middle to `width` characters, so names sharing a long prefix stay apart."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "~" + name[-(width - 1 - head):]


def format_suspects(s: SuspectList, n: int) -> str:
    """The n most suspect samples as a text table, the ranking's note first."""
    t, names = s.table, s.table["class_names"]
    rows = s.rows(n)
    weights = t.get("weights")
    has_paths = any(str(p) for p in t["paths"][rows])
    known = (t["true_labels"] >= 0).all()
    lines = [s.note, f"{int(s.issue.sum())} of {len(s.issue)} samples flagged (issue: confident learning's rule on "
             "the final net's probabilities)",
             f"{'rank':>4}  {'index':>6}  {'given':<12} {'predicted':<12} {'p(given)':>8} {'weight':>8} {'loss':>7} "
             f"{'issue':>5}" + ("  true" if known else "") + ("  path" if has_paths else "")]
    for rank, r in enumerate(rows, 1):
        given, pred, true = int(t["labels"][r]), int(t["pred"][r]), int(t["true_labels"][r])
        wt = "-" if weights is None or np.isnan(weights[r]) else f"{weights[r]:.4f}"
        line = (f"{rank:>4}  {int(t['index'][r]):>6}  {_short(class_name(names, given)):<12} "
                f"{_short(class_name(names, pred)):<12} {t['given_probs'][r]:>8.3f} {wt:>8} {t['final_losses'][r]:>7.3f} "
                f"{'yes' if s.issue[r] else '':>5}")
        if known:
            line += f"  {class_name(names, true)}{' *' if true != given else ''}"
        lines.append(line + (f"  {t['paths'][r]}" if has_paths else ""))
    if known and any(int(t["true_labels"][r]) != int(t["labels"][r]) for r in rows):
        lines.append("* mislabelled (the given label differs from the true one)")
    return "\n".join(lines)


def export_cleanlab(s: SuspectList, folder: str) -> list[str]:
    """labels.npy (N,) and pred_probs.npy (N, C) in cleanlab's form, plus index.npy (each row's index in the
    reader's training split) and paths.txt, all ordered by that index; returns the files written."""
    from ..checkpoint import atomic_write_bytes, atomic_write_text

    if not isinstance(s, SuspectList):
        raise CmwnetError(f"export_cleanlab takes a SuspectList (suspect_list(run)), got {type(s).__name__}")
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise CmwnetError(f"export_cleanlab: give the folder to write into, got {folder!r}")
    folder = os.fspath(folder)
    t = s.table
    if "probs" not in t:
        raise CmwnetError("this run's samples.npz has no class probabilities (too many samples x classes to keep): "
                          "export is not possible for it")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CmwnetError(f"--export {folder} is a file: give a folder (it is created when missing)")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:   # a file where a folder of the path should be, a read-only place
        raise CmwnetError(f"--export {folder} cannot be made ({e.strerror}): give a folder path you can write to") \
            from None
    by_index = np.argsort(t["index"], kind="stable")
    written = []
    for name, arr in (("labels.npy", t["labels"][by_index].astype(np.int64)),
                      ("pred_probs.npy", t["probs"][by_index].astype(np.float32)),
                      ("index.npy", t["index"][by_index].astype(np.int64))):
        buf = io.BytesIO()
        np.save(buf, arr)
        path = os.path.join(folder, name)
        atomic_write_bytes(buf.getvalue(), path)
        written.append(path)
    path = os.path.join(folder, "paths.txt")
    atomic_write_text("".join(f"{p}\n" for p in t["paths"][by_index]), path)
    written.append(path)
    return written
