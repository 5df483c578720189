"""The table runner: overrides, shortened schedules, slots, skipping finished cells, rerunning only the
unfinished ones after an interruption, and aggregation over seeds."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cmwnet.config import apply_override
from cmwnet.errors import CmwnetError
from cmwnet.paper.runner import (Cell, cell_state, load_results, make_slots, mean_std, overrides_from_dict, run_cells,
                           shorten)


def digits_cell(name, seed=0, epochs=2, lr=0.1):
    cfg = {"name": "digits", "seed": seed,
           "data": {"name": "digits", "batch_size": 64, "augment": {"crop_pad": 0, "flip": False, "normalize": "half"}},
           "model": {"name": "digits_mlp"}, "optim": {"lr": lr, "epochs": epochs, "schedule": {"kind": "constant"}},
           "method": {"name": "erm"}, "run": {"device": "cpu", "plot": False, "max_steps": 3}}
    return Cell(name, cfg, [f"seed={seed}"])


def test_overrides_round_trip():
    d = {"data": {"name": "cifar10", "noise": {"kind": "sym", "rate": 0.2, "file": None}},
         "optim": {"schedule": {"milestones": [160, 180]}}, "method": {"loss_args": {"drw_epoch": None, "base": "ce"},
                                                                     "sl": {"partner_weight": "permuted"}},
         "name": "0.5", "run": {"name": "a/b c"}}
    out: dict = {}
    for o in overrides_from_dict(d):
        apply_override(out, o)
    assert out == d
    assert "data.noise.rate=0.2" in overrides_from_dict(d)


def test_shorten_scales_every_epoch_key():
    cfg = {"optim": {"epochs": 200, "schedule": {"milestones": [160, 180], "start": 45, "t0": 5}},
           "method": {"start_epoch": 160, "sl": {"warmup": 10, "pseudo_reset_epoch": None},
                      "loss_args": {"drw_epoch": 160}, "args": {"estimate_epoch": 400, "tau": 2.0}},
           "ema": {"freeze_epoch": 150}}
    o = shorten(cfg, 20)
    d: dict = {}
    for x in o:
        apply_override(d, x)
    assert d["optim"]["epochs"] == 20
    assert d["optim"]["schedule"] == {"milestones": [16, 18], "start": 4, "t0": 1}
    assert d["method"]["start_epoch"] == 16 and d["method"]["sl"] == {"warmup": 1}
    assert d["method"]["loss_args"] == {"drw_epoch": 16} and d["ema"] == {"freeze_epoch": 15}
    assert "args" not in d["method"]          # 400 >= 200: "never" stays never (400 unchanged), tau is no epoch
    # a phase that starts within the run still starts within it, even when very short; lr milestones
    # are rounded to the nearest epoch
    d2: dict = {}
    for x in shorten(cfg, 2):
        apply_override(d2, x)
    assert d2["method"]["start_epoch"] == 1 and d2["optim"]["schedule"]["milestones"] == [2, 2]   # 1.6, 1.8
    with pytest.raises(CmwnetError):
        shorten(cfg, 0)


def test_slots():
    s = make_slots("0,1", per_gpu=3)
    assert [x.gpu for x in s] == ["0", "0", "0", "1", "1", "1"]
    assert s[4].env()["CUDA_VISIBLE_DEVICES"] == "1"
    c = make_slots(None, jobs=2, threads=3)
    assert len(c) == 2 and all(x.gpu is None and x.env()["OMP_NUM_THREADS"] == "3" for x in c)
    with pytest.raises(CmwnetError):
        make_slots("0", per_gpu=0)


def test_mean_std_by_hand():
    m, s = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and s == pytest.approx(math.sqrt(5 / 3))     # sample std, ddof = 1
    m1, s1 = mean_std([7.0])
    assert m1 == 7.0 and math.isnan(s1)


def test_load_results_on_hand_made_files(tmp_path):
    for seed, best, last in ((1, 90.0, 89.0), (2, 92.0, 90.0)):
        d = tmp_path / "set" / "row" / f"s{seed}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"seed": seed, "best_top1": best, "last_top1": last}))
    (tmp_path / "set" / "row" / "s3").mkdir()   # started, not finished: no result
    res = load_results(str(tmp_path), [f"set/row/s{i}" for i in (1, 2, 3)])
    assert sorted(res) == ["set/row/s1", "set/row/s2"]
    assert mean_std([r["best_top1"] for r in res.values()]) == (91.0, pytest.approx(math.sqrt(2)))


def test_runner_skips_finished_and_reruns_only_unfinished(tmp_path):
    out = str(tmp_path)
    cells = [digits_cell("a/s0", 0), digits_cell("a/s1", 1), digits_cell("b/s0", 0, lr=0.05)]
    slots = make_slots(None, jobs=1, threads=1)
    rep = run_cells(cells, out, slots, mode="worker", echo=lambda s: None)
    assert rep.ok and rep.count("ran") == 3
    mtimes = {c.name: os.path.getmtime(os.path.join(out, c.name, "result.json")) for c in cells}
    rep2 = run_cells(cells, out, slots, mode="worker", echo=lambda s: None)
    assert rep2.count("skipped") == 3 and rep2.count("ran") == 0
    # an interruption after the last checkpoint but before result.json: only that cell reruns (resumes)
    os.remove(os.path.join(out, "a/s1", "result.json"))
    assert cell_state(cells[1], out) == "partial"
    rep3 = run_cells(cells, out, slots, mode="subprocess", echo=lambda s: None)
    assert rep3.statuses["a/s1"].status == "ran" and rep3.count("skipped") == 2
    for c in (cells[0], cells[2]):
        assert os.path.getmtime(os.path.join(out, c.name, "result.json")) == mtimes[c.name]
    # a folder holding another config is a conflict, never overwritten
    other = digits_cell("a/s0", 0, lr=0.3)
    rep4 = run_cells([other], out, slots, echo=lambda s: None)
    assert rep4.statuses["a/s0"].status == "conflict" and not rep4.ok
    assert os.path.getmtime(os.path.join(out, "a/s0", "result.json")) == mtimes["a/s0"]


def test_two_table_runs_into_one_folder_share_the_cells_without_phantom_failures(tmp_path):
    import threading

    out = str(tmp_path)
    cells = [digits_cell("a/s0", 0), digits_cell("a/s1", 1), digits_cell("b/s0", 0, lr=0.05)]
    reports = {}

    def one(key):
        reports[key] = run_cells(cells, out, make_slots(None, jobs=1, threads=1), mode="subprocess",
                                 echo=lambda s: None, handle_signals=False)

    threads = [threading.Thread(target=one, args=(k,)) for k in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    x, y = reports["x"], reports["y"]
    assert x.ok and y.ok and x.count("failed") == y.count("failed") == 0, (x.statuses, y.statuses)
    for c in cells:
        assert os.path.exists(os.path.join(out, c.name, "result.json"))
        assert "ran" in {x.statuses[c.name].status, y.statuses[c.name].status}
        with open(os.path.join(out, c.name, "metrics.jsonl")) as f:
            assert [json.loads(line)["epoch"] for line in f] == [0, 1], "each cell trained once, no epoch twice"


def test_runner_rejects_bad_cells(tmp_path):
    bad = digits_cell("x", 0)
    bad.overrides.append("optim.lrr=0.1")
    with pytest.raises(CmwnetError, match="cell x: unknown config key 'optim.lrr'"):
        run_cells([bad], str(tmp_path), make_slots(jobs=1), echo=lambda s: None)
    with pytest.raises(CmwnetError, match="unique"):
        run_cells([digits_cell("x"), digits_cell("x")], str(tmp_path), make_slots(jobs=1), echo=lambda s: None)


LONG_EPOCHS = 40
SCRIPT = textwrap.dedent("""
    import sys
    from cmwnet.paper.runner import make_slots, run_cells
    sys.path.insert(0, {tests!r})
    from test_runner import LONG_EPOCHS, digits_cell
    cells = [digits_cell("quick/s0", 0, epochs=1), digits_cell("long/s0", 0, epochs=LONG_EPOCHS)]
    rep = run_cells(cells, {out!r}, make_slots(jobs=1, threads=1), mode={mode!r})
    print("STATUS", {{n: s.status for n, s in rep.statuses.items()}}, rep.interrupted, flush=True)
""")


@pytest.mark.parametrize("mode", ["worker", pytest.param("subprocess", marks=pytest.mark.slow)])
def test_interrupted_table_run_keeps_finished_cells_and_resumes_the_rest(tmp_path, mode):
    out = str(tmp_path / "runs")
    script = SCRIPT.format(tests=os.path.dirname(__file__), out=out, mode=mode)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    long_metrics = os.path.join(out, "long/s0", "metrics.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline:   # wait until the quick cell finished and the long one has epochs behind it
        if os.path.exists(os.path.join(out, "quick/s0", "result.json")) and os.path.exists(long_metrics):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert "'quick/s0': 'ran'" in text and "'long/s0': 'interrupted'" in text and text.rstrip().endswith("True"), text
    assert not os.path.exists(os.path.join(out, "long/s0", "result.json"))
    assert os.path.exists(os.path.join(out, "long/s0", "checkpoint.pt"))
    quick_mtime = os.path.getmtime(os.path.join(out, "quick/s0", "result.json"))
    # rerun: the finished cell is skipped, the interrupted one resumes from its checkpoint and finishes
    cells = [digits_cell("quick/s0", 0, epochs=1), digits_cell("long/s0", 0, epochs=LONG_EPOCHS)]
    rep = run_cells(cells, out, make_slots(jobs=1, threads=1), mode=mode, echo=lambda s: None)
    assert rep.statuses["quick/s0"].status == "skipped" and rep.statuses["long/s0"].status == "ran"
    assert os.path.getmtime(os.path.join(out, "quick/s0", "result.json")) == quick_mtime
    with open(os.path.join(out, "logs", "long__s0.log")) as f:
        assert "resuming" in f.read()
    with open(long_metrics) as f:
        assert [json.loads(line)["epoch"] for line in f] == list(range(LONG_EPOCHS))
