"""Reliability, round four (issue 29): the Python API's weight-net constructors and optimizer refuse what the
probes found them accepting, each in one line (a CmwnetError, which is also a ValueError or TypeError)."""
import pytest
import torch

from cmwnet.errors import CmwnetError
from cmwnet.weighting import CMWNet, MCWNet, MWNet, build_weight_net, task_families, weight_net_optimizer


@pytest.mark.parametrize("make, says", [
    (lambda: build_weight_net("mcwnet", 3, [5] * 10), "10 class counts for num_classes=3"),
    (lambda: weight_net_optimizer(MWNet(), 1e-3, weight_decay=-1.0), "weight_decay must be a number >= 0"),
    (lambda: weight_net_optimizer(MWNet(), 1e-3, weight_decay=float("nan")), "weight_decay must be a number >= 0"),
    (lambda: weight_net_optimizer(MWNet().requires_grad_(False)), "every parameter of the weight net is frozen"),
    (lambda: MCWNet(-2), "num_classes must be an integer >= 1"),
    (lambda: MWNet(hidden=2.5), "hidden must be an integer >= 1"),
    (lambda: MWNet(hidden=0), "hidden must be an integer >= 1"),
    (lambda: task_families([True, False, True]), "got booleans"),
    (lambda: CMWNet([0, -1, 1]), "families holds -1"),
    (lambda: CMWNet([0, 1.5]), "families holds 1.5"),
    (lambda: CMWNet([0, 1], num_families=0), "num_families must be an integer >= 1"),
    (lambda: CMWNet.from_counts([5, 3, 1]).with_families([0, -1, 2]), "families holds -1"),
])
def test_the_api_refuses_bad_weight_net_arguments_in_one_line(make, says):
    with pytest.raises(CmwnetError, match=says):
        make()


def test_good_arguments_still_build():
    assert build_weight_net("mcwnet", 4, [9, 5, 3, 1]).num_curves == 4
    opt = weight_net_optimizer(MWNet(hidden=3), 1e-3, weight_decay=0)
    assert opt.param_groups[0]["weight_decay"] == 0
    assert CMWNet(torch.tensor([0, 1, 1])).num_families == 2


# -- one option check for every command that launches runs (issue 29 item 2) ------------------------------------
def _commands():
    from cmwnet.paper.cli import main as paper
    from cmwnet.paper.cpu_transfer import main as cpu_transfer
    from cmwnet.studies.study import main as study
    from cmwnet.resources import config_file
    from cmwnet.tools.sweep import main as sweep

    return {
        "paper run": lambda extra: paper(["run", "1", "--smoke", "--dry-run"] + extra),
        "sweep": lambda extra: sweep(["--config", config_file("digits_cmwnet.yaml"), "--grid", "seed=1",
                                      "--dry-run"] + extra),
        "paper run --scale full": lambda extra: paper(["run", "2", "--scale", "full", "--smoke", "--dry-run"] + extra),
        "cpu_transfer": lambda extra: cpu_transfer(["--dry-run"] + extra),
        "study": lambda extra: study(["run", "digits"] + extra),
    }


BAD = [(["--jobs", "0"], "--jobs must be >= 1"), (["--threads", "-5"], "--threads must be >= 1"),
       (["--device", "tpu"], "is not a device"), (["--gpus", "7"], "GPU 7 is not visible"),
       (["--seeds", "1", "1"], "repeats a seed"), (["--out", ""], "is empty: give the folder for the runs")]


@pytest.mark.parametrize("bad, says", BAD, ids=[b[0][0] for b in BAD])
@pytest.mark.parametrize("command", ["paper run", "sweep", "paper run --scale full", "cpu_transfer", "study"])
def test_every_launching_command_refuses_the_same_bad_options(command, bad, says):
    """The same message from each command: it comes from the one shared check, before any data or run."""
    run = _commands()[command]
    try:
        run(bad)
    except SystemExit:          # argparse: the command has no such flag (e.g. --gpus on cpu_transfer)
        assert not _has_flag(command, bad[0])
        return
    except CmwnetError as e:
        if "unrecognized arguments" in str(e):   # a one-line parser: the command has no such flag
            assert not _has_flag(command, bad[0])
            return
        assert says in str(e), (command, str(e))
        return
    pytest.fail(f"{command} accepted {bad}")


def _has_flag(command: str, flag: str) -> bool:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        _commands()[command](["--help"]) if command not in ("paper run", "paper run --scale full", "study") else \
            __import__("cmwnet.paper.cli", fromlist=["main"]).main(["run", "--help"]) if command.startswith("paper") else \
            __import__("cmwnet.studies.study", fromlist=["main"]).main(["run", "--help"])
    return flag in buf.getvalue()


def test_the_sweep_refuses_unknown_names_and_its_own_keys_before_any_run(tmp_path):
    from cmwnet.resources import config_file
    from cmwnet.tools.sweep import main as sweep

    cfg = config_file("digits_cmwnet.yaml")
    with pytest.raises(CmwnetError, match="unknown method 'bogus'"):
        sweep(["--config", cfg, "--grid", "method.name=erm,bogus", "--dry-run", "--out", str(tmp_path)])
    for grid in (["--grid", "run.out=a,b"], ["--grid", "seed=1", "--set", "run.name=x"]):
        with pytest.raises(CmwnetError, match="is the sweep's to set"):
            sweep(["--config", cfg] + grid + ["--dry-run", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_truncated_sample_table_is_one_line_everywhere(tmp_path):
    """A truncated final_weights.npz / samples.npz raised BadZipFile: 'internal error' in inspect and study classes."""
    import numpy as np

    from cmwnet.run_folder.inspect import main as inspect_main
    from cmwnet.studies.study import main as study_main
    from cmwnet.run_folder.suspects import suspect_list

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    (run / "result.json").write_text("{}")
    buf = tmp_path / "ok.npz"
    np.savez(buf, weights=np.ones(3), labels=np.zeros(3, int))
    (run / "final_weights.npz").write_bytes(buf.read_bytes()[:40])
    (run / "samples.npz").write_bytes(buf.read_bytes()[:40])
    for call in (lambda: inspect_main([str(run), "--lowest", "2"]), lambda: study_main(["classes", str(run)]),
                 lambda: suspect_list(str(run))):
        with pytest.raises(CmwnetError, match="cannot be read .*BadZipFile.*--force"):
            call()


def test_study_classes_refuses_to_pool_different_data_sets(tmp_path):
    import numpy as np

    from cmwnet.studies.study import main as study_main
    from cmwnet.run_folder.sample_table import write_sample_table

    for name, classes in (("a", ["0", "1"]), ("b", ["cat", "dog", "fox"])):
        (tmp_path / name).mkdir()
        n = len(classes)
        write_sample_table(str(tmp_path / name / "final_weights.npz"),
                           {"weights": np.ones(n), "losses": np.ones(n), "labels": np.arange(n),
                            "clean_labels": np.arange(n), "class_names": np.asarray(classes)}, csv=False)
    with pytest.raises(CmwnetError, match="different classes"):
        study_main(["classes", str(tmp_path / "a"), str(tmp_path / "b")])


def test_meta_grad_is_checked_for_every_method():
    from cmwnet.config import config_from_dict
    from cmwnet.meta_grad import META_GRADS

    with pytest.raises(CmwnetError, match="method.meta_grad"):
        config_from_dict({"method": {"name": "erm", "meta_grad": "bogus"}})
    for mode in META_GRADS:   # the config's list and the meta-gradient module's agree
        config_from_dict({"method": {"name": "erm", "meta_grad": mode}})


def test_study_signal_refuses_negative_epochs():
    from cmwnet.studies.study import main as study_main
    from cmwnet.resources import config_file

    with pytest.raises(CmwnetError, match="--epochs -1"):
        study_main(["signal", "--config", config_file("digits_cmwnet.yaml"), "--epochs", "-1"])


def test_a_forward_mode_run_prints_no_torch_jit_warning(tmp_path):
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error', FutureWarning)\n"
            "from cmwnet.config import config_from_dict\nfrom cmwnet.engine import Trainer\n"
            "cfg = config_from_dict({'name': 'f', 'data': {'name': 'digits', 'val_size': 100, 'meta': {'kind': 'clean', "
            "'per_class': 3}}, 'model': {'name': 'digits_mlp'}, 'optim': {'epochs': 1}, 'method': {'name': 'mwnet', "
            f"'meta_grad': 'forward'}}, 'run': {{'out': {str(tmp_path)!r}, 'progress': False, 'plot': False, "
            "'max_steps': 2}})\nTrainer(cfg, quiet=True).run()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "torch.jit.script" not in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("change, says", [
    ({"ms": 0}, "time is 0 ms"), ({"ms": "fast"}, "time is 'fast' ms"), ({"ms": -3.0}, "time is -3.0 ms"),
    ({"ms": float("nan")}, "time is nan ms"), ({"model": None}, "model is None"), ({"batch": 0}, "batch is 0"),
])
def test_a_damaged_bench_file_is_one_line(tmp_path, change, says):
    import json

    from cmwnet.paper.cost import load_bench

    erm = {"name": "ERM step (eager)", "model": "resnet32", "batch": 100, "ms": 50.0, **change}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"rows": [erm], "device": {"type": "cuda", "name": "GPU"}}))
    with pytest.raises(CmwnetError, match=f"damaged: .*{says}"):
        load_bench(str(path))
    good = {"name": "ERM step (eager)", "model": "resnet32", "batch": 100, "ms": 50.0}
    for bad, why in (({"rows": {"a": 1}}, "not a list of rows"), ({"rows": [good], "device": "a string"}, "device")):
        path.write_text(json.dumps(bad))
        with pytest.raises(CmwnetError, match=f"damaged: .*{why}"):
            load_bench(str(path))


def _meta_step_args():
    x, y = torch.rand(5, 4), torch.randint(0, 10, (5,))
    return x, y, torch.rand(5, 4), torch.randint(0, 10, (5,)), 0


@pytest.mark.parametrize("call, says", [
    (lambda net: net(torch.rand(6), torch.ones(3, 2, dtype=torch.long)), r"labels of shape \(3, 2\)"),
    (lambda net: net(torch.rand(3, 2), torch.ones(6, dtype=torch.long)), r"losses of shape \(3, 2\)"),
    (lambda net: task_families([5, 10, 100, 1000], 2, seed="abc"), "seed .* must be an integer"),
])
def test_weight_net_inputs_of_the_wrong_shape_or_kind_are_one_line(call, says):
    with pytest.raises(CmwnetError, match=says):
        call(CMWNet.from_counts([500] * 5 + [50] * 5))


def test_labels_of_shape_b_by_1_are_one_label_per_sample():
    """Labels (B, 1) used to raise torch's 'Index tensor must have the same number of dimensions'."""
    for net in (CMWNet.from_counts([500] * 5 + [50] * 5), MCWNet(10)):
        losses, labels = torch.rand(3), torch.tensor([1, 2, 7])
        assert torch.equal(net(losses, labels[:, None]), net(losses, labels))


def test_a_meta_step_without_a_meta_optimizer_says_how_to_build_one_or_freeze():
    from cmwnet import MetaStep

    model = torch.nn.Linear(4, 10)
    net = CMWNet.from_counts([500] * 5 + [50] * 5)
    step = MetaStep(model, torch.optim.SGD(model.parameters(), lr=0.1), net, None)
    with pytest.raises(CmwnetError, match="no meta_optimizer.*weight_net_optimizer.*meta_x=None"):
        step.step(*_meta_step_args())
    x, y = _meta_step_args()[:2]
    assert "loss" in step.step(x, y, None, None, 0)    # frozen weighting: the real update alone


def test_a_figure_or_table_written_over_a_folder_names_the_folder_and_leaves_no_temporary_file(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmwnet.checkpoint import atomic_write_text
    from cmwnet.run_folder.plotting import save_figure

    target = tmp_path / "out.png"
    target.mkdir()
    with pytest.raises(CmwnetError, match=rf"{target} is a folder, not a file"):
        save_figure(plt.figure(), target)
    with pytest.raises(CmwnetError, match="is a folder, not a file"):
        atomic_write_text("x", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_study_json_to_an_unwritable_place_names_json(tmp_path):
    from cmwnet.studies.study import _maybe_json

    (tmp_path / "f").write_text("x")
    with pytest.raises(CmwnetError, match=r"--json .* cannot be written .*give --json a file"):
        _maybe_json(str(tmp_path / "f" / "numbers.json"), {"a": 1})


def test_a_long_run_title_is_wrapped_on_a_narrow_class_weights_figure(tmp_path, monkeypatch):
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmwnet.run_folder.run_figures import plot_class_weights

    titles = []
    real_close = plt.close

    def spy(fig=None):
        fig.canvas.draw()
        for ax in fig.axes:
            bbox = ax.title.get_window_extent()
            titles.append((ax.get_title(), bbox.x0 >= 0 and bbox.x1 <= fig.bbox.width))
        real_close(fig)
    monkeypatch.setattr(plt, "close", spy)
    table = {"class_names": np.array(["cat", "dog", "fox"]), "weights": np.array([0.2, 0.5, 0.9]),
             "labels": np.array([0, 1, 2]), "true_labels": np.array([0, 1, 1])}
    title = "cmwnet on image_folder_32px (my own photos, 3 classes, 40% of the labels wrong): learned weighting"
    plot_class_weights(table, str(tmp_path / "cw.png"), title)
    assert titles and "\n" in titles[0][0] and titles[0][1]   # broken into lines, all of it inside the figure


def test_meta_step_misuse_found_by_the_probes_is_one_line():
    from cmwnet import MetaStep, weighted_mean

    model = torch.nn.Linear(4, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    net = CMWNet.from_counts([500] * 5 + [50] * 5)
    net_opt = weight_net_optimizer(net, 1e-3)
    with pytest.raises(CmwnetError, match="the order is MetaStep"):
        MetaStep(model, net_opt, net, opt)
    with pytest.raises(CmwnetError, match="interval must be an integer"):
        MetaStep(model, opt, net, net_opt, interval=2.7)
    frozen = CMWNet.from_counts([500] * 5 + [50] * 5)
    frozen_opt = weight_net_optimizer(frozen, 1e-3)
    frozen.requires_grad_(False)
    with pytest.raises(CmwnetError, match="every parameter of the weight net is frozen"):
        MetaStep(model, opt, frozen, frozen_opt)
    with pytest.raises(CmwnetError, match="iteration must be"):
        MetaStep(model, opt, net, net_opt).step(torch.rand(5, 4), torch.randint(0, 10, (5,)), None, None, None)
    with pytest.raises(CmwnetError, match="a weight is negative"):
        weighted_mean(torch.rand(4), -torch.ones(4))
    assert float(weighted_mean(torch.ones(4), torch.ones(4), total=2.0)) == 2.0   # a plain number as total
    with pytest.raises(CmwnetError, match="3 class counts for num_classes=5"):
        build_weight_net("cmwnet", 5, [100, 50, 5])


def test_grid_values_equal_as_read_are_one_value():
    from cmwnet.tools.sweep import parse_grid

    with pytest.raises(CmwnetError, match="a value is repeated"):
        parse_grid(["optim.lr=0.1,1e-1"], [])
    assert [a.values for a in parse_grid(["optim.lr=0.1,0.05", "method.name=erm,cmwnet"], [])] == [
        ["0.1", "0.05"], ["erm", "cmwnet"]]
