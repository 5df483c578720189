"""The label benchmark (`python -m cmwnet.tools.labelbench`, `cmwnet.label_metrics`): its metrics on rankings whose
answer is known, cleanlab's out-of-sample probabilities assembled from the folds, and the whole command end to end
on generated data."""
import numpy as np
import pytest

from cmwnet.errors import CmwnetError
from cmwnet.label_metrics import Ranking, cleanlab_ranking, out_of_sample_probs, ranking_metrics


def test_metrics_of_a_perfect_a_reversed_and_a_restricted_ranking():
    bad = np.array([3, 7, 11, 19])                        # 4 mislabelled of 20 (reader indices)
    perfect = np.concatenate([bad, np.setdiff1d(np.arange(20), bad)])
    m = ranking_metrics(Ranking(perfect), bad)
    assert m["auc"] == 1.0 and m["precision_at_k"] == 1.0 and m["samples"] == 20 and m["mislabelled"] == 4
    assert m["recall_at_5pct"] == 0.25                   # the first 5% of 20 is one sample: 1 of 4 found
    m = ranking_metrics(Ranking(perfect[::-1]), bad)
    assert m["auc"] == 0.0 and m["precision_at_k"] == 0.0
    # one mislabelled sample placed after every clean one: 3 of 4 are above all 16 clean ones
    half = np.concatenate([bad[:3], np.setdiff1d(np.arange(20), bad), bad[3:]])
    assert ranking_metrics(Ranking(half), bad)["auc"] == pytest.approx(0.75)
    # restricted to the samples another ranking covers: index 19 is left out, so the ranking is perfect again
    assert ranking_metrics(Ranking(half), bad, among=np.arange(19))["auc"] == 1.0
    flags = ranking_metrics(Ranking(perfect, flagged=np.array([3, 7, 0])), bad)
    assert flags["flagged"] == 3 and flags["flag_precision"] == pytest.approx(2 / 3) and flags["flag_recall"] == 0.5
    with pytest.raises(CmwnetError, match="needs both kinds"):
        ranking_metrics(Ranking(np.arange(5)), np.array([], np.int64))


def test_out_of_sample_probabilities_come_from_the_fold_that_held_each_sample_out():
    a = {"index": np.array([4, 0]), "labels": np.array([1, 0]), "probs": np.array([[0.2, 0.8], [0.9, 0.1]])}
    b = {"index": np.array([2, 1, 3]), "labels": np.array([0, 1, 1]),
         "probs": np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])}
    index, labels, probs = out_of_sample_probs([a, b])
    assert index.tolist() == [0, 1, 2, 3, 4] and labels.tolist() == [0, 1, 0, 1, 1]
    assert probs[4].tolist() == [0.2, 0.8] and probs[2].tolist() == [0.6, 0.4]
    with pytest.raises(CmwnetError, match="overlapping"):
        out_of_sample_probs([a, {**b, "index": np.array([2, 0, 3])}])
    with pytest.raises(CmwnetError, match="no fold runs"):
        out_of_sample_probs([])


def test_cleanlab_ranks_planted_label_errors_first():
    pytest.importorskip("cleanlab")
    rng = np.random.default_rng(0)
    n, c = 600, 3
    true = rng.integers(0, c, n)
    probs = np.full((n, c), 0.05)
    probs[np.arange(n), true] = 0.9
    probs /= probs.sum(1, keepdims=True)
    labels = true.copy()
    planted = rng.choice(n, 60, replace=False)
    labels[planted] = (true[planted] + 1) % c
    r = cleanlab_ranking(np.arange(n) + 1000, labels, probs)
    assert set(r.index[:60].tolist()) == set((planted + 1000).tolist())
    assert set(r.flagged.tolist()) == set((planted + 1000).tolist()) and "find_label_issues" in r.note


def test_the_benchmark_runs_end_to_end_on_generated_data(tmp_path, capsys):
    pytest.importorskip("cleanlab")
    from cmwnet.tools.labelbench import main

    out, to = tmp_path / "lb", tmp_path / "results"
    assert main(["--smoke", "--settings", "sym0.4", "--folds", "2", "--jobs", "1", "--out", str(out),
                 "--to", str(to)]) == 0
    text = (to / "labelbench.md").read_text()
    for label in ("CMW-Net weights", "MW-Net weights", "ERM last-epoch loss", "ERM loss averaged over epochs",
                  "cleanlab (K-fold)"):
        assert f"| {label} |" in text
    assert "generated smoke data" in text and "CMW-Net's epochs x images 1.00x cleanlab's" in text
    assert (to / "labelbench.png").stat().st_size > 10_000
    rows = (to / "labelbench.csv").read_text().splitlines()
    assert rows[0].startswith("setting,ranking,label,samples") and len(rows) == 7
    # the report alone, from the finished runs; a second full command retrains nothing
    capsys.readouterr()
    assert main(["--smoke", "--settings", "sym0.4", "--folds", "2", "--out", str(out), "--report"]) == 0
    assert "| cleanlab (K-fold) |" in capsys.readouterr().out
    assert main(["--smoke", "--settings", "sym0.4", "--folds", "2", "--jobs", "1", "--out", str(out)]) == 0
    assert "5 cells: 5 already finished" in capsys.readouterr().out
    with pytest.raises(CmwnetError, match="fold 0 of 2 folds, not of --folds 3"):   # a report of other folds
        main(["--smoke", "--settings", "sym0.4", "--folds", "3", "--out", str(out), "--report"])
    with pytest.raises(CmwnetError, match=r"data.fold.folds: 2 -> 3"):              # nothing trains
        main(["--smoke", "--settings", "sym0.4", "--folds", "3", "--jobs", "1", "--out", str(out)])
    assert not (out / "sym0.4" / "erm_fold2").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(CmwnetError, match="is a file"):
        main(["--smoke", "--settings", "sym0.4", "--folds", "2", "--report", "--out", str(out), "--to",
              str(tmp_path / "f")])


def test_bad_options_are_one_line_errors(tmp_path):
    from cmwnet.tools.labelbench import main

    with pytest.raises(CmwnetError, match="not a benchmark setting; give sym<rate>"):
        main(["--settings", "gauss0.3", "--dry-run"])
    with pytest.raises(CmwnetError, match="not a benchmark setting"):
        main(["--settings", "type4_0.3", "--dry-run"])
    with pytest.raises(CmwnetError, match="rate must be in"):
        main(["--settings", "sym0.0", "--dry-run"])
    with pytest.raises(CmwnetError, match="at least 2 folds"):
        main(["--folds", "1", "--dry-run"])
    with pytest.raises(CmwnetError, match="--jobs must be >= 1"):
        main(["--jobs", "0", "--dry-run"])
    with pytest.raises(CmwnetError, match="no finished benchmark runs .* nothing was written"):
        main(["--smoke", "--report", "--out", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    with pytest.raises(CmwnetError, match="--report writes the report and --dry-run runs nothing"):
        main(["--report", "--dry-run"])
    with pytest.raises(CmwnetError, match="at most 20"):
        main(["--folds", "100000", "--dry-run"])
    assert main(["--smoke", "--dry-run", "--out", str(tmp_path / "dry")]) == 0
    assert not (tmp_path / "dry").exists()                       # a dry run writes nothing, not even the data


def test_label_metric_inputs_are_checked_in_one_line():
    bad = np.array([0, 1])
    for index, says in ((np.array([True, False, True]), "boolean mask"), (np.array([0.0, 1.0, 2.0]), "integer"),
                        (np.array([0, 1, 1, 2]), "more than once"), (np.zeros((2, 2), int), "1-D")):
        with pytest.raises(CmwnetError, match=says):
            ranking_metrics(Ranking(index), bad)
    pytest.importorskip("cleanlab")
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(CmwnetError, match="probability vector"):
        cleanlab_ranking(np.arange(3), np.array([0, 1, 0]), np.log(probs))
    with pytest.raises(CmwnetError, match="must lie in 0..1"):
        cleanlab_ranking(np.arange(3), np.array([0, 1, 2]), probs)
    with pytest.raises(CmwnetError, match="one label and one probability row"):
        cleanlab_ranking(np.arange(3), np.array([0, 1]), probs)
    with pytest.raises(CmwnetError, match="has no labels"):
        out_of_sample_probs([{"index": np.array([0]), "probs": probs[:1]}])


def test_a_posterior_network_from_elsewhere_is_used_only_with_the_same_recipe(tmp_path):
    """`--posterior RUN` takes the Type-I labels from a finished posterior network (Tables 4-5 at CPU scale train
    the same one): its data may live elsewhere, but another split, schedule or an unfinished run is refused."""
    import yaml

    from cmwnet.tools.labelbench import check_posterior_run, posterior_cell

    cell = posterior_cell(str(tmp_path / "data"), smoke=False)
    run = tmp_path / "elsewhere" / "cifar10_posteriors"
    run.mkdir(parents=True)
    cfg = cell.resolve(str(tmp_path)).to_dict()
    cfg["data"]["root"], cfg["run"]["out"] = "/some/other/copy", "/some/other/runs"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CmwnetError, match="is not a finished run"):
        check_posterior_run(str(run), cell, str(tmp_path))
    (run / "result.json").write_text("{}")
    check_posterior_run(str(run), cell, str(tmp_path))          # same recipe: accepted
    cfg["optim"]["epochs"] = 15
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CmwnetError, match=r"another recipe \(optim.epochs: 15 -> 30\)"):
        check_posterior_run(str(run), cell, str(tmp_path))


def test_bad_locations_name_the_benchmarks_own_fixes(tmp_path):
    """A data root without CIFAR-10 does not point at --filter (the benchmark has none); an empty --out is refused
    instead of silently becoming the default folder."""
    from cmwnet.tools.labelbench import main

    with pytest.raises(CmwnetError) as e:
        main(["--data-root", str(tmp_path), "--dry-run"])
    assert "has no cifar-10-batches-py" in str(e.value) and "--filter" not in str(e.value)
    with pytest.raises(CmwnetError, match="--out '' is empty"):
        main(["--out", "", "--dry-run"])


def test_the_target_lines_say_met_or_missed_by_how_much():
    """CMW-Net's weights and its suspect list against cleanlab's AUC, and its compute at most a third of cleanlab's."""
    from cmwnet.tools.labelbench import SETTINGS, targets

    st = SETTINGS[0]
    rows = [{"ranking": "cmwnet_weight", "auc": 0.90, "epochs_x_images": 1.0, "wall_s": 40.0},
            {"ranking": "cmwnet_suspects", "auc": 0.95, "epochs_x_images": 1.0, "wall_s": 40.0},
            {"ranking": "cleanlab", "auc": 0.93, "epochs_x_images": 3.0, "wall_s": 100.0}]
    text = "\n".join(targets(rows, st))
    assert "[MISSED]" in text and "weight AUC 0.900 vs cleanlab 0.930 (-0.030)" in text
    assert "[ met ]" in text and "suspect list (its net's final loss) AUC 0.950 vs cleanlab 0.930 (+0.020)" in text
    assert "epochs x images 0.33x" in text and "[MISSED]" in text.split("wall time")[0].splitlines()[-1]
    assert targets(rows[:2], st) == [f"- {st.label}: target not checked (CMW-Net or cleanlab missing)"]


def test_settings_no_issue_names_train_at_their_own_rate(tmp_path):
    """A reviewer reruns the benchmark at other rates: the key sets the noise rate (or the PMD label file) of every
    run, and two feature-dependent settings never share a label file."""
    from cmwnet.tools.labelbench import SETTINGS, by_key, cells, parse_setting

    assert parse_setting("sym0.4") is SETTINGS[0]
    assert parse_setting("sym0.40") is SETTINGS[0] and parse_setting("type1_.350") is SETTINGS[2]   # same folders
    s2, a3, t3 = by_key(["sym.2", "asym0.3", "type3_0.7", "sym0.2"])       # duplicates (after normalising) once
    assert (s2.key, s2.label, s2.noise_rate, s2.config) == ("sym0.2", "20% symmetric", 0.2, "cpu_full_sym.yaml")
    assert (a3.key, a3.config, a3.noise_rate) == ("asym0.3", "cpu_full_asym.yaml", 0.3)
    assert (t3.key, t3.label, t3.pmd, t3.noise_rate) == ("type3_0.7", "70% Type-III (feature-dependent)", (3, 0.7), None)
    for st, rate in ((s2, 0.2), (a3, 0.3)):
        cs = cells(st, "data.npz", 4, 1, smoke=False)
        assert len(cs) == 7 and all(c.name.startswith(st.key + "/") for c in cs)
        assert all(c.resolve(str(tmp_path)).data.noise.rate == rate for c in cs)
    files = {k: cells(parse_setting(k), "data.npz", 2, 1, smoke=False, noise_file=f"/n/{k}.npy")[0]
             for k in ("type1_0.35", "type3_0.7")}
    for k, c in files.items():
        cfg = c.resolve(str(tmp_path))
        assert cfg.data.noise.file == f"/n/{k}.npy" and cfg.data.noise.kind == "none"
