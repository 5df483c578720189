"""Noisy-label files that are written once and verified every time they are read.

A label file is a `.npy` file holding one 1-d integer array of observed labels with a sidecar
`<file>.meta.json`. The label pipeline (`pipeline.py`) accepts two lengths: one label per image of the
reader's full training split, in the reader's order (a published human-label file), or exactly one per
kept training sample, in training order. The sidecar:

    {"format": "cmwnet-labels-1", "sha256": "<hex digest of the .npy bytes>", "n": 45000,
     "num_classes": 10, "meta": {... how the labels were made: kind, rate, seed, model ...}}

Why: noisy labels define the experiment. A label file that changed after a table's first runs
(regenerated with another seed, edited by hand, truncated by a full disk) would silently mix two
experiments in one table, so a file whose bytes no longer match its recorded digest is refused.

- `write_label_file(path, labels, meta, num_classes)`: writes atomically (sidecar first, then the
  labels). Writing the same labels again is a no-op; writing *different* labels over an existing
  file is refused: delete both files to regenerate on purpose.
- `read_label_file(path, n, num_classes)`: checks digest, length (`n`: one length or several accepted
  ones) and range. A file without a sidecar (made by another tool) is pinned on first use: its sidecar
  is written then, and every later read is checked against it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from typing import Any, Collection

import numpy as np

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..errors import CmwnetError

FORMAT = "cmwnet-labels-1"


def sidecar_path(path: str | os.PathLike) -> str:
    return os.fspath(path) + ".meta.json"


def _npy_bytes(labels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, labels, allow_pickle=False)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_sidecar(path: str) -> dict | None:
    side = sidecar_path(path)
    if not os.path.exists(side):
        return None
    try:
        with open(side) as f:
            info = json.load(f)
        if not isinstance(info, dict) or "sha256" not in info:
            raise ValueError("no sha256 field")
    except (OSError, ValueError) as e:
        raise CmwnetError(f"noisy-label checksum file {side} is unreadable ({type(e).__name__}): delete {path} and "
                          f"{side} and generate the labels again") from None
    return info


def write_label_file(path: str | os.PathLike, labels: Any, meta: dict | None = None,
                     num_classes: int | None = None) -> str:
    """Write observed labels once; returns the sha256 digest of the written file.

    Rewriting identical labels is a no-op (so concurrent generators of the same file agree);
    different labels over an existing file raise `CmwnetError`.
    """
    path = os.fspath(path)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise CmwnetError(f"labels for {path} must be a 1-d integer array, got {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64)
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CmwnetError(f"labels for {path} fall outside 0..{num_classes - 1}")
    data = _npy_bytes(labels)
    digest = _sha256(data)
    if os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        if _sha256(old) != digest:
            raise CmwnetError(f"noisy-label file {path} already exists with different labels; it is never overwritten: "
                              f"delete it and {sidecar_path(path)} to regenerate it")
        if _read_sidecar(path) is not None:
            return digest
    info = {"format": FORMAT, "sha256": digest, "n": int(labels.size), "num_classes": num_classes,
            "meta": meta or {}}
    # sidecar first: a kill between the two writes leaves a sidecar without labels ("not found, generate
    # it"), never labels that no checksum vouches for
    atomic_write_text(json.dumps(info, indent=2) + "\n", sidecar_path(path))
    if not os.path.exists(path):
        atomic_write_bytes(data, path)
    return digest


def read_label_meta(path: str | os.PathLike) -> dict:
    """The `meta` record written with a label file (empty for a file pinned on first use)."""
    info = _read_sidecar(os.fspath(path))
    return {} if info is None else dict(info.get("meta") or {})


def label_file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return _sha256(f.read())


def read_label_file(path: str | os.PathLike, n: int | Collection[int], num_classes: int,
                    expected: str | None = None) -> np.ndarray:
    """Observed labels from a label file, after checking it is the file that was written.

    `n`: the length the file must have, or the lengths it may have. `expected`: what a wrong length is
    told instead of the default, by a caller that knows what the lengths mean ("the training set has
    ...: <the fix>"); the message starts "noisy-label file PATH holds K labels but ".
    """
    path = os.fspath(path)
    accepted = {int(n)} if isinstance(n, (int, np.integer)) else {int(k) for k in n}
    if not os.path.exists(path):
        raise CmwnetError(f"noisy-label file not found: {path}; generate it first (see the README, Tables 4-5) "
                          "or fix data.noise.file")
    with open(path, "rb") as f:
        data = f.read()
    digest = _sha256(data)
    info = _read_sidecar(path)
    if info is not None and info["sha256"] != digest:
        raise CmwnetError(f"noisy-label file {path} changed since it was written (sha256 {digest[:12]}... but "
                          f"{sidecar_path(path)} records {str(info['sha256'])[:12]}...); refusing to use it: "
                          "restore the original, or delete both files and generate the labels again")
    try:
        labels = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - truncated/foreign files raise many types
        raise CmwnetError(f"noisy-label file {path} is unreadable ({type(e).__name__}); delete it (and "
                          f"{sidecar_path(path)}) and generate it again") from None
    if isinstance(labels, np.lib.npyio.NpzFile):
        _refuse_archive(path, labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise CmwnetError(f"noisy-label file {path} must hold a 1-d integer array, got {labels.dtype} "
                          f"{labels.shape}: write it with cmwnet.data.label_store.write_label_file")
    labels = labels.astype(np.int64)
    if len(labels) not in accepted:
        if expected is None:
            sizes = " or ".join(str(k) for k in sorted(accepted))
            expected = (f"the training set has {sizes}: it was made for another data configuration; point "
                        "data.noise.file at the right file")
        raise CmwnetError(f"noisy-label file {path} holds {len(labels)} labels but {expected}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CmwnetError(f"noisy-label file {path} has labels outside 0..{num_classes - 1}: it was made for "
                          "another data set; point data.noise.file at the right file")
    if info is None:
        _pin(path, digest, len(labels), num_classes)
    return labels


def _refuse_archive(path: str, archive: np.lib.npyio.NpzFile) -> None:
    """A zip archive (an .npz, or a torch .pt file, which numpy also opens as one) holds several arrays,
    and which of them are the labels is the user's choice, not ours: name them and the fix."""
    names = list(archive.files)
    archive.close()
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise CmwnetError(f"noisy-label file {path} is a zip archive (an .npz archive of several arrays or a torch "
                      f".pt file; it holds {listed or 'nothing'}), not one array: save the one array of labels "
                      "with numpy.save(FILE.npy, labels) and point data.noise.file at FILE.npy")


def _pin(path: str, digest: str, n: int, num_classes: int) -> None:
    """Record the digest of a label file that came without one, so later changes are caught."""
    info = {"format": FORMAT, "sha256": digest, "n": n, "num_classes": num_classes,
            "meta": {"pinned_on_first_use": True}}
    try:
        atomic_write_text(json.dumps(info, indent=2) + "\n", sidecar_path(path))
    except OSError as e:
        raise CmwnetError(f"cannot write the checksum file {sidecar_path(path)} for noisy-label file {path} "
                          f"({type(e).__name__}): copy the label file to a writable folder and point "
                          "data.noise.file there") from None
    print(f"pinned noisy-label file {path}: sha256 {digest[:12]}... recorded in {sidecar_path(path)}",
          file=sys.stderr)
