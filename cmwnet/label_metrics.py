"""How well a ranking of training samples finds the mislabelled ones, and cleanlab's ranking to compare it with.

A ranking is the samples' reader indices, most suspect first. Its quality against the known mislabelled set:
- `auc`: ROC AUC of "more suspect" against "mislabelled" (0.5: chance, 1: every mislabelled sample first);
- `precision_at_k`: the share mislabelled among the first k, k = the number of mislabelled samples (it equals the
  recall at k, and 1 only for a perfect ranking);
- `recall_at_5pct`: the share of all mislabelled samples among the first 5% (what a reviewer who checks 5% of the
  data by hand finds).

cleanlab's ranking (Northcutt, Jiang, Chuang, JAIR 2021) is used as its documentation asks: out-of-sample class
probabilities from K-fold cross-validation (`out_of_sample_probs` assembles them from the fold runs' heldout.npz),
`cleanlab.filter.find_label_issues(labels, pred_probs)` for the flagged set, and the samples ordered by
`cleanlab.rank.get_label_quality_scores` (self-confidence), the order `find_label_issues` ranks its flags by.
cleanlab is an optional extra (`pip install -e '.[cleanlab]'`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CmwnetError

TOP_SHARE = 0.05   # recall at the top 5%


@dataclass
class Ranking:
    """Samples (reader indices), most suspect first, and optionally the set a method flags as label issues."""
    index: np.ndarray
    flagged: np.ndarray | None = None   # reader indices flagged (None: the method flags nothing)
    note: str = ""


def ranking_metrics(ranking: Ranking, mislabelled: np.ndarray, among: np.ndarray | None = None) -> dict[str, float]:
    """AUC, precision at k and recall at the top 5% of `ranking` against the reader indices in `mislabelled`,
    counted over the samples in `among` (reader indices; default: the ranking's own samples), so that rankings over
    slightly different sample sets (a meta set taken out of one run's training samples) are compared on the same
    samples."""
    from sklearn.metrics import roc_auc_score

    order = np.asarray(ranking.index, np.int64)
    if among is not None:
        order = order[np.isin(order, among)]
    if len(order) == 0:
        raise CmwnetError("the ranking has no samples in common with the others: are they runs of the same data?")
    bad = np.isin(order, mislabelled)
    k = int(bad.sum())
    n = len(order)
    out = {"samples": n, "mislabelled": k}
    if k == 0 or k == n:
        raise CmwnetError(f"the ranking's {n} samples hold {k} mislabelled ones: the AUC needs both kinds")
    suspicion = np.arange(n, 0, -1, dtype=np.float64)   # first = most suspect
    out["auc"] = float(roc_auc_score(bad, suspicion))
    out["precision_at_k"] = float(bad[:k].mean())
    top = max(1, math.ceil(TOP_SHARE * n))
    out["recall_at_5pct"] = float(bad[:top].sum() / k)
    if ranking.flagged is not None:
        flagged = np.asarray(ranking.flagged, np.int64)
        flagged = flagged[np.isin(flagged, order)]
        hits = int(np.isin(flagged, order[bad]).sum())
        out["flagged"] = int(len(flagged))
        out["flag_precision"] = float(hits / len(flagged)) if len(flagged) else float("nan")
        out["flag_recall"] = float(hits / k)
    return out


def out_of_sample_probs(folds: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reader index, observed label, class probabilities) of every sample, each from the fold run that held it
    out (the folds' heldout.npz arrays, `sample_table.HELDOUT`), ordered by reader index. The folds must cover
    disjoint samples with the same labels the full runs saw."""
    if not folds:
        raise CmwnetError("no fold runs: cleanlab's ranking needs the K fold runs' heldout.npz")
    index = np.concatenate([f["index"] for f in folds]).astype(np.int64)
    if len(np.unique(index)) != len(index):
        raise CmwnetError("the fold runs hold out overlapping samples: they are not folds of one split "
                          "(data.fold.folds and data.fold.seed must be the same in every fold run)")
    if any("probs" not in f for f in folds):
        raise CmwnetError("a fold run's heldout.npz has no class probabilities: rerun it with --force")
    labels = np.concatenate([f["labels"] for f in folds]).astype(np.int64)
    probs = np.concatenate([f["probs"] for f in folds]).astype(np.float64)
    order = np.argsort(index, kind="stable")
    return index[order], labels[order], probs[order]


def cleanlab_ranking(index: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray) -> Ranking:
    """cleanlab's flagged set (`find_label_issues`, its defaults) and its order of every sample (lowest
    self-confidence label quality first)."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise CmwnetError("cleanlab is not installed: pip install -e '.[cleanlab]' (or pip install cleanlab)") from None
    pred_probs = pred_probs / pred_probs.sum(1, keepdims=True)   # float32 softmax rows, renormalised in float64
    issues = find_label_issues(labels, pred_probs)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    order = np.argsort(quality, kind="stable")
    import cleanlab

    return Ranking(index[order], flagged=index[issues],
                   note=f"cleanlab {cleanlab.__version__}: find_label_issues(labels, pred_probs) with its defaults; "
                        "order: get_label_quality_scores(method='self_confidence')")
