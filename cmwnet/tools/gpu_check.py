"""`python -m cmwnet.tools.gpu_check OUT`: the prepared check for the first session that is lent a GPU.

Why: device time is scarce (15 minutes a session, 1-3 of them to start a machine), so what to measure
on a GPU is decided here, ahead, and the command is exercised on the CPU in CI (`--dry-run`) so it
cannot rot. One command, at most 8 minutes on one H100/H200, writes `OUT/gpu_check.json` and
`OUT/gpu_check.log`:

  environment  torch/CUDA/cuDNN versions, GPU name and memory, driver, `higher`, cmwnet's git commit;
  pytest       the GPU tests of tests/test_fast.py (pytest in a subprocess, `-k "gpu or cuda"`, -rfEs):
               passed/failed/skipped counts, the reasons of skips and failures, the output's tail;
  bench        `python -m cmwnet.tools.bench --models resnet32` (eager, graphed fp32/TF32, bf16, bf16 +
               channels-last; peak memory per row; every meta-gradient mode, `method.meta_grad`, as time
               and peak-memory ratios to ERM): its JSON, and the key ratios;
  sl_run       CMW-Net-SL (configs/table2.yaml) on the offline CIFAR-10 copy, 40% asymmetric noise,
               PreAct ResNet-18: 4 epochs of at most 200 steps, CE warm-up 1 epoch, the lr milestone and
               the asymmetric cells' EMA freeze scaled from 150/300 to 2/4: seconds, test/EMA accuracy
               and weight AUC per epoch;
  fast_onoff   the same config, 2 epochs of at most 150 steps (SL from epoch 0 at one lr, so epoch 1
               replays the graphs epoch 0 captured), `run.fast=on` then `run.fast=off`: seconds per
               epoch, the speed-up, accuracy, and each graphed step's replay check (its first replay
               against an eager step from the same state: `fast_path_checks`).

Every part is timed, runs inside try/except (a failure is recorded -- error type, one-line message,
traceback into the log -- and the next part runs), and has a wall-clock limit; the whole check has a
deadline (`--budget`, default 440 s). The JSON is rewritten atomically whenever a part starts or ends,
so a killed run leaves every finished part and marks the interrupted one `running`. Training runs and
the bench's own files go under `--work` (default OUT/work): on the device machine put them outside
$OUT (`--work /tmp/gpu_check`), since only a few files come back from there.

Data: `--data-root` (default `.devdata/cifar10-jpeg.npz`, or a folder holding cifar-10-batches-py/); the
archive is decoded once into WORK/data. `--dry-run`: the same four parts at tiny sizes on the CPU in
well under a minute (pytest's GPU tests skip, `bench --quick`, ResNet-8 on generated CIFAR-format
data from `cmwnet.paper.synthetic`, 2 steps an epoch) -- what tests/test_gpu_check.py runs.

The sizes and the reasoning behind their time estimates are in `GPU` below; `plan` in the JSON repeats
them beside what was measured.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..errors import CmwnetError, run_cli
from ..resources import CONFIG_DIR
from ..run_folder.layout import METRICS, RESULT

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SL_CONFIG = os.path.join(CONFIG_DIR, "table2.yaml")
TEST_FILE = os.path.join("tests", "test_fast.py")
DEFAULT_DATA = os.path.join(".devdata", "cifar10-jpeg.npz")
PARTS = ("pytest", "bench", "sl_run", "fast_onoff")
HOW_TO_GET_DATA = ("copy cifar10-jpeg.npz (the offline CIFAR-10 copy) into .devdata/ and carry .devdata on the device "
                   "(README, Speed), or pass --data-root (the npz, or a folder holding cifar-10-batches-py/)")


@dataclass(frozen=True)
class Sizes:
    """What each part runs; `limits` are wall-clock seconds per part, `expect` our estimate."""
    name: str
    pytest_select: str
    bench_args: tuple[str, ...]
    sl_epochs: int
    sl_warmup: int
    sl_max_steps: int
    onoff_epochs: int
    onoff_max_steps: int
    extra_sets: tuple[str, ...]               # more `--set` overrides of the training runs
    train_images: int                         # training set of the runs, and their batch size:
    batch: int                                # for the steps a full epoch has
    limits: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    budget_s: float = 440.0


# Estimates for one H100/H200 (none of this is measured yet). A graphed CMW-Net iteration of ResNet-32
# at batch 100 is ~50 ms by design (target <= 30), an ERM step a few ms. PreAct ResNet-18 at batch 128 is
# ~0.43 TFLOP per fwd+bwd step: ~15-20 ms in fp32 (the fast path keeps cuDNN TF32 off), a meta step
# ~4x that every 10 steps, so ~25 ms a CMW-Net-SL step graphed; the authors' eager script takes 41 s an
# epoch (391 steps, ~105 ms a step), our worst case. Per epoch add ~3 s: lowest-loss meta-set selection
# (a forward pass over 50,000 images), two evaluations of 10,000, a ~140 MB checkpoint.
#   pytest     2 tests, 12 ResNet-8 steps each + capture, plus start-up and CUDA init: ~20 s.
#   bench      19 rows x (10 + 50) iterations (the authors'-way row 10 + 25 at ~200 ms); eager meta rows
#              ~100 ms, fast rows ~5-50 ms plus capture and cuDNN autotuning; the interleaved race of ERM and
#              the four meta-gradient modes (5 x 60 eager iterations) and their peak memory: ~90 s.
#   sl_run     decode 60,000 JPEGs once (~10 s on 16 cores), 4 x (200 x 25 ms + 3 s) + ~10 s start and
#              capture: ~55 s (worst, eager at the authors' speed: 4 x 24 s + 20 s = ~115 s).
#   fast_onoff 2 runs x (8 s start + 2 x (150 steps + 3 s)); on ~25 ms, off ~40-105 ms a step: ~50 s
#              (worst ~80 s).
# Expected ~3.5 minutes in all. The limits (sum 460 s), the 440 s deadline and a child's 15 s to stop keep a
# slow machine under 8 minutes.
GPU = Sizes(
    name="gpu",
    pytest_select="gpu or cuda",
    bench_args=("--models", "resnet32", "--iters", "50", "--warmup", "10", "--sl", "off", "--pack"),
    sl_epochs=4, sl_warmup=1, sl_max_steps=200,
    onoff_epochs=2, onoff_max_steps=150,
    extra_sets=(), train_images=50000, batch=128,
    limits={"pytest": 90, "bench": 120, "sl_run": 150, "fast_onoff": 100},
    expect={"pytest": 20, "bench": 80, "sl_run": 55, "fast_onoff": 50},
    budget_s=440.0,
)

# The CPU form: every code path of the GPU form at sizes that take seconds.
DRY = Sizes(
    name="dry-run",
    pytest_select="gpu or cuda",
    bench_args=("--quick", "--sl", "off", "--pack"),
    sl_epochs=2, sl_warmup=1, sl_max_steps=2,
    onoff_epochs=2, onoff_max_steps=2,
    extra_sets=("model.name=resnet8", "data.batch_size=16", "data.test_batch_size=50", "data.meta.batch_size=16",
                "data.meta.per_class=5", "run.device=cpu"),
    train_images=200, batch=16,
    limits={"pytest": 60, "bench": 90, "sl_run": 60, "fast_onoff": 90},
    expect={"pytest": 3, "bench": 15, "sl_run": 9, "fast_onoff": 17},
    budget_s=240.0,
)
DRY_DATA = {"train_per_class": 20, "test_per_class": 5}   # generated CIFAR-10 tree: 200 train / 50 test images


class PartTimeout(Exception):
    """A part ran past its wall-clock limit (what it finished is kept)."""


class Stopped(BaseException):
    """SIGTERM/SIGINT: stop the running part, record it, exit."""


# -- output ---------------------------------------------------------------------------------------------------
class Log:
    """Progress lines to stdout and to OUT/gpu_check.log (which also gets children's output and tracebacks)."""

    def __init__(self, path: str):
        self.file = open(path, "a", buffering=1, encoding="utf-8")
        self.lock = threading.Lock()

    def say(self, message: str, echo: bool = True) -> None:
        with self.lock:
            for line in message.rstrip("\n").splitlines() or [""]:
                self.file.write(line + "\n")
                if echo:
                    print(line, flush=True)

    def close(self) -> None:
        self.file.close()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_json(path: str, data: dict) -> None:
    """Atomically (a reader or a kill never sees half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


# -- children -------------------------------------------------------------------------------------------------
@dataclass
class Child:
    rc: int | None
    seconds: float
    lines: list[str]
    timed_out: bool

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])


def run_child(cmd: list[str], log: Log, limit_s: float, env: dict | None = None, cwd: str = REPO,
              prefix: str = "  | ") -> Child:
    """Run `cmd`, streaming its output into the log; past `limit_s` its process group gets SIGTERM (a
    training run then saves a checkpoint), then SIGKILL."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    log.say(f"  $ {' '.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", **group)
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            log.say(prefix + line)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=max(1.0, limit_s))
    except subprocess.TimeoutExpired:
        timed_out = True
        log.say(f"  ! past its limit of {limit_s:.0f} s: stopping it")
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        reader.join(timeout=10)
    return Child(proc.returncode, time.perf_counter() - t0, lines, timed_out)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):   # a training run checkpoints on SIGTERM
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- the check --------------------------------------------------------------------------------------------------
class Check:
    """The parts, their records and the JSON; `run` executes them in order, each guarded."""

    def __init__(self, out: str, work: str, sizes: Sizes, data_root: str, parts: tuple[str, ...],
                 budget_s: float, argv: list[str]):
        self.out, self.work, self.sizes, self.parts = out, work, sizes, parts
        self.data_root = data_root
        self.json_path = os.path.join(out, "gpu_check.json")
        self.log = Log(os.path.join(out, "gpu_check.log"))
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + budget_s
        self._data: str | None = None
        self.report: dict[str, Any] = {
            "version": 1, "mode": sizes.name, "started": _now(), "finished": None, "total_s": None,
            "budget_s": budget_s, "argv": argv, "out": os.path.abspath(out), "work": os.path.abspath(work),
            "data_root": data_root, "environment": None,
            "plan": {"sizes": asdict(sizes), "parts": list(parts)},
            "parts": {p: {"status": "not_run" if p not in parts else "pending", "seconds": None, "error": None,
                          "result": {}} for p in PARTS},
            "summary": {},
        }

    # -- bookkeeping
    def save(self) -> None:
        self.report["total_s"] = round(time.perf_counter() - self.t0, 2)
        write_json(self.json_path, self.report)

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def limit(self, part: str) -> float:
        return max(1.0, min(float(self.sizes.limits.get(part, 60)), self.remaining()))

    def run(self, functions: dict[str, Callable[["Check", dict], None]] | None = None) -> dict:
        functions = functions or PART_FUNCTIONS
        self.log.say(f"[gpu_check] {self.sizes.name} mode, parts {', '.join(self.parts)}; budget "
                     f"{self.report['budget_s']:.0f} s; writing {self.json_path}")
        t = time.perf_counter()
        try:
            self.report["environment"] = environment()
        except Exception as e:  # noqa: BLE001 - the environment is a record, never a reason to stop
            self.report["environment"] = {"error": f"{type(e).__name__}: {_one_line(e)}"}
            self.log.say(traceback.format_exc(), echo=False)
        self.report["environment"]["seconds"] = round(time.perf_counter() - t, 2)
        env = self.report["environment"]
        self.log.say(f"[gpu_check] environment: {env.get('gpu', '?')}, torch {env.get('torch')}, CUDA "
                     f"{env.get('cuda')}, commit {str(env.get('commit'))[:12]}")
        self.save()
        try:
            for i, part in enumerate(self.parts, 1):
                self.run_part(i, part, functions[part])
        finally:
            self.report["finished"] = _now()
            self.report["summary"] = summary(self.report)
            self.save()
            s = self.report["summary"]
            self.log.say(f"[gpu_check] done in {self.report['total_s']:.1f} s: "
                         + ", ".join(f"{p} {st}" for p, st in s["status"].items()))
            self.log.close()
        return self.report

    def run_part(self, i: int, part: str, fn: Callable[["Check", dict], None]) -> None:
        rec = self.report["parts"][part]
        head = f"[gpu_check] part {i}/{len(self.parts)} {part}"
        if self.remaining() < 5:
            rec.update(status="failed", seconds=0.0,
                       error={"type": "BudgetExhausted", "message": "no time left before the check's deadline"})
            self.log.say(f"{head}: not started, the budget is spent")
            self.save()
            return
        rec.update(status="running", started=_now(), limit_s=round(self.limit(part)))
        self.save()
        self.log.say(f"{head}: started (limit {rec['limit_s']} s, about {self.sizes.expect.get(part, '?')} s expected)")
        t = time.perf_counter()
        try:
            fn(self, rec["result"])
            if rec["status"] == "running":
                rec["status"] = "ok"
        except Stopped:
            rec.update(status="failed", error={"type": "Stopped", "message": "the check was interrupted"})
            raise
        except Exception as e:  # noqa: BLE001 - a failing part is recorded and the next one runs
            rec.update(status="failed", error={"type": type(e).__name__, "message": _one_line(e)})
            self.log.say(f"{head}: FAILED: {type(e).__name__}: {_one_line(e)}")
            self.log.say(traceback.format_exc(), echo=False)
        finally:
            rec["seconds"] = round(time.perf_counter() - t, 2)
            self.save()
        self.log.say(f"{head}: {rec['status']} in {rec['seconds']:.1f} s")

    # -- helpers for parts
    def child(self, cmd: list[str], part: str, started: float, env: dict | None = None) -> Child:
        """A subprocess with what is left of the part's limit."""
        left = self.limit(part) - (time.perf_counter() - started)
        if left < 2:
            raise PartTimeout(f"{part} used its limit of {self.limit(part):.0f} s")
        return run_child(cmd, self.log, left, env=env)

    def child_env(self) -> dict:
        env = {"CMWNET_WATCH_PARENT": "1"}   # a training run stops itself if this check goes away
        if self.sizes is DRY:
            env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")   # steady on a shared CPU
        return env

    def data(self, rec: dict) -> str:
        """data.root of the training parts: decoded once under WORK/data (real), or generated (dry run)."""
        if self._data is None:
            t = time.perf_counter()
            if self.sizes is DRY:
                from ..paper.synthetic import ensure_synthetic_cifar

                self._data = ensure_synthetic_cifar(os.path.join(self.work, "data"), "cifar10", **DRY_DATA)
            else:
                self._data = real_data_root(self.data_root, self.work)
            rec["data_prep_s"] = round(time.perf_counter() - t, 2)
        rec["data"] = self._data
        return self._data


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else repr(e))[:400]


def real_data_root(data_root: str, work: str) -> str:
    """The offline CIFAR-10 copy as canonical batches under WORK/data (decoded once), or the folder given."""
    path = os.path.abspath(os.path.expanduser(data_root))
    if path.endswith(".npz") and not os.path.isfile(path):
        raise CmwnetError(f"CIFAR-10 archive not found: {data_root}; {HOW_TO_GET_DATA}")
    if not path.endswith(".npz") and not os.path.isdir(os.path.join(path, "cifar-10-batches-py")) \
            and os.path.basename(path) != "cifar-10-batches-py":
        raise CmwnetError(f"no CIFAR-10 at {data_root} (neither an .npz nor a folder holding cifar-10-batches-py/); "
                          f"{HOW_TO_GET_DATA}")
    if os.path.basename(path) == "cifar-10-batches-py":
        return os.path.dirname(path)
    from ..paper.tables import prepare_real_data

    return prepare_real_data(path, work, {"cifar10"})   # prints one line when it decodes


# -- environment ------------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Versions, the GPU, and the code's commit: what a reader needs to compare two checks."""
    import torch

    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpu_count": os.cpu_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "cuda_available": torch.cuda.is_available(), "gpu": "none (CPU)"}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_count=torch.cuda.device_count(), capability=f"{p.major}.{p.minor}",
                    gpu_memory_gib=round(p.total_memory / 2 ** 30, 1), multiprocessors=p.multi_processor_count)
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
            info["nvidia_smi"] = r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            info["nvidia_smi"] = None
    spec = importlib.util.find_spec("higher")
    if spec is None:
        info["higher"] = None
    else:
        from importlib import metadata
        try:
            info["higher"] = metadata.version("higher")
        except metadata.PackageNotFoundError:
            info["higher"] = "present"
    commit = _git("rev-parse", "HEAD")
    info["commit"] = commit
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    info["dirty"] = None if status is None else bool(status)
    return info


def _need_higher() -> None:
    if importlib.util.find_spec("higher") is None:
        raise CmwnetError("the Python package 'higher' (method.backend: higher, the bench's higher rows) is missing: "
                          "download its wheel into .whl/ (python3 -m pip download --no-deps higher==0.2.1 -d .whl), "
                          "carry .whl and run tools/gpu_check.sh, which installs it")


# -- part 1: the GPU tests of tests/test_fast.py ------------------------------------------------------------------
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)\b")


def parse_pytest(lines: list[str]) -> dict[str, Any]:
    """Counts from pytest's last summary line, and its short test summary (skip and failure reasons)."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "deselected": 0, "errors": 0}
    for line in reversed(lines):
        found = SUMMARY.findall(line)
        if found and re.search(r" in [\d.]+s", line):
            for n, what in found:
                key = "errors" if what.startswith("error") else what
                counts[key] = counts.get(key, 0) + int(n)
            break
    reasons = [ln for ln in lines if ln.startswith(("SKIPPED", "FAILED", "ERROR"))]
    return {"counts": counts, "reasons": reasons}


def part_pytest(check: Check, rec: dict) -> None:
    import torch

    t = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", TEST_FILE, "-rfEs", "-k", check.sizes.pytest_select, "-p", "no:cacheprovider"]
    rec["select"] = check.sizes.pytest_select
    child = check.child(cmd, "pytest", t, env=check.child_env())
    parsed = parse_pytest(child.lines)
    rec.update(parsed, rc=child.rc, tail=child.tail(25))
    c = parsed["counts"]
    if child.timed_out:
        raise PartTimeout("pytest ran past its limit")
    if child.rc not in (0, 5) or c["failed"] or c["errors"]:
        raise RuntimeError(f"pytest exit status {child.rc}: {c['passed']} passed, {c['failed']} failed, "
                           f"{c['errors']} errors, {c['skipped']} skipped")
    if c["passed"] == 0:
        if torch.cuda.is_available():
            raise RuntimeError(f"no GPU test ran ({c['skipped']} skipped): see the reasons")
        check.report["parts"]["pytest"]["status"] = "skipped"
        rec["note"] = "no CUDA device: the GPU tests skip (dry run)"


# -- part 2: the bench ------------------------------------------------------------------------------------------
def bench_ratios(bench: dict) -> dict[str, Any]:
    """The numbers to read first: graphed vs eager, bf16 vs fp32, ours vs the authors' way, peak memory."""
    rows = bench.get("rows", [])

    def ms(name: str) -> float | None:
        return next((r["ms"] for r in rows if r["name"] == name), None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else round(a / b, 3)

    fast_meta = [r for r in rows if r["kind"] == "meta" and r["impl"] == "fast"]
    best = min(fast_meta, key=lambda r: r["ms"]) if fast_meta else None
    out = {
        "erm_eager_ms": ms("ERM step (eager)"),
        "erm_fast_fp32_ms": ms("ERM step fast fp32"),
        "meta_authors_way_ms": ms("CMW-Net, authors' way"),
        "meta_eager_torch_func_ms": ms("MetaStep torch.func (eager)"),
        "meta_fast_fp32_ms": ms("MetaStep torch.func fast fp32"),
        "meta_fast_bf16_ms": ms("MetaStep torch.func fast bf16"),
        "erm_speedup_graphed_vs_eager": ratio(ms("ERM step (eager)"), ms("ERM step fast fp32")),
        "meta_speedup_graphed_vs_eager": ratio(ms("MetaStep torch.func (eager)"), ms("MetaStep torch.func fast fp32")),
        "meta_speedup_bf16_vs_fp32_graphed": ratio(ms("MetaStep torch.func fast fp32"),
                                                   ms("MetaStep torch.func fast bf16")),
        "meta_speedup_graphed_vs_authors_way": ratio(ms("CMW-Net, authors' way"), ms("MetaStep torch.func fast fp32")),
        "best_meta_variant": None if best is None else best["name"],
        "best_meta_ms": None if best is None else best["ms"],
        "best_meta_speedup_vs_authors_way": None if best is None else best.get("x_ref"),
        "meta_over_erm_graphed": ratio(ms("MetaStep torch.func fast fp32"), ms("ERM step fast fp32")),
        "head_over_erm_graphed": ratio(ms("MetaStep meta_grad=head fast fp32"), ms("ERM step fast fp32")),
        "forward_over_erm_graphed": ratio(ms("MetaStep meta_grad=forward fast fp32"), ms("ERM step fast fp32")),
        "tail_over_erm_graphed": ratio(ms("MetaStep meta_grad=tail fast fp32"), ms("ERM step fast fp32")),
        "meta_grad_modes": {race["model"]: {r["mode"]: {"ms": r["ms"], "x_erm": r["x_erm"], "peak_mib": r["peak_mib"],
                                                        "peak_x_erm": r["peak_x_erm"]} for r in race["rows"]}
                            for race in bench.get("meta_grad_modes") or []},
        "peak_mib": {r["name"]: r["peak_mib"] for r in rows},
        "not_graphed": [f"{r['name']}: {r['note']}" for r in rows if r["impl"] == "fast" and not r["graphed"]],
        "targets": bench.get("targets", {}),
    }
    return out


def part_bench(check: Check, rec: dict) -> None:
    _need_higher()
    t = time.perf_counter()
    path = os.path.join(check.work, "bench.json")
    if os.path.exists(path):
        os.remove(path)   # never report an earlier run's numbers
    cmd = [sys.executable, "-m", "cmwnet.tools.bench", *check.sizes.bench_args, "--json", path]
    rec["args"] = list(check.sizes.bench_args)
    child = check.child(cmd, "bench", t, env=check.child_env())
    rec.update(rc=child.rc, tail=child.tail(40))
    if child.timed_out:
        raise PartTimeout("the bench ran past its limit")
    if child.rc != 0 or not os.path.exists(path):
        raise RuntimeError(f"the bench exited with status {child.rc} and {'no' if not os.path.exists(path) else 'a'} "
                           f"JSON: {next((ln for ln in reversed(child.lines) if ln.strip()), '')[:200]}")
    with open(path) as f:
        bench = json.load(f)
    rec["ratios"] = bench_ratios(bench)
    rec["bench"] = bench
    if bench.get("device", {}).get("type") == "cuda" and rec["ratios"]["not_graphed"]:
        rec["warning"] = "some fast rows ran eagerly on the GPU: " + "; ".join(rec["ratios"]["not_graphed"])


# -- parts 3 and 4: short training runs ----------------------------------------------------------------------------
def _config_epochs() -> tuple[int, list[int]]:
    import yaml

    with open(SL_CONFIG) as f:
        optim = yaml.safe_load(f).get("optim", {})
    return int(optim.get("epochs", 300)), list((optim.get("schedule") or {}).get("milestones") or [150])


def scaled_milestones(epochs: int) -> list[int]:
    """Table 2's lr milestones scaled from its epochs to `epochs` (as the table scripts' --epochs does)."""
    full, ms = _config_epochs()
    return sorted({min(epochs, max(1, round(m * epochs / full))) for m in ms})


def scaled_ema_freeze(epochs: int) -> int:
    """Table 2's asymmetric-noise cells freeze the EMA net at epoch 150 of 300 (cmwnet.paper.tables); scaled."""
    full, _ = _config_epochs()
    return min(epochs, max(1, round(150 * epochs / full)))


def train_command(check: Check, name: str, epochs: int, warmup: int, max_steps: int, fast: str, data: str,
                  milestones: list[int]) -> list[str]:
    sets = ["data.noise.kind=asym", "data.noise.rate=0.4", f"data.root={data}", f"optim.epochs={epochs}",
            f"optim.schedule.milestones={json.dumps(milestones)}", f"method.sl.warmup={warmup}",
            f"ema.freeze_epoch={scaled_ema_freeze(epochs)}",
            f"run.max_steps={max_steps}", f"run.fast={fast}", f"run.name={name}", "run.plot=false",
            "run.progress=false", *check.sizes.extra_sets]
    cmd = [sys.executable, "-m", "cmwnet.train", "--config", SL_CONFIG, "--out", os.path.join(check.work, "runs"),
           "--force"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def read_run(run_dir: str) -> dict[str, Any]:
    """Per epoch from metrics.jsonl (what a killed run finished too), and result.json where the run ended."""
    epochs = []
    path = os.path.join(run_dir, METRICS)
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    h = json.loads(line)
                    epochs.append({k: h.get(k) for k in ("epoch", "lr", "train_loss", "train_acc", "test_top1", "ema_top1",
                                                         "mean_weight", "weight_auc", "mean_weight_clean",
                                                         "mean_weight_noisy", "meta_loss", "epoch_time_s")})
    out: dict[str, Any] = {"epochs": epochs}
    path = os.path.join(run_dir, RESULT)
    if os.path.exists(path):
        with open(path) as f:
            res = json.load(f)
        keep = ("best_top1", "last_top1", "best_epoch", "ema", "wall_time_s")
        out["result"] = {k: res[k] for k in keep if k in res}
        data = res.get("data") or {}
        out["result"]["noise"] = {k: (data.get("noise") or {}).get(k) for k in ("kind", "rate", "realised_rate")}
        # each graphed step's first replay against its eager twin (cmwnet.fast): "replay = eager step ..." or
        # "mismatch: ..." (the step then ran eagerly)
        out["result"]["fast_path_checks"] = (res.get("environment") or {}).get("fast_path_checks") or {}
        out["result"]["train_size"] = data.get("train_size")
    return out


def _train_run(check: Check, part: str, started: float, name: str, epochs: int, warmup: int, max_steps: int,
               fast: str, data: str, milestones: list[int]) -> tuple[dict[str, Any], Child]:
    """One `cmwnet.train` run in a subprocess; its epochs with ms per step and the full-epoch estimate
    (`epoch_time_s` is the engine's: the steps only, without meta-set selection and evaluation)."""
    cmd = train_command(check, name, epochs, warmup, max_steps, fast, data, milestones)
    child = check.child(cmd, part, started, env=check.child_env())
    run = read_run(os.path.join(check.work, "runs", name))
    steps_full = math.ceil(check.sizes.train_images / check.sizes.batch)
    steps = min(max_steps, steps_full)
    for e in run["epochs"]:
        if e.get("epoch_time_s") is not None:
            e["ms_per_step"] = round(1e3 * e["epoch_time_s"] / steps, 2)
            e["full_epoch_train_s_est"] = round(e["epoch_time_s"] * steps_full / steps, 2)
    run.update(wall_s=round(child.seconds, 2), rc=child.rc, steps_per_epoch=steps, steps_full_epoch=steps_full, fast=fast,
               fast_notices=[ln for ln in child.lines if "fast path:" in ln],
               error_line=_error_line(child))
    if child.timed_out:
        run["timed_out"] = True
    return run, child


def _error_line(child: Child) -> str | None:
    """A failed child's `error:` line, else its last line (e.g. a traceback's exception)."""
    if child.rc == 0:
        return None
    lines = [ln.strip() for ln in child.lines if ln.strip()]
    return next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else None)


def part_sl_run(check: Check, rec: dict) -> None:
    _need_higher()
    t = time.perf_counter()
    data = check.data(rec)
    s = check.sizes
    rec["setting"] = {"config": os.path.relpath(SL_CONFIG, REPO), "noise": "asym 0.4", "epochs": s.sl_epochs,
                      "sl_warmup": s.sl_warmup, "max_steps": s.sl_max_steps,
                      "milestones": scaled_milestones(s.sl_epochs), "ema_freeze_epoch": scaled_ema_freeze(s.sl_epochs),
                      "fast": "auto", "extra": list(s.extra_sets)}
    run, child = _train_run(check, "sl_run", t, "sl_asym40", s.sl_epochs, s.sl_warmup, s.sl_max_steps, "auto", data,
                            scaled_milestones(s.sl_epochs))
    rec["run"] = run
    rec["tail"] = child.tail(15)
    if child.timed_out:
        raise PartTimeout(f"the run ran past the part's limit after {len(run['epochs'])} of {s.sl_epochs} epochs")
    if child.rc != 0:
        raise RuntimeError(run["error_line"] or f"the training run exited with status {child.rc}")
    if len(run["epochs"]) != s.sl_epochs:
        raise RuntimeError(f"the run recorded {len(run['epochs'])} of {s.sl_epochs} epochs")


def part_fast_onoff(check: Check, rec: dict) -> None:
    _need_higher()
    t = time.perf_counter()
    data = check.data(rec)
    s = check.sizes
    # SL from epoch 0 and one lr throughout (a graph bakes the lr in): the first epoch captures, the last replays
    constant = [s.onoff_epochs]
    rec["setting"] = {"epochs": s.onoff_epochs, "sl_warmup": 0, "max_steps": s.onoff_max_steps, "milestones": constant,
                      "note": "SL from epoch 0 at one lr: with fast=on the last epoch replays the graphs captured in "
                              "the first; speedup_last_epoch compares that epoch's steps. Graphs run cuDNN convolutions "
                              "with TF32 off (the fast path's default), eager steps with PyTorch's default (TF32 on)"}
    for fast in ("on", "off"):
        run, child = _train_run(check, "fast_onoff", t, f"fast_{fast}", s.onoff_epochs, 0, s.onoff_max_steps, fast, data,
                                constant)
        rec[fast] = run
        if child.timed_out:
            raise PartTimeout(f"the fast={fast} run ran past the part's limit")
        if child.rc != 0:
            raise RuntimeError(f"fast={fast}: " + (run["error_line"] or f"exit status {child.rc}"))
        check.save()
    on, off = rec["on"]["epochs"], rec["off"]["epochs"]
    last = lambda runs, key: runs[-1].get(key) if runs else None  # noqa: E731
    t_on, t_off = last(on, "epoch_time_s"), last(off, "epoch_time_s")
    rec["speedup_last_epoch"] = None if not t_on or not t_off else round(t_off / t_on, 3)
    rec["speedup_wall"] = round(rec["off"]["wall_s"] / rec["on"]["wall_s"], 3)
    rec["accuracy"] = {f: {"test_top1": last(rec[f]["epochs"], "test_top1"), "ema_top1": last(rec[f]["epochs"], "ema_top1")}
                       for f in ("on", "off")}
    rec["replay_checks"] = (rec["on"].get("result") or {}).get("fast_path_checks") or {}
    for step, found in rec["replay_checks"].items():
        check.log.say(f"[gpu_check] fast path replay check, {step}: {found}")


PART_FUNCTIONS: dict[str, Callable[[Check, dict], None]] = {
    "pytest": part_pytest, "bench": part_bench, "sl_run": part_sl_run, "fast_onoff": part_fast_onoff}


def summary(report: dict) -> dict[str, Any]:
    """The handful of numbers a reader wants, pulled out of the parts."""
    parts = report["parts"]
    out: dict[str, Any] = {"status": {p: parts[p]["status"] for p in PARTS},
                           "seconds": {p: parts[p]["seconds"] for p in PARTS}}
    r = parts["pytest"]["result"]
    if r.get("counts"):
        out["pytest"] = r["counts"]
    r = parts["bench"]["result"].get("ratios")
    if r:
        out["bench"] = {k: r[k] for k in ("erm_fast_fp32_ms", "meta_fast_fp32_ms", "meta_fast_bf16_ms",
                                           "meta_speedup_graphed_vs_eager", "meta_speedup_bf16_vs_fp32_graphed",
                                           "meta_speedup_graphed_vs_authors_way")}
    run = parts["sl_run"]["result"].get("run")
    if run and run["epochs"]:
        out["sl_run"] = {"epoch_train_s": [e["epoch_time_s"] for e in run["epochs"]],
                         "test_top1": [e["test_top1"] for e in run["epochs"]],
                         "ema_top1": [e["ema_top1"] for e in run["epochs"]],
                         "weight_auc": [e["weight_auc"] for e in run["epochs"]]}
    r = parts["fast_onoff"]["result"]
    if "speedup_last_epoch" in r:
        out["fast_onoff"] = {"speedup_last_epoch": r["speedup_last_epoch"], "speedup_wall": r["speedup_wall"],
                             "accuracy": r["accuracy"]}
    return out


# -- main ----------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmwnet.tools.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("out", metavar="OUT", help="folder for gpu_check.json and gpu_check.log")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (CI): the same parts, in seconds")
    p.add_argument("--data-root", default=DEFAULT_DATA,
                   help=f"cifar10-jpeg.npz or a folder holding cifar-10-batches-py/ (default {DEFAULT_DATA}; "
                        "ignored with --dry-run)")
    p.add_argument("--work", help="folder of the training runs, the decoded data and the bench's JSON (default OUT/work)")
    p.add_argument("--parts", nargs="+", default=list(PARTS), metavar="PART",
                   help=f"run only these, in this order (default: all of {' '.join(PARTS)})")
    p.add_argument("--budget", type=float, help="deadline of the whole check in seconds (default 440; dry run 240)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, functions: dict | None = None) -> int:
    args = parse_args(argv)
    for part in args.parts:
        if part not in PARTS:
            from ..errors import unknown_name
            raise unknown_name("part (--parts)", part, PARTS)
    if len(set(args.parts)) != len(args.parts):
        raise CmwnetError("--parts names a part twice")
    sizes = DRY if args.dry_run else GPU
    budget = args.budget if args.budget is not None else sizes.budget_s
    if budget <= 0:
        raise CmwnetError("--budget must be a positive number of seconds")
    if not args.dry_run and functions is None:
        import torch

        if not torch.cuda.is_available():
            raise CmwnetError("no CUDA device here: the full check is sized for one H100/H200; "
                              "use --dry-run on a machine without a GPU")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CmwnetError(f"OUT {args.out} is a file: give a folder")
    os.makedirs(args.out, exist_ok=True)
    work = args.work or os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    check = Check(args.out, work, sizes, args.data_root, tuple(args.parts), budget,
                  list(sys.argv[1:] if argv is None else argv))

    def stop(signum, frame):  # noqa: ARG001
        raise Stopped()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM,)} if threading.current_thread() is threading.main_thread() else {}
    try:
        report = check.run(functions)
    except Stopped:
        print("interrupted: gpu_check.json holds the parts that finished", file=sys.stderr)
        return 143
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    failed = [p for p, st in report["summary"]["status"].items() if st == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
