"""Epoch records to other tools: `run.loggers: [csv, tensorboard, wandb, mlflow]` (a registry, `LOGGERS`).

`csv` needs nothing; `tensorboard`, `wandb` and `mlflow` are optional extras, each a one-line error
naming the pip install when missing. Epochs: files (metrics.jsonl, metrics.csv) count them from 0, the
way the checkpoint does; every logger's step, like the screen, is the epoch number from 1 (file epoch + 1).

The engine already builds one record per epoch (what `metrics.jsonl` holds); a logger receives the whole
history after each epoch and writes what is new, so a resumed run neither loses nor repeats an epoch.
Only the process that writes the run's files (rank 0) logs.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Any, Callable, Sequence

from .checkpoint import atomic_write_text
from .errors import CmwnetError, unknown_name


class Logger:
    """Receives the run's history (one record per finished epoch) after every epoch."""

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def finish(self, history: Sequence[dict[str, Any]]) -> None:
        """The run ended (all epochs done): e.g. the final metrics beside the hparams."""

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


def tag(key: str) -> str:
    """A metric's grouped name: test_top1 -> test/top1, train_loss -> train/loss, weight_auc -> weights/auc,
    mean_weight_clean -> weights/mean_clean, imagenet_ema_top1 -> imagenet/ema_top1; others under misc/."""
    if key == "lr":
        return "train/lr"
    if key.startswith("mean_weight"):
        return "weights/mean" + key[len("mean_weight"):]
    if key.startswith("weight_"):
        return "weights/" + key[len("weight_"):]
    if key == "meta_loss":
        return "meta/loss"
    if key == "epoch_time_s":
        return "time/epoch_s"
    head, sep, rest = key.partition("_")
    return f"{head}/{rest}" if sep else f"misc/{key}"


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers (not the epoch, not None or bools) under their grouped tags."""
    return {tag(k): float(v) for k, v in record.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def step_of(record: dict[str, Any]) -> int:
    """The x of a record in every logger: the epoch number from 1 (the file's 0-based epoch + 1), as on screen."""
    return int(record.get("epoch", 0)) + 1


def hparams(cfg: Any) -> dict[str, Any]:
    """The config flattened to dotted keys of plain values (TensorBoard's hparams, W&B / MLflow params)."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (bool, int, float, str)):
            out[prefix] = v
        elif v is None:
            out[prefix] = "none"
        else:
            out[prefix] = str(v)
    walk("", d)
    return out


def _missing(logger: str, package: str, extra: str) -> CmwnetError:
    return CmwnetError(f"run.loggers has {logger} but the {package} package is not installed: pip install {package} "
                       f"(from a checkout: pip install -e '.[{extra}]'), or drop {logger} from run.loggers")


class IncrementalLogger(Logger):
    """A logger that adds the epochs after the last one it wrote (on resume: after the history's length)."""

    def __init__(self, start: int):
        self.done = start

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        for r in history[self.done:]:
            self.log(step_of(r), scalars(r))
        self.done = len(history)
        self.flush()

    def log(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass


class TensorBoardLogger(IncrementalLogger):
    """Scalars per epoch (step = epoch number from 1) under grouped tags (test/top1, train/loss, weights/auc)
    into `tensorboard/` in the run folder, and the config as hparams (the HPARAMS tab) with the final test
    top-1 when the run ends. On resume only the epochs after the last one written are added."""

    def __init__(self, run_dir: str, start: int, cfg: Any = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams as hp_summary
        except ImportError:
            raise _missing("tensorboard", "tensorboard", "tensorboard") from None
        super().__init__(start)
        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self._hp_summary, self.cfg = hp_summary, cfg

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, history: Sequence[dict[str, Any]]) -> None:
        """The config and the run's best/last test top-1 in the hparams plugin, in this run's own event file
        (add_hparams would open a sub-folder per call)."""
        if self.cfg is None or not history:
            return
        metrics = {"hparam/best_test_top1": max(h["test_top1"] for h in history),
                   "hparam/last_test_top1": history[-1]["test_top1"]}
        for e in self._hp_summary(hparams(self.cfg), metrics):
            self.writer._get_file_writer().add_summary(e)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step_of(history[-1]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def run_label(run_dir: str, cfg: Any = None) -> str:
    """A run's name in W&B and MLflow: its folder below run.out (a sweep's `lr-1e-2/s1`, a table's
    `cifar10_if100/cmwnet_ce/s1`), not the bare `s1` every seed of every setting shared."""
    out = getattr(getattr(cfg, "run", None), "out", None)
    if out:
        rel = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(out))
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return os.path.basename(os.path.normpath(run_dir))


def run_tags(cfg: Any) -> dict[str, str]:
    """What a run is, as tags: method, loss, data set, noise, imbalance, model, seed."""
    if cfg is None:
        return {}
    d, m = cfg.data, cfg.method
    tags = {"method": m.name, "loss": m.loss, "data": d.name, "model": cfg.model.name, "seed": str(cfg.seed)}
    if d.noise.kind != "none" or d.noise.file:
        tags["noise"] = "file" if d.noise.file else f"{d.noise.kind} {d.noise.rate:g}"
    if d.imbalance != 1:
        tags["imbalance"] = f"{d.imbalance:g}"
    return tags


def new_run_id() -> str:
    """An id for a new W&B run: 8 lowercase letters and digits, as W&B's own ids (its `wandb.util.generate_id` is
    gone from wandb 0.2x on, which used to crash the logger before the first epoch)."""
    import secrets
    import string

    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def wandb_offline_steps(run_dir: str, run_id: str) -> list[int] | None:
    """The steps W&B has on disk for run `run_id` in offline mode (every `offline-run-*-<id>` folder of the run
    folder's wandb/, one per process that logged to it), or None where there is none (online mode) or the files
    cannot be read. W&B writes from a service process; a hard kill of the training loses what it had not yet
    written, so a resume asks the files, not the history, where to go on from."""
    import glob
    import json
    import struct

    files = glob.glob(os.path.join(run_dir, "wandb", f"offline-run-*-{run_id}", f"run-{run_id}.wandb"))
    if not files:
        return None
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError:
        return None
    steps: list[int] = []
    block = 32768   # the .wandb file: a 7-byte header, then LevelDB-log records in 32 KiB blocks
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
            pos, pending = 7, b""
            while pos + 7 <= len(data):
                if block - pos % block < 7:   # a block's tail too short for a record header is padding
                    pos += block - pos % block
                    continue
                _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
                chunk = data[pos + 7:pos + 7 + length]
                pos += 7 + length
                if kind in (2, 3):   # first / middle piece of a record
                    pending += chunk
                    continue
                if kind not in (1, 4):   # 0: zero padding
                    continue
                rec = pb.Record()
                rec.ParseFromString(pending + chunk)
                pending = b""
                if rec.WhichOneof("record_type") == "history":
                    for item in rec.history.item:   # W&B fills `key` or `nested_key`, by version
                        if (item.key or "/".join(item.nested_key)) == "_step":
                            steps.append(int(json.loads(item.value_json)))
        except Exception:   # a truncated tail (the kill itself) or a format W&B changed: use what was read
            continue
    return sorted(set(steps))


class WandbLogger(IncrementalLogger):
    """Weights & Biases: one W&B run per run folder (its id kept in `wandb_id`, so a resume continues it);
    the config as the W&B config; step = epoch number from 1. Offline unless the user has logged in. On resume
    in offline mode it goes on after the last epoch W&B has on disk (`wandb_offline_steps`), so the epochs a hard
    kill cut off before W&B wrote them are logged again rather than lost."""

    def __init__(self, run_dir: str, start: int, cfg: Any = None):
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", "wandb", "wandb") from None
        super().__init__(start)
        id_path = os.path.join(run_dir, "wandb_id")
        run_id = open(id_path).read().strip() if os.path.exists(id_path) else new_run_id()
        atomic_write_text(run_id, id_path)
        tags = run_tags(cfg)
        persisted = wandb_offline_steps(run_dir, run_id) if start > 0 else None
        self.run = wandb.init(id=run_id, resume="allow", dir=run_dir, name=run_label(run_dir, cfg),
                              project=getattr(getattr(cfg, "run", None), "project", None),
                              tags=[f"{k}:{v}" for k, v in tags.items()],
                              config=hparams(cfg) if cfg is not None else None)
        if persisted is not None:   # step k is epoch k: go on after the last contiguous epoch on disk
            have = set(persisted)
            last = 0
            while last + 1 in have and last < start:
                last += 1
            self.done = last

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log({**values, "epoch": step}, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowLogger(IncrementalLogger):
    """MLflow: metrics per epoch (step = epoch number from 1; '/' in tags kept, MLflow allows it), the config
    as params; one MLflow run per run folder (its id kept in `mlflow_id`, so a resume continues it). The
    tracking URI is MLflow's own setting (MLFLOW_TRACKING_URI; MLflow 3's default is a SQLite store, ./mlflow.db;
    MLflow 2 wrote ./mlruns)."""

    def __init__(self, run_dir: str, start: int, cfg: Any = None):
        try:
            import mlflow
        except ImportError:
            raise _missing("mlflow", "mlflow", "mlflow") from None
        super().__init__(start)
        self.mlflow = mlflow
        id_path = os.path.join(run_dir, "mlflow_id")
        run_id = open(id_path).read().strip() if os.path.exists(id_path) else None
        project = getattr(getattr(cfg, "run", None), "project", None)
        if project and run_id is None:
            mlflow.set_experiment(project)
        self.run = mlflow.start_run(run_id=run_id, run_name=run_label(run_dir, cfg),
                                    tags=run_tags(cfg) if run_id is None else None)
        atomic_write_text(self.run.info.run_id, id_path)
        if run_id is None and cfg is not None:
            mlflow.log_params({k: str(v)[:250] for k, v in hparams(cfg).items()})

    def log(self, step: int, values: dict[str, float]) -> None:
        self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


# name -> factory(run_dir, done_epochs, cfg): the loggers `run.loggers` may name
LOGGERS: dict[str, Callable[[str, int, Any], Logger]] = {
    "csv": lambda run_dir, start, cfg: CsvLogger(run_dir),
    "tensorboard": TensorBoardLogger,
    "wandb": WandbLogger,
    "mlflow": MlflowLogger,
}


def register_logger(name: str, factory: Callable[[str, int, Any], Logger]) -> None:
    """Add a logger: factory(run_dir, epochs already logged, config) -> Logger."""
    LOGGERS[name] = factory


def check_loggers(names: Any) -> list[str]:
    """The logger names of `run.loggers`, or a one-line error naming the valid ones."""
    if not isinstance(names, (list, tuple)):
        raise CmwnetError(f"run.loggers must be a list, e.g. [csv, tensorboard]; got {names!r}")
    for name in names:
        if name not in LOGGERS:
            raise unknown_name("logger (run.loggers)", str(name), list(LOGGERS))
    return list(names)


def make_loggers(names: Sequence[str], run_dir: str, done_epochs: int, cfg: Any = None) -> list[Logger]:
    """The loggers of `run.loggers` for a run that has `done_epochs` epochs in its history already."""
    return [LOGGERS[name](run_dir, done_epochs, cfg) for name in check_loggers(names)]
