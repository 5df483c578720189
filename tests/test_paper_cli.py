"""The paper wing's one command line: `report N OUT` prints every table (1-10) and Fig. 9 from a folder
of runs; the old `python -m cmwnet.X` names still work; section scripts keep the caller's directory."""
import csv
import json
import os
import subprocess
import sys

import pytest

from cmwnet.paper.cli import main
from cmwnet.paper.registry import KEYS, get_table, kind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_run(folder, top1: float, epochs: int = 3) -> None:
    """A finished run as the engine leaves it: metrics.jsonl (one line per epoch), result.json last."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for e in range(epochs):
            v = top1 - (epochs - 1 - e)
            f.write(json.dumps({"epoch": e, "test_top1": v, "test_top5": v + 10, "ema_top1": v - 0.5,
                                "ema_top5": v + 9, "imagenet_top1": v - 5, "imagenet_top5": v + 5,
                                "imagenet_ema_top1": v - 6, "imagenet_ema_top5": v + 4}) + "\n")
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump({"best_top1": top1, "last_top1": top1, "best_top5": top1 + 10, "last_top5": top1 + 10,
                   "seed": int(os.path.basename(folder)[1:])}, f)


def fabricate(spec, out) -> None:
    """Two seeds of the first setting x first row we run (Fig. 9: both methods at one rate)."""
    if kind(spec) == "figure":
        for method in [r.key for r in spec.rows]:
            for seed in (1, 2):
                fake_run(os.path.join(out, "cifar10_q0.3", method, f"s{seed}"), 60.0 + seed)
        return
    s, r = spec.settings[0], spec.run_rows()[0]
    for seed in (1, 2):
        fake_run(os.path.join(out, s.key, r.key, f"s{seed}"), 70.0 + seed)


@pytest.mark.parametrize("key", KEYS)
def test_report_prints_every_table_from_a_folder_of_runs(key, tmp_path, capsys):
    spec = get_table(key)
    fabricate(spec, str(tmp_path))
    assert main(["report", key, str(tmp_path), "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert spec.title.split(":")[0] in text
    if kind(spec) == "figure":
        assert "| CIFAR-10 | 0.3 | 61.50 / 61.50 | 61.50 / 61.50 | +0.00 |" in text
        assert (tmp_path / "fig9.png").exists()
    else:
        assert "71.50 ± 0.71" in text or "28.50 ± 0.71" in text   # mean ± std of seeds 1, 2 (error = 100 - acc)
    # issue 18: every table and Fig. 9 writes its CSV, one line per cell (and per number for Tables 6-10)
    with open(tmp_path / f"{spec.stem}.csv") as f:
        lines = list(csv.DictReader(f))
    settings = 1 if kind(spec) == "figure" else len(spec.settings)   # Fig. 9: the rates that ran
    assert len(lines) == settings * len(spec.rows) * (len(spec.columns) if spec.select else 1)
    mean = "ours_mean" if spec.select else "best_mean"
    ours = [line for line in lines if line[mean]]
    assert ours and {line["n_seeds"] for line in ours} == {"2"}, ours


def test_report_all_finds_the_tables_in_a_folder(tmp_path, capsys):
    for key in ("1", "6"):
        fabricate(get_table(key), str(tmp_path))
    assert main(["report", "all", str(tmp_path), "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert "Table 1:" in text and "Table 6:" in text and "Table 7:" not in text


def test_options_a_table_does_not_use_are_refused(tmp_path):
    from cmwnet.errors import CmwnetError

    with pytest.raises(CmwnetError, match="--weight-net does not apply to table 1"):
        main(["run", "1", "--weight-net", "x.pt", "--dry-run", "--out", str(tmp_path)])


def test_old_module_names_say_the_new_one():
    """Issue 18: the root-level aliases are gone; an old name prints the new command in one line and exits 2."""
    for old, new in (("cmwnet.tables", "python -m cmwnet.paper"), ("cmwnet.report", "python -m cmwnet.paper report"),
                     ("cmwnet.partial_figure", "python -m cmwnet.paper run fig9"),
                     ("cmwnet.bench", "python -m cmwnet.tools.bench")):
        p = subprocess.run([sys.executable, "-m", old, "list"], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert p.returncode == 2 and p.stderr.strip() == f"moved: use {new} ({old} is gone)", (old, p.stderr[-1000:])
    with pytest.raises(ImportError, match="moved: use python -m cmwnet.tools.demo"):
        import cmwnet.demo  # noqa: F401
    for argv in (["-m", "cmwnet.paper", "report", "--help"],
                 ["-m", "cmwnet.paper", "run", "fig9", "--dry-run", "--smoke", "--datasets", "cifar10", "--rates", "0.3"]):
        p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert p.returncode == 0, (argv, p.stderr[-1000:])
    assert "fig9:" in subprocess.run([sys.executable, "-m", "cmwnet.paper", "list"], capture_output=True, text=True,
                                     timeout=120).stdout


def test_section_script_keeps_the_callers_directory(tmp_path):
    """A relative --out means the caller's folder, whichever section the script is in."""
    caller = tmp_path / "caller"
    caller.mkdir()
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    script = os.path.join(ROOT, "section5", "ANIMAL-10N", "table6.sh")
    p = subprocess.run(["bash", script, "--smoke", "--filter", "erm", "--out", "rel_out"], cwd=caller, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert (caller / "rel_out" / "table6.md").exists()
    assert (caller / "rel_out" / "animal10n" / "erm" / "s1" / "result.json").exists()
    assert not os.path.exists(os.path.join(ROOT, "rel_out"))
    # a section-4 script the same way (dry run: the runs' folder in every command)
    script = os.path.join(ROOT, "section4", "Class_Imbalance", "table1.sh")
    p = subprocess.run(["bash", script, "--dry-run", "--filter", "cifar10_if100/erm", "--out", "rel_out4"], cwd=caller,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-1000:]
    assert f"run.out={caller / 'rel_out4'}" in p.stdout


@pytest.mark.slow
def test_a_wheel_runs_table1_smoke_outside_the_checkout(tmp_path):
    """tools/wheel_check.sh: build the wheel, install it outside the repository, Table 1 --smoke (about 2 min)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHON"] = sys.executable
    p = subprocess.run(["bash", os.path.join(ROOT, "tools", "wheel_check.sh"), str(tmp_path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and "wheel check passed" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
