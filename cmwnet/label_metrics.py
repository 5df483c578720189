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

    order = _indices(ranking.index, "the ranking")
    mislabelled = _indices(mislabelled, "the mislabelled set", unique=False)
    if among is not None:
        among = _indices(among, "among", unique=False)
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
        flagged = _indices(ranking.flagged, "the flagged set")
        flagged = flagged[np.isin(flagged, order)]
        hits = int(np.isin(flagged, order[bad]).sum())
        out["flagged"] = int(len(flagged))
        out["flag_precision"] = float(hits / len(flagged)) if len(flagged) else float("nan")
        out["flag_recall"] = float(hits / k)
    return out


def _indices(values, what: str, unique: bool = True) -> np.ndarray:
    """Reader indices as a 1-D int64 array, or a one-line error (a boolean mask, floats, NaN, duplicates)."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise CmwnetError(f"{what} must be a 1-D array of reader indices, got shape {a.shape}")
    if a.dtype == bool:
        raise CmwnetError(f"{what} is a boolean mask: give the reader indices (np.flatnonzero(mask) of the index "
                          "array)")
    if len(a) and not np.issubdtype(a.dtype, np.integer):
        raise CmwnetError(f"{what} must hold integer reader indices, got {a.dtype}")
    a = a.astype(np.int64)
    if unique and len(np.unique(a)) != len(a):
        raise CmwnetError(f"{what} lists a sample more than once: each reader index once")
    return a


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
    for k, f in enumerate(folds):
        missing = [key for key in ("index", "labels", "probs") if key not in f]
        if missing:
            raise CmwnetError(f"fold {k}'s heldout.npz has no {missing[0]}: rerun that fold run with --force")
        if not (len(f["index"]) == len(f["labels"]) == len(f["probs"])) or np.ndim(f["probs"]) != 2:
            raise CmwnetError(f"fold {k}'s heldout.npz has arrays of different lengths: rerun that fold run with "
                              "--force")
    if len({np.shape(f["probs"])[1] for f in folds}) != 1:
        raise CmwnetError("the fold runs have different numbers of classes: they are not folds of one data set")
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
    index = _indices(index, "index")
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.ndim != 2 or len(pred_probs) != len(labels) or len(labels) != len(index):
        raise CmwnetError(f"cleanlab_ranking: {len(index)} indices, {len(labels)} labels and pred_probs of shape "
                          f"{pred_probs.shape}: give one label and one probability row (N x C) per sample")
    if len(labels) < 2 or not np.issubdtype(labels.dtype, np.integer):
        raise CmwnetError(f"cleanlab_ranking: labels must be at least 2 integer class numbers, got {labels.dtype} x "
                          f"{len(labels)}")
    c = pred_probs.shape[1]
    if labels.min() < 0 or labels.max() >= c:
        raise CmwnetError(f"cleanlab_ranking: labels must lie in 0..{c - 1} (the columns of pred_probs), got "
                          f"{labels.min()}..{labels.max()}")
    if not np.isfinite(pred_probs).all() or (pred_probs < 0).any() or not np.allclose(pred_probs.sum(1), 1, atol=1e-3):
        raise CmwnetError("cleanlab_ranking: every pred_probs row must be a probability vector (finite, >= 0, "
                          "summing to 1): pass softmax outputs, not logits or log-probabilities")
    pred_probs = pred_probs / pred_probs.sum(1, keepdims=True)   # float32 softmax rows, renormalised in float64
    issues = find_label_issues(labels, pred_probs)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    order = np.argsort(quality, kind="stable")
    import cleanlab

    return Ranking(index[order], flagged=index[issues],
                   note=f"cleanlab {cleanlab.__version__}: find_label_issues(labels, pred_probs) with its defaults; "
                        "order: get_label_quality_scores(method='self_confidence')")
