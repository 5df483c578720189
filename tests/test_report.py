"""The report: seeds aggregated from hand-made result.json files, rendered in the paper's layout with
the paper's numbers beside ours (Markdown and CSV), and the weighting-function figure."""
import csv
import io
import json
import math

import pytest

from cmwnet.paper import report
from cmwnet.paper.registry import get_table
from cmwnet.paper.tables import Paper, Row, Setting, Table


def fake_table(metric="accuracy", transpose=False):
    settings = [Setting("ds_a", "DS", "A", {"data": {"name": "cifar10"}}),
                Setting("ds_b", "DS", "B", {"data": {"name": "cifar10"}})]
    rows = [Row("m1", "Method one", {}), Row("q", "Quoted", status="quoted", source="someone"),
            Row("m2", "Method two", {})]
    paper = {("m1", "ds_a"): Paper(90.5, 0.5), ("m1", "ds_b"): Paper(None), ("q", "ds_a"): Paper(95.7),
             ("q", "ds_b"): Paper(94.0, 0.1), ("m2", "ds_a"): Paper(88.0), ("m2", "ds_b"): Paper(80.0)}
    return Table(99, "Table 99: a test", "table1.yaml", settings, rows, paper, metric=metric, paper_epoch="best",
                 transpose=transpose, figure_rows=("m1",))


def write_result(root, setting, row, seed, best, last, ema=None):
    d = root / setting / row / f"s{seed}"
    d.mkdir(parents=True, exist_ok=True)
    r = {"seed": seed, "best_top1": best, "last_top1": last, "ema": None}
    if ema:
        r["ema"] = {"best_top1": ema[0], "last_top1": ema[1]}
    (d / "result.json").write_text(json.dumps(r))


@pytest.fixture
def runs(tmp_path):
    for seed, best, last in ((1, 90.0, 89.0), (2, 92.0, 91.0), (3, 94.0, 90.0)):
        write_result(tmp_path, "ds_a", "m1", seed, best, last, ema=(best + 1, last + 1))
    write_result(tmp_path, "ds_b", "m1", 1, 70.0, 60.0)
    (tmp_path / "ds_b" / "m2" / "s1").mkdir(parents=True)   # started, not finished: no result
    return tmp_path


def test_aggregate_by_hand(runs):
    aggs = report.collect(fake_table(), str(runs))
    assert set(aggs) == {("m1", "ds_a"), ("m1", "ds_b")}
    a = aggs[("m1", "ds_a")]
    assert a.seeds == [1, 2, 3] and a.best == (92.0, pytest.approx(2.0)) and a.last[0] == pytest.approx(90.0)
    assert a.last[1] == pytest.approx(1.0) and a.ema_best == (93.0, pytest.approx(2.0))
    b = aggs[("m1", "ds_b")]
    assert b.best[0] == 70.0 and math.isnan(b.best[1]) and b.ema_best is None
    err = report.collect(fake_table("error"), str(runs))[("m1", "ds_a")]
    assert err.best == (pytest.approx(8.0), pytest.approx(2.0))       # error = 100 - top-1, per seed


def test_markdown_puts_ours_beside_the_paper(runs):
    t = fake_table()
    md = report.render_markdown(t, report.collect(t, str(runs)))
    assert "| DS: method | A | B |" in md
    assert "| Method one | 92.00 ± 2.00 (90.50 ± 0.50) | 70.00 (–) |" in md          # best epoch
    assert "| Method one | 90.00 ± 1.00 (90.50 ± 0.50) | 60.00 (–) |" in md          # last epoch
    assert "| Quoted | *quoted* 95.70 | *quoted* 94.00 ± 0.10 |" in md
    assert "| Method two | – (88.00) | – (80.00) |" in md
    assert "Finished: 2 of 4 cells" in md and "the paper reports the **best** epoch" in md
    assert md.index("best epoch (the paper's metric)") < md.index("last epoch (for reference)")
    tt = fake_table(transpose=True)
    md_t = report.render_markdown(tt, report.collect(tt, str(runs)))
    assert "| DS: noise | Method one | Quoted | Method two |" in md_t
    assert "| A | 92.00 ± 2.00 (90.50 ± 0.50) | *quoted* 95.70 | – (88.00) |" in md_t


def test_csv_has_every_number(runs):
    t = fake_table()
    rows = list(csv.DictReader(io.StringIO(report.render_csv(t, report.collect(t, str(runs))))))
    assert len(rows) == 6
    r = next(x for x in rows if x["row"] == "m1" and x["setting"] == "ds_a")
    assert (r["best_mean"], r["best_std"], r["last_mean"], r["paper_mean"], r["paper_std"]) == \
        ("92.0000", "2.0000", "90.0000", "90.5000", "0.5000")
    assert r["n_seeds"] == "3" and r["seeds"] == "1 2 3" and r["ema_best_mean"] == "93.0000"
    q = next(x for x in rows if x["row"] == "q" and x["setting"] == "ds_b")
    assert q["status"] == "quoted" and q["best_mean"] == "" and q["paper_mean"] == "94.0000"


def test_weighting_figure_and_write_table(runs):
    from cmwnet.weighting import CMWNet

    CMWNet.from_counts([500, 400, 50, 40, 5, 4, 3, 2, 1, 1]).save(str(runs / "ds_a" / "m1" / "s1" / "weight_net.pt"))
    text = report.write_table(fake_table(), str(runs))
    assert "table99.md" in text and "table99_weighting.png" in text
    assert (runs / "table99.csv").exists() and (runs / "table99_weighting.png").stat().st_size > 1000
    assert report.weighting_figure(fake_table(), str(runs / "ds_b"), str(runs / "none.png")) is None


def test_report_cli_on_a_real_table(tmp_path, capsys):
    write_result(tmp_path, "cifar10_if100", "cmwnet_ce", 1, 79.0, 78.5)
    write_result(tmp_path, "cifar10_if100", "cmwnet_ce", 2, 77.0, 77.5)
    assert report.main([str(tmp_path)]) == 0          # finds Table 1 by itself
    out = capsys.readouterr().out
    assert "Table 1" in out and "| CMW-Net with CE loss | – (27.80) | 22.00 ± 1.41 (21.15) |" in out
    assert (tmp_path / "table1.md").exists()
    from cmwnet.errors import CmwnetError

    with pytest.raises(CmwnetError, match="no finished run"):
        report.main([str(tmp_path / "cifar10_if100" / "cmwnet_ce")])
    assert get_table(1).paper[("cmwnet_ce", "cifar10_if100")] == Paper(21.15)


def test_the_weighting_figure_spans_the_seen_losses_and_fits_its_title(tmp_path, monkeypatch):
    """The table's weighting figure ran its x axis to loss 10 and clipped its title on one panel."""
    import numpy as np

    from cmwnet.run_folder import plotting
    from cmwnet.paper.registry import get_table
    from cmwnet.paper.report import weighting_figure
    from cmwnet.run_folder.sample_table import write_sample_table
    from cmwnet.weighting import CMWNet

    table = get_table(1, "cpu")
    run = tmp_path / "cifar10_if100" / "cmwnet_ce" / "s1"
    run.mkdir(parents=True)
    CMWNet.from_counts([500, 300, 100, 50, 20, 10, 5, 5, 5, 5]).save(str(run / "weight_net.pt"))
    losses = np.linspace(0, 3.0, 1000)
    write_sample_table(str(run / "final_weights.npz"), {"weights": np.ones(1000), "losses": losses,
                                                        "labels": np.zeros(1000, int)}, csv=False)
    seen = {}

    def keep(fig, path, **kw):
        axes = [ax for ax in fig.axes if ax.get_visible()]
        seen["xlim"], seen["ylim"] = axes[0].get_xlim(), axes[0].get_ylim()
        seen["title"] = fig._suptitle.get_text()
        seen["width"] = fig.get_size_inches()[0]
        return path
    monkeypatch.setattr(plotting, "save_figure", keep)
    weighting_figure(table, str(tmp_path), str(tmp_path / "w.png"))
    assert seen["xlim"][0] == 0 and 2.9 < seen["xlim"][1] <= 3.0 and seen["ylim"] == (0, 1.02)
    assert all(len(line) <= 10 * seen["width"] for line in seen["title"].splitlines())
