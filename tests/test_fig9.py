"""section7 fig9.sh --smoke: runs its cells end to end on synthetic data, draws the PNG, prints the summary."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "section7", "Partial-Label_Learning", "fig9.sh")


def _run(out, *extra):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", SCRIPT, "--smoke", "--out", str(out), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _curve(out, name):
    with open(os.path.join(out, name, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_smoke_one_rate_end_to_end(tmp_path):
    p = _run(tmp_path, "--datasets", "cifar10", "--rates", "0.3", "--jobs", "2")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    png = tmp_path / "fig9.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| CIFAR-10 | 0.3 |" in p.stdout and "curves only" in p.stdout
    assert (tmp_path / "fig9.md").exists()
    base = _curve(tmp_path, "cifar10_q0.3/proden/s1")
    pipe = _curve(tmp_path, "cifar10_q0.3/proden_cmwnet/s1")
    assert len(base) == len(pipe) == 4
    # the two methods are the same run until CMW-Net starts (epoch 2 in smoke mode), then differ
    assert [h["test_top1"] for h in base[:2]] == [h["test_top1"] for h in pipe[:2]]
    assert "mean_weight" in pipe[2] and "mean_weight" not in base[2]
    r = json.loads((tmp_path / "cifar10_q0.3/proden_cmwnet/s1/result.json").read_text())
    assert r["data"]["partial"]["rate"] == 0.3 and r["data"]["partial"]["switch_epoch"] == 2
    # a rerun skips the finished cells
    again = _run(tmp_path, "--datasets", "cifar10", "--rates", "0.3")
    assert again.returncode == 0 and "2 already finished" in again.stdout


def test_bad_rate_is_a_one_line_error(tmp_path):
    p = _run(tmp_path, "--rates", "1.5")
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "--rates" in p.stderr


@pytest.mark.slow
def test_full_smoke(tmp_path):
    """What CI runs: every cell of Fig. 9 (16 runs) on synthetic data."""
    p = _run(tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert p.stdout.count("| CIFAR-10 |") == 4 and p.stdout.count("| CIFAR-100 |") == 4
