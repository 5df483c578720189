"""`python -m cmwnet.studies`: the grids behind the README's weighting table, and the per-sample
meta-gradient diagnostic."""
import json

from cmwnet.studies import study


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
        classes = r[norm]["by_class"]
        assert [k["class"] for k in classes] == list(range(10)) and all(k["train_samples"] > 0 for k in classes)
        signals = [k["signal"] for k in classes]   # per-class means of a signal scaled to mean |signal| 1
        assert all(0.0 <= k["fraction_clean"] <= 1.0 for k in classes) and max(map(abs, signals)) < 10
    assert "fraction clean" in capsys.readouterr().out


def test_asymmetric_studies_use_the_same_grids_with_systematic_flips():
    for name, grid in (("digits_asym", study.digits_grid), ("cifar_asym", study.cifar_grid)):
        cells = study.study_cells(name, (1,))
        assert len(cells) == len(grid()) and all(c.name.startswith(name + "/") for c in cells)
        assert all(any(o.startswith("data.noise={kind: asym") for o in c.overrides) for c in cells)
    digits = study.study_cells("digits_asym", (0,))[0].overrides
    assert digits.index(study.DIGITS_ASYM) > digits.index("data.noise={kind: sym, rate: 0.4}")  # the later one wins


def test_class_breakdown_reads_final_weights(tmp_path, capsys):
    import numpy as np
    run = tmp_path / "r"
    run.mkdir()
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    clean = np.array([0, 0, 1, 1, 1, 0, 0])        # class 0: one mislabelled, class 1: two
    weights = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.7, 0.6])
    np.savez(run / "final_weights.npz", weights=weights, labels=labels, clean_labels=clean,
             losses=np.arange(7, dtype=float))
    rows = study.class_breakdown([str(run)])
    assert [r["class"] for r in rows] == [0, 1, "all"]
    assert rows[0]["auc"] == 1.0 and rows[1]["auc"] == 0.0        # class 1 ranks its mislabelled samples first
    # a low loss tells clean from mislabelled perfectly within each class, but not across them (10 of 12 pairs)
    assert rows[0]["loss_auc"] == rows[1]["loss_auc"] == 1.0 and abs(rows[2]["loss_auc"] - 10 / 12) < 1e-9
    assert abs(rows[2]["auc"] - 8 / 12) < 1e-9 and rows[2]["samples"] == 7
    assert abs(rows[1]["mislabelled"] - 0.5) < 1e-9 and rows[0]["w_mislabelled"] == 0.1
    assert study.main(["classes", str(run)]) == 0
    assert "low-loss AUC" in capsys.readouterr().out
    from cmwnet.errors import CmwnetError
    import pytest
    with pytest.raises(CmwnetError, match="no final_weights.npz"):
        study.class_breakdown([str(tmp_path)])


def test_signal_splits_by_task_family_for_cmwnet(tmp_path):
    out = tmp_path / "sig.json"
    argv = ["signal", "--config", study.os.path.join(study.CONFIG_DIR, "digits_cmwnet.yaml"), "--epochs", "2",
            "--out", str(tmp_path), "--json", str(out), "--set", "data.noise={kind: sym, rate: 0.4}"]
    assert study.main(argv) == 0
    r = json.loads(out.read_text())["sum"]
    families = r["by_family"]
    classes = sorted(k for f in families for k in f["classes"])
    assert len(families) >= 2 and classes == sorted(k["class"] for k in r["by_class"])   # a partition of the classes
    for f in families:
        assert len(f["by_loss_quintile"]) == 5 and all("within_class" in b for b in f["by_loss_quintile"])


def test_within_class_signal_removes_re_balancing_between_classes():
    import numpy as np
    # class 1 has the higher losses and is asked up as a whole; inside each class the signal is flat
    ell = np.r_[np.linspace(0.1, 1.0, 50), np.linspace(1.1, 2.0, 50)]
    ys = np.r_[np.zeros(50, int), np.ones(50, int)]
    g = np.where(ys == 1, 1.0, -1.0)
    within = g - np.array([-1.0, 1.0])[ys]
    s = study._signal_summary(ell, g, within, np.ones(100, bool) & (np.arange(100) % 3 > 0))
    alls = [b["all"] for b in s["by_loss_quintile"]]
    assert alls[0] == -1.0 and alls[-1] == 1.0                       # the pooled profile rises with the loss
    assert all(abs(b["within_class"]) < 1e-12 for b in s["by_loss_quintile"])   # none of it is within a class


def test_signal_at_several_epochs_leaves_the_training_as_it_was(tmp_path):
    """Measuring after epoch 1 must not change epoch 2: the run with a measurement in between ends where one
    measured only at the end does."""
    base = ["--config", study.os.path.join(study.CONFIG_DIR, "digits_cmwnet.yaml"), "--set", "method.name=mwnet",
            "--set", "data.noise={kind: sym, rate: 0.4}", "--set", "data.imbalance=1"]
    both, last = tmp_path / "both.json", tmp_path / "last.json"
    assert study.main(["signal", *base, "--epochs", "1", "2", "--out", str(tmp_path / "a"), "--json", str(both)]) == 0
    assert study.main(["signal", *base, "--epochs", "2", "--out", str(tmp_path / "b"), "--json", str(last)]) == 0
    both, last = json.loads(both.read_text()), json.loads(last.read_text())
    assert set(both) == {"1", "2"} and both["2"] == last


def test_signal_of_a_run_folder_measures_at_its_checkpoint(tmp_path, capsys):
    from cmwnet.config import load_config
    from cmwnet.engine import Trainer
    cfg = load_config(study.os.path.join(study.CONFIG_DIR, "digits_cmwnet.yaml"),
                      ["method.name=mwnet", "method.start_epoch=0", "data.noise={kind: sym, rate: 0.4}", "data.imbalance=1",
                       "optim.epochs=2",
                       f"run.out={tmp_path}", "run.name=r", "run.progress=false", "run.plot=false"])
    Trainer(cfg, quiet=True).run()
    out = tmp_path / "sig.json"
    assert study.main(["signal", "--run", str(tmp_path / "r"), "--out", str(tmp_path / "m"), "--json", str(out)]) == 0
    assert "after epoch 2" in capsys.readouterr().out
    assert 0.0 <= json.loads(out.read_text())["sum"]["auc_wants_up_clean"] <= 1.0
    import pytest
    from cmwnet.errors import CmwnetError
    with pytest.raises(CmwnetError, match="holds no config.yaml"):
        study.main(["signal", "--run", str(tmp_path / "nothing")])


def test_corrected_targets_are_scored_against_the_true_labels(tmp_path, capsys):
    """ỹ = v·y + (1-v)·z by hand: z outvotes y only where v < 0.5 and z is confident."""
    import numpy as np
    import pytest
    import torch

    from cmwnet.errors import CmwnetError

    run = tmp_path / "r"
    run.mkdir()
    true = np.array([0, 1, 2, 0])
    labels = np.array([0, 1, 0, 1])          # samples 2 and 3 mislabelled
    weights = np.array([0.9, 0.6, 0.2, 0.7])   # sample 2: z outvotes y; sample 3: y keeps the vote
    z = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9], [0.9, 0.1, 0.0]])
    np.savez(run / "final_weights.npz", weights=weights, labels=labels, true_labels=true,
             clean_labels=(labels == true).astype(int), index=np.arange(4), losses=np.zeros(4))
    torch.save({"method": {"pseudo": z}}, run / "checkpoint.pt")
    (run / "config.yaml").write_text("{}\n")
    r = study.main(["targets", str(run), "--json", str(tmp_path / "t.json")])
    assert r == 0 and "teacher's pseudo label z" in capsys.readouterr().out
    got = json.loads((tmp_path / "t.json").read_text())[str(run)]
    assert got["labels"] == {"all": 50.0, "clean": 100.0, "mislabelled": 0.0}
    assert got["teacher"] == {"all": 75.0, "clean": 50.0, "mislabelled": 100.0}
    assert got["corrected"] == {"all": 75.0, "clean": 100.0, "mislabelled": 50.0}
    assert got["mislabelled_weight_below_half"] == 50.0
    mass = [0.9 + 0.1 * 0.8, 0.6 + 0.4 * 0.3, 0.8 * 0.9, 0.3 * 0.9]   # the corrected target's true-class mass
    assert abs(got["true_class_mass"] - sum(mass) / 4) < 1e-6
    torch.save({"method": {"weight_net": {}}}, run / "checkpoint.pt")   # a reweighting run: Σ w·clean / Σ w
    study.main(["targets", str(run), "--json", str(tmp_path / "w.json")])
    got = json.loads((tmp_path / "w.json").read_text())[str(run)]
    assert got["label_correction"] is False and "teacher" not in got
    assert abs(got["true_class_mass"] - 1.5 / 2.4) < 1e-9
    assert abs(got["effective_sample_share"] - 2.4 ** 2 / (4 * (0.81 + 0.36 + 0.04 + 0.49))) < 1e-9
    with pytest.raises(CmwnetError, match="checkpoint.pt does not exist"):
        study.main(["targets", str(tmp_path)])
    np.savez(run / "final_weights.npz", weights=weights, labels=labels, true_labels=np.full(4, -1),
             clean_labels=np.zeros(4, int), index=np.arange(4), losses=np.zeros(4))
    with pytest.raises(CmwnetError, match="no true labels.*synthetic"):   # real noise: nothing to score against
        study.main(["targets", str(run)])


def test_corrected_targets_of_a_real_cmwnet_sl_run(tmp_path):
    from cmwnet.studies.corrected_targets import corrected_targets
    from cmwnet.train import main as train

    assert train(["--config", study.os.path.join(study.CONFIG_DIR, "digits_cmwnet.yaml"),
                  "--set", "method.name=cmwnet_sl", "--set", "method.sl.warmup=1", "--set", "optim.epochs=2", "--set", "ema.decay=0.99",
                  "--set", "data.noise={kind: sym, rate: 0.4}", "--set", "data.imbalance=1",
                  "--set", "data.meta={kind: lowest_loss, per_class: 10, batch_size: 50, model: ema}",
                  "--set", f"run.out={tmp_path}", "--set", "run.name=sl", "--set", "run.progress=false"]) == 0
    r = corrected_targets(str(tmp_path / "sl"))
    assert r["labels"]["clean"] == 100.0 and r["labels"]["mislabelled"] == 0.0
    assert 0 < r["mislabelled"] < r["samples"] and 0.0 <= r["true_class_mass"] <= 1.0
    # a mislabelled sample's target can move off its label only where v < 0.5 (y keeps mass v + (1-v)·z_y)
    assert r["corrected"]["mislabelled"] <= r["mislabelled_weight_below_half"] + 1e-9
    assert all(0.0 <= r["teacher"][k] <= 100.0 for k in ("all", "clean", "mislabelled"))
