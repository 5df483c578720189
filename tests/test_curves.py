"""The learning-curve command: runs and seeds found, missing keys said, one-line errors."""
import json
import os

import pytest

from cmwnet.run_folder.curves import find_runs, main, plot_curves
from cmwnet.errors import CmwnetError, run_cli


def _run(folder, epochs=3, weights=True):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for e in range(epochs):
            r = {"epoch": e, "lr": 0.1, "train_loss": 1.0 / (e + 1), "test_top1": 50.0 + e, "ema_top1": 49.0 + e}
            if weights:
                r.update(mean_weight=0.5, mean_weight_clean=0.6, mean_weight_noisy=0.2, weight_auc=0.8)
            f.write(json.dumps(r) + "\n")


def test_folder_of_runs_groups_seeds(tmp_path):
    for name in ("cmw_s0", "cmw_s1", "erm/s0", "erm/s1"):
        _run(tmp_path / name)
    runs = find_runs([str(tmp_path)])
    assert sorted(r.name for r in runs) == ["cmw_s0", "cmw_s1", "erm/s0", "erm/s1"]
    assert sorted({r.setting for r in runs}) == ["cmw", "erm"]
    assert all(len(r.records) == 3 for r in runs)
    out = tmp_path / "c.png"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def _titles_of(monkeypatch, draw):
    """The axes titles (and texts) of the figure `draw()` makes, read when the figure is closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {"titles": [], "texts": []}
    real_close = plt.close

    def spy(fig=None):
        seen["titles"] += [ax.get_title() for ax in fig.axes if ax.get_title()]
        seen["texts"] += [t.get_text() for ax in fig.axes for t in ax.texts]
        real_close(fig)
    monkeypatch.setattr(plt, "close", spy)
    draw()
    return seen


def test_panels_no_run_recorded_are_left_out(tmp_path, monkeypatch):
    """An ERM run has no weights: the weight panels are left out (they used to be drawn empty, "not recorded")."""
    _run(tmp_path / "erm", weights=False)
    seen = _titles_of(monkeypatch, lambda: plot_curves(find_runs([str(tmp_path / "erm")]), tmp_path / "c.png"))
    assert seen["titles"] == ["test top-1", "train loss", "learning rate"] and "not recorded" not in seen["texts"]


def test_the_accuracy_panel_names_the_split_a_folder_run_measured_on(tmp_path, monkeypatch):
    """An image folder's val/ stands in for the test split (result.json's test_split): the panel says so."""
    import json

    _run(tmp_path / "folder", weights=True)
    (tmp_path / "folder" / "result.json").write_text(json.dumps({"test_split": "val/"}))
    seen = _titles_of(monkeypatch, lambda: plot_curves(find_runs([str(tmp_path / "folder")]), tmp_path / "c.png"))
    assert seen["titles"][0] == "top-1 on val/" and "weight AUC (clean vs mislabelled)" in seen["titles"]


def test_folder_without_metrics_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CmwnetError, match="holds no metrics.jsonl"):
        find_runs([str(tmp_path / "empty")])
    assert run_cli(main, [str(tmp_path / "nothere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder" in err


@pytest.mark.parametrize("n", [3, 10, 12, 20, 25])
def test_every_setting_gets_its_own_colour(n):
    """A table of 12 rows reused tab10's first two colours for rows 11 and 12."""
    from cmwnet.run_folder.curves import setting_colours

    colours = setting_colours([f"s{i}" for i in range(n)])
    assert len(set(colours.values())) == n
