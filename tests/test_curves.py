"""The learning-curve command: runs and seeds found, missing keys said, one-line errors."""
import json
import os

import pytest

from cmwnet.curves import find_runs, main, plot_curves
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


def test_missing_keys_say_not_recorded(tmp_path):
    _run(tmp_path / "erm", weights=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = []
    real_close = plt.close
    plt.close = lambda fig=None: (texts.extend(t.get_text() for ax in fig.axes for t in ax.texts), real_close(fig))
    try:
        plot_curves(find_runs([str(tmp_path / "erm")]), tmp_path / "c.png")
    finally:
        plt.close = real_close
    assert texts.count("not recorded") == 2   # mean weight and AUC; accuracy, loss and lr are drawn


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
    from cmwnet.curves import setting_colours

    colours = setting_colours([f"s{i}" for i in range(n)])
    assert len(set(colours.values())) == n
