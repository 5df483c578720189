"""`python -m cmwnet.paper.study`: the grids behind the README's weighting table, and the per-sample
meta-gradient diagnostic."""
import json

from cmwnet.paper import study


def test_grids_cover_the_settings_the_readme_reports():
    digits = study.digits_grid()
    assert len(digits) == 1 + 18 + 8
    assert {"sum/start5/init_0.9", "mean/start0/init_authors", "sum_detached/start5/init_0.5"} <= set(digits)
    cells = study.study_cells("digits", (0, 1, 2))
    assert len(cells) == 3 * len(digits) and len({c.name for c in cells}) == len(cells)
    assert all("data.val_size=250" in c.overrides for c in cells)          # chosen on held-out data
    assert "sum/start5/init_0.9" in study.cifar_grid()


def test_signal_reports_the_meta_gradient_by_loss_quintile(tmp_path, capsys):
    out = tmp_path / "sig.json"
    argv = ["signal", "--config", study.os.path.join(study.CONFIG_DIR, "digits_cmwnet.yaml"), "--epochs", "2",
            "--out", str(tmp_path), "--json", str(out), "--set", "method.name=mwnet",
            "--set", "data.noise={kind: sym, rate: 0.4}", "--set", "data.imbalance=1"]
    assert study.main(argv) == 0
    r = json.loads(out.read_text())
    for norm in ("mean", "sum"):
        assert 0.0 <= r[norm]["auc_wants_up_clean"] <= 1.0
        bins = r[norm]["by_loss_quintile"]
        assert len(bins) == 5 and [b["loss_from"] for b in bins] == sorted(b["loss_from"] for b in bins)
    assert "fraction clean" in capsys.readouterr().out
