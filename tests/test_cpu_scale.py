"""`python -m cmwnet.paper.cpu_scale` (section4/cpu_scale.sh): every cell runs in --smoke form, the summary
holds every method with its accuracy beside its weight AUC, the targets are checked, and the figure exists."""
import csv
import os

import pytest

from cmwnet.errors import CmwnetError
from cmwnet.paper import cpu_scale


def test_smoke_runs_every_cell_and_writes_the_summary(tmp_path, capsys):
    out = tmp_path / "cpu"
    assert cpu_scale.main(["--smoke", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SMOKE RUN" in text
    for s in cpu_scale.SETTINGS:
        for r in s.rows:
            assert (out / s.key / r.key / "s1" / "result.json").exists(), (s.key, r.key)
    rows = {(r["setting"], r["method"]): r for r in csv.DictReader(open(out / "cpu_scale.csv"))}
    assert set(rows) == {(s.key, r.key) for s in cpu_scale.SETTINGS for r in s.rows}
    for key in (("noisy", "mwnet"), ("noisy", "cmwnet"), ("noisy", "cmwnet_sl")):
        assert 0.0 <= float(rows[key]["weight_auc_mean"]) <= 1.0     # accuracy and AUC side by side
        assert float(rows[key]["test_last_mean"]) >= 0.0
    assert rows[("noisy", "erm")]["weight_auc_mean"] == ""           # ERM has no weights
    assert rows[("lt", "cmwnet")]["weight_auc_mean"] == ""           # no label noise: no AUC
    assert text.count("noisy: ") >= 5 and "lt: cmwnet beats ERM" in text
    png = out / "cpu_scale_weighting.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second call skips every finished cell
    assert cpu_scale.main(["--smoke", "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().out


def test_cells_run_the_longest_first_and_the_dry_run_lists_commands(capsys, tmp_path):
    cells = cpu_scale.cells((1, 2), "DATA")
    assert len(cells) == 2 * sum(len(s.rows) for s in cpu_scale.SETTINGS)
    minutes = {f"{s.key}/{r.key}": r.minutes for s in cpu_scale.SETTINGS for r in s.rows}
    order = [minutes[c.name.rsplit("/", 1)[0]] for c in cells]
    assert order == sorted(order, reverse=True)
    assert all(os.path.exists(c.config) for c in cells)
    assert cpu_scale.main(["--dry-run", "--out", str(tmp_path), "--filter", "lt/"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and all("cmwnet.train" in x and "lt/" in x for x in lines)


def test_the_data_defaults_inside_the_checkout_and_a_missing_copy_says_where_to_get_it(tmp_path):
    """Issue 18: no default path outside the repository; a missing copy is one line naming its sources."""

    assert not os.path.isabs(cpu_scale.DEFAULT_DATA) and not cpu_scale.DEFAULT_DATA.startswith("..")
    with pytest.raises(CmwnetError, match=r"cifar10-jpeg\.npz.*--data-root PATH.*cs\.toronto\.edu"):
        cpu_scale.main(["--data-root", str(tmp_path / "nowhere.npz"), "--out", str(tmp_path / "out")])


def test_the_full_scale_runs_both_noise_kinds_and_checks_issue_15s_targets(tmp_path, capsys):
    """--scale full: the four methods at 40% symmetric and asymmetric noise, forward-mode meta-gradient, one
    seed, and every target of issue 15 (order, AUC, the regime) printed with its margin."""
    import yaml

    out = tmp_path / "full"
    assert cpu_scale.main(["--scale", "full", "--smoke", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for s in cpu_scale.FULL_SETTINGS:
        for r in s.rows:
            folder = out / s.key / r.key / "s1"
            cfg = yaml.safe_load(open(folder / "config.yaml"))
            assert cfg["data"]["noise"]["kind"] == s.key and cfg["data"]["train_subset"] is None
            assert cfg["method"]["meta_grad"] == "forward"
    for line in ("sym: cmwnet_sl > cmwnet", "sym: cmwnet >= mwnet", "asym: cmwnet > mwnet", "asym: mwnet > erm",
                 "asym: cmwnet weight AUC >= 0.8", "sym regime: ERM best - last >= 2",
                 "asym regime: EMA teacher (cmwnet_sl, last test top-1) > labels' accuracy"):
        assert line in text, line
    assert "lt: " not in text and "noisy: " not in text
    cells = cpu_scale.cells((1,), "DATA", settings=cpu_scale.with_modes(("forward", "exact"), cpu_scale.FULL_SETTINGS))
    assert {c.name for c in cells} >= {"sym/mwnet/s1", "sym/mwnet_exact/s1", "asym/cmwnet_sl_exact/s1"}


def test_diagnose_adds_each_method_with_the_other_meta_set_and_a_late_correction(tmp_path):
    """--diagnose (full scale only): MW-Net and CMW-Net with CMW-Net-SL's lowest-loss meta set (scored by the
    training net, as the authors' non-SL code does), CMW-Net-SL with their clean one, and on symmetric noise
    CMW-Net-SL correcting from epoch 13; the preset's own rows stay as they are."""
    settings = cpu_scale.with_diagnostics(cpu_scale.FULL_SETTINGS)
    cells = {c.name: c.resolve(str(tmp_path)) for c in cpu_scale.cells((1,), "DATA", settings=settings)}
    for s in ("sym", "asym"):
        for r in ("mwnet", "cmwnet"):
            own, swapped = cells[f"{s}/{r}/s1"], cells[f"{s}/{r}_lowest/s1"]
            assert (own.data.meta.kind, swapped.data.meta.kind) == ("clean", "lowest_loss")
            assert swapped.data.meta.model == "model" and swapped.method.name == own.method.name
            assert swapped.method.start_epoch == own.method.start_epoch
        sl, sl_clean = cells[f"{s}/cmwnet_sl/s1"], cells[f"{s}/cmwnet_sl_clean/s1"]
        assert (sl.data.meta.kind, sl_clean.data.meta.kind) == ("lowest_loss", "clean")
        assert sl_clean.ema == sl.ema and sl_clean.method.sl == sl.method.sl
    late = cells["sym/cmwnet_sl_late/s1"]
    assert late.method.sl.warmup == 13 and cells["sym/cmwnet_sl/s1"].method.sl.warmup == 5
    assert "asym/cmwnet_sl_late/s1" not in cells
    assert [r.key for r in settings[0].rows[:4]] == [r.key for r in cpu_scale.FULL_SETTINGS[0].rows]
    with pytest.raises(CmwnetError, match="--scale full"):
        cpu_scale.main(["--diagnose", "--dry-run"])


def test_diagnostic_checks_compare_like_with_like_and_skip_rows_not_run():
    table = {("sym", k): {"test_last": (v, float("nan")), "weight_auc": (auc, float("nan")), "n": 1}
             for k, v, auc in (("erm", 60.0, 0.5), ("cmwnet", 64.0, 0.9), ("cmwnet_sl", 63.0, 0.9),
                               ("cmwnet_lowest", 62.0, 0.7), ("mwnet_lowest", 61.0, 0.85))}
    lines = cpu_scale.diagnostic_checks(table)
    assert "[ met  ] sym [no clean data]: cmwnet_sl > cmwnet_lowest: 63.000 vs 62.000 (+1.000)" in lines
    assert "[MISSED] sym [no clean data]: cmwnet_lowest weight AUC >= 0.8: 0.700 vs 0.800 (-0.100)" in lines
    assert not any("cmwnet_sl_clean" in x or "late" in x or x.startswith("asym") or "n/a" in x for x in lines)


def test_diagnose_rows_train_in_smoke_form(tmp_path, capsys):
    out = tmp_path / "full"
    argv = ["--scale", "full", "--smoke", "--diagnose", "--out", str(out), "--filter", "sym/cmwnet_lowest",
            "--filter", "sym/mwnet_lowest", "--filter", "_late"]
    assert cpu_scale.main(argv) == 0
    text = capsys.readouterr().out
    assert "CMW-Net-SL [correction from epoch 13]" in text and "MW-Net [lowest-loss meta]" in text
    assert "sym [no clean data]: cmwnet_lowest > mwnet_lowest" in text
    assert (out / "asym" / "cmwnet_lowest" / "s1" / "result.json").exists()   # "sym/..." also matches "asym/..."
