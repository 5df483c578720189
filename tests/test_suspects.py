"""The suspect list (`cmwnet.run_folder.suspects`, `python -m cmwnet.inspect RUN --suspects`): every run writes samples.npz,
the flag rule is confident learning's, the cleanlab export lines up with the reader's indices, and a weighting
that ranks against its own losses is not used silently."""
import os

import numpy as np
import pytest

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.errors import CmwnetError
from cmwnet.run_folder.inspect import main as inspect_main
from cmwnet.run_folder.sample_table import write_sample_table
from cmwnet.run_folder.suspects import export_cleanlab, issue_flags, suspect_list, weights_inverted


def test_issue_flag_is_confident_learnings_off_diagonal_rule():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1, 1])
    # thresholds: class 0 = mean(0.9, 0.7) = 0.8; class 1 = mean(0.8, 0.4, 0.9) = 0.7
    # row 1 (label 0): p0 = 0.7 < 0.8 but p1 = 0.3 < 0.7: not flagged; row 3 (label 1): p1 = 0.4 < 0.7, p0 = 0.6 < 0.8
    assert issue_flags(probs, labels).tolist() == [False, False, False, False, False]
    probs[3] = [0.85, 0.15]     # now p0 = 0.85 >= class 0's threshold (0.8): off the diagonal
    labels_t = labels.copy()
    thresholds_1 = (0.8 + 0.15 + 0.9) / 3
    assert 0.15 < thresholds_1
    assert issue_flags(probs, labels_t).tolist() == [False, False, False, True, False]


def test_weights_inverted_reads_the_direction_within_each_class():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    losses = rng.random(80) * 3
    falling = 1.0 / (1.0 + losses)
    assert weights_inverted(falling, losses, labels)[0] is False
    inverted, why = weights_inverted(1.0 - falling, losses, labels)
    assert inverted and "4 of 4 classes" in why
    weights = falling.copy()
    weights[labels == 0] = 1.0 - falling[labels == 0]         # one class of four rises: not the majority
    assert weights_inverted(weights, losses, labels)[0] is False


def _fake_run(folder, weights, losses, labels, probs):
    """A run folder with samples.npz and final_weights.npz as the engine writes them."""
    os.makedirs(folder, exist_ok=True)
    n = len(labels)
    identity = {"labels": labels, "clean_labels": labels, "index": np.arange(n)[::-1].copy(),
                "paths": np.asarray([""] * n), "true_labels": labels, "class_names": np.asarray(["a", "b"])}
    given = probs[np.arange(n), labels]
    write_sample_table(os.path.join(folder, "samples.npz"),
                       {"pred": probs.argmax(1), "given_probs": given, "final_losses": -np.log(given), "probs": probs,
                        **identity}, csv=False)
    write_sample_table(os.path.join(folder, "final_weights.npz"), {"weights": weights, "losses": losses, **identity})


def test_a_weighting_that_ranks_against_its_losses_is_replaced_by_the_loss(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 30)
    p1 = rng.uniform(0.05, 0.95, 60)
    probs = np.stack([1 - p1, p1], 1)
    losses = -np.log(probs[np.arange(60), labels])
    rising = losses / losses.max()                                   # built to invert: weight grows with the loss
    _fake_run(tmp_path / "inv", rising, losses, labels, probs)
    s = suspect_list(str(tmp_path / "inv"))
    assert s.score == "loss" and "rank against the run's losses" in s.note and s.inverted is True
    assert (np.diff(s.table["final_losses"][s.order]) <= 0).all()    # highest loss first
    s = suspect_list(str(tmp_path / "inv"), by="weight")                # forced: used, and still said to be inverted
    assert s.score == "weight" and "rank against the run's losses" in s.note
    _fake_run(tmp_path / "ok", 1.0 - rising, losses, labels, probs)
    s = suspect_list(str(tmp_path / "ok"))                             # auto: the final loss, the weights not inverted
    assert s.score == "loss" and "net the weighting trained" in s.note and "rise with the loss on 0 of 2" in s.note and s.inverted is False
    assert (np.diff(s.table["final_losses"][s.order]) <= 0).all()
    s = suspect_list(str(tmp_path / "ok"), by="weight")
    assert s.score == "weight" and (np.diff(s.table["weights"][s.order]) >= 0).all()
    assert "rank against" not in s.note


@pytest.fixture(scope="module")
def erm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suspects")
    cfg = config_from_dict({
        "name": "erm", "data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4}},
        "model": {"name": "digits_mlp"}, "optim": {"epochs": 20}, "method": {"name": "erm"},
        "run": {"out": str(tmp), "progress": False, "plot": False}})
    Trainer(cfg, quiet=True).run()
    return tmp / "erm"


def test_an_erm_run_is_ranked_by_its_loss_and_exports_for_cleanlab(erm_run, tmp_path, capsys):
    from cmwnet.data.digits import load_digits_arrays

    assert (erm_run / "samples.npz").exists() and not (erm_run / "final_weights.npz").exists()
    s = suspect_list(str(erm_run))
    t = s.table
    assert s.score == "loss" and "learned no weighting" in s.note
    n = len(t["labels"])
    assert t["probs"].shape == (n, 10) and np.allclose(t["probs"].sum(1), 1, atol=1e-4)
    mislabelled = t["labels"] != t["true_labels"]
    top = s.order[: int(mislabelled.sum())]
    assert mislabelled[top].mean() > 1.5 * mislabelled.mean()          # the loss finds mislabelled digits (0.66 vs 0.36)
    files = export_cleanlab(s, str(tmp_path / "export"))
    labels = np.load(tmp_path / "export" / "labels.npy")
    probs = np.load(tmp_path / "export" / "pred_probs.npy")
    index = np.load(tmp_path / "export" / "index.npy")
    assert labels.shape == (n,) and probs.shape == (n, 10) and len(files) == 4
    assert (np.diff(index) > 0).all()                                  # ordered by the reader's index
    reader = load_digits_arrays(seed=0)
    row_of = {int(i): r for r, i in enumerate(t["index"])}
    assert all(labels[k] == t["labels"][row_of[int(i)]] for k, i in enumerate(index))
    assert (reader.train_y[index] == t["true_labels"][[row_of[int(i)] for i in index]]).all()
    assert inspect_main([str(erm_run), "--suspects", "5", "--export", str(tmp_path / "e2")]) == 0
    out = capsys.readouterr().out
    assert "ranked by the final loss" in out and "flagged" in out and len(out.splitlines()) >= 8
    assert (erm_run / "suspects.csv").read_text().count("\n") == n + 1


def test_the_files_are_written_before_the_list_is_printed(erm_run, tmp_path, monkeypatch):
    """`inspect RUN --suspects | head` closes the pipe after a few lines: suspects.csv and the export are there."""
    import builtins

    (erm_run / "suspects.csv").unlink(missing_ok=True)
    real_print = builtins.print

    def closed_pipe(*args, **kwargs):
        if kwargs.get("file") is None:
            raise BrokenPipeError
        real_print(*args, **kwargs)

    monkeypatch.setattr(builtins, "print", closed_pipe)
    with pytest.raises(BrokenPipeError):
        inspect_main([str(erm_run), "--suspects", "3", "--export", str(tmp_path / "ex")])
    assert (erm_run / "suspects.csv").exists() and (tmp_path / "ex" / "pred_probs.npy").exists()


def test_suspect_options_are_checked(erm_run, tmp_path):
    with pytest.raises(CmwnetError, match="give it with --suspects"):
        inspect_main([str(erm_run), "--export", str(tmp_path)])
    with pytest.raises(CmwnetError, match="at least 1"):
        inspect_main([str(erm_run), "--suspects", "0"])
    (tmp_path / "f").write_text("x")
    with pytest.raises(CmwnetError, match="is a file"):
        inspect_main([str(erm_run), "--suspects", "--export", str(tmp_path / "f")])
    with pytest.raises(CmwnetError, match="is not a run folder"):
        suspect_list(str(tmp_path))
    with pytest.raises(CmwnetError, match=r"is not a run folder .*runs below it: erm"):   # forgot the run's name
        suspect_list(str(erm_run.parent))
    with pytest.raises(CmwnetError, match="takes a run folder's path"):
        suspect_list(None)
    with pytest.raises(CmwnetError, match="takes a SuspectList"):
        export_cleanlab(str(erm_run), str(tmp_path / "x"))
    with pytest.raises(CmwnetError, match="give the folder"):
        export_cleanlab(suspect_list(str(erm_run)), "")
    with pytest.raises(CmwnetError, match="names no folder"):
        inspect_main([str(erm_run), "--suspects", "--export", ""])


def test_a_damaged_samples_table_is_one_line(erm_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(erm_run, run)
    z = dict(np.load(run / "samples.npz"))
    for change, says in ((lambda d: d.pop("class_names"), "no class_names"),
                         (lambda d: d.update(pred=d["pred"][:-1]), "pred has"),
                         (lambda d: d.update(labels=d["labels"] + 100), "outside the run's classes")):
        d = dict(z)
        change(d)
        write_sample_table(str(run / "samples.npz"), d, csv=False)
        with pytest.raises(CmwnetError, match=says):
            suspect_list(str(run))


def test_long_class_names_are_cut_in_the_middle_so_they_stay_apart():
    from cmwnet.run_folder.suspects import _short

    assert _short("synthetic_class_3") != _short("synthetic_class_7")
    assert _short("synthetic_class_3") == "synth~lass_3" and _short("cat") == "cat"


def test_a_table_too_large_for_its_probabilities_keeps_the_columns_and_never_builds_them(tmp_path, monkeypatch):
    """Past MAX_PROBS numbers the N x C table is neither kept nor built; prediction and given-label probability
    are, and the suspect list still ranks (its flag: predicted != given), the export says why it cannot."""
    from cmwnet.run_folder import sample_table

    monkeypatch.setattr(sample_table, "MAX_PROBS", 0)
    cfg = config_from_dict({"name": "big", "data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4}},
                            "model": {"name": "digits_mlp"}, "optim": {"epochs": 1}, "method": {"name": "erm"},
                            "run": {"out": str(tmp_path), "progress": False, "plot": False}})
    Trainer(cfg, quiet=True).run()
    z = np.load(tmp_path / "big" / "samples.npz")
    assert "probs" not in z.files and len(z["pred"]) == len(z["labels"]) == len(z["given_probs"])
    assert ((z["given_probs"] > 0) & (z["given_probs"] <= 1)).all()
    s = suspect_list(str(tmp_path / "big"))
    assert (s.issue == (s.table["pred"] != s.table["labels"])).all()
    with pytest.raises(CmwnetError, match="no class probabilities"):
        export_cleanlab(s, str(tmp_path / "x"))


def test_the_training_loss_averaged_over_epochs_is_recorded_and_ranks(erm_run):
    """samples.npz carries every sample's plain training CE averaged over the epochs (cmwnet.loss_trace) and the
    last epoch's; the mean-loss ranking finds the mislabelled digits, and differs from the final-loss one."""
    z = dict(np.load(erm_run / "samples.npz"))
    n = len(z["labels"])
    assert z["mean_train_losses"].shape == (n,) and z["last_train_losses"].shape == (n,)
    assert np.isfinite(z["mean_train_losses"]).all() and int(z["train_loss_first_epoch"]) == 0
    assert not np.allclose(z["mean_train_losses"], z["last_train_losses"])   # 20 epochs: the mean is not the last
    s = suspect_list(str(erm_run), by="mean_loss")
    assert s.score == "mean_loss" and "averaged over the run's epochs" in s.note
    assert (np.diff(z["mean_train_losses"][s.order]) <= 0).all()
    mislabelled = z["labels"] != z["true_labels"]
    k = int(mislabelled.sum())
    assert mislabelled[s.order[:k]].mean() > 1.5 * mislabelled.mean()
    with pytest.raises(CmwnetError, match="learned no weighting"):
        suspect_list(str(erm_run), by="weight")
    with pytest.raises(CmwnetError, match="unknown ranking"):
        suspect_list(str(erm_run), by="bogus")
    with pytest.raises(CmwnetError, match="give it with --suspects"):
        inspect_main([str(erm_run), "--rank-by", "loss"])


def test_the_loss_trace_survives_a_resume_and_counts_every_epoch(tmp_path):
    """A run stopped mid-way and resumed averages over all its epochs, equal to the uninterrupted run's."""
    base = {"data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4}},
            "model": {"name": "digits_mlp"}, "optim": {"epochs": 4}, "method": {"name": "erm"},
            "run": {"progress": False, "plot": False}}
    import copy

    whole = copy.deepcopy(base)
    whole.update(name="whole")
    whole["run"]["out"] = str(tmp_path)
    Trainer(config_from_dict(whole), quiet=True).run()
    part = copy.deepcopy(whole)
    part.update(name="part")
    first_leg = Trainer(config_from_dict(part), quiet=True)
    for _ in range(2):   # two epochs, each ending in a checkpoint; then a fresh process-like Trainer resumes
        first_leg._run_epoch()   # noqa: SLF001
    Trainer(config_from_dict(part), quiet=True).run()
    a = np.load(tmp_path / "whole" / "samples.npz")
    b = np.load(tmp_path / "part" / "samples.npz")
    assert np.allclose(a["mean_train_losses"], b["mean_train_losses"], atol=1e-5)
    assert int(b["train_loss_first_epoch"]) == 0


def test_the_rankings_study_scores_weights_and_losses_on_every_weighting_run(tmp_path, capsys):
    """`python -m cmwnet.studies rankings ROOT`: per weighting run with known noise, the AUC of its weights and of its
    final loss; a run with no mislabelled sample, or an ERM run, is left out; no such run at all is a one-line error."""
    from cmwnet.studies.study import main as study_main

    rng = np.random.default_rng(3)
    n = 80
    true = np.repeat([0, 1], n // 2)
    labels = true.copy()
    labels[:10] = 1                                                   # 10 of class 0 labelled 1
    p1 = np.where(true == 1, rng.uniform(0.6, 0.95, n), rng.uniform(0.05, 0.4, n))
    probs = np.stack([1 - p1, p1], 1)
    given = probs[np.arange(n), labels]
    losses = -np.log(given)
    run = tmp_path / "setting" / "cmwnet" / "s1"
    identity = {"labels": labels, "clean_labels": true, "index": np.arange(n), "paths": np.asarray([""] * n),
                "true_labels": true, "class_names": np.asarray(["a", "b"])}
    os.makedirs(run)
    write_sample_table(str(run / "samples.npz"), {"pred": probs.argmax(1), "given_probs": given, "final_losses": losses,
                                                  "probs": probs, **identity}, csv=False)
    weights = rng.random(n)                                          # weights that know nothing
    write_sample_table(str(run / "final_weights.npz"), {"weights": weights, "losses": losses, **identity})
    _fake_run(tmp_path / "setting" / "clean" / "s1", weights, losses, true, probs)   # no noise: left out
    assert study_main(["rankings", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "setting/cmwnet/s1" in out and "clean/s1" not in out
    assert "better than the weights on 1 of 1 runs" in out             # the loss finds the 10, random weights do not
    import json

    row = json.load(open(tmp_path / "r.json"))[0]
    assert row["loss"]["auc"] == 1.0 and abs(row["weight"]["auc"] - 0.5) < 0.3
    with pytest.raises(CmwnetError, match="no finished weighting run with known label noise"):
        study_main(["rankings", str(tmp_path / "setting" / "clean")])
    with pytest.raises(CmwnetError, match="no folder"):
        study_main(["rankings", str(tmp_path / "nowhere")])
