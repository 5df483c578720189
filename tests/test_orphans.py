"""A cell whose runner dies (even by SIGKILL) stops with a checkpoint instead of training unattended."""
import os
import signal
import subprocess
import sys
import time


def test_cell_stops_when_its_runner_is_killed(tmp_path):
    argv = [sys.executable, "-m", "cmwnet.train", "--out", str(tmp_path), "--quiet", "--set", "name=orphan",
            "--set", "data.name=digits", "--set", "data.augment.normalize=half", "--set", "model.name=digits_mlp",
            "--set", "optim.epochs=100000", "--set", "run.progress=false"]
    env = dict(os.environ, CMWNET_WATCH_PARENT="1", OMP_NUM_THREADS="1")
    # an intermediate parent stands in for the runner; killing it orphans the training process
    # (the interpreter by its full path: the test must not depend on which `python` PATH finds)
    parent = subprocess.Popen(["bash", "-c", '"$0" "$@" & echo $! ; wait', *argv],
                              stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    child = int(parent.stdout.readline())
    ckpt = tmp_path / "orphan" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert ckpt.exists(), "the run never wrote its first checkpoint"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the orphaned run kept training after its parent died")
    assert ckpt.exists() and not (tmp_path / "orphan" / "result.json").exists()
