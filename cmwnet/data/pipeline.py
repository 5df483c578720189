"""The one label pipeline: from a reader's labels to what a run trains on, for every data set.

Array data sets (digits, CIFAR) and file-backed ones (ANIMAL-10N, WebVision, WebFG, image folders)
differ only in how they take samples (numpy indexing, `FileList.take`), so the choices a config
makes about labels live here once, as index selections and label arrays, applied in this order:

1. validation split (`data.val_size`, drawn with `data.split_seed` before anything else, true labels);
2. `data.train_subset` (the first N remaining) and `data.test_subset` (the first N test samples);
3. long tail (`data.imbalance`, `data.lt_seed`): n_i = n_max * (1/IF)^(i/(C-1)), n_max the smallest
   class of the training set so far (see `imbalance.py`);
4. clean meta set held out from training (`data.meta.kind: clean`, `data.meta.per_class`);
5. noise: a label file (its sha256 recorded) or synthetic (`add_label_noise`), or the data set's
   own real noise. A label file holds one label per image of the reader's full training split, in
   the reader's order (read at the kept samples' original positions, so a published human-label
   file combines with steps 1-4), one per image left after the val split (a file generated on the
   whole split, read by a run on a subset of it), or exactly one per kept sample, in training order;
6. partial labels (`data.partial`): candidate sets drawn from the true training labels.

The result is a `LabelPlan`: positions into the reader's lists and the labels, plus the info record
every run stores in result.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..config import DataCfg
from ..errors import CmwnetError
from .imbalance import class_counts, long_tail_counts, long_tail_indices
from .label_store import label_file_digest, read_label_file
from .meta_set import clean_meta_split
from .noise import add_label_noise, transition_matrix
from .partial import candidate_sets, candidate_summary


@dataclass
class LabelPlan:
    """Which samples each set takes (positions in the reader's training or test list) and their labels."""
    train: np.ndarray                    # training positions, in training order
    test: np.ndarray                     # test positions
    val: np.ndarray | None               # training positions held out as the "val" set (true labels)
    meta: np.ndarray | None              # training positions of the clean meta set (None: none held out)
    clean: np.ndarray                    # true labels of the training samples (the reader's labels)
    observed: np.ndarray                 # the labels training sees
    candidates: np.ndarray | None = None  # partial labels: boolean N x C candidate sets (data.partial)
    info: dict = field(default_factory=dict)
    heldout: np.ndarray | None = None    # data.fold: the held-out fold's positions, observed and true labels
    heldout_observed: np.ndarray | None = None
    heldout_clean: np.ndarray | None = None


def validation_indices(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept training indices in their order, validation indices): `size` of the n training images drawn
    with `seed` (data.split_seed) become a validation set with their true labels, so settings are chosen
    without looking at the test split. Drawn before any subset, long tail, meta split or noise, so those
    apply to the remaining images only and the validation set stays the same whatever they are."""
    if size >= n:
        raise CmwnetError(f"data.val_size is {size} but the training split has only {n} images: "
                          f"hold out fewer (at most {n - 1})")
    val = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    return np.setdiff1d(np.arange(n), val), val


def first(n: int, subset: int | None) -> np.ndarray:
    """Positions of the first `subset` of n samples (all of them when `subset` is None)."""
    return np.arange(n if subset is None else min(n, subset))


def plan_labels(cfg: DataCfg, train_labels: Sequence[int], num_test: int, num_classes: int, *,
                coarse_of_fine: Sequence[int] | None = None, hold_out_meta: bool = True,
                real_noise: bool = False) -> LabelPlan:
    """Apply the config's label choices (module docstring) to a reader's training labels.

    `hold_out_meta`: take the clean meta set from the training set when `data.meta.kind` is clean
    (False where the data set brings its own clean meta images). `real_noise`: the reader's labels
    are the data set's own web labels, so no synthetic noise is recorded as "real" noise.
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    c = num_classes
    idx = np.arange(len(labels))
    val = None
    if cfg.val_size:
        idx, val = validation_indices(len(labels), cfg.val_size, cfg.split_seed)
    split = idx
    if cfg.train_subset is not None:
        idx = idx[: cfg.train_subset]
    y = labels[idx]
    info: dict = {"dataset": cfg.name, "num_classes": c}
    if cfg.imbalance != 1:
        _check_cut_left_every_class(cfg, y, c, len(labels))
        keep, info["long_tail_counts"] = _long_tail(y, c, cfg.imbalance, cfg.lt_seed)
        idx, y = idx[keep], y[keep]
    meta = None
    if hold_out_meta and cfg.meta.kind == "clean":
        _check_meta_fits(np.bincount(y, minlength=c), cfg.meta.per_class)
        meta_pos, rest = clean_meta_split(y, cfg.meta.per_class, c, cfg.split_seed)
        meta, idx, y = idx[meta_pos], idx[rest], y[rest]
        info["meta_size"] = int(len(meta_pos))
    observed, info["noise"] = _noise(cfg, y, idx, labels, split, c, coarse_of_fine, real_noise)
    candidates = None
    if cfg.partial.kind != "none":
        p = cfg.partial
        candidates = candidate_sets(y, c, p.kind, p.rate, p.seed)
        info["partial"] = candidate_summary(candidates, y, p.kind, p.rate, p.seed)
    held = held_obs = held_clean = None
    if cfg.fold.folds:
        f = cfg.fold
        if candidates is not None:
            raise CmwnetError("data.fold does not combine with partial labels (data.partial): drop one of them")
        order = np.random.default_rng(f.seed).permutation(len(idx))
        out = np.zeros(len(idx), bool)
        out[order[f.index::f.folds]] = True
        held, held_obs, held_clean = idx[out], observed[out], y[out]
        idx, y, observed = idx[~out], y[~out], observed[~out]
        info["fold"] = {"folds": f.folds, "index": f.index, "seed": f.seed, "heldout_size": int(out.sum())}
    test = first(num_test, cfg.test_subset)
    info.update({"train_size": int(len(observed)), "test_size": int(len(test)),
                 "class_counts": class_counts(observed, c), "clean_class_counts": class_counts(y, c)})
    if val is not None:
        info["val_size"] = int(len(val))
    return LabelPlan(idx, test, val, meta, y, observed, candidates, info, held, held_obs, held_clean)


def _check_cut_left_every_class(cfg: DataCfg, y: np.ndarray, c: int, n_split: int) -> None:
    """A class the val split or the subset emptied is their fault, not the long tail's: say which cut it."""
    sizes = np.bincount(y, minlength=c)
    if sizes.min() >= 1 or (not cfg.val_size and cfg.train_subset is None):
        return
    cuts = ([f"data.val_size={cfg.val_size}"] if cfg.val_size else []) + (
        [f"data.train_subset={cfg.train_subset}"] if cfg.train_subset is not None else [])
    raise CmwnetError(f"{' and '.join(cuts)} leave{'s' if len(cuts) == 1 else ''} {len(y)} of the {n_split} training images, none of class "
                      f"{int(sizes.argmin())}, so no long tail (data.imbalance={cfg.imbalance:g}) can be cut: hold out "
                      "fewer images or take a larger subset")


def _long_tail(y: np.ndarray, c: int, imbalance: float, seed: int) -> tuple[np.ndarray, list[int]]:
    """(positions kept, per-class sizes) of the long-tailed subset; the head size is the smallest class."""
    sizes = np.bincount(y, minlength=c)
    if sizes.min() < 1:
        raise CmwnetError(f"data.imbalance is {imbalance} but class {int(sizes.argmin())} has no training images, "
                          "so no long tail can be cut: use a data set with every class present, or data.imbalance=1")
    counts = long_tail_counts(int(sizes.min()), c, imbalance)
    if min(counts) < 1:
        raise CmwnetError(f"data.imbalance is {imbalance:g}, which leaves class {counts.index(min(counts))} with no "
                          f"training images (the head class has {counts[0]}): use at most data.imbalance="
                          f"{int(sizes.min())}")
    return long_tail_indices(y, counts, seed), counts


def _check_meta_fits(sizes: np.ndarray, per_class: int) -> None:
    """Name the smallest classes and the largest per_class that fits them all."""
    short = sorted(np.flatnonzero(sizes < per_class), key=lambda k: sizes[k])
    if short:
        listed = ", ".join(f"class {k} has {sizes[k]}" for k in short[:3]) + (", ..." if len(short) > 3 else "")
        raise CmwnetError(f"data.meta.per_class is {per_class} but {len(short)} classes have fewer "
                          f"training samples ({listed}): lower data.meta.per_class to at most {sizes.min()}")


def _noise(cfg: DataCfg, clean: np.ndarray, kept: np.ndarray, reader_labels: np.ndarray, split: np.ndarray, c: int,
           coarse_of_fine, real_noise: bool) -> tuple[np.ndarray, dict]:
    """(observed labels, the noise record): from a label file, synthetic, or the data set's own.

    `kept`: the training samples' positions in the reader's list of training images (`reader_labels`);
    `split`: the positions left after the val split. The realised rate and transition matrix are always
    those of the kept samples against their true labels."""
    n = cfg.noise
    if n.file:
        observed, form = file_labels(n.file, kept, len(reader_labels), c, split, reader_labels)
        return observed, {"kind": "file", "file": n.file, "sha256": label_file_digest(n.file),
                          "label_file_form": form, "realised_rate": round(float((observed != clean).mean()), 6),
                          "transition": np.round(transition_matrix(clean, observed, c), 4).tolist()}
    if real_noise and n.kind == "none":
        return clean, {"kind": "real", "note": "the data set's own (unknown) label noise"}
    noisy = add_label_noise(clean, n.kind, n.rate, c, n.seed, flip_map=n.flip_map or None,
                            coarse_of_fine=coarse_of_fine)
    return noisy.labels, noisy.summary()


def file_labels(path: str, kept: np.ndarray, full_size: int, num_classes: int, split: np.ndarray | None = None,
                reader_labels: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(the kept samples' labels from a label file, the form it was read in: "full", "kept" or "split").

    Told apart by length. "full": one label per image of the reader's training split, in the reader's
    order (how human-label files such as CIFAR-10N are published), so each kept sample takes the label at
    its original position and the file works under any data.val_size, subset, long tail or meta split.
    "kept": exactly one label per kept sample, in training order (files generated for one data
    configuration, e.g. `feature_noise`). "split": one label per image left after the val split
    (`split`, ascending positions), so labels generated on the whole split (Tables 4-5's posterior
    network on the 45k) serve a run on its first N images; the file's own record of the clean labels it
    was made for must match the split's, else the val split differs and the file is refused. When
    nothing was held out or cut, the kept positions are 0..N-1 in order (every step keeps ascending
    positions), so the readings coincide: "full".
    """
    sizes = {full_size, len(kept)} | ({len(split)} if split is not None else set())
    labels = read_label_file(path, sizes, num_classes, _expected_lengths(len(kept), full_size, split))
    if len(labels) == full_size:
        return labels[kept], "full"
    if len(labels) == len(kept):
        return labels, "kept"
    _check_split_file(path, split, reader_labels)
    return labels[np.searchsorted(split, kept)], "split"


def _check_split_file(path: str, split: np.ndarray, reader_labels: np.ndarray | None) -> None:
    """A file of the split's length must have been made for this split: its recorded clean labels say so."""
    from .feature_noise import sha256
    from .label_store import read_label_meta

    made_for = (read_label_meta(path) or {}).get("clean_labels_sha256")
    if made_for is None or reader_labels is None:
        return
    if made_for != sha256(np.asarray(reader_labels, np.int64)[split]):
        raise CmwnetError(f"noisy-label file {path} holds one label per image of a val split, but not of this "
                          "run's (its clean labels differ: another data.val_size or data.split_seed): generate it "
                          "with this run's data.val_size and data.split_seed, or point data.noise.file at the right "
                          "file")


def _expected_lengths(kept: int, full_size: int, split: np.ndarray | None = None) -> str | None:
    """The end of the one-line refusal of a label file of no accepted length (None: the store's own,
    where all lengths are one)."""
    if kept == full_size:
        return None
    after_val = (f", one per image left after the val split ({len(split)})"
                 if split is not None and len(split) not in (kept, full_size) else "")
    return (f"the training set has {kept} kept samples (after data.val_size, train_subset, the long tail and the "
            f"clean meta split) and the reader's full training split has {full_size} images: write one label per "
            f"image of the full split in the reader's order ({full_size}){after_val} or one per kept sample "
            f"({kept}), or point data.noise.file at the right file")
