"""Results are never lost or half-written: every file a run writes is replaced atomically, a write that is
killed or fails leaves the previous file, and leftovers of killed writes are cleaned on restart."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cmwnet.checkpoint as ckpt_mod
from cmwnet.checkpoint import (SLOW_WRITE_ENV, TEMP_PREFIX, atomic_write_json, atomic_write_text, read_json,
                               remove_stale_temps)
from cmwnet.config import config_from_dict
from cmwnet.engine import train
from cmwnet.errors import CmwnetError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_killed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_json({"best_top1": 1.0}, target)
    code = ("import sys; from cmwnet.checkpoint import atomic_write_text; "
            "atomic_write_text('x' * 100000, sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=REPO,
                            env=dict(os.environ, **{SLOW_WRITE_ENV: "60"}))
    try:
        deadline = time.monotonic() + 120
        temps = []
        while not temps and time.monotonic() < deadline and proc.poll() is None:
            temps = [n for n in os.listdir(tmp_path) if n.startswith(TEMP_PREFIX)]
            time.sleep(0.01)
        assert temps, "the child never started its write"
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads(target.read_text()) == {"best_top1": 1.0}          # the old file, whole
    assert 0 < os.path.getsize(tmp_path / temps[0]) < 100000             # the half-written temporary
    assert remove_stale_temps(tmp_path) == temps
    assert os.listdir(tmp_path) == ["result.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.jsonl"
    atomic_write_text("old\n", target)

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        atomic_write_text("new\n" * 1000, target)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_written_files_are_readable_by_the_group(tmp_path):
    atomic_write_text("x", tmp_path / "a.txt")
    assert os.stat(tmp_path / "a.txt").st_mode & 0o044 == 0o044


def test_every_file_of_a_run_is_written_atomically(tmp_path, monkeypatch):
    written = []
    real = ckpt_mod.atomic_write_bytes

    def recording(data, path):
        written.append(os.path.basename(os.fspath(path)))
        return real(data, path)
    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", recording)
    cfg = config_from_dict({
        "name": "a", "data": {"name": "digits", "meta": {"kind": "clean", "per_class": 3},
                              "augment": {"normalize": "half", "flip": False}, "batch_size": 128},
        "model": {"name": "tiny_mlp"}, "optim": {"epochs": 2}, "method": {"name": "cmwnet"},
        "run": {"out": str(tmp_path), "progress": False, "plot": True, "device": "cpu"}})
    # a stale temporary file from a killed write is removed when the run starts
    os.makedirs(tmp_path / "a")
    (tmp_path / "a" / (TEMP_PREFIX + "checkpoint.pt-dead")).write_bytes(b"half")
    train(cfg, quiet=True)
    files = set(os.listdir(tmp_path / "a"))
    assert files == {"config.yaml", "metrics.jsonl", "checkpoint.pt", "result.json", "weight_net.pt",
                     "weighting.png", "final_weights.npz", "final_weights.csv", "weighting_history.npz",
                     "weighting_evolution.png", "class_weights.png", "samples.npz", ".lock"}
    # everything but the plot (matplotlib writes it; plotting.py renames it into place) and the lock
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "result.json", "weight_net.pt", "final_weights.npz",
            "final_weights.csv", "weighting_history.npz", "samples.npz"} <= set(written)
    assert written.index("result.json") == len(written) - 1, "result.json must be the last file written"


def test_damaged_result_file_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "result.json").write_text('{"best_top1": 9')
    with pytest.raises(CmwnetError, match="result file .* is unreadable .*move it away"):
        read_json(tmp_path / "result.json", "result file")
