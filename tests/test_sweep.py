"""Sweeps over own configs (issue 19 item 3): a grid of runs, resumable, one mean ± std table and one curves PNG."""
import csv
import json
import os

import numpy as np
import pytest

from cmwnet.errors import CmwnetError
from cmwnet.resources import config_file
from cmwnet.tools import sweep

CFG = config_file("digits_cmwnet.yaml")
SHORT = ["--set", "optim.epochs=3", "--set", "method.start_epoch=1", "--set", "run.plot=false",
         "--launch", "inprocess", "--threads", "1"]


def test_grid_values_split_at_top_level_commas_only():
    assert sweep.split_values("erm,cmwnet") == ["erm", "cmwnet"]
    assert sweep.split_values("[60,80], [100,150]") == ["[60,80]", "[100,150]"]
    assert sweep.split_values("'a,b',c") == ["'a,b'", "c"]


@pytest.mark.parametrize("grid, sets, says", [
    (["method.name"], [], "KEY=V1,V2"),
    (["optim.lr=0.1,,0.2"], [], "non-empty values"),
    (["seed=1,1"], [], "repeated"),
    (["seed=1", "seed=2"], [], "given twice"),
    (["seed=one,two"], [], "integers"),
    (["optim.lr=0.1,0.2"], ["optim.lr=0.3"], "both in --grid and in --set"),
])
def test_a_bad_grid_is_one_line_naming_the_fix(grid, sets, says):
    with pytest.raises(CmwnetError, match=says):
        sweep.parse_grid(grid, sets)


def test_a_typo_in_a_grid_key_fails_before_any_run(tmp_path):
    with pytest.raises(CmwnetError, match="optim.lrr"):
        sweep.main(["--config", CFG, "--grid", "optim.lrr=0.1,0.2", "--out", str(tmp_path)] + SHORT)
    assert not any(p.name.startswith("lrr") for p in tmp_path.iterdir())


def test_settings_are_named_by_their_grid_values_and_seeds_by_s_number():
    axes = sweep.parse_grid(["method.name=erm,cmwnet", "optim.lr=0.1,0.05", "seed=3,4"], [])
    cells, rows = sweep.make_cells(CFG, [], axes, "digits_cmwnet")
    assert [c.name for c in cells][:3] == ["method-erm__lr-0.1/s3", "method-erm__lr-0.1/s4", "method-erm__lr-0.05/s3"]
    assert len(cells) == 8 and [r.labels for r in rows][-1] == {"method": "cmwnet", "lr": "0.05"}
    assert "seed=4" in cells[1].overrides and "optim.lr=0.1" in cells[1].overrides
    # two keys with one last part keep their whole names
    axes = sweep.parse_grid(["optim.lr=0.1", "meta.lr=0.001,0.01"], [])
    assert sweep.make_cells(CFG, [], axes, "x")[0][0].name == "optim.lr-0.1__meta.lr-0.001/s0"   # the config's own seed


def test_a_sweep_trains_every_cell_tables_mean_and_std_and_resumes(tmp_path, capsys):
    out = str(tmp_path / "sw")
    args = ["--config", CFG, "--grid", "method.name=erm,cmwnet", "--grid", "seed=1,2", "--out", out] + SHORT
    assert sweep.main(args) == 0
    names = ["method-erm/s1", "method-erm/s2", "method-cmwnet/s1", "method-cmwnet/s2"]
    last = {}
    for n in names:
        with open(os.path.join(out, n, "result.json")) as f:
            r = json.load(f)
        assert r["method"] == n.split("/")[0].split("-")[1] and r["seed"] == int(n[-1])
        last[n] = r["last_top1"]
    with open(os.path.join(out, "sweep.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["erm", "cmwnet"]
    for r in rows:
        values = [last[f"method-{r['method']}/s{s}"] for s in (1, 2)]
        assert float(r["last_top1_mean"]) == pytest.approx(np.mean(values))
        assert float(r["last_top1_std"]) == pytest.approx(np.std(values, ddof=1))
        assert r["last_top1_n"] == "2"
    assert rows[0]["weight_auc_mean"] == ""          # ERM weighs nothing
    assert 0.0 <= float(rows[1]["weight_auc_mean"]) <= 1.0   # CMW-Net's weights are ranked against the noise
    md = open(os.path.join(out, "sweep.md")).read()
    m, s = np.mean([last["method-cmwnet/s1"], last["method-cmwnet/s2"]]), np.std(
        [last["method-cmwnet/s1"], last["method-cmwnet/s2"]], ddof=1)
    assert f"| cmwnet | 2 | {m:.2f} ± {s:.2f} |" in md
    assert os.path.getsize(os.path.join(out, "sweep_curves.png")) > 10_000
    capsys.readouterr()
    assert sweep.main(args) == 0                       # a rerun trains nothing and writes the same table
    assert "4 skipped" in capsys.readouterr().out
    assert open(os.path.join(out, "sweep.md")).read() == md


def test_a_changed_config_under_an_existing_sweep_is_refused_not_overwritten(tmp_path, capsys):
    out = str(tmp_path / "sw")
    base = ["--config", CFG, "--grid", "method.name=erm", "--out", out] + SHORT
    assert sweep.main(base) == 0
    with open(os.path.join(out, "method-erm", "s0", "result.json")) as f:
        before = f.read()
    tables = {name: open(os.path.join(out, name), "rb").read() for name in ("sweep.md", "sweep.csv", "sweep_curves.png")}
    capsys.readouterr()
    assert sweep.main(base + ["--set", "optim.lr=0.01"]) == 1
    captured = capsys.readouterr()
    assert "conflict" in captured.out
    with open(os.path.join(out, "method-erm", "s0", "result.json")) as f:
        assert f.read() == before
    # the first sweep's table stays as it was (it used to be rewritten with the first sweep's run, then with empty
    # rows), and the advice is another --out, not "rerun the same command" (which never could finish it)
    assert all(open(os.path.join(out, name), "rb").read() == data for name, data in tables.items())
    assert "its own --out" in captured.err and "left as they are" in captured.err
    assert "rerun the same command" not in captured.err


def test_the_table_title_shows_every_set(tmp_path):
    out = str(tmp_path / "sw")
    assert sweep.main(["--config", CFG, "--grid", "method.name=erm", "--out", out, "--set", "optim.lr=0.01"] + SHORT) == 0
    with open(os.path.join(out, "sweep.md")) as f:
        assert "optim.lr=0.01" in f.read()


def test_dry_run_lists_the_commands_and_trains_nothing(tmp_path, capsys):
    out = str(tmp_path / "sw")
    assert sweep.main(["--config", CFG, "--grid", "seed=1,2,3", "--out", out, "--dry-run"] + SHORT) == 0
    text = capsys.readouterr().out
    assert text.count("[new] python -m cmwnet.train") == 3 and "3 runs (1 settings x 3 seeds)" in text
    assert not os.path.exists(out)
