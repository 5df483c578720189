"""A run folder's layout: its file names (defined here once), the lock that keeps two processes out of one folder,
and the check of a folder against the config about to train in it.

    RUN/config.yaml        the resolved config            RUN/metrics.jsonl     one line per epoch
    RUN/checkpoint.pt      resumable state, every epoch   RUN/result.json       best and last accuracy, at the end
    RUN/final_weights.npz  the last epoch's per-sample weights, losses, labels (and .csv)
    RUN/samples.npz        the final net's predictions per sample (sample_table)
    RUN/best_model.pt      the best epoch's classifier, where kept (best_model)
    RUN/weighting_history.npz  the learned weighting per epoch (weight_history)
"""
from __future__ import annotations

import os
import shutil
import sys
import time

from ..checkpoint import read_json
from ..config import Config, config_differences
from ..errors import CmwnetError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
FINAL_WEIGHTS = "final_weights.npz"   # the last epoch's per-sample weights, losses and labels
BEST_MODEL = "best_model.pt"       # the best epoch's classifier, where kept
LOCK = ".lock"


def _primary_process() -> bool:
    """Under torchrun only rank 0 owns the run folder (lock, stale temporary files)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


try:
    import fcntl
except ImportError:  # not POSIX: no run-folder lock
    fcntl = None


class RunLock:
    """An exclusive advisory lock on a run folder, so two processes never train the same run.

    flock locks belong to the open file, so the kernel drops them when the process dies (even by
    SIGKILL): a stale lock cannot block a resume."""

    def __init__(self, run_dir: str):
        self.run_dir, self.path, self.fd = run_dir, os.path.join(run_dir, LOCK), None

    def acquire(self) -> "RunLock":
        if fcntl is None or not _primary_process():
            return self
        os.makedirs(self.run_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CmwnetError(f"run folder {self.run_dir} is in use by another process (pid {holder}): wait for it "
                              "to finish, or stop it and rerun this command to resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_run_dir(cfg: Config, force: bool = False) -> str | None:
    """Check the run folder against the config. Returns a message when the run already finished.

    A folder holding a different config is refused (or, with force, moved aside, never deleted); with
    force a folder holding the same config is moved aside too, to start over.
    """
    run_dir = cfg.run_dir
    cfg_path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        return None
    if os.path.exists(cfg_path) or force:
        diffs: list[str] = []
        if os.path.exists(cfg_path):
            import yaml

            try:
                with open(cfg_path) as f:
                    old = yaml.safe_load(f)
                if not isinstance(old, dict):
                    raise ValueError("not a mapping")
            except (yaml.YAMLError, ValueError, OSError):
                if not force:
                    raise CmwnetError(f"run folder {run_dir} holds an unreadable config.yaml, so it cannot be checked "
                                      "against this config: set another run.name, or pass --force to move it aside") from None
                old = {}
            diffs = config_differences(old, cfg.to_dict())
        if diffs and not force:
            more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
            raise CmwnetError(f"run folder {run_dir} holds a different config ({diffs[0]}{more}): set another "
                              "run.name (--set run.name=...), or pass --force to move the old run aside")
        if force:
            with RunLock(run_dir):  # refuses when another process is training in this folder
                aside = f"{run_dir}.old-{time.strftime('%Y%m%d-%H%M%S')}"
                k = 1
                while os.path.exists(aside):
                    aside, k = f"{run_dir}.old-{time.strftime('%Y%m%d-%H%M%S')}-{k}", k + 1
                shutil.move(run_dir, aside)
            print(f"moved the previous run to {aside}", file=sys.stderr)
            return None
    result = os.path.join(run_dir, RESULT)
    if os.path.exists(result):
        r = read_json(result, "result file")
        try:
            return f"{run_dir} already finished: best top-1 {r['best_top1']:.2f}%, last {r['last_top1']:.2f}%"
        except (KeyError, TypeError, ValueError):
            raise CmwnetError(f"result file {result} is incomplete: move it away (or rerun with --force) to redo "
                              "the run") from None
    return None
