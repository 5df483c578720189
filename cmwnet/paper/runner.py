"""Run many training runs ("cells") in parallel slots, skip finished ones, resume interrupted ones.

The table scripts (section4/ ... section7/) are thin wrappers around this module; it knows nothing
about tables. Its API:

    from cmwnet.paper.runner import Cell, make_slots, run_cells, load_results, mean_std

    cells = [Cell("cifar10_if100/erm/s1", "configs/table1.yaml", ["method.name=erm", "seed=1"]), ...]
    slots = make_slots(gpus="0,1", per_gpu=3)          # 6 slots; or make_slots(jobs=2) on the CPU
    report = run_cells(cells, "runs/section4", slots)  # -> RunReport (status per cell)
    results = load_results("runs/section4", [c.name for c in cells])   # finished cells only

- `Cell(name, config, overrides)`: one run. `config` is a YAML path or a config dict; `overrides` are
  `key=value` strings (as for `--set`). Its run folder is `OUT/<name>` (names may contain `/`).
  The command it runs is `python -m cmwnet.train --config CONFIG --set k=v ... --set run.out=OUT
  --set run.name=NAME`; the log goes to `OUT/logs/<name with / as __>.log`.
- A cell is *finished* when `OUT/<name>/result.json` exists (the engine writes it atomically, last)
  and the folder's `config.yaml` equals the cell's config. Finished cells are skipped; every other
  cell is (re)run with the same command, which resumes from its checkpoint. A folder that holds a
  different config is reported as a conflict and left alone (choose another OUT).
- Slots: `make_slots(gpus, per_gpu)` gives per_gpu slots per GPU (CUDA_VISIBLE_DEVICES=<gpu> in
  each), packing several small CIFAR runs on one GPU; without GPUs, `make_slots(jobs=N)` gives N CPU
  slots, each limited to `threads` intra-op threads.
- Launch modes: "subprocess" starts one `python -m cmwnet.train` per cell (robust: a crash or an
  out-of-memory kills one cell only); "worker" keeps one `python -m cmwnet.paper.runner --worker`
  process per slot and feeds it cells, saving the ~2 s interpreter and torch start-up per cell (smoke
  runs have hundreds of cells of a second each); "inprocess" trains every cell in this process, one
  after the other (the same skip/resume/status rules; the fastest for a few tiny smoke cells).
- SIGINT/SIGTERM to the runner: no new cell starts, running cells get SIGTERM (the engine saves a
  mid-epoch checkpoint and exits), and `run_cells` returns with those cells marked "interrupted".
  Results on disk are only ever written atomically by the engine, so an interruption at any moment
  leaves exactly the finished cells finished; rerunning reruns only the rest.
- `shorten(cfg_dict, epochs)`: overrides that shrink a schedule to `epochs`, scaling every key that
  counts epochs (milestones, meta-learning start, warm-ups, DRW, EMA freeze) proportionally; a phase
  that starts within the full run still starts within the short one.
- `load_results` / `mean_std`: result.json dicts of finished cells; mean and sample std (ddof=1).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import yaml

from ..errors import CmwnetError, run_cli
from ..parent_watch import WATCH_PARENT, watch_parent
from ..progress import format_eta
from .results import RESULT, load_results, mean_std, read_result, run_dir  # noqa: F401  (re-exported)
from ..run_folder.layout import CONFIG

# -- cells -------------------------------------------------------------------------------------------
def _yaml_value(value: Any) -> str:
    """A value as the text of a `--set key=value` (parsed back as YAML by the config loader)."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and "\n" not in value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def overrides_from_dict(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Flatten a nested dict into `a.b.c=value` overrides (non-empty dicts are descended into)."""
    out = []
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += overrides_from_dict(value, path + ".")
        else:
            out.append(f"{path}={_yaml_value(value)}")
    return out


@dataclass
class Cell:
    """One training run: a base config (YAML path or dict) plus `key=value` overrides."""
    name: str
    config: str | dict | None
    overrides: list[str] = field(default_factory=list)
    label: str = ""          # free text for progress lines (e.g. "ERM, CIFAR-10-LT IF 100, seed 1")

    def run_overrides(self, out: str) -> list[str]:
        return list(self.overrides) + [f"run.out={_yaml_value(out)}", f"run.name={_yaml_value(self.name)}"]

    def resolve(self, out: str):
        """The cell's validated Config (raises CmwnetError naming the cell when it is invalid)."""
        from ..config import apply_override, config_from_dict, load_config

        try:
            if isinstance(self.config, dict):
                d = self._dict_config()
                for o in self.run_overrides(out):
                    apply_override(d, o)
                return config_from_dict(d)
            return load_config(self.config, self.run_overrides(out))
        except CmwnetError as e:
            raise CmwnetError(f"cell {self.name}: {e}") from None

    def _dict_config(self) -> dict:
        """A dict config as its file will read (a missing name becomes the file's name, as load_config does)."""
        d = copy.deepcopy(self.config)
        d.setdefault("name", self.name.replace("/", "__"))
        return d

    def config_path(self, out: str, write: bool = True) -> str | None:
        """Where the config file the command names lives (a dict config is written under OUT/.configs)."""
        if isinstance(self.config, dict):
            path = os.path.join(out, ".configs", self.name.replace("/", "__") + ".yaml")
            if write:
                from ..checkpoint import atomic_write_text

                atomic_write_text(yaml.safe_dump(self._dict_config(), sort_keys=False), path)
            return path
        return self.config

    def command(self, out: str, python: str = sys.executable, write: bool = True) -> list[str]:
        """The argv that runs the cell (`write=False`: do not write a dict config's file, e.g. dry runs)."""
        argv = [python, "-m", "cmwnet.train"]
        path = self.config_path(out, write)
        if path is not None:
            argv += ["--config", path]
        for o in self.run_overrides(out) + ["run.progress=false"]:
            argv += ["--set", o]
        return argv


def log_path(out: str, name: str) -> str:
    return os.path.join(out, "logs", name.replace("/", "__") + ".log")


def cell_state(cell: Cell, out: str, cfg=None) -> str:
    """"done" (finished with this config), "conflict" (the folder holds another config), "partial"
    (started, not finished) or "new"."""
    from ..config import config_differences

    folder = run_dir(out, cell.name)
    cfg_path = os.path.join(folder, CONFIG)
    if os.path.exists(cfg_path):
        cfg = cfg or cell.resolve(out)
        try:
            with open(cfg_path) as f:
                old = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            return "conflict"
        if config_differences(old, cfg.to_dict()):
            return "conflict"
        # an unreadable result.json is not "done": rerunning lets the engine say what to do with it
        return "done" if read_result(out, cell.name) is not None else "partial"
    return "partial" if os.path.isdir(folder) and os.listdir(folder) else "new"


def _first_difference(cell: Cell, out: str) -> str:
    from ..config import config_differences

    try:
        with open(os.path.join(run_dir(out, cell.name), CONFIG)) as f:
            old = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return "its config.yaml is unreadable"
    diffs = config_differences(old, cell.resolve(out).to_dict())
    return diffs[0] + (f" and {len(diffs) - 1} more" if len(diffs) > 1 else "") if diffs else "?"


# -- slots -------------------------------------------------------------------------------------------
@dataclass
class Slot:
    index: int
    gpu: str | None = None      # CUDA_VISIBLE_DEVICES value, None = leave as it is (CPU slot)
    threads: int | None = None  # intra-op threads (OMP_NUM_THREADS)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[WATCH_PARENT] = "1"   # a cell stops (checkpointing) if the runner dies, even by SIGKILL
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        if self.threads:
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[k] = str(self.threads)
        return env

    def __str__(self) -> str:
        return f"gpu {self.gpu}" if self.gpu is not None else f"cpu slot {self.index}"


def visible_gpus() -> list[str]:
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


def add_slot_options(parser, per_gpu: int | None = 1, jobs_default: str = "1; with --smoke: the number of cores") -> None:
    """The command-line options every table script shares for where its runs go: --gpus, --per-gpu,
    --jobs (CPU), --threads (for `make_slots`)."""
    parser.add_argument("--gpus", default=None, help="GPUs to use: 'all' (default when CUDA is there), or e.g. '0,1'")
    parser.add_argument("--per-gpu", type=int, default=per_gpu, help=f"runs packed on each GPU at once (default "
                        f"{per_gpu or '1; fig9: 4'}; CIFAR ResNets leave an H100 mostly idle, try 3-4)")
    parser.add_argument("--jobs", type=int, default=None, help=f"parallel runs on the CPU when no GPU is used "
                        f"(default {jobs_default})")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per run (default: cores / jobs; "
                        "--smoke: 1)")


def make_slots(gpus: str | Sequence[str] | None = None, per_gpu: int = 1, jobs: int | None = None,
               threads: int | None = None) -> list[Slot]:
    """GPU slots (`gpus` = "0,1", "all", or a list; `per_gpu` runs on each) or, without GPUs, `jobs`
    CPU slots of `threads` threads each (default: the cores shared out)."""
    if per_gpu < 1:
        raise CmwnetError(f"--per-gpu must be >= 1, got {per_gpu}")
    if gpus in ("all", "auto"):
        gpus = visible_gpus()
    elif isinstance(gpus, str):
        gpus = [g.strip() for g in gpus.split(",") if g.strip()]
    if gpus:
        slots = [Slot(i, g, threads) for i, g in enumerate(g for g in gpus for _ in range(per_gpu))]
        return slots
    jobs = jobs or 1
    if jobs < 1:
        raise CmwnetError(f"--jobs must be >= 1, got {jobs}")
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    return [Slot(i, None, threads) for i in range(jobs)]


def slots_from_options(a, device: str | None = None, smoke: bool = False, per_gpu: int = 1,
                       all_cores: bool = False) -> list[Slot]:
    """The slots that `add_slot_options`' flags ask for: every visible GPU unless the device is the CPU
    or --gpus says otherwise; else --jobs CPU slots (default 1; all cores for smoke runs)."""
    use_gpu = device in (None, "auto") or str(device).startswith("cuda")
    gpus = (a.gpus or "all") if use_gpu and (a.gpus or visible_gpus()) else None
    jobs = a.jobs or ((os.cpu_count() or 1) if smoke or all_cores else 1)
    # tiny smoke models gain nothing from intra-op threads, and spinning threads hurt on a busy machine
    return make_slots(gpus, a.per_gpu or per_gpu, jobs, a.threads or (1 if smoke else None))


# -- launching ---------------------------------------------------------------------------------------
def wait_while_trained_elsewhere(folder: str, stop: threading.Event, poll: float = 1.0) -> bool:
    """Block while another process holds the run folder's lock (the engine's RunLock); True if it did.
    Two table runs into one --out then share the work: each trains the cells it reaches first and
    waits for the others, and both end with every cell finished, none reported failed."""
    try:
        import fcntl
    except ImportError:   # no flock: the engine's own refusal is all there is
        return False
    from ..run_folder.layout import LOCK

    path = os.path.join(folder, LOCK)
    waited = False
    while not stop.is_set() and os.path.exists(path):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return waited
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return waited   # free (our shared lock goes with the close below)
        except OSError:
            waited = True
        finally:
            os.close(fd)
        stop.wait(poll)
    return waited


@dataclass
class CellStatus:
    name: str
    status: str                  # skipped | ran | failed | interrupted | conflict | not started
    seconds: float = 0.0
    message: str = ""


@dataclass
class RunReport:
    statuses: dict[str, CellStatus]
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.statuses.values())

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.status in ("skipped", "ran") for s in self.statuses.values())

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("skipped", "ran", "failed", "interrupted", "conflict", "not started")
                 if self.count(s)]
        return ", ".join(parts) or "no cells"


def _tail(path: str, lines: int = 8) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


class _SubprocessLauncher:
    """One `python -m cmwnet.train` per cell."""

    def __init__(self, slot: Slot, out: str):
        self.slot, self.out = slot, out
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def run(self, cell: Cell) -> tuple[int, str]:
        argv = cell.command(self.out)
        log = log_path(self.out, cell.name)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "a") as f:
            f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {self.slot}: {shlex.join(argv)}\n")
            f.flush()
            with self.lock:
                self.proc = subprocess.Popen(argv, env=self.slot.env(), stdout=f, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            rc = self.proc.wait()
        with self.lock:
            self.proc = None
        return rc, "" if rc == 0 else _tail(log)

    def terminate(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        pass


class _WorkerLauncher:
    """A long-lived `python -m cmwnet.runner --worker` per slot, fed one cell at a time."""

    def __init__(self, slot: Slot, out: str):
        self.slot, self.out = slot, out
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        log = os.path.join(self.out, "logs", f"worker-{self.slot.index}.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        err = open(log, "a")
        argv = [sys.executable, "-m", "cmwnet.paper.runner", "--worker"]
        if self.slot.threads:
            argv += ["--threads", str(self.slot.threads)]
        proc = subprocess.Popen(argv, env=self.slot.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, bufsize=1, start_new_session=True)
        err.close()
        return proc

    def run(self, cell: Cell) -> tuple[int, str]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
            proc = self.proc
        job = {"name": cell.name, "config": cell.config_path(self.out), "overrides": cell.run_overrides(self.out),
               "log": log_path(self.out, cell.name)}
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:  # the worker died (crash, kill): report it, start a fresh one for the next cell
            rc = proc.wait()
            with self.lock:
                self.proc = None
            return (rc or 1), _tail(job["log"]) or "the worker process died"
        reply = json.loads(line)
        if reply.get("exit"):  # the worker stopped (interrupted) after answering
            proc.wait()
            with self.lock:
                self.proc = None
        return int(reply["rc"]), reply.get("error", "")

    def terminate(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


class _InProcessLauncher:
    """Every cell inside this process, one after the other, in the calling thread (so the engine's own
    SIGINT/SIGTERM handling checkpoints a cell): smoke cells take a second, starting a process longer."""

    def __init__(self, slot: Slot, out: str):
        self.slot, self.out = slot, out

    def run(self, cell: Cell) -> tuple[int, str]:
        import torch

        from ..config import load_config
        from ..engine import train

        log = log_path(self.out, cell.name)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        threads = torch.get_num_threads()
        if self.slot.threads:   # tiny cells: one thread avoids OpenMP spin-waits; restored afterwards
            torch.set_num_threads(self.slot.threads)
        rc, err = 0, ""
        try:
            with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                print(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} in-process: {cell.name}", flush=True)
                try:
                    train(load_config(cell.config_path(self.out), cell.run_overrides(self.out) + ["run.progress=false"]))
                except CmwnetError as e:
                    print(f"error: {e}", flush=True)
                    rc, err = 2, str(e)
                except SystemExit as e:   # the engine stopped on SIGTERM/SIGINT after saving a checkpoint
                    rc, err = (e.code if isinstance(e.code, int) else 1), "interrupted"
                except KeyboardInterrupt:
                    rc, err = 130, "interrupted"
                except Exception as e:  # noqa: BLE001 - one cell's crash fails that cell only
                    import traceback

                    traceback.print_exc()
                    rc, err = 1, f"{type(e).__name__}: {e}"
        finally:
            torch.set_num_threads(threads)
        return rc, err

    def terminate(self) -> None:
        pass

    def close(self) -> None:
        pass


LAUNCHERS = {"subprocess": _SubprocessLauncher, "worker": _WorkerLauncher, "inprocess": _InProcessLauncher}
INTERRUPTED_CODES = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT, 130}


def run_cells(cells: Sequence[Cell], out: str, slots: Sequence[Slot], mode: str = "subprocess",
              echo: Callable[[str], None] = print, handle_signals: bool = True) -> RunReport:
    """Run every unfinished cell (see the module docstring); returns each cell's status."""
    if mode not in LAUNCHERS:
        from ..errors import unknown_name
        raise unknown_name("launch mode", mode, LAUNCHERS)
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise CmwnetError(f"cell names must be unique, repeated: {', '.join(dup[:3])}")
    os.makedirs(out, exist_ok=True)
    statuses: dict[str, CellStatus] = {}
    todo: list[Cell] = []
    for cell in cells:  # resolve everything first: a bad config fails before any run starts
        state = cell_state(cell, out, cell.resolve(out))
        if state == "done":
            statuses[cell.name] = CellStatus(cell.name, "skipped")
        elif state == "conflict":
            statuses[cell.name] = CellStatus(cell.name, "conflict", message=(
                f"{run_dir(out, cell.name)} holds a run with another config ({_first_difference(cell, out)}): "
                "use another --out, or move that folder away"))
        else:
            statuses[cell.name] = CellStatus(cell.name, "not started")
            todo.append(cell)
    n_skip = len(cells) - len(todo)
    echo(f"{len(cells)} cells: {n_skip} already finished or blocked, {len(todo)} to run on {len(slots)} "
         f"slot(s) ({mode} mode); logs in {os.path.join(out, 'logs')}")
    for s in statuses.values():
        if s.status == "conflict":
            echo(f"  conflict: {s.message}")
    if not todo:
        return RunReport(statuses)

    pending: queue.Queue = queue.Queue()
    for cell in todo:
        pending.put(cell)
    stop = threading.Event()
    launchers = [LAUNCHERS[mode](slot, out) for slot in slots]
    done_count = [0]
    trained: list[float] = []   # seconds of the cells that trained here: the ETA's clock
    print_lock = threading.Lock()

    def work(launcher) -> None:
        while not stop.is_set():
            try:
                cell = pending.get_nowait()
            except queue.Empty:
                return
            t0 = time.time()
            elsewhere = launched = False
            while True:
                # another table run into the same --out trains this cell: wait for it instead of failing
                elsewhere |= wait_while_trained_elsewhere(run_dir(out, cell.name), stop)
                if os.path.exists(os.path.join(run_dir(out, cell.name), RESULT)) or stop.is_set():
                    rc, err = 0, ""
                    break
                launched = time.time()
                try:
                    rc, err = launcher.run(cell)
                except Exception as e:  # noqa: BLE001 - a launcher problem fails the cell, not the runner
                    rc, err = 1, f"{type(e).__name__}: {e}"
                if not (rc == 2 and "in use by another process" in (err or "")):
                    break
                elsewhere = True   # the other run took the lock between our look and our start
            dt = time.time() - t0
            result_path = os.path.join(run_dir(out, cell.name), RESULT)
            finished = os.path.exists(result_path)
            if finished and launched and os.path.getmtime(result_path) < launched:
                elsewhere = True   # our process found it finished: another run wrote it before we started
            if finished and (elsewhere or not launched):
                st = CellStatus(cell.name, "skipped", dt, "trained by another process; " + _result_line(out, cell.name))
            elif finished:  # result.json is written last: a signal at exit does not undo a finished run
                st = CellStatus(cell.name, "ran", dt, _result_line(out, cell.name))
            elif stop.is_set() or rc in INTERRUPTED_CODES:
                st = CellStatus(cell.name, "interrupted", dt, "checkpoint kept: rerun to resume")
                if mode == "inprocess":   # Ctrl-C reached this process: start nothing more
                    stop.set()
            else:
                st = CellStatus(cell.name, "failed", dt, err or f"exit status {rc}")
            with print_lock:
                statuses[cell.name] = st
                done_count[0] += 1
                if st.status == "ran":
                    trained.append(dt)
                line = f"[{done_count[0]:>{len(str(len(todo)))}}/{len(todo)}] {st.status:<11} {cell.name}"
                line += f"  {st.message}  ({dt:.1f} s)" if st.status != "failed" else f"  ({dt:.1f} s), log: " \
                    f"{log_path(out, cell.name)}\n    " + st.message.replace("\n", "\n    ")
                left = len(todo) - done_count[0]
                if left and trained and not stop.is_set():
                    line += f"  ETA {format_eta(cells_eta(trained, left, len(launchers)))}"
                echo(line)

    if mode == "inprocess":   # one slot, this thread: the engine handles signals itself
        work(launchers[0])
        return RunReport(statuses, interrupted=stop.is_set())
    threads = [threading.Thread(target=work, args=(la,), daemon=True) for la in launchers]
    old_handlers = {}

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        if not stop.is_set():
            echo(f"\n{signal.Signals(signum).name}: stopping; running cells save a checkpoint (rerun to resume)")
        stop.set()
        for la in launchers:
            la.terminate()

    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, on_signal)
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.2)
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        for la in launchers:
            la.close()
    return RunReport(statuses, interrupted=stop.is_set())


def _result_line(out: str, name: str) -> str:
    r = read_result(out, name)
    if not r:
        return ""
    return f"test top-1 accuracy: best {r['best_top1']:.2f}%  last {r['last_top1']:.2f}%"


def cells_eta(seconds: Sequence[float], left: int, slots: int) -> float:
    """Seconds until the table is done: the finished cells' mean time x the cells left, shared by the slots
    (cells run side by side, so `left` cells take about ceil(left / slots) cell times)."""
    return sum(seconds) / len(seconds) * math.ceil(left / max(slots, 1))


# -- shortened schedules -----------------------------------------------------------------------------
# keys (besides optim.epochs) whose values count epochs; method.args / loss_args keys by name
EPOCH_KEYS = (("optim", "schedule", "milestones"), ("optim", "schedule", "start"), ("optim", "schedule", "t0"),
              ("optim", "schedule", "warmup_epochs"), ("method", "start_epoch"), ("method", "sl", "warmup"),
              ("method", "sl", "pseudo_reset_epoch"), ("ema", "freeze_epoch"))
EPOCH_ARG_NAMES = ("drw_epoch", "estimate_epoch", "start_epoch", "warmup_epochs", "switch_epoch")


def _scale(value: Any, old: int, new: int, kind: str) -> Any:
    """kind "start": an epoch a phase starts at (rounded down, kept inside the run when it was inside);
    "milestone": an lr decay (rounded to nearest; may fall at the end, i.e. not within a very short run);
    "length": a duration in epochs (at least 1)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_scale(v, old, new, kind) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if kind == "length":
        return max(1, int(value * new / old))
    if value >= old:  # "never within the run" stays never
        return max(int(value), new)
    if kind == "milestone":
        return int(round(value * new / old))
    return min(int(value * new / old), new - 1)


def shorten(cfg: dict[str, Any], epochs: int) -> list[str]:
    """Overrides that turn the schedule of config dict `cfg` into `epochs` epochs, every epoch-valued
    key scaled by epochs / optim.epochs (see `_scale` for the rounding)."""
    if epochs < 1:
        raise CmwnetError(f"--epochs must be >= 1, got {epochs}")
    old = int(cfg["optim"]["epochs"])
    out = [f"optim.epochs={epochs}"]
    if old == epochs:
        return out
    for path in EPOCH_KEYS:
        node: Any = cfg
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if node is not None:
            kind = {"t0": "length", "milestones": "milestone"}.get(path[-1], "start")
            new = _scale(node, old, epochs, kind)
            if new != node:
                out.append(f"{'.'.join(path)}={_yaml_value(new)}")
    for group in ("args", "loss_args"):
        for key, value in (cfg.get("method", {}).get(group) or {}).items():
            if key in EPOCH_ARG_NAMES:
                new = _scale(value, old, epochs, "start")
                if new != value:
                    out.append(f"method.{group}.{key}={_yaml_value(new)}")
    return out


# -- the worker process ------------------------------------------------------------------------------
def worker_main(threads: int | None) -> int:
    """Read cells (JSON lines) on stdin, train each, answer one JSON line per cell on stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything written to fd 1 (C code, stray prints) goes to the worker log, not the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    import torch

    from ..config import load_config
    from ..engine import train

    watch_parent()
    if threads:
        torch.set_num_threads(threads)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        os.makedirs(os.path.dirname(job["log"]), exist_ok=True)
        reply: dict[str, Any] = {"name": job["name"], "rc": 0}
        with open(job["log"], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            print(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} worker {os.getpid()}: {job['name']}", flush=True)
            try:
                cfg = load_config(job["config"], job["overrides"] + ["run.progress=false"])
                train(cfg)
            except CmwnetError as e:
                print(f"error: {e}", flush=True)
                reply.update(rc=2, error=str(e))
            except SystemExit as e:  # the engine stopped on SIGTERM/SIGINT after saving a checkpoint
                code = e.code if isinstance(e.code, int) else 1
                reply.update(rc=code, error="interrupted", exit=True)
            except Exception as e:  # noqa: BLE001 - report, keep serving
                import traceback

                traceback.print_exc()
                reply.update(rc=1, error=f"{type(e).__name__}: {e}")
        proto.write(json.dumps(reply) + "\n")
        proto.flush()
        if reply.get("exit"):
            return int(reply["rc"])
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m cmwnet.paper.runner",
                                description="internal: a worker process of the table runner (see cmwnet.paper)")
    p.add_argument("--worker", action="store_true", help="serve cells read as JSON lines on stdin")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if not a.worker:
        p.error("nothing to do: tables are run with `python -m cmwnet.paper run N` (or section4/.../tableN.sh)")
    return worker_main(a.threads)


if __name__ == "__main__":
    sys.exit(run_cli(main))
