"""`paper run N --dry-run` totals: each cell's iterations from the data set's size and the config, the hours
from a bench file's per-iteration figures (or a stated assumption), and a line on where the data is."""
import json
import math

import pytest

from cmwnet.config import load_config
from cmwnet.data.imbalance import long_tail_counts
from cmwnet.errors import CmwnetError
from cmwnet.paper import cost
from cmwnet.paper.cli import main as paper_main
from cmwnet.resources import config_file


def _cfg(*overrides):
    return load_config(config_file("cpu_full_sym.yaml"), list(overrides))


def test_iterations_follow_the_split_the_batch_and_the_meta_schedule():
    c = cost.cell_cost("x", _cfg("method.name=mwnet"))
    per_epoch = math.ceil((50_000 - 5_000 - 10 * 10) / 100)      # val split and the clean meta set leave training
    assert c.train_size == 44_900 and c.steps == per_epoch * 25
    assert c.meta_steps == math.ceil(per_epoch / 5) * 25 and c.meta_grad == "forward"
    late = cost.cell_cost("x", _cfg("method.name=cmwnet", "method.start_epoch=20"))
    assert late.meta_steps == math.ceil(per_epoch / 5) * 5
    assert cost.cell_cost("x", _cfg("method.name=erm")).meta_steps == 0
    lt = cost.cell_cost("x", _cfg("data.imbalance=100", "data.val_size=0", "data.meta.kind=none"))
    assert lt.train_size == sum(long_tail_counts(5000, 10, 100))
    assert cost.cell_cost("x", _cfg("data.train_subset=1000")).train_size == 900


def _bench(tmp_path, erm_ms=10.0, meta_ms=40.0):
    rows = [{"model": "resnet8", "batch": 100, "name": "ERM step (eager)", "kind": "erm", "impl": "eager", "ms": erm_ms},
            {"model": "resnet8", "batch": 100, "name": "MetaStep higher (eager)", "kind": "meta", "impl": "eager",
             "backend": "higher", "ms": meta_ms},
            {"model": "resnet8", "batch": 100, "name": "MetaStep meta_grad=forward", "kind": "meta", "impl": "eager",
             "backend": "higher", "meta_grad": "forward", "ms": 2 * erm_ms}]
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"device": {"type": "cuda", "name": "Test GPU"}, "rows": rows}))
    return str(p)


def test_hours_use_the_bench_figures_and_scale_other_models_by_flops(tmp_path):
    speed = cost.load_bench(_bench(tmp_path))
    assert speed.measured and speed.meta_ratios["exact"] == 4.0 and speed.meta_ratios["forward"] == 2.0
    cfg = _cfg("method.name=mwnet", "method.meta_grad=exact")
    c = cost.cell_cost("x", cfg)
    hours = cost.cell_hours(c, cfg, speed)
    assert hours == pytest.approx(((c.steps - c.meta_steps) * 10.0 + c.meta_steps * 40.0) / 3.6e6)
    fwd = _cfg("method.name=mwnet")
    assert cost.cell_hours(cost.cell_cost("x", fwd), fwd, speed) < hours      # forward mode: 2x, not 4x
    big = _cfg("model.name=resnet32", "method.name=erm")
    ratio = cost.training_flops("resnet32", {}, 10, 32) / cost.training_flops("resnet8", {}, 10, 32)
    erm = _cfg("method.name=erm")
    assert cost.cell_hours(cost.cell_cost("x", big), big, speed) == pytest.approx(
        ratio * cost.cell_hours(cost.cell_cost("x", erm), erm, speed))
    assert not cost.load_bench(str(tmp_path / "none.json")).measured      # no file: the assumption, said so
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CmwnetError, match="not a bench JSON"):
        cost.load_bench(str(bad))


def test_the_dry_run_totals_the_cost_and_checks_the_data(tmp_path, capsys):
    bench = _bench(tmp_path)
    assert paper_main(["run", "1", "--dry-run", "--data-root", str(tmp_path / "nothing"), "--bench", bench,
                       "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "# total: 432 cells, 86,400 epochs" in out and "GPU-hours" in out and "measured speed" in out
    assert "# data: MISSING" in out and "cifar-10-batches-py" in out
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    assert paper_main(["run", "1", "--dry-run", "--data-root", str(tmp_path / "cifar"), "--filter", "cifar10_",
                       "--bench", bench, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "# data: found under" in out and "cifar100_" not in out.split("# cost estimate")[1]
