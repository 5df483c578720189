"""The epoch loop: schedule, steps, evaluation, EMA, metrics, checkpoints and exact resume.

A run lives in one folder: `config.yaml` (the resolved config), `metrics.jsonl` (one line per epoch),
`checkpoint.pt` (written atomically after every epoch, and mid-epoch on SIGINT/SIGTERM),
`result.json` (best and last accuracy, written when the run ends), `weight_net.pt` and
`weighting.png` (the learned weighting function per task family).

Resume is exact: every random stream is re-seeded from (seed, epoch) at the start of an epoch, and a
mid-epoch checkpoint also stores the epoch's sample order, the generators' states and the epoch's
running sums. Rerunning the same command continues where the run stopped.

Safety: one process at a time trains a run folder (an advisory lock, `.lock`, released by the kernel
even on SIGKILL); a checkpoint is only resumed when it was written for the same config and the same
training labels; a non-finite loss stops the run before anything is saved. `python -m cmwnet.tools.killtest`
kills runs at random moments and checks that resumed runs end exactly where uninterrupted ones do.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import distributed, schedule
from .checkpoint import (atomic_torch_save, atomic_write_json, atomic_write_text,
                         load_checkpoint, read_json, remove_stale_temps)
from .config import Config, config_differences, validate
from .data import build_data
from .ema import EMA
from .errors import CmwnetError
from .loggers import Logger, make_loggers
from .progress import EPOCH_LEGEND, epochs_eta, format_eta, show_bar
from .methods.context import RunContext
from .models import create_model
from .provenance import environment_record
from .loss_trace import LossTrace
from .run_folder.sample_table import PREDICTIONS   # samples.npz: the final net's predictions, every run

from .run_folder.layout import (CHECKPOINT, CONFIG, FINAL_WEIGHTS, METRICS, RESULT, RunLock, _primary_process,
                                prepare_run_dir)
from .run_folder.sample_table import save_final_weights, save_predictions
MAX_CLASSES_PER_EPOCH = 100   # per-class test top-1 in every epoch record up to this many classes (not 1000)

def check_names(cfg: Config) -> None:
    """Method, model, data set, loss and optimizer names, checked before any data is read (a typo
    should not cost the 15 s of decoding CIFAR, or a queue slot). Each error lists the valid names."""
    from .data.builder import ARRAY_DATASETS, BUNDLE_BUILDERS
    from .errors import unknown_name
    from .losses import LOSSES
    from .methods import METHODS
    from .models import MODELS

    def check(key: str, name: str, kind: str, names) -> None:
        names = sorted(names)
        if name not in names:
            raise CmwnetError(f"{key}: {unknown_name(kind, name, names)}")
    check("method.name", cfg.method.name, "method", METHODS.names())
    check("model.name", cfg.model.name, "model", MODELS.names())
    check("data.name", cfg.data.name, "data set", ARRAY_DATASETS.names() + list(BUNDLE_BUILDERS))
    check("method.loss", cfg.method.loss, "loss", LOSSES.names())
    check("optim.name", cfg.optim.name, "optimizer", ["sgd", "adam"])
    method = METHODS.get(cfg.method.name)
    m, epochs = cfg.method, cfg.optim.epochs
    # free-form mappings: an unknown key (a typo) is refused with the closest name, as top-level keys are
    from .losses import check_loss_args
    from .methods.options import method_args
    from .models import check_model_args

    import dataclasses

    from .errors import closest
    for key in m.args:   # a method-level key written under args (method.args.intervall): name the real one
        hint = closest(str(key), [f.name for f in dataclasses.fields(m) if f.name != "args"])
        if key not in method.options and hint and closest(str(key), list(method.options)) is None:
            valid = f"valid keys: {', '.join(sorted(method.options))}" if method.options else \
                f"method {m.name} takes no method.args"
            raise CmwnetError(f"unknown method.args key '{key}' for method '{m.name}': did you mean "
                              f"'method.{hint}'? {valid}")
    method_args(cfg.method.name, m.args, method.options, method.nullable_options, method.option_choices)
    check_model_args(cfg.model.name, cfg.model.args)
    check_loss_args(cfg.method.loss, m.loss_args)
    if method.meta_phase is not None:
        from operator import attrgetter

        start = attrgetter(method.meta_phase)(m)
        if start >= epochs:
            raise CmwnetError(f"method.{method.meta_phase} is {start} but the run has only {epochs} epochs, so "
                              f"{m.name} would never meta-learn: lower method.{method.meta_phase} below {epochs}")
    if (m.weight_net.init or m.weight_net.frozen) and not method.learns_weighting:
        users = sorted(n for n in METHODS.names() if METHODS.get(n).learns_weighting)
        raise CmwnetError(f"method {m.name} has no learned weighting, so method.weight_net.init/frozen would be "
                          f"ignored: use one of {', '.join(users)}, or drop those keys")
    learns_from_candidates = getattr(method, "uses_candidate_sets", False)
    if cfg.data.partial.kind != "none" and not learns_from_candidates:
        users = sorted(n for n in METHODS.names() if getattr(METHODS.get(n), "uses_candidate_sets", False))
        raise CmwnetError(f"data.partial.kind is '{cfg.data.partial.kind}' but method '{cfg.method.name}' ignores "
                          f"candidate sets: use method {' or '.join(users)}, or data.partial.kind=none")


def data_fingerprint(data) -> str | None:
    """sha256 of the training set's observed and clean labels and the test labels: a checkpoint is
    only resumed on the data it was trained on (a regenerated noisy-label file, another CIFAR copy).
    None for a data set whose sets do not expose label tensors."""
    h = hashlib.sha256()
    tensors = [getattr(data.train, "labels", None), getattr(data.train, "clean_labels", None),
               getattr(data.test, "labels", None)]
    if any(not torch.is_tensor(t) for t in tensors):
        return None
    for t in tensors:
        a = t.detach().cpu().numpy().astype(np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CmwnetError(f"run.device is '{name}' but no CUDA device is available: use run.device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise CmwnetError(f"unknown run.device '{name}': use auto, cpu, cuda or cuda:N") from None


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 101 + stream) % (2 ** 63)


@torch.no_grad()
def evaluate(model: torch.nn.Module, source, batch_size: int,
             dist: distributed.Distributed | None = None) -> dict[str, Any]:
    """Top-1 and top-5 accuracy (%) in eval mode, without augmentation, and the top-1 of each true class
    (`class_top1`, None for a class with no image): a long-tail method is judged by its tail classes, which
    the overall number hides. Under DDP (`dist`) the batches are split across ranks and the counts summed."""
    was_training = model.training
    model.eval()
    top1 = top5 = torch.zeros((), device=source.device)
    hits_per_class = seen_per_class = None
    n = 0
    batches = source.batches(batch_size)
    for x, y, _ in (batches if dist is None else dist.shard_batches(batches)):
        logits = model(x)
        k = min(5, logits.shape[1])
        pred = logits.topk(k, dim=1).indices
        hit = pred == y[:, None]
        top1 = top1 + hit[:, 0].sum()
        top5 = top5 + hit.any(1).sum()
        if hits_per_class is None:
            hits_per_class = torch.zeros(logits.shape[1], device=logits.device)
            seen_per_class = torch.zeros(logits.shape[1], device=logits.device)
        hits_per_class.index_add_(0, y, hit[:, 0].float())
        seen_per_class.index_add_(0, y, torch.ones_like(y, dtype=torch.float))
        n += len(y)
    model.train(was_training)
    if dist is not None and dist.active:
        counts = dist.all_sum(torch.stack([top1.float(), top5.float(), torch.tensor(float(n), device=top1.device)]))
        top1, top5, n = counts[0], counts[1], int(counts[2])
        if hits_per_class is not None:
            hits_per_class, seen_per_class = dist.all_sum(torch.stack([hits_per_class, seen_per_class]))
    n = max(n, 1)
    per_class = None
    if hits_per_class is not None:
        per_class = [round(100.0 * float(h) / float(c), 3) if c > 0 else None
                     for h, c in zip(hits_per_class.tolist(), seen_per_class.tolist())]
    return {"top1": 100.0 * float(top1) / n, "top5": 100.0 * float(top5) / n, "class_top1": per_class}


@dataclass
class EpochSums:
    """Running sums of one epoch, kept on the device (read once at the epoch's end)."""
    loss: torch.Tensor
    correct: torch.Tensor
    seen: torch.Tensor
    meta_loss: torch.Tensor
    meta_count: torch.Tensor
    first_bad_step: torch.Tensor
    weights: torch.Tensor | None = None     # per training sample, NaN where not weighted this epoch
    losses: torch.Tensor | None = None      # per training sample, the loss its weight was computed from
    ce: torch.Tensor | None = None          # sum of the unweighted cross-entropy (None: older checkpoint)
    sample_ce: torch.Tensor | None = None   # per training sample, this epoch's plain CE (NaN: not trained on yet)

    @classmethod
    def zeros(cls, device: torch.device, n_train: int, with_weights: bool) -> "EpochSums":
        z = lambda: torch.zeros((), device=device)  # noqa: E731
        nan = lambda: torch.full((n_train,), float("nan"), device=device) if with_weights else None  # noqa: E731
        return cls(z(), z(), z(), z(), z(), torch.full((), -1, device=device, dtype=torch.long), nan(), nan(), z(),
                   sample_ce=torch.full((n_train,), float("nan"), device=device))

    def add(self, stats: dict[str, torch.Tensor], y: torch.Tensor, pos: torch.Tensor, step: int) -> None:
        loss = stats["loss"]
        self.loss += loss
        self.correct += (stats["logits"].argmax(1) == y).sum()
        if self.ce is not None or self.sample_ce is not None:   # train_loss is what the method optimised; this is CE
            ce = torch.nn.functional.cross_entropy(stats["logits"].detach().float(), y, reduction="none")
            if self.ce is not None:
                self.ce += ce.sum()
            if self.sample_ce is not None:   # None: resumed from an older checkpoint (cmwnet.loss_trace)
                self.sample_ce[pos] = ce
        self.seen += len(y)
        ml = stats.get("meta_loss")
        if ml is not None:
            ok = ~torch.isnan(ml)
            self.meta_loss += torch.where(ok, ml, torch.zeros_like(ml))
            self.meta_count += ok
        bad = ~torch.isfinite(loss)
        self.first_bad_step = torch.where(bad & (self.first_bad_step < 0), step, self.first_bad_step)
        if self.weights is not None and "weights" in stats:
            self.weights[pos] = stats["weights"].float()
            if "losses" in stats and self.losses is not None:   # None: resumed from an older checkpoint
                self.losses[pos] = stats["losses"].float()

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class RunState:
    epoch: int = 0          # the epoch in progress (or the next one, when step == 0)
    step: int = 0           # the next step of that epoch
    history: list = field(default_factory=list)
    wall_time: float = 0.0


class Trainer:
    """Builds everything a config asks for and trains it; `run()` resumes when a checkpoint exists."""

    def __init__(self, cfg: Config, quiet: bool = False, device: torch.device | None = None):
        self.cfg, self.quiet = cfg, quiet
        validate(cfg)
        schedule.validate(cfg.optim)
        check_names(cfg)
        self.run_dir = cfg.run_dir
        self._loggers: list[Logger] = []   # run.loggers, made when the run starts (rank 0)
        self.dist = distributed.init(cfg.run.device)   # under torchrun: this process's rank (cmwnet.distributed)
        self.quiet = quiet or not self.dist.is_main
        self.device = device or self.dist.device or pick_device(cfg.run.device)
        # set both ways: a runner worker trains many cells in one process, and one cell's switch must not
        # leak into the next
        torch.use_deterministic_algorithms(bool(cfg.run.deterministic))
        self._seed_all(_epoch_seed(cfg.seed, -1, 0))
        self.data = build_data(cfg.data, self.device)
        self.data_fingerprint = data_fingerprint(self.data)
        self.model = create_model(cfg.model.name, self.data.num_classes, self.data.in_channels,
                                  **cfg.model.args).to(self.device)
        if len(self.data.train) < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                            for m in self.model.modules()):
            raise CmwnetError(f"the training set has {len(self.data.train)} sample(s) (data.train_subset="
                              f"{cfg.data.train_subset}), and BatchNorm in {cfg.model.name} cannot train on a batch of "
                              "one: use data.train_subset >= 2 (or a model without BatchNorm)")
        self.optimizer = self._make_optimizer()
        self.ema = EMA(self.model, cfg.ema.decay, cfg.ema.bn) if cfg.ema.decay > 0 else None
        # what the method may read; it also holds the run's clock and random streams (see the properties below)
        self.ctx = RunContext(cfg=cfg, data=self.data, device=self.device, model=self.model, optimizer=self.optimizer,
                              ema_model=None if self.ema is None else self.ema.model,
                              generator=torch.Generator(device=self.device), cpu_generator=torch.Generator(),
                              np_rng=np.random.default_rng(0), steps_per_epoch=self.steps_per_epoch(),
                              meta_grad_hook=self.dist.meta_grad_hook, ranks=self.dist, log=self._log)
        self.state = RunState()
        self.sums: EpochSums | None = None
        self.loss_trace = LossTrace.zeros(len(self.data.train), self.device)   # the loss averaged over epochs
        self.order: torch.Tensor | None = None
        self._stop_signal: int | None = None
        self._last_saved: tuple[int, int] | None = None   # (epoch, step) of the checkpoint on disk
        from .methods import METHODS

        self.method = METHODS.get(cfg.method.name)(self.ctx)
        # DDP: checks the batch split; combines gradients before each optimizer step
        self.dist.attach(self.optimizer, cfg.data.batch_size, len(self.data.train), cfg.data.drop_last)

    # -- the run's clock and random streams: one copy, in the context the method reads -------------
    @property
    def epoch(self) -> int:
        return self.ctx.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.ctx.epoch = value

    @property
    def np_rng(self) -> np.random.Generator:
        return self.ctx.np_rng

    @np_rng.setter
    def np_rng(self, value: np.random.Generator) -> None:
        self.ctx.np_rng = value

    @property
    def generator(self) -> torch.Generator:
        return self.ctx.generator

    @property
    def cpu_generator(self) -> torch.Generator:
        return self.ctx.cpu_generator

    # -- building ----------------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        if o.name == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=o.lr, momentum=o.momentum,
                                   nesterov=o.nesterov and o.momentum > 0, weight_decay=o.weight_decay)
        if o.name == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        from .errors import unknown_name
        raise unknown_name("optimizer (optim.name)", o.name, ["sgd", "adam"])

    def _seed_all(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        torch.manual_seed(seed)

    def _begin_epoch(self, epoch: int) -> None:
        """Re-seed every random stream from (seed, epoch), set the lr, draw the epoch's order."""
        seed = self.cfg.seed
        self._seed_all(_epoch_seed(seed, epoch, 0))
        self.generator.manual_seed(_epoch_seed(seed, epoch, 1))
        self.cpu_generator.manual_seed(_epoch_seed(seed, epoch, 2))
        self.np_rng = np.random.default_rng(_epoch_seed(seed, epoch, 3))
        self.epoch = epoch
        self._set_lr(epoch)
        self.method.on_epoch_start(epoch)
        n = len(self.data.train)
        self.order = torch.randperm(n, generator=self.generator, device=self.generator.device).to(self.device)
        self.sums = EpochSums.zeros(self.device, n, with_weights=self.method.weight_net is not None
                                    or self.method.records_weights)

    def _set_lr(self, epoch: int) -> None:
        lr = schedule.lr_at(epoch, self.cfg.optim)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def steps_per_epoch(self) -> int:
        """Training batches per epoch. A last batch of a single sample is left out even without drop_last:
        BatchNorm cannot train on one sample, and the next epoch's order brings it back in a full batch."""
        bs, size = self.cfg.data.batch_size, len(self.data.train)
        n = self.data.train.num_batches(bs, self.cfg.data.drop_last or (size % bs == 1 and size > 1))
        return n if self.cfg.run.max_steps is None else min(n, self.cfg.run.max_steps)

    # -- checkpoints -------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
                 "cpu_generator": self.cpu_generator.get_state(), "numpy": self.np_rng.bit_generator.state,
                 "python": random.getstate(), "np_global": np.random.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        self.generator.set_state(state["generator"])
        self.cpu_generator.set_state(state["cpu_generator"])
        self.np_rng = np.random.default_rng()
        self.np_rng.bit_generator.state = state["numpy"]
        random.setstate(state["python"])
        np.random.set_state(state["np_global"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def save_checkpoint(self) -> None:
        s = self.state
        if not self.dist.is_main:   # DDP: rank 0 writes; the others wait for it
            self._last_saved = (s.epoch, s.step)
            self.dist.barrier()
            return
        mid_epoch = s.step > 0
        blob = {
            "config": self.cfg.to_dict(), "data_fingerprint": self.data_fingerprint,
            "epoch": s.epoch, "step": s.step, "history": s.history, "wall_time": s.wall_time,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "method": self.method.state_dict(), "loss_trace": self.loss_trace.state_dict(),
            "loss": self.method.loss_fn.state_dict() if isinstance(self.method.loss_fn, torch.nn.Module) else None,
            "mid_epoch": None if not mid_epoch else {
                "order": self.order, "sums": self.sums.state_dict(), "rng": self._rng_state()},
        }
        atomic_torch_save(blob, os.path.join(self.run_dir, CHECKPOINT))
        self._last_saved = (s.epoch, s.step)
        self.dist.barrier()

    def load_checkpoint(self, path: str) -> None:
        blob = load_checkpoint(path, map_location=self.device)
        diffs = config_differences(blob["config"], self.cfg.to_dict()) if isinstance(blob["config"], dict) else ["?"]
        if diffs:
            raise CmwnetError(f"checkpoint {path} was written for a different config ({diffs[0]}); it was left as it "
                              "is: set another run.name, or rerun with --force to move the old run aside")
        fp = blob.get("data_fingerprint")
        if fp is not None and fp != self.data_fingerprint:
            raise CmwnetError(f"checkpoint {path} was trained on different labels (the data or data.noise.file changed "
                              "since the run started); it was left as it is: restore the data, or rerun with --force "
                              "to start over")
        try:
            self.model.load_state_dict(blob["model"])
            self.optimizer.load_state_dict(blob["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(blob["ema"])
            if blob.get("loss") is not None:   # e.g. LDAM-DRW's switched class weights
                self.method.loss_fn.load_state_dict(blob["loss"])
            self.method.load_state_dict(blob["method"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CmwnetError(f"checkpoint {path} does not fit this run ({type(e).__name__}); it was left as "
                              "it is: move it away to start over, or rerun with --force") from None
        self.state = RunState(blob["epoch"], blob["step"], blob["history"], blob["wall_time"])
        self.loss_trace = LossTrace.from_state(blob.get("loss_trace"), len(self.data.train), self.device,
                                               blob["epoch"] + (1 if blob["step"] > 0 else 0))
        self._last_saved = (self.state.epoch, self.state.step)
        mid = blob.get("mid_epoch")
        if mid is not None:
            self.epoch = blob["epoch"]
            self._set_lr(self.epoch)
            if hasattr(self.method.loss_fn, "set_epoch"):  # what on_epoch_start did for this epoch's loss
                self.method.loss_fn.set_epoch(self.epoch)
            self.order = mid["order"].to(self.device)
            self.sums = EpochSums(**{k: (v.to(self.device) if torch.is_tensor(v) else v)
                                     for k, v in mid["sums"].items()})
            self._set_rng_state(mid["rng"])

    # -- the loop ----------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def _where(self, epoch: int | None = None, step: int | None = None) -> str:
        e = self.state.epoch if epoch is None else epoch
        st = self.state.step if step is None else step
        n = self.cfg.optim.epochs
        return f"after epoch {e}/{n}" if st == 0 else f"at step {st} of epoch {e + 1}/{n}"

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        """First SIGINT/SIGTERM: finish the step, save a checkpoint, exit. A second one: stop now
        (atomic writes leave no half-written file either way)."""
        if self._stop_signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self._stop_signal = signum

    def _agree_to_stop(self, at_check: bool = True) -> bool:
        """Whether to stop for a signal now (under DDP all ranks decide together; see Distributed.agree_to_stop)."""
        agreed = self.dist.agree_to_stop(self._stop_signal, self.sums.first_bad_step, at_check)
        if agreed is not None:
            self._stop_signal = agreed   # under DDP: SIGTERM where another rank got the signal
        return agreed is not None

    def run(self) -> dict[str, Any]:
        """Train to the last epoch (resuming from the checkpoint if there is one); returns the result."""
        with RunLock(self.run_dir):
            if _primary_process():
                remove_stale_temps(self.run_dir)
            result = os.path.join(self.run_dir, RESULT)
            if os.path.exists(result) and self.dist.world_size == 1:
                # another process finished this run between our look and our lock: it is done, leave it as it is
                if not self.quiet:
                    print(f"{self.run_dir} was finished by another process meanwhile")
                return read_json(result, "result file")
            return self._run_locked()

    def _run_locked(self) -> dict[str, Any]:
        handlers = {}
        if _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            ckpt = os.path.join(self.run_dir, CHECKPOINT)
            if os.path.exists(ckpt):
                self.load_checkpoint(ckpt)
            if self.dist.is_main:   # rank 0 logs; on resume they continue after the history's last epoch
                self._loggers = make_loggers(self.cfg.run.loggers, self.run_dir, len(self.state.history), self.cfg)
            if os.path.exists(ckpt):
                self._log(f"resuming {self.run_dir} {self._where()}")
                self._write_metrics()
            else:
                self._log(f"training {self.run_dir}: {self.cfg.optim.epochs} epochs on {self.device}")
            self._log(EPOCH_LEGEND)
            if self.dist.is_main:
                atomic_write_text(self.cfg.to_yaml(), os.path.join(self.run_dir, CONFIG))
            while self.state.epoch < self.cfg.optim.epochs:
                self._run_epoch()
                if self._agree_to_stop() and self.state.epoch < self.cfg.optim.epochs:
                    name = signal.Signals(self._stop_signal).name
                    print(f"stopped by {name} {self._where()}; checkpoint saved: rerun the same command to resume",
                          file=sys.stderr, flush=True)
                    raise SystemExit(128 + self._stop_signal)
            result = self._finish()
            for logger in self._loggers:
                logger.finish(self.state.history)
            return result
        finally:
            for logger in self._loggers:
                logger.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)

    def _run_epoch(self) -> None:
        s, cfg = self.state, self.cfg
        if s.step == 0:
            self._begin_epoch(s.epoch)
        t0 = time.time()
        n_steps = self.steps_per_epoch()
        bs = cfg.data.batch_size
        train = self.data.train
        bar = None
        if cfg.run.progress and not self.quiet and show_bar():   # piped to a file: the epoch line only
            from tqdm import tqdm
            bar = tqdm(total=n_steps, initial=s.step, desc=f"epoch {s.epoch + 1}/{cfg.optim.epochs}",
                       leave=False, dynamic_ncols=True, file=sys.stderr)
        refresh = max(1, min(50, n_steps // 10))
        train.plan(self.order, bs, s.step, n_steps)  # file-backed data decodes this epoch's batches ahead
        ema_decay = None
        if self.ema is not None and cfg.ema.freeze_epoch is not None and s.epoch >= cfg.ema.freeze_epoch:
            ema_decay = 1.0
        self.model.train()
        while s.step < n_steps:
            step = s.step
            pos = self.order[step * bs:(step + 1) * bs]
            raw = train.images[pos]
            x = train.augment(raw, self.generator)
            y = train.labels[pos]
            x, y, pos = self.dist.shard(x, y, pos)   # DDP: this rank's slice of the global batch
            stats = self.method.train_step(x, y, pos, step)
            self.dist.after_step(self.method)        # DDP: all ranks get the per-sample state updated this step
            if self.ema is not None:
                self.ema.update(self.model, ema_decay)
            self.sums.add(stats, y, pos, step)
            s.step += 1
            at_check = s.step % refresh == 0 or s.step == n_steps
            stop = self._agree_to_stop(at_check)   # DDP: every rank stops at the same check
            if at_check:
                bad = int(self.sums.first_bad_step)
                if bad >= 0:
                    self._fail_nonfinite(bad)
                if bar is not None:
                    bar.update(s.step - bar.n)
                    bar.set_postfix(loss=f"{float(self.sums.loss) / s.step:.3f}")
            if stop and s.step < n_steps:
                bad = int(self.sums.first_bad_step)
                if bad >= 0:  # never save a checkpoint holding NaN weights
                    self._fail_nonfinite(bad)
                s.wall_time += time.time() - t0
                self.save_checkpoint()
                if bar is not None:
                    bar.close()
                return
        if bar is not None:
            bar.close()
        s.wall_time += time.time() - t0
        # DDP: sums over ranks, BatchNorm statistics of rank 0
        self.dist.end_epoch(self.sums, [self.model] + ([] if self.ema is None else [self.ema.model]))
        if self.sums.sample_ce is not None:
            self.loss_trace.add_epoch(self.sums.sample_ce)
        record = self._epoch_record(time.time() - t0)
        s.history.append(record)
        self._after_epoch_files(record)   # before the checkpoint: a crash between them redoes the epoch
        s.epoch += 1
        s.step = 0
        self.save_checkpoint()
        self._write_metrics()
        self._log(self._format(record))

    def _fail_nonfinite(self, step: int) -> None:
        if self._last_saved is not None:
            kept = (f"the last good checkpoint ({os.path.join(self.run_dir, CHECKPOINT)}, saved "
                    f"{self._where(*self._last_saved)}) is kept")
        else:
            kept = "no checkpoint had been written yet"
        raise CmwnetError(
            f"the training loss became NaN/Inf in step {step + 1}/{self.steps_per_epoch()} of epoch "
            f"{self.state.epoch + 1}/{self.cfg.optim.epochs}; stopped without "
            f"saving, {kept}: {self._nonfinite_suspect()}, then rerun with --force to start over")

    def _nonfinite_suspect(self) -> str:
        """What most likely made the loss blow up, from the config (an lr that grew, a large weight decay
        or weight-net lr), else the usual cause."""
        o, m = self.cfg.optim, self.cfg.method
        lr_now = self.optimizer.param_groups[0]["lr"]
        if lr_now > o.lr * 1.0001:
            return (f"the lr has grown to {lr_now:g} (optim.schedule.gamma={o.schedule.gamma:g} > 1 or a warm-up "
                    f"above optim.lr): lower optim.schedule.gamma")
        if o.weight_decay > 0.01:
            return f"optim.weight_decay={o.weight_decay:g} is large: lower it (e.g. 5e-4)"
        if self.method.weight_net is not None and m.weight_net.lr > 0.01:
            return f"method.weight_net.lr={m.weight_net.lr:g} is large: lower it (e.g. 1e-3)"
        return f"lower optim.lr (now {lr_now:g}; or check the data and loss)"

    def _epoch_record(self, seconds: float) -> dict[str, Any]:
        sm, n_steps = self.sums, max(self.state.step, 1)
        seen = max(float(sm.seen), 1.0)
        rec: dict[str, Any] = {"epoch": self.state.epoch, "lr": self.optimizer.param_groups[0]["lr"],
                               "train_loss": float(sm.loss) / n_steps, "train_acc": 100.0 * float(sm.correct) / seen}
        if sm.ce is not None:
            rec["train_ce"] = float(sm.ce) / seen
        bs = self.cfg.data.test_batch_size
        test = evaluate(self.model, self.data.test, bs, self.dist)
        rec["test_top1"], rec["test_top5"] = test["top1"], test["top5"]
        if test["class_top1"] is not None and len(test["class_top1"]) <= MAX_CLASSES_PER_EPOCH:
            rec["test_class_top1"] = test["class_top1"]
        if self.ema is not None:
            ema = evaluate(self.ema.model, self.data.test, bs, self.dist)
            rec["ema_top1"], rec["ema_top5"] = ema["top1"], ema["top5"]
        for name, source in self.data.extra_tests.items():
            r = evaluate(self.model, source, bs, self.dist)
            rec[f"{name}_top1"], rec[f"{name}_top5"] = r["top1"], r["top5"]
            if self.ema is not None:
                r = evaluate(self.ema.model, source, bs, self.dist)
                rec[f"{name}_ema_top1"], rec[f"{name}_ema_top5"] = r["top1"], r["top5"]
        if int(sm.meta_count) > 0:
            rec["meta_loss"] = float(sm.meta_loss) / float(sm.meta_count)
        if sm.weights is not None:
            rec.update(weight_diagnostics(sm.weights, self.data.train.labels, self.data.train.clean_labels))
        rec["epoch_time_s"] = round(seconds, 3)
        return rec

    def _format(self, r: dict[str, Any]) -> str:
        best = max(h["test_top1"] for h in self.state.history)
        test = "test" if "test_split" not in self.data.info else f"test ({self.data.info['test_split']})"
        parts = [f"epoch {r['epoch'] + 1}/{self.cfg.optim.epochs}", f"lr {r['lr']:.3g}", f"loss {r['train_loss']:.3f}",
                 f"train {r['train_acc']:.2f}%", f"{test} {r['test_top1']:.2f}% (best {best:.2f}%)"]
        if "ema_top1" in r:
            parts.append(f"ema {r['ema_top1']:.2f}%")
        if "val_top1" in r:
            parts.append(f"val {r['val_top1']:.2f}%")
        if "mean_weight" in r:
            parts.append(f"w {r['mean_weight']:.3f}")
        if r.get("weight_auc") is not None:
            parts.append(f"auc {r['weight_auc']:.3f}")
        parts.append(f"{r['epoch_time_s']:.1f}s")
        left = self.cfg.optim.epochs - (r["epoch"] + 1)
        if left > 0:
            times = [h["epoch_time_s"] for h in self.state.history if "epoch_time_s" in h]
            parts.append(f"ETA {format_eta(epochs_eta(times, left))}")
        return "  ".join(parts)

    def _write_metrics(self) -> None:
        if not self.dist.is_main:
            return
        lines = "".join(json.dumps(h) + "\n" for h in self.state.history)
        atomic_write_text(lines, os.path.join(self.run_dir, METRICS))
        for logger in self._loggers:   # run.loggers: the same records to metrics.csv / TensorBoard
            logger.write(self.state.history)

    def _after_epoch_files(self, record: dict[str, Any]) -> None:
        """Per-epoch files beside the checkpoint (rank 0): the weighting snapshot (weighting_history.npz)
        and, with run.save_best, best_model.pt when this epoch is the best so far."""
        if not self.dist.is_main:
            return
        wn = self.method.weight_net
        if wn is not None:
            from .run_folder.weight_history import append_snapshot

            losses = None if self.sums is None or self.sums.losses is None else self.sums.losses.cpu().numpy()
            append_snapshot(self.run_dir, int(record["epoch"]), wn, losses)
        if self.cfg.run.save_best:
            from .run_folder.best_model import save_if_best

            save_if_best(self.run_dir, self.state.history, self.model)

    # -- the end -----------------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        result = summarize(self.state.history, self.cfg, self.data.info, self.state.wall_time)
        result["environment"] = environment_record(self.device, world_size=self.dist.world_size,
                                                   fast_path=self.method.fast.describe,
                                                   deterministic=self.cfg.run.deterministic)
        if self.method.fast.checks:   # the CUDA-graph replays compared with the eager step (cmwnet.fast)
            result["environment"]["fast_path_checks"] = dict(self.method.fast.checks)
        result["class_names"] = self.data.class_names or [str(k) for k in range(self.data.num_classes)]
        result["in_channels"] = int(self.data.in_channels)   # what cmwnet.load_run rebuilds the model with
        summary = self.method.summary()
        if summary:
            result["method_summary"] = summary
        if "test_split" in self.data.info:   # e.g. an image folder's val/: the metrics keep the key test_top1
            result["test_split"] = self.data.info["test_split"]
        if self.cfg.run.save_best:
            from .run_folder.best_model import best_record

            result["best_model"] = best_record(self.state.history)
        wn = self.method.weight_net
        if not self.dist.is_main:   # DDP: rank 0 writes the run's files
            return result
        if self.cfg.run.sample_table:
            last = None if self.sums is None else self.sums.sample_ce
            save_predictions(os.path.join(self.run_dir, PREDICTIONS), self.model, self.data,
                             self.cfg.data.test_batch_size, extra=self.loss_trace.arrays(last))
        if wn is None and self.sums is not None and self.sums.weights is not None:
            # per-batch weights without a weighting function (L2RW): the table still says what they were
            save_final_weights(os.path.join(self.run_dir, FINAL_WEIGHTS), self.sums, self.data)
        if wn is not None:
            wn.save(os.path.join(self.run_dir, "weight_net.pt"),
                    extra={"run": self.cfg.name, "method": self.cfg.method.name})
            if self.sums is not None and self.sums.weights is not None:
                save_final_weights(os.path.join(self.run_dir, FINAL_WEIGHTS), self.sums, self.data)
            if self.cfg.run.plot:
                from .run_folder.plotting import plot_weighting, run_title, split_losses

                d, tr = self.cfg.data, self.data.train
                losses = None
                if self.sums is not None and self.sums.losses is not None:
                    clean = getattr(tr, "clean_labels", None)
                    losses = split_losses(self.sums.losses.cpu().numpy(), tr.labels.cpu().numpy(),
                                          None if clean is None else clean.cpu().numpy())
                realised = (self.data.info.get("noise") or {}).get("realised_rate")
                plot_weighting(wn, os.path.join(self.run_dir, "weighting.png"), losses,
                               title=run_title(self.cfg.method.name, d.name, d.imbalance, d.noise.kind, d.noise.rate,
                                               realised_rate=realised),
                               class_names=result["class_names"])
            if self.cfg.run.plot:   # from the files just written (and this result): see run_figures.py
                from .run_folder.run_figures import write_run_figures

                write_run_figures(self.run_dir, result)
        atomic_write_json(result, os.path.join(self.run_dir, RESULT))   # last: the run is finished
        return result


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def weight_diagnostics(weights: torch.Tensor, observed: torch.Tensor, clean: torch.Tensor) -> dict[str, Any]:
    """Mean weight, and how well weights separate clean from mislabelled samples (ROC AUC of weight vs
    "label is correct"; None without label noise)."""
    seen = ~torch.isnan(weights)
    if not bool(seen.any()):
        return {}
    w = weights[seen].cpu().numpy()
    is_clean = (observed[seen] == clean[seen]).cpu().numpy()
    out: dict[str, Any] = {"mean_weight": float(w.mean())}
    if 0 < is_clean.sum() < len(is_clean):
        from sklearn.metrics import roc_auc_score

        out["weight_auc"] = float(roc_auc_score(is_clean, w))
        out["mean_weight_clean"] = float(w[is_clean].mean())
        out["mean_weight_noisy"] = float(w[~is_clean].mean())
    return out


def summarize(history: list[dict], cfg: Config, data_info: dict, wall_time: float) -> dict[str, Any]:
    """result.json: best and last top-1/top-5 of the net (and of the EMA net where used)."""
    def block(key1: str, key5: str) -> dict[str, Any]:
        best = max(history, key=lambda h: h[key1])
        return {"best_top1": best[key1], "best_top5": best[key5], "best_epoch": best["epoch"],
                "last_top1": history[-1][key1], "last_top5": history[-1][key5]}

    result: dict[str, Any] = {"name": cfg.name, "method": cfg.method.name, "seed": cfg.seed,
                              "epochs": len(history), **block("test_top1", "test_top5")}
    result["ema"] = block("ema_top1", "ema_top5") if history and "ema_top1" in history[0] else None
    for key in history[-1]:
        if key.endswith("_top1") and key not in ("test_top1", "ema_top1", "test_class_top1"):
            result[key[:-5]] = block(key, key[:-5] + "_top5")
    if history and "test_class_top1" in history[-1]:
        result["last_class_top1"] = history[-1]["test_class_top1"]
    result["wall_time_s"] = round(wall_time, 2)
    result["data"] = data_info
    return result


def train(cfg: Config, force: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume, or skip if finished) the training a config describes; returns result.json's dict."""
    dist = distributed.init(cfg.run.device)   # under torchrun rank 0 alone checks (or moves) the run folder
    done = dist.run_on_main(lambda: prepare_run_dir(cfg, force))
    if done is not None:
        if not quiet and dist.is_main:
            print(done)
        return read_json(os.path.join(cfg.run_dir, RESULT), "result file")
    return Trainer(cfg, quiet=quiet).run()
