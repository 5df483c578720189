"""Per training sample, what the weighting did and which sample it was: `final_weights.npz` and `final_weights.csv`.

The weights alone are rows in training order, which is neither the reader's order nor a file: finding the
images the weighting distrusts (the reason to run it on one's own data) needed hand work. So each row also
carries the sample's position in the reader's training split (`index`, before the validation split,
subset, long tail and meta split), its file (`paths`, file-backed data sets; "" for array data sets), its
observed and true label (`true_labels` is -1 where the true label is unknown: a data set's own real noise)
and the class names.

Keys of final_weights.npz: `weights`, `labels` (observed), `losses`, `clean_labels` (as before, read by
`plotting.load_final_losses`), and `index`, `paths`, `true_labels`, `class_names`. Every run, with or without a
weighting, also writes `samples.npz`: the same identity keys and the final net's view of each sample (`probs`,
`pred`, `given_probs`, `final_losses`) and its training loss over the run (`mean_train_losses`,
`last_train_losses`, `train_loss_first_epoch`: `cmwnet.loss_trace`), what `cmwnet.run_folder.suspects` ranks and exports.
"""
from __future__ import annotations

import csv
import io
import os
import zipfile
from typing import Any

import numpy as np
import torch

from .. import checkpoint   # by module: the atomic writers are looked up at call time

CSV_NAME = "final_weights.csv"
PREDICTIONS = "samples.npz"   # every run: the final net's predictions on every training sample
HELDOUT = "heldout.npz"       # data.fold: the final net's predictions on the held-out fold (out of sample)
UNKNOWN = -1   # true label not known (the data set's own, real label noise)


def true_labels_known(data_info: dict) -> bool:
    """False where the observed labels are the data set's own noisy labels (no synthetic noise on top)."""
    return (data_info.get("noise") or {}).get("kind") != "real"


def sample_arrays(weights: np.ndarray, losses: np.ndarray | None, data) -> dict[str, np.ndarray]:
    """The arrays of final_weights.npz for a run's `DataBundle` (`data`)."""
    arrays: dict[str, np.ndarray] = {"weights": np.asarray(weights, np.float32)}
    if losses is not None:
        arrays["losses"] = np.asarray(losses, np.float32)
    return {**arrays, **sample_identity(data)}


def heldout_identity(data) -> dict[str, np.ndarray]:
    """The identity columns of a run's held-out fold (data.fold): observed and true label, reader index, names."""
    h = data.heldout
    names = getattr(data, "class_names", None) or [str(k) for k in range(int(data.num_classes))]
    observed = h.labels.cpu().numpy().astype(np.int64)
    return {"labels": observed, "true_labels": h.clean_labels.cpu().numpy().astype(np.int64),
            "index": np.asarray(data.heldout_index, np.int64), "paths": np.asarray([""] * len(observed), dtype=str),
            "class_names": np.asarray([str(c) for c in names], dtype=str)}


def predictions_with(probs: np.ndarray | None, pred: np.ndarray, given: np.ndarray, identity: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
    """The arrays of samples.npz / heldout.npz: the final net's class probabilities (`probs`, left out for very
    large tables), predicted label (`pred`), probability and loss of the observed label (`given_probs`,
    `final_losses`), beside the identity columns (`sample_identity`, `heldout_identity`)."""
    given = np.asarray(given, np.float32)
    arrays = {"pred": np.asarray(pred, np.int64), "given_probs": given,
              "final_losses": -np.log(np.clip(given, 1e-12, None)).astype(np.float32)}
    if probs is not None:
        arrays["probs"] = np.asarray(probs, np.float32)
    return {**arrays, **identity}


def sample_identity(data) -> dict[str, np.ndarray]:
    """Which sample each row is: observed and true label, index in the reader's training split, file, class names."""
    train = data.train
    observed = train.labels.cpu().numpy().astype(np.int64)
    n = len(observed)
    arrays: dict[str, np.ndarray] = {"labels": observed}
    clean = getattr(train, "clean_labels", None)
    clean = None if clean is None else clean.cpu().numpy().astype(np.int64)
    if clean is not None:
        arrays["clean_labels"] = clean
    index = getattr(data, "train_index", None)
    arrays["index"] = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, np.int64)
    paths = getattr(data, "train_paths", None)
    arrays["paths"] = np.asarray(paths if paths is not None else [""] * n, dtype=str)
    known = clean is not None and true_labels_known(getattr(data, "info", {}) or {})
    arrays["true_labels"] = clean if known else np.full(n, UNKNOWN, np.int64)
    names = getattr(data, "class_names", None) or [str(k) for k in range(int(data.num_classes))]
    arrays["class_names"] = np.asarray([str(c) for c in names], dtype=str)
    return arrays


def write_sample_table(npz_path: str, arrays: dict[str, np.ndarray], csv: bool = True) -> None:
    """final_weights.npz (or samples.npz) and, with `csv`, final_weights.csv beside it (one row per training
    sample, training order)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    checkpoint.atomic_write_bytes(buffer.getvalue(), npz_path)
    if csv:
        checkpoint.atomic_write_text(table_csv(arrays), os.path.join(os.path.dirname(npz_path), CSV_NAME))


def load_predictions(npz_path: str) -> dict[str, np.ndarray]:
    """samples.npz as arrays."""
    from ..errors import CmwnetError

    a = read_npz(npz_path)
    needed = ("pred", "final_losses", "labels", "index", "given_probs", "true_labels", "class_names")
    missing = [k for k in needed if k not in a]
    if missing:
        raise CmwnetError(f"{npz_path} is not a run's samples.npz (no {missing[0]}): rerun the training with --force")
    n = len(a["labels"])
    short = [k for k in needed[:-1] + (("probs",) if "probs" in a else ()) if len(a[k]) != n]
    c = len(a["class_names"])
    bad = (short or (n and (a["labels"].min() < 0 or a["labels"].max() >= c or a["pred"].min() < 0
                            or a["pred"].max() >= c))
           or ("probs" in a and (np.ndim(a["probs"]) != 2 or a["probs"].shape[1] != c
                                 or not np.isfinite(a["probs"]).all())))
    if bad:
        what = f"{short[0]} has {len(a[short[0]])} rows for {n} labels" if short else "labels, predictions or " \
            "probabilities outside the run's classes, or not finite"
        raise CmwnetError(f"{npz_path} is damaged ({what}): rerun the training with --force")
    return a


def class_name(names: np.ndarray, label: int) -> str:
    return "unknown" if label < 0 else (str(names[label]) if label < len(names) else str(label))


def table_csv(arrays: dict[str, np.ndarray]) -> str:
    names = arrays["class_names"]
    losses = arrays.get("losses")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "index", "path", "observed", "observed_name", "true", "true_name", "weight", "loss"])
    for i in range(len(arrays["weights"])):
        obs, true = int(arrays["labels"][i]), int(arrays["true_labels"][i])
        w.writerow([i, int(arrays["index"][i]), arrays["paths"][i], obs, class_name(names, obs), true,
                    class_name(names, true), _num(arrays["weights"][i]), "" if losses is None else _num(losses[i])])
    return buf.getvalue()


def _num(v: Any) -> str:
    v = float(v)
    return "" if np.isnan(v) else f"{v:.6g}"


UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)   # a truncated or foreign .npz


def read_npz(npz_path: str) -> dict[str, np.ndarray]:
    """Every array of an .npz, or a one-line error naming the file and the fix (a truncated file raised
    BadZipFile, which used to surface as an internal error)."""
    from ..errors import CmwnetError

    try:
        with np.load(npz_path) as z:
            return {k: z[k] for k in z.files}
    except UNREADABLE as e:
        raise CmwnetError(f"{npz_path} cannot be read ({type(e).__name__}: truncated or not a run's file): rerun the "
                          "training with --force") from None


def load_sample_table(npz_path: str) -> dict[str, np.ndarray]:
    """final_weights.npz as arrays, with the newer keys filled in for a run written before they existed."""
    a = read_npz(npz_path)
    if "weights" not in a or "labels" not in a:
        from ..errors import CmwnetError

        raise CmwnetError(f"{npz_path} is not a sample table (no weights/labels): rerun the training with --force")
    n = len(a["weights"])
    a.setdefault("index", np.arange(n))
    a.setdefault("paths", np.asarray([""] * n, dtype=str))
    a.setdefault("true_labels", a.get("clean_labels", np.full(n, UNKNOWN)))
    if "class_names" not in a:
        k = int(max(a["labels"].max(initial=0), a["true_labels"].max(initial=0))) + 1
        a["class_names"] = np.asarray([str(c) for c in range(k)], dtype=str)
    return a


# -- written at the end of a run (engine) ------------------------------------------------------------------
def save_final_weights(path: str, sums, data) -> None:
    """The last epoch's weight and weight-net input loss of every training sample (NaN: not weighted),
    with its observed and true label, its index in the reader's training split, its file and the class
    names (`sample_table.py`), and final_weights.csv beside it: which samples the weighting distrusts."""
    losses = None if sums.losses is None else sums.losses.cpu().numpy()
    write_sample_table(path, sample_arrays(sums.weights.cpu().numpy(), losses, data))


# samples.npz keeps every class probability up to this many numbers (45,000 x 100 CIFAR-100 is 4.5M)
MAX_PROBS = 50_000_000


@torch.no_grad()
def predictions_on(model: torch.nn.Module, source, num_classes: int, batch_size: int, keep_probs: bool
                   ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(class probabilities or None, predicted label, probability of the observed label) of the net on every
    sample of `source` (eval mode, no augmentation), in its order. Without `keep_probs` the N x C table is never
    built (WebVision's 2.4M x 1000 would be 10 GB): only the two columns are kept."""
    was_training = model.training
    model.eval()
    n = len(source)
    probs = torch.empty(n, num_classes) if keep_probs else None
    pred, given = torch.empty(n, dtype=torch.long), torch.empty(n)
    for x, y, pos in source.batches(batch_size):
        p = torch.softmax(model(x).float(), dim=1)
        pos = pos.cpu()
        pred[pos] = p.argmax(1).cpu()
        given[pos] = p.gather(1, y[:, None])[:, 0].cpu()
        if probs is not None:
            probs[pos] = p.cpu()
    model.train(was_training)
    return None if probs is None else probs.numpy(), pred.numpy(), given.numpy()


def save_predictions(path: str, model: torch.nn.Module, data, batch_size: int,
                     extra: dict[str, np.ndarray] | None = None) -> None:
    """The final net's softmax on every training sample, in training order, with the sample table's identity
    columns: samples.npz, which the suspect list ranks (`cmwnet.run_folder.suspects`); with data.fold, the same for the
    held-out fold beside it (heldout.npz: out-of-sample probabilities, what cleanlab asks for)."""
    keep = len(data.train) * data.num_classes <= MAX_PROBS
    arrays = predictions_with(*predictions_on(model, data.train, data.num_classes, batch_size, keep),
                              sample_identity(data))
    write_sample_table(path, {**arrays, **(extra or {})}, csv=False)
    if getattr(data, "heldout", None) is not None:
        held = predictions_on(model, data.heldout, data.num_classes, batch_size, True)
        write_sample_table(os.path.join(os.path.dirname(path), HELDOUT),
                           predictions_with(*held, heldout_identity(data)), csv=False)
