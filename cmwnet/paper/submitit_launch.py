"""Table and sweep cells as cluster jobs through submitit (`--launch submitit`): one job per cell, preemption-safe.

    python -m cmwnet.paper run 1 --launch submitit --partition gpu --time-min 600 [--submitit FILE.yaml]
    python -m cmwnet.tools.sweep --config X.yaml --grid seed=1,2,3 --launch submitit --cluster local

The cells, their run folders, the skipping of finished cells and the table report are the local runner's
(`cmwnet.paper.runner`): only where a cell trains changes. Each cell is one submitit job running the cell's
`python -m cmwnet.train` command (the same one a local run uses, so the run folder is the same and a rerun
resumes it); up to `array_parallelism` jobs are queued at once and the command waits for them, writing the report
when the last one ends (`paper report` writes it later too, e.g. after the command was stopped: its jobs go on).

Preemption and time limits: SLURM sends USR2 `signal_delay_s` before the end (submitit's protocol); the job then
sends SIGTERM to the training, which saves a mid-epoch checkpoint and exits, and submitit requeues the job
(`CellJob.checkpoint`), which resumes from that checkpoint exactly as a local rerun does. A job that fails for good
(a bad config, an error, `max_num_timeout` time-outs) fails its cell with its log path; the other cells go on.

Executor options: from `--submitit FILE.yaml` (keys of `SubmititOptions`) and the command-line flags, which win.
`--cluster local` runs the jobs as local processes (submitit's LocalExecutor: what the tests use), `debug` in this
process; `slurm` needs `sbatch` on the PATH.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CmwnetError

CLUSTERS = ("slurm", "local", "debug")


@dataclass
class SubmititOptions:
    """What each job asks the scheduler for (SLURM names in brackets)."""
    cluster: str = "slurm"           # slurm | local | debug
    folder: str | None = None        # submitit's own files (scripts, pickles, logs): default OUT/submitit
    partition: str | None = None     # --partition
    gpus: int = 1                    # GPUs per job (--gpus-per-node)
    cpus: int = 8                    # CPU cores per job (--cpus-per-task)
    mem_gb: float | None = None      # --mem
    time_min: int = 600              # time limit per job, minutes (--time); a cell longer than this is requeued
    array_parallelism: int = 32      # jobs queued or running at once
    cells_per_job: int = 1           # cells trained side by side in one job (several small runs on one GPU)
    nodes: int = 1                   # nodes per job: one cell across them through torchrun (DDP)
    signal_delay_s: int = 120        # USR2 this long before the time limit: time to save the checkpoint
    max_num_timeout: int = 5         # requeues after time-outs before a cell fails (preemptions do not count)
    account: str | None = None       # --account
    qos: str | None = None           # --qos
    constraint: str | None = None    # --constraint
    setup: list[str] = field(default_factory=list)   # shell lines before the command (e.g. module load, venv)
    slurm_extra: dict[str, Any] = field(default_factory=dict)   # any other sbatch option, e.g. {exclude: node3}

    def check(self, require_sbatch: bool = True) -> None:
        """One-line errors for values no scheduler takes (and, unless only planning, a missing sbatch)."""
        if self.cluster not in CLUSTERS:
            from ..errors import unknown_name

            raise unknown_name("submitit cluster (--cluster)", self.cluster, list(CLUSTERS))
        for name in ("gpus", "cpus", "time_min", "array_parallelism", "signal_delay_s", "max_num_timeout",
                     "cells_per_job", "nodes"):
            v = getattr(self, name)
            low = 0 if name in ("gpus", "max_num_timeout") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise CmwnetError(f"submitit option {name} must be an integer >= {low}, got {v!r}")
        if self.mem_gb is not None and (isinstance(self.mem_gb, bool) or not isinstance(self.mem_gb, (int, float))
                                        or self.mem_gb <= 0):
            raise CmwnetError(f"submitit option mem_gb must be a number > 0, got {self.mem_gb!r}")
        if self.nodes > 1 and self.cells_per_job > 1:
            raise CmwnetError("submitit options nodes > 1 and cells_per_job > 1 do not combine: a job spans nodes for "
                              "one cell, or packs several cells on one node")
        if self.signal_delay_s >= 60 * self.time_min:
            raise CmwnetError(f"submitit option signal_delay_s={self.signal_delay_s} is not shorter than the time "
                              f"limit ({self.time_min} min): lower it, or raise time_min")
        if not isinstance(self.setup, list) or not all(isinstance(s, str) for s in self.setup):
            raise CmwnetError("submitit option setup must be a list of shell lines, e.g. [module load cuda]")
        if not isinstance(self.slurm_extra, dict):
            raise CmwnetError("submitit option slurm_extra must be a mapping of sbatch options, e.g. {exclude: node3}")
        if self.cluster == "slurm" and require_sbatch:
            import shutil

            if shutil.which("sbatch") is None:
                raise CmwnetError("--launch submitit with cluster slurm, but there is no sbatch here: run on the "
                                  "cluster's login node, or --cluster local to try it on this machine")

    def executor_parameters(self) -> dict[str, Any]:
        """update_parameters keywords of the cluster's submitit executor (SlurmExecutor, LocalExecutor)."""
        if self.cluster == "slurm":
            p: dict[str, Any] = {"time": self.time_min, "gpus_per_node": self.gpus, "cpus_per_task": self.cpus,
                                 "ntasks_per_node": 1, "nodes": self.nodes, "signal_delay_s": self.signal_delay_s,
                                 "array_parallelism": self.array_parallelism}
            for key in ("partition", "account", "qos", "constraint"):
                if getattr(self, key):
                    p[key] = getattr(self, key)
            if self.mem_gb is not None:
                p["mem"] = f"{int(round(self.mem_gb * 1024))}MB"
            if self.setup:
                p["setup"] = list(self.setup)
            if self.slurm_extra:
                p["additional_parameters"] = dict(self.slurm_extra)
            return p
        if self.cluster == "local":
            # one machine: each "node" of a multi-node cell is a task (a process) of the job
            return {"timeout_min": self.time_min, "gpus_per_node": self.gpus, "tasks_per_node": self.nodes,
                    "signal_delay_s": min(self.signal_delay_s, max(1, 60 * self.time_min - 1)),
                    **({"setup": list(self.setup)} if self.setup else {})}
        return {}


def add_submitit_options(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that can launch its cells through submitit (paper run, the sweep)."""
    g = parser.add_argument_group("cluster jobs (--launch submitit; docs/cluster.md)")
    g.add_argument("--submitit", metavar="FILE", help="a YAML of executor options (partition, gpus, cpus, mem_gb, "
                   "time_min, array_parallelism, account, qos, constraint, setup, slurm_extra); flags win")
    g.add_argument("--cluster", choices=CLUSTERS, default=None, help="slurm (default), local (jobs as processes "
                   "here: a trial) or debug (in this process)")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--gpus-per-job", type=int, default=None, help="GPUs per job (default 1)")
    g.add_argument("--cpus-per-job", type=int, default=None, help="CPU cores per job (default 8)")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per job in GB")
    g.add_argument("--time-min", type=int, default=None, help="time limit per job in minutes (default 600; a cell "
                   "that runs longer is checkpointed and requeued)")
    g.add_argument("--array-parallelism", type=int, default=None, help="jobs queued or running at once (default 32)")
    g.add_argument("--nodes-per-job", type=int, default=None, help="nodes per job: each cell trains across them "
                   "with DDP through torchrun (default 1)")
    g.add_argument("--cells-per-job", type=int, default=None, help="cells trained side by side in one job, sharing "
                   "its GPUs, as --per-gpu packs them locally (default 1)")


def options_from_args(a: argparse.Namespace, out: str, dry_run: bool = False) -> SubmititOptions | None:
    """The SubmititOptions `--launch submitit` asks for (None for a local launch); flags without
    `--launch submitit` are refused rather than ignored."""
    flags = {"submitit": "--submitit", "cluster": "--cluster", "partition": "--partition",
             "gpus_per_job": "--gpus-per-job", "cpus_per_job": "--cpus-per-job", "mem_gb": "--mem-gb",
             "time_min": "--time-min", "array_parallelism": "--array-parallelism", "cells_per_job": "--cells-per-job",
             "nodes_per_job": "--nodes-per-job"}
    given = [flag for name, flag in flags.items() if getattr(a, name, None) is not None]
    if getattr(a, "launch", None) != "submitit":
        if given:
            raise CmwnetError(f"{given[0]} sets up cluster jobs: add --launch submitit, or drop {given[0]}")
        return None
    values: dict[str, Any] = {}
    if a.submitit:
        values.update(_read_yaml(a.submitit))
    for name, key in (("cluster", "cluster"), ("partition", "partition"), ("gpus_per_job", "gpus"),
                      ("cpus_per_job", "cpus"), ("mem_gb", "mem_gb"), ("time_min", "time_min"),
                      ("array_parallelism", "array_parallelism"), ("cells_per_job", "cells_per_job"),
                      ("nodes_per_job", "nodes")):
        if getattr(a, name, None) is not None:
            values[key] = getattr(a, name)
    opts = SubmititOptions(**values)
    opts.folder = os.path.abspath(opts.folder or os.path.join(out, "submitit"))
    opts.check(require_sbatch=not dry_run)
    return opts


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    if not os.path.isfile(path):
        raise CmwnetError(f"--submitit {path} not found: give a YAML file of executor options")
    with open(path, encoding="utf-8") as f:
        try:
            d = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise CmwnetError(f"--submitit {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise CmwnetError(f"--submitit {path} must hold a mapping of executor options, e.g. partition: gpu")
    known = {f.name for f in fields(SubmititOptions)}
    bad = [k for k in d if k not in known]
    if bad:
        from ..errors import unknown_name

        raise unknown_name(f"submitit option (in {path})", str(bad[0]), sorted(known))
    return d


def make_executor(opts: SubmititOptions):
    """submitit's executor for the options (SlurmExecutor, LocalExecutor or DebugExecutor), its folder created."""
    try:
        import submitit
    except ImportError:
        raise CmwnetError("--launch submitit needs the submitit package: pip install submitit (from a checkout: "
                          "pip install -e '.[cluster]')") from None
    os.makedirs(opts.folder, exist_ok=True)
    folder = opts.folder   # submitit names each job's files by its id inside it
    if opts.cluster == "slurm":
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=opts.max_num_timeout)
    elif opts.cluster == "local":
        ex = submitit.LocalExecutor(folder=folder, max_num_timeout=opts.max_num_timeout)
    else:
        ex = submitit.DebugExecutor(folder=folder)
    params = opts.executor_parameters()
    if params:
        ex.update_parameters(**params)
    return ex


def sbatch_script(opts: SubmititOptions, command: str = "python -m cmwnet.train ...") -> str:
    """The batch script submitit gives sbatch for one cell with these options (what --dry-run shows); rendered by
    submitit's own generator, so it needs no SLURM here."""
    from submitit.slurm.slurm import _make_sbatch_string

    slurm = SubmititOptions(**{**opts.__dict__, "cluster": "slurm"})
    return _make_sbatch_string(command=command, folder=opts.folder or "submitit", job_name="cmwnet",
                               **slurm.executor_parameters())


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)   # an ignored signal stays ignored across exec


class CellJob:
    """What one submitit job runs: the cell's training command as a child process, its output appended to the
    cell's log. Checkpointable in submitit's sense: on USR2 (preemption or the time limit near) `checkpoint`
    stops the training with SIGTERM (it saves a mid-epoch checkpoint) and returns itself to be requeued."""

    def __init__(self, argv: list[str], log: str, stop_timeout_s: float = 100.0, nodes: int = 1,
                 procs_per_node: int = 1):
        self.argv, self.log, self.stop_timeout_s = list(argv), log, stop_timeout_s
        self.nodes, self.procs_per_node = nodes, procs_per_node
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The cell's command; across several nodes, the same under torchrun, this task being node `global_rank`
        and the job's first host the rendezvous (every task of the job computes the same address and port)."""
        if self.nodes <= 1:
            return self.argv
        import re

        import submitit

        env = submitit.JobEnvironment()
        local = "SUBMITIT_LOCAL_JOB_ID" in os.environ
        master = "127.0.0.1" if local else env.hostnames[0]
        port = 20000 + int(re.sub(r"\D", "", str(env.job_id)) or 0) % 20000
        python, rest = self.argv[0], self.argv[3:]   # argv: python -m cmwnet.train ...
        return [python, "-m", "torch.distributed.run", "--nnodes", str(self.nodes), "--nproc_per_node",
                str(self.procs_per_node), "--node_rank", str(env.global_rank), "--master_addr", master,
                "--master_port", str(port), "-m", "cmwnet.train", *rest]

    def __call__(self) -> int:
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        argv = self.command()
        with open(self.log, "a") as f:
            job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or "?"
            f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} submitit job {job} (pid {os.getpid()}): "
                    f"{shlex.join(argv)}\n")
            f.flush()
            # SLURM signals every process of the job step: the training ignores USR2 (its default action would kill
            # it without a checkpoint) and stops on the SIGTERM that `checkpoint` sends it
            self._proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          preexec_fn=_ignore_usr2)
            try:
                return self._proc.wait()
            except KeyboardInterrupt:   # the job was cancelled (local: SIGINT): let the training checkpoint
                self._stop()
                return 130

    def _stop(self) -> None:
        """SIGTERM to the training, then wait for it to save its checkpoint and exit (SIGKILL after the timeout).
        Called from submitit's signal handler while the main thread sits in Popen.wait holding Popen's lock, so it
        waits with os.waitpid: a nested Popen.wait would block on that lock for ever."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + self.stop_timeout_s
        while True:
            try:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:   # already reaped
                return
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return
            if time.time() > deadline:
                proc.kill()
                _, status = os.waitpid(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return
            time.sleep(0.2)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook: the training saves its checkpoint and stops; the same job is resubmitted and
        its command resumes from that checkpoint."""
        import submitit

        self._stop()
        self._proc = None
        return submitit.helpers.DelayedSubmission(CellJob(self.argv, self.log, self.stop_timeout_s, self.nodes,
                                                          self.procs_per_node))


class CellGroupJob:
    """K cells side by side in one job (`cells_per_job`): each a CellJob's process; preempted, all of them save
    their checkpoints and the group is requeued (a cell that had finished only reports its result again)."""

    def __init__(self, jobs: list[CellJob]):
        self.jobs = jobs

    def __call__(self) -> list[int]:
        results: list[int] = [1] * len(self.jobs)

        def run(k: int) -> None:
            results[k] = self.jobs[k]()
        threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(self.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():   # short joins: submitit's signal handler runs in this (the main) thread
                t.join(timeout=0.5)
        return results

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        for job in self.jobs:
            job._stop()   # noqa: SLF001 - the same stop as a single cell's
        return submitit.helpers.DelayedSubmission(
            CellGroupJob([CellJob(j.argv, j.log, j.stop_timeout_s) for j in self.jobs]))


class _Batcher:
    """Gathers the cells the runner's threads hand over into groups of `k`, one job each; a group that stays short
    (the last cells of the table) is submitted after `wait_s` seconds without a new cell."""

    def __init__(self, k: int, wait_s: float = 3.0):
        self.k, self.wait_s = k, wait_s
        self.cond = threading.Condition()
        self.group: list[dict] = []

    def submit(self, executor: Any, job: CellJob) -> tuple[Any, int]:
        entry: dict = {"fn": job, "job": None, "pos": 0}
        with self.cond:
            self.group.append(entry)
            if len(self.group) >= self.k:
                self._flush(executor)
            deadline = time.time() + self.wait_s
            while entry["job"] is None:
                left = deadline - time.time()
                if left <= 0:
                    self._flush(executor)
                    break
                self.cond.wait(left)
        if isinstance(entry["job"], BaseException):
            raise entry["job"]
        return entry["job"], entry["pos"]

    def _flush(self, executor: Any) -> None:
        group, self.group = self.group, []
        try:
            job = executor.submit(CellGroupJob([e["fn"] for e in group]))
        except Exception as e:  # noqa: BLE001 - every cell of the group gets the submission error
            job = e
        for pos, e in enumerate(group):
            e["job"], e["pos"] = job, pos
        self.cond.notify_all()


class SubmititLauncher:
    """The runner's launcher (`runner.run_cells(..., mode="submitit")`): each cell one job, this thread waiting."""

    executor_options: SubmititOptions | None = None   # set by `launch_options` before run_cells
    batcher: _Batcher | None = None                   # cells_per_job > 1: shared by every slot

    def __init__(self, slot: Any, out: str):
        self.slot, self.out = slot, out
        if SubmititLauncher.executor_options is None:
            raise CmwnetError("submitit launch without executor options: pass --launch submitit to the command")
        self.opts = SubmititLauncher.executor_options
        self.executor = make_executor(self.opts)
        self.job = None
        self.lock = threading.Lock()
        self.cancelled = False

    def run(self, cell) -> tuple[int, str]:
        from .runner import _tail, log_path

        log = log_path(self.out, cell.name)
        job_fn = CellJob(cell.command(self.out), log, stop_timeout_s=max(10.0, self.opts.signal_delay_s - 20),
                         nodes=self.opts.nodes, procs_per_node=max(1, self.opts.gpus))
        if self.opts.cluster == "slurm":   # the queue shows which cell a job trains
            self.executor.update_parameters(job_name=f"cmwnet:{cell.name}")
        with self.lock:
            if self.cancelled:
                return 130, "interrupted"
        pos = None
        if SubmititLauncher.batcher is not None:   # several cells per job: wait for the group's job
            job, pos = SubmititLauncher.batcher.submit(self.executor, job_fn)
        else:
            job = self.executor.submit(job_fn)
        with self.lock:
            self.job = job
        try:
            out = job.result()
            rc = int(out[pos] if pos is not None else out)
        except Exception as e:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError: this cell only
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = getattr(getattr(job, "paths", None), "stderr", "")
            return 1, f"submitit job {job.job_id} did not finish ({first}); its log: {where}; the cell's: {log}"
        finally:
            with self.lock:
                self.job = None
        return rc, "" if rc == 0 else _tail(log)

    def terminate(self) -> None:
        """The runner was interrupted: cancel the running jobs (each training saves its checkpoint on SIGTERM)."""
        with self.lock:
            self.cancelled = True
            if self.job is not None:
                try:
                    self.job.cancel(check=False)
                except Exception:  # noqa: BLE001 - a job that ended meanwhile
                    pass

    def close(self) -> None:
        pass


def launch_options(opts: SubmititOptions | None) -> tuple[str, int | None]:
    """(runner mode, number of slots) for `run_cells`: submitit's options installed, one slot per job that may be
    queued at once; (None, None) for a local launch."""
    if opts is None:
        return "", None
    from . import runner

    runner.LAUNCHERS["submitit"] = SubmititLauncher
    SubmititLauncher.executor_options = opts
    SubmititLauncher.batcher = _Batcher(opts.cells_per_job) if opts.cells_per_job > 1 else None
    return "submitit", opts.array_parallelism * opts.cells_per_job


def plan(opts: SubmititOptions, cells: int, est_hours: float | None = None) -> str:
    """--dry-run with --launch submitit: the job plan in a few lines."""
    per = ([f"{opts.nodes} nodes"] if opts.nodes > 1 else []) + [f"{opts.gpus} GPU(s)", f"{opts.cpus} cores"] + ([f"{opts.mem_gb:g} GB"] if opts.mem_gb else []) + [
        f"{opts.time_min} min limit"]
    where = f"partition {opts.partition}" if opts.partition else "the default partition"
    jobs = -(-cells // opts.cells_per_job)
    what = "one per unfinished cell" if opts.cells_per_job == 1 else f"{opts.cells_per_job} cells side by side in each"
    lines = [f"# submitit ({opts.cluster}): {jobs} jobs, {what}, {', '.join(per)} each, on {where}; "
             f"at most {opts.array_parallelism} at once; USR2 {opts.signal_delay_s} s before the limit -> checkpoint "
             f"and requeue (up to {opts.max_num_timeout} time-outs per cell); submitit files in {opts.folder}"]
    if est_hours is not None:
        lines.append(f"# about {est_hours:.1f} GPU-hours in all (the cost estimate above)")
    if opts.cluster == "slurm":
        import sys

        lines.append("# each job's batch script (submitit's; the job runs the cell's command listed above):")
        lines += sbatch_script(opts, f"{sys.executable} -u -m submitit.core._submit {opts.folder}").rstrip().splitlines()
    return "\n".join(lines)
