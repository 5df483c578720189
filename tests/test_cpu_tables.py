"""The cpu scale of the paper's tables (`--scale cpu`): the same table with CPU settings and rows, a valid config
per cell, one-line errors for tables without it, the ranking against the paper's, and a smoke run end to end."""
import csv
import os
import subprocess
import sys

import pytest

from cmwnet.errors import CmwnetError
from cmwnet.paper.cpu_tables import CPU_SCALES
from cmwnet.paper.ranking import kendall_tau_b, rank_setting, ranks
from cmwnet.paper.registry import get_table

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _cfg(number, name, tmp_path):
    t = get_table(number, "cpu")
    cell = next(c for c in t.cells(seeds=(1,), data_root="data", noise_dir=str(tmp_path)) if c.name == name)
    return cell.resolve(str(tmp_path))


@pytest.mark.parametrize("number", sorted(CPU_SCALES))
def test_every_cpu_row_of_the_table_is_run_on_cifar10(number, tmp_path):
    paper, cpu = get_table(number), get_table(number, "cpu")
    assert [r.key for r in cpu.rows] == [r.key for r in paper.rows]          # same rows, same order
    assert {r.key for r in cpu.run_rows()} == {r.key for r in paper.run_rows()}
    assert cpu.paper == paper.paper and cpu.scale == "cpu" and paper.scale == "paper"
    assert all(s.dataset == "cifar10" for s in cpu.settings)
    cells = cpu.cells(seeds=(1, 2), data_root="data", noise_dir=str(tmp_path))
    assert len(cells) == len(cpu.settings) * len(cpu.run_rows()) * 2
    for c in cells:
        cfg = c.resolve(str(tmp_path))
        assert cfg.model.name in ("resnet8", "sade_resnet8"), c.name
        assert cfg.optim.epochs == 20 and cfg.data.val_size == 5000, c.name


def test_cpu_cells_carry_the_cpu_schedule(tmp_path):
    ldam = _cfg(1, "cifar10_if100/ldam/s1", tmp_path)
    assert ldam.method.loss_args == {"drw_epoch": 16, "drw_mean": "weighted"} and ldam.model.args == {"normed_fc": True}
    for row in ("mwnet", "cmwnet_ce", "cmwnet_ldam", "cmwnet_sade"):   # every learned weighting alike but MCW
        wn = _cfg(1, f"cifar10_if100/{row}/s1", tmp_path).method.weight_net
        assert (wn.lr, wn.weight_decay) == (3e-3, 0.0), row
    for row in ("mcw_ce", "mcw_ldam"):   # one curve per class: a lower lr, chosen on val
        wn = _cfg(1, f"cifar10_if100/{row}/s1", tmp_path).method.weight_net
        assert (wn.lr, wn.weight_decay) == (1e-3, 0.0), row
    assert _cfg(1, "cifar10_if100/l2rw/s1", tmp_path).method.start_epoch == 16
    assert ldam.optim.schedule.milestones == [16, 18] and ldam.data.imbalance == 100
    assert _cfg(1, "cifar10_if100/sade/s1", tmp_path).model.name == "sade_resnet8"
    l2rw = _cfg(2, "cifar10_asym0.4/l2rw/s1", tmp_path)
    assert (l2rw.method.interval, l2rw.method.start_epoch, l2rw.data.meta.kind, l2rw.data.meta.per_class) == \
        (1, 5, "clean", 10)
    cmw = _cfg(2, "cifar10_sym0.4/cmwnet/s1", tmp_path)
    assert (cmw.method.interval, cmw.method.normalize, cmw.data.noise.rate, cmw.data.train_subset) == \
        (5, "sum", 0.4, 10000)
    sl = _cfg(2, "cifar10_sym0.4/cmwnet_sl/s1", tmp_path)
    assert (sl.data.meta.kind, sl.ema.decay, sl.method.sl.warmup) == ("lowest_loss", 0.99, 5)
    assert _cfg(2, "cifar10_sym0.4/forward/s1", tmp_path).method.args["estimate_epoch"] == 10


def test_a_table_without_a_cpu_scale_is_a_one_line_error():
    with pytest.raises(CmwnetError, match="table 3 has no cpu scale yet"):
        get_table(3, "cpu")
    with pytest.raises(CmwnetError, match="is not a scale"):
        get_table(1, "gpu")


def test_kendall_tau_b_by_hand():
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # one swapped pair of 6: (5 - 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # a tie on one side: tau-b = (C - D) / sqrt((C + D + Tx)(C + D + Ty)) = (2 - 0) / sqrt(3 * 2)
    assert kendall_tau_b([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / 6 ** 0.5)
    assert kendall_tau_b([1], [1]) is None and kendall_tau_b([1, 1], [2, 3]) is None


def test_rank_setting_names_the_disagreeing_pairs():
    # error: lower is better. The paper has a < b < c; we have b best, then a, then c
    rk = rank_setting("s", {"a": 20.0, "b": 10.0, "c": 30.0, "extra": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}, False)
    assert rk.n == 3 and rk.disagree == [("a", "b")] and rk.tau == pytest.approx(1 / 3)
    assert rk.ours == {"a": 2, "b": 1, "c": 3} and rk.paper == {"a": 1, "b": 2, "c": 3}
    assert ranks({"x": 5.0, "y": 5.0, "z": 1.0}, True) == {"x": 1, "y": 1, "z": 3}
    assert rank_setting("s", {"a": 1.0}, {"a": 1.0}, True).tau is None


def test_table1_cpu_smoke_end_to_end(tmp_path):
    """`table1.sh --scale cpu --smoke`: every CPU row trains on generated data; the report ranks them against the
    paper's, lists the per-class accuracy of the long tail and writes both into the CSV."""
    script = os.path.join(ROOT, "section4", "Class_Imbalance", "table1.sh")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", script, "--scale", "cpu", "--smoke", "--out", str(tmp_path), "--jobs", "2"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Finished: 12 of 12 cells" in p.stdout
    assert "Kendall's tau-b" in p.stdout and "tau = " in p.stdout
    assert "Test top-1 per class at the last epoch" in p.stdout and "| tail (3) |" in p.stdout
    # SADE's aggregation is kept only where val top-1 does not drop (aggregate: val), and the report says which
    assert sum("val top-1 with the learned expert weights" in x and "kept " in x for x in p.stdout.splitlines()) == 2
    with open(tmp_path / "table1.csv") as f:
        rows = list(csv.DictReader(f))
    run = [r for r in rows if r["status"] == "run"]
    assert len(run) == 12 and all(r["kendall_tau"] != "" and r["rank_ours"] != "" for r in run)
    assert all(len(r["class_last_top1"].split()) == 10 for r in run)
    assert sorted(int(r["rank_paper"]) for r in run) == sorted(int(r["rank_paper"]) for r in run)
    assert {r["ranked_epoch"] for r in run} == {"best"}


def test_table2_cpu_smoke_shows_what_each_row_learned(tmp_path):
    """Table 2 at CPU scale in smoke form: Forward's estimated T diagonal beside the realised one, the weight AUC
    of the reweighting rows, and a ranking per noise kind."""
    script = os.path.join(ROOT, "section4", "Feature-independent_Label_Noise", "table2.sh")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", script, "--scale", "cpu", "--smoke", "--out", str(tmp_path), "--jobs", "2",
                        "--filter", "/forward", "--filter", "/mwnet", "--filter", "/erm"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Finished: 6 of 14 cells" in p.stdout
    assert "What each row learned" in p.stdout
    forward = [x for x in p.stdout.splitlines() if ", Forward (" in x]
    assert len(forward) == 2 and all("estimated T diagonal" in x and "vs the realised" in x for x in forward)
    assert sum("MW-Net (1 seed): val top-1 (last)" in x and "weight AUC" in x for x in p.stdout.splitlines()) == 2
    assert p.stdout.count("tau = ") == 2     # one ranking per setting, at the last epoch (the paper does not say)
    assert "ours at the last epoch" in p.stdout


def test_table4_cpu_smoke_generates_its_noise_at_cpu_scale(tmp_path):
    """Table 4 at CPU scale in smoke form: PLC's posterior network (ResNet-8, the cells' held-out val) first, its
    label files, then the cells read them in their own order."""
    script = os.path.join(ROOT, "section4", "Feature-dependent_Label_Noise", "table4.sh")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", script, "--scale", "cpu", "--smoke", "--out", str(tmp_path), "--jobs", "2",
                        "--filter", "/erm", "--filter", "/cmwnet"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Finished: 6 of 10 cells" in p.stdout and "realised noise" in p.stdout
    import yaml

    post = yaml.safe_load((tmp_path / "noise_models" / "cifar10_posteriors" / "config.yaml").read_text())
    cell = yaml.safe_load((tmp_path / "cifar10_type3_0.70" / "erm" / "s1" / "config.yaml").read_text())
    assert post["model"]["name"] == "resnet8"
    for key in ("val_size", "train_subset", "split_seed"):   # the posterior net saw the cells' images
        assert post["data"][key] == cell["data"][key], key
    assert cell["data"]["noise"]["file"].endswith("cifar10-type3-0.70.npy")


def test_table4_cpu_cells_carry_the_lowest_loss_meta_set(tmp_path):
    cmw = _cfg(4, "cifar10_type1_0.35/cmwnet/s1", tmp_path)
    assert (cmw.data.meta.kind, cmw.data.meta.model, cmw.method.normalize, cmw.data.train_subset) == \
        ("lowest_loss", "model", "sum", 10000)
    t5 = get_table(5, "cpu")
    assert [s.key for s in t5.settings] == ["cifar10_type1_0.35+flip0.3"] and t5.posterior["model"]["name"] == "resnet8"


def test_fig9_cpu_smoke_draws_both_curves_at_two_rates(tmp_path):
    script = os.path.join(ROOT, "section7", "Partial-Label_Learning", "fig9.sh")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", script, "--scale", "cpu", "--smoke", "--out", str(tmp_path), "--jobs", "2"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (tmp_path / "fig9.png").exists() and (tmp_path / "fig9.md").exists()
    runs = sorted(str(q.relative_to(tmp_path).parent) for q in tmp_path.glob("*/*/s1/result.json"))
    assert runs == ["cifar10_q0.3/proden/s1", "cifar10_q0.3/proden_cmwnet/s1", "cifar10_q0.5/proden/s1",
                    "cifar10_q0.5/proden_cmwnet/s1"]
    import yaml

    cfg = yaml.safe_load((tmp_path / "cifar10_q0.5" / "proden_cmwnet" / "s1" / "config.yaml").read_text())
    assert cfg["name"] == "cpu_fig9" and cfg["data"]["partial"]["rate"] == 0.5
    with pytest.raises(CmwnetError, match="no rates for cifar100"):
        from cmwnet.paper.cli import main

        main(["run", "fig9", "--scale", "cpu", "--datasets", "cifar100", "--dry-run"])


def test_cpu_transfer_smoke_runs_the_frozen_weighting_beside_erm_and_in_place(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", os.path.join(ROOT, "section6", "cpu_transfer.sh"), "--smoke", "--out", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    import yaml

    cfg = yaml.safe_load((tmp_path / "cifar10_asym0.4" / "cmwnet_transfer" / "s1" / "config.yaml").read_text())
    assert cfg["method"]["weight_net"]["frozen"] is True and cfg["method"]["name"] == "cmwnet"
    assert cfg["method"]["weight_net"]["init"].endswith("cifar10_type1_0.35+flip0.3/cmwnet/s1/weight_net.pt")
    assert p.stdout.count("CMW-Net (transferred, frozen)") == 2 and "x ERM's time" in p.stdout
    assert "it keeps" in p.stdout or "n/a" in p.stdout
    assert (tmp_path / "transfer.md").exists()
    # without the source weightings, a one-line error says which command learns them
    q = subprocess.run(["bash", os.path.join(ROOT, "section6", "cpu_transfer.sh"), "--out", str(tmp_path / "none"),
                        "--data-root", str(tmp_path / "data" / "cifar-10-batches-py" / "..")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert q.returncode != 0 and "table5.sh --scale cpu" in q.stderr and "Traceback" not in q.stderr


# -- the full scale: Table 2 on all 45,000 images, the research notes' larger preset -----------------------------
def test_table2_full_scale_runs_the_presets_four_rows_on_all_images(tmp_path):
    """`table2.sh --scale full`: the four rows the full preset ran, one seed, all 45,000 images after the val
    split, 25 epochs, forward-mode meta-gradient, each row's meta set and schedule as the preset had them (the
    rows' paper settings, one meta step per iteration and `mean` normalisation, put back to the preset's)."""
    t = get_table(2, "full")
    assert t.scale == "full" and [r.key for r in t.run_rows()] == ["erm", "mwnet", "cmwnet", "cmwnet_sl"]
    skipped = {r.key: r.source for r in t.rows if r.status == "not_reproduced"}
    assert set(skipped) == {"forward", "gce", "l2rw"} and all("cpu scale" in why for why in skipped.values())
    cells = {c.name: c.resolve(str(tmp_path)) for c in t.cells(seeds=(1,), data_root="data", noise_dir=str(tmp_path))}
    assert len(cells) == 8
    for name, cfg in cells.items():
        assert (cfg.data.train_subset, cfg.data.val_size, cfg.optim.epochs, cfg.method.meta_grad) == \
            (None, 5000, 25, "forward"), name
        assert cfg.data.noise.kind == name.split("_")[1].split("0.4")[0] and cfg.data.noise.rate == 0.4
    mw, cmw = cells["cifar10_sym0.4/mwnet/s1"], cells["cifar10_asym0.4/cmwnet/s1"]
    for cfg in (mw, cmw):
        assert (cfg.method.interval, cfg.method.normalize, cfg.data.meta.kind, cfg.data.meta.per_class) == \
            (5, "sum", "clean", 10)
        assert (cfg.method.weight_net.lr, cfg.method.weight_net.weight_decay, cfg.ema.decay) == (1e-3, 1e-4, 0.0)
    assert (mw.method.start_epoch, cmw.method.start_epoch) == (0, 5)
    sl = cells["cifar10_sym0.4/cmwnet_sl/s1"]
    assert (sl.data.meta.kind, sl.data.meta.model, sl.ema.decay, sl.ema.bn) == ("lowest_loss", "ema", 0.99, "own")
    with pytest.raises(CmwnetError, match="table 1 has no full scale"):
        get_table(1, "full")


def test_the_full_scale_defaults_to_its_own_folder_and_one_seed(capsys):
    from cmwnet.paper.cli import main

    assert main(["run", "2", "--scale", "full", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "run.out=" in out and os.path.join("runs", "cpu_full") in out
    assert "seed=1" in out and "seed=2" not in out and "# total: 8 cells" in out


def test_the_tables_4_5_posterior_learns_on_the_45k_and_the_cells_read_their_10k(tmp_path):
    """PLC's posterior network at CPU scale trains on all 45,000 images left after the cells' val split; its
    label file holds one label per image of that split and the 10,000-image cells read theirs (the "split"
    form)."""
    from cmwnet.paper.tables import posterior_cells

    t = get_table(4, "cpu")
    post = posterior_cells(t, t.settings, "data", smoke=False)["cifar10"].config
    cell = _cfg(4, "cifar10_type1_0.35/erm/s1", tmp_path)
    assert post["data"]["train_subset"] is None and cell.data.train_subset == 10000
    assert post["data"]["val_size"] == cell.data.val_size == 5000
    assert post["data"].get("split_seed", 0) == cell.data.split_seed
    assert post["optim"]["epochs"] == 30 and post["optim"]["schedule"]["milestones"] == [20, 26]


def test_the_old_cpu_preset_command_names_its_successor():
    p = subprocess.run([sys.executable, "-m", "cmwnet.paper.cpu_scale", "--scale", "full"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "moved: use python -m cmwnet.paper run 2 --scale full" in p.stderr


def test_settings_picks_other_cifar10_settings_at_cpu_scale_with_the_same_schedule(tmp_path):
    """A reviewer's check on a setting no issue names: `--settings cifar10_if50` trains IF 50 with Table 1's CPU
    schedule, rows and paper numbers; the title says which settings it holds."""
    t = get_table(1, "cpu", ["cifar10_if50", "cifar10_if10"])
    assert [s.key for s in t.settings] == ["cifar10_if50", "cifar10_if10"] and "IF 50, IF 10" in t.title
    cell = next(c for c in t.cells(seeds=(1,), data_root="data", noise_dir=str(tmp_path))
                if c.name == "cifar10_if50/cmwnet_ce/s1")
    cfg = cell.resolve(str(tmp_path))
    assert cfg.data.imbalance == 50 and cfg.model.name == "resnet8" and cfg.optim.epochs == 20
    assert (cfg.method.weight_net.lr, cfg.method.weight_net.weight_decay) == (3e-3, 0.0)
    assert t.paper[("cmwnet_ce", "cifar10_if50")] == get_table(1).paper[("cmwnet_ce", "cifar10_if50")]
    sym = get_table(2, "cpu", ["cifar10_sym0.6"])
    cfg = next(c for c in sym.cells(seeds=(1,), data_root="data", noise_dir=str(tmp_path))
               if c.name == "cifar10_sym0.6/cmwnet/s1").resolve(str(tmp_path))
    assert (cfg.data.noise.kind, cfg.data.noise.rate, cfg.method.interval, cfg.data.train_subset) == \
        ("sym", 0.6, 5, 10000)
    assert [s.key for s in get_table(4, "paper", ["cifar100_type1_0.35"]).settings] == ["cifar100_type1_0.35"]


@pytest.mark.parametrize("args, message", [
    ((1, "cpu", ["cifar100_if50"]), "offline CIFAR-10 copy only"),
    ((1, "cpu", ["cifar10_if7"]), "table 1 has no such setting; its settings are cifar10_if200"),
    ((2, "paper", ["sym0.4"]), "table 2 has no such setting"),
    ((6, "paper", ["webvision"]), "applies to Tables 1-5, not to 6"),
    (("fig9", "cpu", ["cifar10_q0.3"]), "use --datasets and --rates"),
])
def test_settings_that_cannot_be_run_are_one_line_errors(args, message):
    with pytest.raises(CmwnetError, match=message):
        get_table(*args)


def test_report_settings_reads_a_folder_of_other_settings(tmp_path, capsys):
    """`report 1 OUT --scale cpu --settings cifar10_if50` prints the IF 50 runs (a folder without IF 100 runs used
    to read as holding no table)."""
    from cmwnet.paper.cli import main
    from tests.test_paper_cli import fake_run

    for seed in (1, 2):
        fake_run(str(tmp_path / "cifar10_if50" / "erm" / f"s{seed}"), 60.0 + seed)
    with pytest.raises(CmwnetError, match="no finished run of table 1"):
        main(["report", "1", str(tmp_path), "--scale", "cpu", "--no-figure"])
    assert main(["report", "1", str(tmp_path), "--scale", "cpu", "--settings", "cifar10_if50", "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert "IF 50" in text and "38.50 ± 0.71" in text
    with pytest.raises(CmwnetError, match="needs one table"):
        main(["report", "all", str(tmp_path), "--settings", "cifar10_if50"])
    with pytest.raises(CmwnetError, match="needs a table"):
        main(["list", "--settings", "cifar10_if50"])


def test_fig9_cpu_marks_the_switch_where_its_config_makes_it():
    """The figure's dashed switch line and the config's CMW-Net start are one epoch (chosen on val: 14)."""
    import yaml

    from cmwnet.paper.partial_figure import CPU_SWITCH_EPOCH, figure9

    with open(os.path.join(ROOT, "cmwnet", "configs", "cpu_fig9.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert cfg["method"]["start_epoch"] == CPU_SWITCH_EPOCH == figure9(scale="cpu").switch_epoch == 14
