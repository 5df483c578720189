"""examples/own_loop.py is documentation that runs: a plain loop with MetaStep on tiny noisy data."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_own_loop_example_runs_and_prints_the_weights():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "own_loop.py"), "--steps", "4", "--train-size", "64",
                        "--batch", "16"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "training labels are wrong" in r.stdout
    assert "mean weight: clean " in r.stdout and ", mislabelled " in r.stdout
