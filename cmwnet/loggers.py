"""Epoch records to other tools: `run.loggers: [csv, tensorboard]`.

The engine already builds one record per epoch (what `metrics.jsonl` holds); a logger receives the whole
history after each epoch and writes what is new, so a resumed run neither loses nor repeats an epoch.
Only the process that writes the run's files (rank 0) logs.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Any, Sequence

from .checkpoint import atomic_write_text
from .errors import CmwnetError, unknown_name


class Logger:
    """Receives the run's history (one record per finished epoch) after every epoch."""

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CsvLogger(Logger):
    """`metrics.csv` beside metrics.jsonl, one row per epoch, the columns the union of the records' keys;
    rewritten from the history each time (it is small), so a resume never duplicates a row."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, "metrics.csv")

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        columns = list(dict.fromkeys(k for r in history for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in history:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        atomic_write_text(buf.getvalue(), self.path)


class TensorBoardLogger(Logger):
    """Scalars per epoch (x = epoch number, from 1) into `tensorboard/` in the run folder. On resume only the
    epochs after the last one written are added: the writer starts at the history's length."""

    def __init__(self, run_dir: str, start: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CmwnetError("run.loggers has tensorboard but the tensorboard package is not installed: "
                              "pip install tensorboard (or pip install 'cmwnet[tensorboard]')") from None
        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self.done = start

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        for r in history[self.done:]:
            step = int(r.get("epoch", 0)) + 1
            for key, value in r.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)
        self.done = len(history)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


LOGGERS = ("csv", "tensorboard")


def check_loggers(names: Any) -> list[str]:
    """The logger names of `run.loggers`, or a one-line error naming the valid ones."""
    if not isinstance(names, (list, tuple)):
        raise CmwnetError(f"run.loggers must be a list, e.g. [csv, tensorboard]; got {names!r}")
    for name in names:
        if name not in LOGGERS:
            raise unknown_name("logger (run.loggers)", str(name), LOGGERS)
    return list(names)


def make_loggers(names: Sequence[str], run_dir: str, done_epochs: int) -> list[Logger]:
    """The loggers of `run.loggers` for a run that has `done_epochs` epochs in its history already."""
    out: list[Logger] = []
    for name in check_loggers(names):
        out.append(CsvLogger(run_dir) if name == "csv" else TensorBoardLogger(run_dir, done_epochs))
    return out
