"""Kill/resume harness: `python -m cmwnet.tools.killtest --trials 20`.

Why: table runs take hours and run by the dozen, so a crash or a kill must never cost a finished
result, leave a corrupt file, or change the numbers. This harness checks exactly that, end to end,
on short deterministic CPU runs of the real command line (`python -m cmwnet.train`).

For each method (erm, cmwnet with a clean meta set, cmwnet_sl with EMA, pseudo labels and a
lowest-loss meta set) it first runs the training once without interruption (the reference). Each
trial then starts the same command in a fresh folder and interrupts it one to three times:

- `kill`: SIGKILL at a random moment of training (sometimes of start-up);
- `kill-write`: SIGKILL while `checkpoint.pt`'s temporary file is being written (the write is
  slowed with `CMWNET_TEST_SLOW_WRITE` so the window is wide);
- `term` / `int`: SIGTERM / SIGINT at a random moment; the run must save a checkpoint (mid-epoch
  when the signal lands mid-epoch), print one line and exit with 128 + the signal number. A signal
  that lands between epochs is sent again on the resumed run (up to 3 times) to get a mid-epoch stop.

Moments are drawn in training progress, not wall time (a random epoch, then a random point in it,
timed by the epochs the harness sees pass), so kills land inside training on a loaded machine too.
A pass whose interruptions all came after the run had finished is redone in a fresh folder, so
every trial counts a SIGKILL that hit a training run.

After every interruption the folder must hold only loadable files: `checkpoint.pt` loads,
`metrics.jsonl` is a prefix of the reference's lines, `result.json` is absent. Then the same command
is run again to the end (the resume), and the final `metrics.jsonl` (without `epoch_time_s`),
`result.json` (without `wall_time_s`), the final checkpoint's tensors (model, optimizer, EMA, method
state) and `weight_net.pt` must equal the reference's exactly.

Children run on the CPU with one thread (OMP_NUM_THREADS=1) so their arithmetic is reproducible;
`--jobs 2` runs two trials at a time. The exit status is 0 only when every trial resumed exactly.
CI runs two trials (tests/test_kill_resume.py); the full version is
`python -m cmwnet.tools.killtest --trials 20 --jobs 2` (6-9 minutes on a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from ..run_folder.layout import CHECKPOINT, METRICS, RESULT

METHODS = ("erm", "cmwnet", "cmwnet_sl")
# interruption plans, cycled over trials: every plan has a SIGKILL, the signals cover both
# SIGTERM and SIGINT, and some plans kill inside a checkpoint write
PLANS = (("kill-write", "kill"), ("kill", "term"), ("kill", "kill", "int"), ("term", "kill-write"),
         ("kill",), ("int", "kill", "kill-write"))
SLOW_WRITE_S = 0.25
TIME_KEYS = {"metrics": "epoch_time_s", "result": "wall_time_s"}

_COMMON = ["data.name=digits", "data.imbalance=5", "data.noise.kind=sym", "data.noise.rate=0.3",
           "data.augment.normalize=half", "data.augment.flip=false", "data.augment.crop_pad=1",
           "data.batch_size=32", "optim.lr=0.1", "run.device=cpu", "run.progress=false", "run.plot=false"]
SETTINGS: dict[str, list[str]] = {
    "erm": _COMMON + ["model.name=digits_cnn", "optim.epochs=6", "method.name=erm"],
    "cmwnet": _COMMON + ["model.name=digits_mlp", "optim.epochs=5", "method.name=cmwnet", "method.start_epoch=1",
                         "data.meta.kind=clean", "data.meta.per_class=5", "data.meta.batch_size=20",
                         "method.weight_net.lr=1e-3"],
    "cmwnet_sl": _COMMON + ["model.name=digits_mlp", "optim.epochs=5", "method.name=cmwnet_sl", "ema.decay=0.9",
                            "method.sl.warmup=1", "method.sl.pseudo_momentum=0.5", "method.sl.meta_mixup_alpha=1.0",
                            "data.meta.kind=lowest_loss", "data.meta.per_class=5", "data.meta.batch_size=20",
                            "method.interval=2"],
}


def train_command(method: str, out: str, name: str) -> list[str]:
    argv = [sys.executable, "-m", "cmwnet.train", "--out", out, "--set", f"name={name}"]
    for s in SETTINGS[method]:
        argv += ["--set", s]
    return argv


def child_env(slow_write: bool = False) -> dict[str, str]:
    from ..checkpoint import SLOW_WRITE_ENV

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop(SLOW_WRITE_ENV, None)
    if slow_write:
        env[SLOW_WRITE_ENV] = str(SLOW_WRITE_S)
    return env


class Child:
    """One `python -m cmwnet.train` process; notes when training starts (its first log line)."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str], stderr_path: str):
        self.stderr_file = open(stderr_path, "w")
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     text=True, start_new_session=True)
        self.started = threading.Event()
        self.t_spawn = time.monotonic()
        self.t_started: float | None = None
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
            if line.startswith(("training ", "resuming ")) and not self.started.is_set():
                self.t_started = time.monotonic()
                self.started.set()

    def wait_started(self, timeout: float = 300) -> bool:
        """Wait until training starts or the process exits (e.g. "already finished"); True if started."""
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.01):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return self.started.is_set()
        return True

    def wait(self, timeout: float = 300) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            self.stderr_file.close()
        return rc

    def stderr(self) -> str:
        with open(self.stderr_path) as f:
            return f.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


# -- comparing run folders ---------------------------------------------------------------------------
def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [json.loads(x) for x in f.read().splitlines()]   # a half-written line would raise here
    for x in lines:
        x.pop(TIME_KEYS["metrics"], None)
    return lines


def read_result(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, RESULT)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    r.pop(TIME_KEYS["result"], None)
    return r


def tensors_equal(a: Any, b: Any, where: str = "") -> str | None:
    """None when a and b (nested dicts/lists/tensors/arrays/scalars) are exactly equal, else where not."""
    import numpy as np
    import torch

    if torch.is_tensor(a) or torch.is_tensor(b):
        ok = torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and \
            bool(torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                       and torch.equal(a.nan_to_num(), b.nan_to_num())))
        return None if ok else where or "<tensor>"
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return None if np.array_equal(a, b) else where or "<array>"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys {sorted(map(str, set(a) ^ set(b)))[:3]}"
        for k in a:
            d = tensors_equal(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = tensors_equal(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return None if a == b else where or repr(a)


def final_state(run_dir: str) -> dict:
    """What must match after a resume: the final checkpoint's learned state and the weight net."""
    import torch

    from ..checkpoint import load_checkpoint

    blob = load_checkpoint(os.path.join(run_dir, CHECKPOINT))
    state = {k: blob[k] for k in ("epoch", "step", "model", "optimizer", "ema", "method", "mid_epoch",
                                  "data_fingerprint") if k in blob}
    wn = os.path.join(run_dir, "weight_net.pt")
    if os.path.exists(wn):
        state["weight_net"] = torch.load(wn, map_location="cpu", weights_only=True)["state_dict"]
    return state


def compare_runs(run_dir: str, ref_dir: str) -> list[str]:
    problems = []
    if read_metrics(run_dir) != read_metrics(ref_dir):
        problems.append("metrics.jsonl differs from the uninterrupted run")
    r, ref = read_result(run_dir), read_result(ref_dir)
    if r is None:
        problems.append("result.json missing")
    elif r != ref:
        keys = sorted(k for k in set(r) | set(ref) if r.get(k) != ref.get(k))
        problems.append(f"result.json differs ({', '.join(keys)})")
    d = tensors_equal(final_state(run_dir), final_state(ref_dir))
    if d:
        problems.append(f"final state differs at {d}")
    return problems


def check_interrupted_folder(run_dir: str, ref_metrics: list[dict]) -> tuple[list[str], dict]:
    """After an interruption: every file on disk must load, and nothing may claim to be finished."""
    from ..checkpoint import TEMP_PREFIX, load_checkpoint
    from ..errors import CmwnetError

    problems, info = [], {"checkpoint": None, "temps": []}
    ckpt = os.path.join(run_dir, CHECKPOINT)
    if os.path.exists(ckpt):
        try:
            blob = load_checkpoint(ckpt)
            info["checkpoint"] = (int(blob["epoch"]), int(blob["step"]))
        except CmwnetError as e:
            problems.append(f"checkpoint.pt does not load: {e}")
    try:
        m = read_metrics(run_dir)
        if m != ref_metrics[:len(m)]:
            problems.append("metrics.jsonl is not a prefix of the uninterrupted run's")
    except ValueError as e:
        problems.append(f"metrics.jsonl is corrupt: {e}")
    if os.path.exists(os.path.join(run_dir, RESULT)):
        try:
            read_result(run_dir)
        except ValueError as e:
            problems.append(f"result.json is corrupt: {e}")
    if os.path.isdir(run_dir):
        info["temps"] = [n for n in os.listdir(run_dir) if n.startswith(TEMP_PREFIX)]
    return problems, info


# -- trials --------------------------------------------------------------------------------------------
@dataclass
class Event:
    mode: str
    delay_s: float = 0.0
    rc: int | None = None
    during_write: bool = False
    before_training: bool = False
    missed: bool = False                 # the run had already finished
    checkpoint: tuple | None = None      # (epoch, step) on disk after the interruption


@dataclass
class Trial:
    index: int
    method: str
    events: list = field(default_factory=list)
    exact: bool = False
    problems: list = field(default_factory=list)
    seconds: float = 0.0
    attempts: int = 0
    retired: int = 0         # interruptions of passes redone because they all came too late

    def describe(self) -> str:
        parts = []
        for e in self.events:
            tag = e.mode + (" (in checkpoint write)" if e.during_write else "") + \
                (" (start-up)" if e.before_training else "") + (" (missed: run had finished)" if e.missed else "")
            where = "no checkpoint" if e.checkpoint is None else \
                (f"ckpt after epoch {e.checkpoint[0]}" if e.checkpoint[1] == 0 else
                 f"ckpt epoch {e.checkpoint[0]} step {e.checkpoint[1]}")
            parts.append(f"{tag} @{e.delay_s:.2f}s -> {where}")
        verdict = "exact" if self.exact else "FAILED: " + "; ".join(self.problems)
        redo = f" [pass {self.attempts}: in earlier passes the run finished before the plan's interruptions]" \
            if self.attempts > 1 else ""
        return (f"trial {self.index + 1} {self.method}: " + ", ".join(parts) + f" => {verdict}{redo} "
                f"({self.seconds:.0f}s)")


@dataclass
class Reference:
    run_dir: str
    train_s: float
    metrics: list


def run_reference(method: str, workdir: str) -> Reference:
    out = os.path.join(workdir, "reference")
    child = Child(train_command(method, out, method), workdir, child_env(), os.path.join(workdir, f"ref-{method}.err"))
    rc = child.wait()
    if rc != 0:
        from ..errors import CmwnetError

        last = (child.stderr().strip().splitlines() or ["(no output)"])[-1]
        raise CmwnetError(f"the uninterrupted reference run of {method} failed (exit {rc}): {last}")
    t_start = child.t_started or child.t_spawn
    run_dir = os.path.join(out, method)
    return Reference(run_dir, time.monotonic() - t_start, read_metrics(run_dir))


def _metric_lines(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, METRICS), "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _wait_for_epoch(child: Child, run_dir: str, epoch: int, durations: list) -> None:
    """Until `epoch` epochs are finished (metrics.jsonl has that many lines) or the child exits;
    notes how long the epochs it saw took (the machine's current speed)."""
    last_n, last_t = _metric_lines(run_dir), time.monotonic()
    seen_start = False
    while child.proc.poll() is None and last_n < epoch:
        time.sleep(0.005)
        n = _metric_lines(run_dir)
        if n != last_n:
            now = time.monotonic()
            if seen_start:
                durations.append((now - last_t) / (n - last_n))
            seen_start, last_n, last_t = True, n, now


def _interrupt(child: Child, event: Event, run_dir: str, ref: Reference, rng: random.Random, done: int,
               durations: list) -> None:
    """Deliver one interruption to a running child (or note that the run finished first).

    The moment is drawn in training progress, not wall time (the machine may be loaded): a random
    epoch from the one in progress to the last, then a random point within it."""
    from ..checkpoint import TEMP_PREFIX

    sig = {"kill": signal.SIGKILL, "kill-write": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}[event.mode]
    epochs = len(ref.metrics)
    epoch_s = ref.train_s / max(epochs, 1)
    if durations:   # the last epochs seen in this trial (the machine's speed now), erring on the short side
        epoch_s = min(durations[-3:])
    if event.mode == "kill" and rng.random() < 0.15:      # now and then, during start-up
        event.before_training = True
        time.sleep(rng.uniform(0.0, 2.0))
        event.before_training = not child.started.is_set()
    else:
        child.wait_started()
        last = epochs - 1
        if event.mode in ("term", "int") and done < last:
            last -= 1           # a signal must land while training runs, so not in the last epoch
        target = rng.randint(min(done, last), last)
        _wait_for_epoch(child, run_dir, target, durations if event.mode != "kill-write" else [])
        if event.mode == "kill-write":  # the checkpoint written at the end of epoch `target`
            prefix = TEMP_PREFIX + "checkpoint.pt-"
            while child.proc.poll() is None:
                if any(n.startswith(prefix) for n in os.listdir(run_dir)):
                    time.sleep(rng.uniform(0.0, 0.6 * SLOW_WRITE_S))
                    event.during_write = True
                    break
                time.sleep(0.002)
        else:   # signals aim at the first part of the epoch: they must land before it ends to stop mid-epoch
            frac = 0.6 if event.mode in ("term", "int") else 0.9 if target < epochs - 1 else 0.7
            time.sleep(rng.uniform(0.0, frac) * epoch_s)
    event.delay_s = time.monotonic() - (child.t_started or child.t_spawn)
    if child.proc.poll() is None:
        os.kill(child.proc.pid, sig)
    event.rc = child.wait()
    if event.rc == 0 or os.path.exists(os.path.join(run_dir, RESULT)):
        event.missed = True     # the run had finished (the signal came at the process's exit, or later)
        event.during_write = False


def _attempt(trial: Trial, plan: tuple, ref: Reference, workdir: str, out: str, argv: list,
             rng: random.Random) -> None:
    """One pass of a plan over a fresh run folder; events and problems go into `trial`."""
    from ..checkpoint import TEMP_PREFIX

    run_dir = os.path.join(out, trial.method)
    launches = 0
    durations: list = []
    pending = list(plan)
    while pending:
        mode = pending.pop(0)
        done = _metric_lines(run_dir) if os.path.exists(os.path.join(run_dir, CHECKPOINT)) else 0
        child = Child(argv, workdir, child_env(mode == "kill-write"), f"{out}.{trial.attempts}.{launches}.err")
        launches += 1
        event = Event(mode)
        try:
            _interrupt(child, event, run_dir, ref, rng, done, durations)
        finally:
            child.kill()
        trial.events.append(event)
        err = child.stderr()
        if "Traceback" in err:
            trial.problems.append(f"{mode}: traceback on stderr: {err[-500:]}")
        if mode in ("term", "int") and not event.missed:
            want = 128 + (signal.SIGTERM if mode == "term" else signal.SIGINT)
            if event.rc != want or "checkpoint saved" not in err or len(err.strip().splitlines()) != 1:
                trial.problems.append(f"{mode}: exit status {event.rc} (want {want}), stderr {err.strip()[-300:]!r} "
                                      "(want one line saying the checkpoint was saved)")
        problems, info = check_interrupted_folder(run_dir, ref.metrics)
        event.checkpoint = info["checkpoint"]
        trial.problems += [f"after {mode}: {p}" for p in problems]
        if event.during_write and not any(n.startswith(TEMP_PREFIX + "checkpoint.pt-") for n in info["temps"]):
            event.during_write = False   # the write had completed after all
        if mode in ("term", "int") and not event.missed and (event.checkpoint is None or event.checkpoint[1] == 0) \
                and len([e for e in trial.events if e.mode == mode]) < 3:
            pending.insert(0, mode)      # try again to land mid-epoch
        if event.missed:
            break
    # the resume: the same command, to the end
    child = Child(argv, workdir, child_env(), f"{out}.{trial.attempts}.final.err")
    rc = child.wait()
    err = child.stderr()
    if rc != 0 or "Traceback" in err:
        trial.problems.append(f"resume exited {rc}: {err.strip()[-500:]}")
    else:
        trial.problems += compare_runs(run_dir, ref.run_dir)
        _, info = check_interrupted_folder(run_dir, ref.metrics)
        if info["temps"]:
            trial.problems.append(f"stale temporary files after the resume: {info['temps']}")


def _covered(events: list, plan: tuple) -> bool:
    """Did this pass deliver what the plan asks for: a SIGKILL to a live run, and every signal?"""
    landed = [e for e in events if not e.missed]
    return any(e.mode.startswith("kill") and not e.before_training for e in landed) and \
        all(any(e.mode == m for e in landed) for m in set(plan) if m in ("term", "int"))


def run_trial(index: int, method: str, plan: tuple, ref: Reference, workdir: str, seed: int = 0,
              max_attempts: int = 4) -> Trial:
    """One trial: interrupt a fresh run as `plan` says, resume it, compare. A pass in which the run
    finished before the plan's SIGKILL or signals landed is redone in a fresh folder (at most
    `max_attempts` passes)."""
    rng = random.Random(seed * 100_003 + index)
    trial = Trial(index, method)
    t0 = time.monotonic()
    out = os.path.join(workdir, f"trial{index + 1:02d}")
    argv = train_command(method, out, method)
    while True:
        trial.attempts += 1
        start = len(trial.events)
        _attempt(trial, plan, ref, workdir, out, argv, rng)
        if trial.problems or _covered(trial.events[start:], plan) or trial.attempts >= max_attempts:
            break
        shutil.rmtree(out, ignore_errors=True)   # every interruption came too late: again, afresh
        trial.retired += len(trial.events) - start
        del trial.events[start:]
    trial.exact = not trial.problems
    trial.seconds = time.monotonic() - t0
    return trial


@dataclass
class Summary:
    trials: list

    @property
    def exact(self) -> int:
        return sum(t.exact for t in self.trials)

    @property
    def killed(self) -> int:
        """Trials in which at least one SIGKILL hit a run that was training (start-up kills not counted)."""
        return sum(any(e.mode.startswith("kill") and not e.missed and not e.before_training for e in t.events)
                   for t in self.trials)

    def count(self, pred: Callable[[Event], bool]) -> int:
        return sum(pred(e) for t in self.trials for e in t.events)

    def report(self) -> str:
        n = len(self.trials)
        sigkill = self.count(lambda e: e.mode.startswith("kill") and not e.missed)
        in_write = self.count(lambda e: e.during_write)
        early = self.count(lambda e: e.before_training and not e.missed)
        term = self.count(lambda e: e.mode == "term" and not e.missed)
        sigint = self.count(lambda e: e.mode == "int" and not e.missed)
        mid = self.count(lambda e: e.mode in ("term", "int") and not e.missed and e.checkpoint is not None
                         and e.checkpoint[1] > 0)
        missed = self.count(lambda e: e.missed)
        return (f"{n} trials ({self.killed} SIGKILLed while training), {self.exact} resumed exactly; {sigkill} SIGKILLs ({in_write} during a checkpoint write, "
                f"{early} during start-up), {term} SIGTERMs and {sigint} SIGINTs ({mid} saved mid-epoch), "
                f"{missed} interruption(s) came after the run had finished")

    def as_dict(self) -> dict:
        return {"trials": len(self.trials), "exact": self.exact, "report": self.report(),
                "details": [t.describe() for t in self.trials]}


def run_trials(trials: int, methods: tuple = METHODS, seed: int = 0, workdir: str | None = None,
               plans: tuple = PLANS, jobs: int = 1, log: Callable[[str], None] = print) -> Summary:
    """Run the references, then `trials` kill/resume trials (methods and plans cycled), `jobs` at a
    time (each trial has its own folder; the load changes only when the kills land, not what is checked)."""
    from concurrent.futures import ThreadPoolExecutor

    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="cmwnet-killtest-")
    os.makedirs(workdir, exist_ok=True)
    try:
        with ThreadPoolExecutor(max(1, jobs)) as ex:
            refs = dict(zip(methods, ex.map(lambda m: run_reference(m, workdir), methods)))
            for m, r in refs.items():
                log(f"reference {m}: {len(r.metrics)} epochs, {r.train_s:.1f}s of training")
            futures = []
            for i in range(trials):
                m = methods[i % len(methods)]
                futures.append(ex.submit(run_trial, i, m, plans[i % len(plans)], refs[m], workdir, seed))
            done = []
            for f in futures:
                done.append(f.result())
                log(done[-1].describe())
        return Summary(done)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmwnet.tools.killtest", description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20, help="number of kill/resume trials (default 20)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    p.add_argument("--workdir", help="keep the run folders here (default: a temporary folder, deleted)")
    p.add_argument("--jobs", type=int, default=1, help="trials run at the same time (default 1)")
    p.add_argument("--json", help="also write the summary as JSON to this file")
    args = p.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    from ..errors import CmwnetError, unknown_name

    for m in methods:
        if m not in SETTINGS:
            raise unknown_name("method", m, SETTINGS)
    if args.trials < 1:
        raise CmwnetError(f"--trials must be >= 1, got {args.trials}")
    summary = run_trials(args.trials, methods, args.seed, args.workdir, jobs=args.jobs)
    print(summary.report())
    if args.json:
        from ..checkpoint import atomic_write_json

        atomic_write_json(summary.as_dict(), args.json)
    return 0 if summary.exact == len(summary.trials) else 1


if __name__ == "__main__":
    from ..errors import run_cli

    sys.exit(run_cli(main))
