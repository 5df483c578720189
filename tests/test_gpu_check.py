"""The prepared GPU check (`cmwnet.tools.gpu_check`, `tools/gpu_check.sh`) runs in its CPU form and records
every part; a part that fails is recorded as failed and the parts after it still run."""
import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from cmwnet.tools import gpu_check
from cmwnet.errors import CmwnetError, run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(out):
    with open(os.path.join(out, "gpu_check.json")) as f:
        return json.load(f)


def test_dry_run_through_the_wrapper_records_every_part(tmp_path):
    out = tmp_path / "out"
    t0 = time.time()
    r = subprocess.run(["bash", os.path.join(REPO, "tools", "gpu_check.sh"), str(out), "--dry-run"], cwd=tmp_path,
                       env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert time.time() - t0 < 180
    rep = _read(out)
    assert rep["mode"] == "dry-run" and rep["finished"] and rep["total_s"] > 0
    assert rep["environment"]["torch"] and "commit" in rep["environment"]
    for part in gpu_check.PARTS:
        p = rep["parts"][part]
        assert p["status"] in ("ok", "skipped"), (part, p)
        assert isinstance(p["seconds"], float) and p["seconds"] > 0
        assert p["error"] is None
    # no GPU here: the GPU tests are selected and skip
    pt = rep["parts"]["pytest"]
    if pt["status"] == "skipped":
        assert pt["result"]["counts"]["skipped"] >= 1 and pt["result"]["counts"]["passed"] == 0
    ratios = rep["parts"]["bench"]["result"]["ratios"]
    assert ratios["meta_fast_fp32_ms"] > 0 and ratios["erm_eager_ms"] > 0 and "peak_mib" in ratios
    run = rep["parts"]["sl_run"]["result"]["run"]
    assert [e["epoch"] for e in run["epochs"]] == [0, 1]
    for e in run["epochs"]:
        assert e["epoch_time_s"] > 0 and e["test_top1"] is not None and e["ema_top1"] is not None
    assert run["epochs"][1]["mean_weight"] is not None, "SL ran after the 1-epoch warm-up"
    assert run["result"]["noise"]["kind"] == "asym"
    onoff = rep["parts"]["fast_onoff"]["result"]
    assert onoff["on"]["fast"] == "on" and onoff["off"]["fast"] == "off"
    assert onoff["speedup_last_epoch"] > 0 and set(onoff["accuracy"]) == {"on", "off"}
    assert set(rep["summary"]["status"]) == set(gpu_check.PARTS)
    log = (out / "gpu_check.log").read_text()
    assert "part 4/4 fast_onoff: ok" in log and "  | " in log, "progress lines and the children's output"
    assert os.path.exists(out / "work" / "runs" / "sl_asym40" / "metrics.jsonl"), "runs go under OUT/work"


def test_a_failing_part_is_recorded_and_the_next_parts_run(tmp_path):
    seen = {}

    def boom(check, rec):
        rec["partial"] = 1
        raise ValueError("injected failure\nsecond line")

    def later(check, rec):
        seen["json"] = _read(check.out)   # written when the failed part ended
        rec["ran"] = True

    fns = {"pytest": boom, "bench": later, "sl_run": later, "fast_onoff": later}
    status = run_cli(lambda a: gpu_check.main(a, functions=fns), [str(tmp_path), "--dry-run", "--parts", "pytest", "bench"])
    assert status == 1, "a failed part makes the exit status 1"
    mid = seen["json"]["parts"]
    assert mid["pytest"]["status"] == "failed" and mid["bench"]["status"] == "running"
    rep = _read(tmp_path)
    p = rep["parts"]["pytest"]
    assert p["status"] == "failed" and p["seconds"] is not None
    assert p["error"] == {"type": "ValueError", "message": "injected failure"}
    assert p["result"] == {"partial": 1}, "what the part recorded before failing is kept"
    assert rep["parts"]["bench"]["status"] == "ok" and rep["parts"]["bench"]["result"] == {"ran": True}
    assert rep["parts"]["sl_run"]["status"] == "not_run"
    log = (tmp_path / "gpu_check.log").read_text()
    assert "Traceback" in log and "injected failure" in log


def test_a_real_part_that_fails_does_not_stop_the_next(tmp_path, monkeypatch):
    """The bench given an option it does not know: the part fails with the child's error, pytest still runs."""
    monkeypatch.setattr(gpu_check, "DRY", dataclasses.replace(gpu_check.DRY, bench_args=("--bogus-option",)))
    status = gpu_check.main([str(tmp_path), "--dry-run", "--parts", "bench", "pytest"])
    assert status == 1
    rep = _read(tmp_path)
    b = rep["parts"]["bench"]
    assert b["status"] == "failed" and b["error"]["type"] == "RuntimeError" and "status 2" in b["error"]["message"]
    assert rep["parts"]["pytest"]["status"] in ("ok", "skipped") and rep["parts"]["pytest"]["seconds"] > 0


def test_missing_data_says_how_to_provide_it(tmp_path):
    missing = str(tmp_path / "nowhere" / "cifar10-jpeg.npz")
    with pytest.raises(CmwnetError, match=r"\.devdata.*carry.*--data-root"):
        gpu_check.real_data_root(missing, str(tmp_path))
    # as a part of the full-size check (the CUDA check is bypassed by passing the functions)
    fns = dict(gpu_check.PART_FUNCTIONS)
    assert gpu_check.main([str(tmp_path / "o"), "--parts", "sl_run", "--data-root", missing], functions=fns) == 1
    p = _read(tmp_path / "o")["parts"]["sl_run"]
    assert p["status"] == "failed" and p["error"]["type"] == "CmwnetError"
    assert "cifar10-jpeg.npz" in p["error"]["message"] and "--data-root" in p["error"]["message"]


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert run_cli(gpu_check.main, [str(tmp_path), "--dry-run", "--parts", "bnech"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown part") and "did you mean 'bench'" in err and err.count("\n") == 1
    assert run_cli(gpu_check.main, [str(tmp_path), "--dry-run", "--budget", "-1"]) == 2
    import torch
    if not torch.cuda.is_available():
        assert run_cli(gpu_check.main, [str(tmp_path)]) == 2
        assert "use --dry-run" in capsys.readouterr().err


def test_a_child_past_its_limit_is_stopped(tmp_path):
    log = gpu_check.Log(str(tmp_path / "log"))
    t0 = time.perf_counter()
    child = gpu_check.run_child([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                log, limit_s=1.5)
    log.close()
    assert child.timed_out and child.lines == ["up"] and time.perf_counter() - t0 < 20


def test_parse_pytest_summary():
    lines = ["..F", "FAILED tests/test_fast.py::test_x - AssertionError", "SKIPPED [1] tests/t.py:3: no GPU",
             "1 failed, 2 passed, 1 skipped, 13 deselected in 5.20s"]
    got = gpu_check.parse_pytest(lines)
    assert got["counts"] == {"passed": 2, "failed": 1, "skipped": 1, "deselected": 13, "errors": 0}
    assert got["reasons"] == lines[1:3]


def test_milestones_and_ema_freeze_scale_with_the_epochs():
    assert gpu_check.scaled_milestones(4) == [2] and gpu_check.scaled_ema_freeze(4) == 2
    assert gpu_check.scaled_milestones(2) == [1]
