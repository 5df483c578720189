"""Cluster launch through submitit (`--launch submitit`, `cmwnet.paper.submitit_launch`), tested without a cluster:
submitit's LocalExecutor runs real cells as jobs (finished cells skipped, a preempted job requeued and resumed, the
table written), and the SLURM batch script is rendered by submitit's own generator and checked for the options."""
import json
import os
import time

import pytest

from cmwnet.errors import CmwnetError

submitit = pytest.importorskip("submitit")

from cmwnet.paper.submitit_launch import (CellJob, SubmititOptions, make_executor, options_from_args,  # noqa: E402
                                          sbatch_script)


def _local(tmp_path, **kw):
    return SubmititOptions(cluster="local", folder=str(tmp_path / "submitit"), gpus=0, cpus=1, time_min=10,
                           signal_delay_s=30, **kw)


def test_a_preempted_job_checkpoints_is_requeued_and_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    from cmwnet.checkpoint import SLOW_WRITE_ENV
    from cmwnet.paper.runner import Cell

    # every file write takes 0.2 s more (the engine's test hook), so the short run cannot end before the signal
    monkeypatch.setenv(SLOW_WRITE_ENV, "0.2")
    overrides = ["optim.epochs=8", "run.plot=false", "seed=3"]
    cell = Cell("preempted", os.path.join("cmwnet", "configs", "digits_cmwnet.yaml"), overrides)
    out = str(tmp_path / "runs")
    log = str(tmp_path / "cell.log")
    job = make_executor(_local(tmp_path)).submit(CellJob(cell.command(out), log, stop_timeout_s=60))
    metrics = tmp_path / "runs" / "preempted" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 1):
        time.sleep(0.5)
    assert metrics.exists(), "the job never trained an epoch"
    import re
    import signal

    pid = int(re.search(r"submitit job \S+ \(pid (\d+)\)", open(log).read()).group(1))
    os.kill(pid, signal.SIGUSR2)              # what SLURM sends the job before preemption or the time limit
    assert job.result() == 0                  # requeued by submitit, resumed, finished
    text = open(log).read()
    assert text.count("submitit job") == 2 and "resuming" in text   # two starts of the same job, the second resumed
    resumed = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in resumed] == list(range(8))          # every epoch once
    # the same run, never interrupted, as the job ran it (a process of its own: the same torch thread count, on
    # which CPU float sums depend)
    import subprocess

    reference = Cell("reference", cell.config, overrides)
    env = {k: v for k, v in os.environ.items() if k != SLOW_WRITE_ENV}
    subprocess.run(reference.command(out), check=True, capture_output=True, env=env)
    straight = [json.loads(x) for x in (tmp_path / "runs" / "reference" / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_top1"] for r in resumed] == [r["test_top1"] for r in straight]
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in straight], rel=1e-6)


def test_a_table_through_the_local_executor_is_written_and_a_rerun_skips_its_cells(tmp_path, capsys):
    from cmwnet.paper.cli import main

    out = str(tmp_path / "t2")
    args = ["run", "2", "--smoke", "--filter", "cifar10_sym0.4/erm", "--out", out, "--launch", "submitit",
            "--cluster", "local", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time-min", "10"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "submitit mode" in first and "ran" in first
    assert os.path.exists(os.path.join(out, "cifar10_sym0.4", "erm", "s1", "result.json"))
    assert any(f.endswith(".md") for f in os.listdir(out))                          # the table
    assert len([f for f in os.listdir(os.path.join(out, "submitit")) if f.endswith("_log.out")]) == 1   # one job
    assert main(args) == 0
    assert "1 already finished" in capsys.readouterr().out


def test_the_slurm_batch_script_carries_the_options_given(tmp_path):
    opts = SubmititOptions(partition="gpu", gpus=2, cpus=10, mem_gb=48, time_min=240, signal_delay_s=180,
                           account="lab", qos="high", constraint="a100", setup=["module load cuda/12"],
                           slurm_extra={"exclude": "node3"}, folder=str(tmp_path))
    script = sbatch_script(opts, "python -m cmwnet.train --config x.yaml")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=10",
                 "#SBATCH --mem=49152MB", "#SBATCH --time=240", "#SBATCH --signal=USR2@180", "#SBATCH --account=lab",
                 "#SBATCH --qos=high", "#SBATCH --constraint=a100", "#SBATCH --exclude=node3", "#SBATCH --nodes=1",
                 "module load cuda/12", "python -m cmwnet.train --config x.yaml"):
        assert line in script, line


def test_the_dry_run_shows_the_job_plan_and_script_without_slurm(capsys):
    from cmwnet.tools.sweep import main

    assert main(["--config", "cmwnet/configs/digits_erm.yaml", "--grid", "seed=1,2", "--dry-run", "--launch",
                 "submitit", "--partition", "gpu", "--time-min", "30"]) == 0
    out = capsys.readouterr().out
    assert "submitit (slurm): 2 jobs" in out and "#SBATCH --partition=gpu" in out and "#SBATCH --time=30" in out


def _args(**kw):
    import argparse

    base = dict(launch="submitit", submitit=None, cluster=None, partition=None, gpus_per_job=None, cpus_per_job=None,
                mem_gb=None, time_min=None, array_parallelism=None)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("kw, says", [
    (dict(launch="subprocess", partition="gpu"), "--partition sets up cluster jobs: add --launch submitit"),
    (dict(cluster="local", time_min=0), "time_min must be an integer >= 1"),
    (dict(cluster="local", time_min=1), "signal_delay_s=120 is not shorter than the time limit"),
    (dict(cluster="local", gpus_per_job=-1), "gpus must be an integer >= 0"),
    (dict(cluster="local", mem_gb=0.0), "mem_gb must be a number > 0"),
    (dict(cluster="slurm"), "there is no sbatch here"),
])
def test_bad_executor_options_are_one_line(kw, says, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # no sbatch on it
    with pytest.raises(CmwnetError, match=says):
        options_from_args(_args(**kw), str(tmp_path))


def test_the_yaml_of_executor_options_is_checked(tmp_path):
    f = tmp_path / "ex.yaml"
    f.write_text("partition: gpu\ntime_min: 30\ncluster: local\n")
    opts = options_from_args(_args(submitit=str(f), time_min=45), str(tmp_path))
    assert opts.partition == "gpu" and opts.time_min == 45 and opts.folder == str(tmp_path / "submitit")
    f.write_text("partiton: gpu\n")
    with pytest.raises(CmwnetError, match="unknown submitit option .*'partiton'.*did you mean 'partition'"):
        options_from_args(_args(submitit=str(f)), str(tmp_path))
    f.write_text("- a list\n")
    with pytest.raises(CmwnetError, match="must hold a mapping"):
        options_from_args(_args(submitit=str(f)), str(tmp_path))
    with pytest.raises(CmwnetError, match="not found"):
        options_from_args(_args(submitit=str(tmp_path / "none.yaml")), str(tmp_path))


@pytest.mark.slow   # about a minute each on 2 busy cores: python -m pytest -m slow
def test_several_cells_per_job_share_one_job(tmp_path, capsys):
    """--cells-per-job 2: three runs of a sweep go out as two jobs (2 + the last one alone), all finish."""
    from cmwnet.tools.sweep import main

    out = tmp_path / "sw"
    assert main(["--config", "cmwnet/configs/digits_erm.yaml", "--set", "optim.epochs=1", "--grid", "seed=1,2,3",
                 "--out", str(out), "--launch", "submitit", "--cluster", "local", "--gpus-per-job", "0",
                 "--cpus-per-job", "1", "--time-min", "10", "--cells-per-job", "2"]) == 0
    assert all((out / "digits_erm" / f"s{k}" / "result.json").exists() for k in (1, 2, 3))
    jobs = [f for f in os.listdir(out / "submitit") if f.endswith("_log.out")]
    assert len(jobs) == 2, jobs
    assert "3 ran" in capsys.readouterr().out


@pytest.mark.slow   # about a minute each on 2 busy cores: python -m pytest -m slow
def test_a_cell_across_two_nodes_equals_one_process(tmp_path, monkeypatch):
    """--nodes-per-job 2: the cell runs under torchrun on two "nodes" (the local executor's two tasks meeting over
    TCP on 127.0.0.1) and gives the one-process result (a model without BatchNorm, as tests/test_ddp.py)."""
    import yaml

    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer
    from cmwnet.tools.sweep import main

    cfg = {"name": "ddp", "data": {"name": "digits", "train_subset": 240, "test_subset": 200, "batch_size": 40,
                                   "test_batch_size": 64, "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
           "model": {"name": "tiny_mlp", "args": {"image_size": 8}}, "optim": {"lr": 0.1, "epochs": 2},
           "method": {"name": "erm"}, "run": {"device": "cpu", "progress": False, "plot": False}}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")   # CPU float sums depend on the thread count: one on both sides
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "sw"
    assert main(["--config", str(path), "--grid", "seed=1", "--out", str(out), "--launch", "submitit", "--cluster",
                 "local", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time-min", "10",
                 "--nodes-per-job", "2"]) == 0
    log = (out / "logs" / "ddp__s1.log").read_text()
    assert "--nnodes 2" in log and "--node_rank 1" in log
    two = json.loads((out / "ddp" / "s1" / "result.json").read_text())
    torch.set_num_threads(1)
    try:
        one = Trainer(config_from_dict({**cfg, "seed": 1, "run": {**cfg["run"], "out": str(tmp_path / "one")}}),
                      quiet=True).run()
    finally:
        torch.set_num_threads(threads)
    assert two["environment"]["world_size"] == 2
    assert two["last_top1"] == pytest.approx(one["last_top1"], abs=1e-4)


@pytest.mark.slow   # about a minute each on 2 busy cores: python -m pytest -m slow
def test_a_job_that_fails_for_good_is_reported_with_its_log_and_does_not_block_the_rest(tmp_path, capsys):
    from cmwnet.tools.sweep import main

    out = tmp_path / "sw"
    rc = main(["--config", "cmwnet/configs/digits_erm.yaml", "--set", "optim.epochs=1", "--grid",
               "data.val_size=0,5000", "--out", str(out), "--launch", "submitit", "--cluster", "local",
               "--gpus-per-job", "0", "--cpus-per-job", "1", "--time-min", "10"])
    text = capsys.readouterr()
    assert rc == 1
    assert "failed" in text.out and "data.val_size is 5000" in text.out and "log:" in text.out
    assert (out / "val_size-0" / "s0" / "result.json").exists()          # the other cell finished
