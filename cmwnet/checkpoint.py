"""Atomic file writes, so a kill at any moment leaves either the old file or the new one, never half.

Every write goes to a temporary file `.tmp-<name>-XXXX` in the same folder, is flushed to disk, then
renamed over the target (`os.replace` is atomic on POSIX file systems). A kill during the write leaves
only the temporary file, which `remove_stale_temps` deletes when the run restarts.

Test hook: with the environment variable `CMWNET_TEST_SLOW_WRITE=<seconds>` every atomic write
pauses half-way through writing its temporary file, so the kill/resume harness
(`python -m cmwnet.tools.killtest`) can kill a process while a checkpoint is half written.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from typing import Any

import torch

from .errors import CmwnetError


TEMP_PREFIX = ".tmp-"
SLOW_WRITE_ENV = "CMWNET_TEST_SLOW_WRITE"


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    path = os.fspath(path)
    refuse_folder(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + os.path.basename(path) + "-", dir=folder)
    except OSError as e:   # a read-only folder: name the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, path) from None
    slow = float(os.environ.get(SLOW_WRITE_ENV) or 0)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results unreadable to the rest of a group
        with os.fdopen(fd, "wb") as f:
            if slow > 0:  # test hook: leave a half-written temporary file for a while
                f.write(data[: len(data) // 2])
                f.flush()
                time.sleep(slow)
                data = data[len(data) // 2:]
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:   # name the file asked for, not the temporary one
            raise OSError(e.errno, e.strerror, path) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Delete temporary files left by writes that were killed half-way; returns their names.

    Only call this while holding the folder (no other process writing there)."""
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        if name.startswith(TEMP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def refuse_folder(path: str | os.PathLike) -> None:
    """A file is to be written where a folder is: a one-line error naming the path, before any temporary file."""
    if os.path.isdir(path):
        from .errors import CmwnetError

        raise CmwnetError(f"{os.fspath(path)} is a folder, not a file: give a file path (e.g. "
                          f"{os.path.join(os.fspath(path), os.path.basename(os.path.normpath(path)) or 'out')}), or "
                          "move the folder away")


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(buf.getvalue(), path)


CHECKPOINT_KEYS = ("config", "epoch", "step", "history", "wall_time", "model", "optimizer", "ema", "method",
                   "mid_epoch")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a training checkpoint; an unreadable or incomplete one is reported (and left on disk),
    never overwritten."""
    try:
        # weights_only=False only here: the project's own file, whose mid-epoch form holds NumPy and Python RNG
        # states that weights_only=True refuses; third-party weights go through models.pretrained (weights_only)
        blob = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - truncated/garbage files raise many types
        raise CmwnetError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); it was left as it is: "
            "move it away to restart the run from scratch, or rerun with --force") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise CmwnetError(
            f"checkpoint {path} is not a cmwnet training checkpoint (missing {', '.join(missing[:3])}); it was left "
            "as it is: move it away to restart the run from scratch, or rerun with --force")
    return blob


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file this project wrote; a damaged one is an error naming the file, not a traceback."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CmwnetError(f"{what} {path} is unreadable ({type(e).__name__}): it was left as it is; move it away "
                          "(or rerun with --force) to redo the run") from None
