"""Atomic file writes, so a kill at any moment leaves either the old file or the new one, never half.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target (`os.replace` is atomic on POSIX file systems).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

import torch

from .errors import CmwnetError


def _atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    _atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write_bytes(buf.getvalue(), path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint; an unreadable one is reported (and left on disk), never overwritten."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CmwnetError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); it was left as it is: "
            "move it away to restart the run from scratch, or rerun with --force") from None
