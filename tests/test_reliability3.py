"""Issue 17, reliability round three: the Python API as strict as the CLI, no silent wrong run, table
options checked before any cell starts. Each test here failed on the code before the fix."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn

import cmwnet
from cmwnet.errors import CmwnetError, run_cli
from cmwnet.train import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")


def one_error(capsys, main, args, *needles) -> str:
    """Run a CLI main; assert exit 2 with one `error:` line holding every needle; return that line."""
    capsys.readouterr()
    rc = run_cli(main, args)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- the command line ------------------------------------------------------------------------------
def test_train_without_arguments_does_not_start_a_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_error(capsys, train_main, [], "--config is needed", "digits_cmwnet")
    assert not (tmp_path / "runs").exists()


# -- the Python API: MetaStep --------------------------------------------------------------------------
from cmwnet.errors import CmwnetTypeError, CmwnetValueError  # noqa: E402
from helpers import TinyBN  # noqa: E402


def make_step(interval=1, loss_fn=None, adam=True, meta_grad="exact"):
    torch.manual_seed(0)
    model = TinyBN()
    vnet = cmwnet.CMWNet.from_counts([50, 30, 5])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mopt = torch.optim.Adam(vnet.parameters(), lr=1e-3) if adam else torch.optim.SGD(vnet.parameters(), lr=0.1)
    kw = {} if loss_fn is None else {"loss_fn": loss_fn}
    return cmwnet.MetaStep(model, opt, vnet, mopt, interval=interval, meta_grad=meta_grad, **kw)


def batch(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def state_of(step):
    """Everything a step may change: model and weight-net tensors, both optimizers' states."""
    def opt_state(o):
        return [(k, v.clone() if torch.is_tensor(v) else v) for s in o.state.values() for k, v in sorted(s.items())]
    return ([t.detach().clone() for t in step.model.state_dict().values()],
            [t.detach().clone() for t in step.weight_net.state_dict().values()],
            opt_state(step.optimizer), opt_state(step.meta_optimizer))


def same_state(a, b):
    for xs, ys in zip(a, b):
        assert len(xs) == len(ys)
        for u, v in zip(xs, ys):
            if isinstance(u, tuple):
                assert u[0] == v[0]
                u, v = u[1], v[1]
            if torch.is_tensor(u):
                assert torch.equal(u, v), (u, v)
            else:
                assert u == v


@pytest.mark.parametrize("meta_grad", ["exact", "head", "forward"])
@pytest.mark.parametrize("where", ["x", "meta_x", "loss", "inf_x", "x_off_meta_step"])
def test_nan_in_a_step_raises_and_leaves_everything_as_it_was(where, meta_grad):
    def loss_fn(logits, y):
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        return losses * torch.tensor([float("nan")] + [1.0] * (len(y) - 1)) if where == "loss" else losses
    step = make_step(interval=2 if where == "x_off_meta_step" else 1, loss_fn=loss_fn, meta_grad=meta_grad)
    x, y = batch()
    mx, my = batch(6, seed=2)
    for it in range(2):   # two good steps first: optimizer states exist
        step.step(x, y, mx, my, iteration=it) if where != "loss" else None
    before = state_of(step)
    x, mx = x.clone(), mx.clone()
    if where in ("x", "x_off_meta_step"):
        x[3, 1] = float("nan")
    elif where == "inf_x":
        x[0, 0] = float("inf")
    elif where == "meta_x":
        mx[2, 2] = float("nan")
    with pytest.raises(CmwnetValueError, match="NaN or Inf"):
        step.step(x, y, mx, my, iteration=3 if where == "x_off_meta_step" else 2)
    same_state(before, state_of(step))
    assert all(torch.isfinite(p).all() for p in step.weight_net.parameters())


def test_finite_steps_are_unchanged_by_the_guard():
    a, b = make_step(), make_step()
    b.check_finite = False
    x, y = batch()
    mx, my = batch(6, seed=2)
    for it in range(3):
        oa, ob = a.step(x, y, mx, my, it), b.step(x, y, mx, my, it)
        assert torch.equal(oa["loss"], ob["loss"])
    same_state(state_of(a), state_of(b))


def test_meta_update_with_a_nan_meta_loss_raises_before_the_update():
    step = make_step()
    x, y = batch()
    before = state_of(step)
    virtual, _ = step.reweighting_losses(x, y, x, y)
    with pytest.raises(CmwnetValueError, match="meta loss or the meta-gradient"):
        step.meta_update(virtual, lambda forward: forward(x).sum() * float("nan"))
    same_state(before, state_of(step))


@pytest.mark.parametrize("bad,needles", [
    (lambda x, y: (x, y.float()), ["y is torch.float32", "y.long()"]),
    (lambda x, y: (x, y.int()), ["y is torch.int32", "y.long()"]),
    (lambda x, y: (x.double(), y), ["x is torch.float64", "the model is torch.float32", "x.to(torch.float32)"]),
    (lambda x, y: (x.long(), y), ["x is torch.int64", "floating tensor"]),
    (lambda x, y: (x, y[:5]), ["one label per sample"]),
    (lambda x, y: (x.tolist(), y), ["x is a list"]),
])
def test_wrong_dtypes_and_shapes_are_one_clear_error(bad, needles):
    step = make_step()
    x, y = bad(*batch())
    with pytest.raises(CmwnetError) as e:
        step.step(x, y, None, None, iteration=0)
    assert isinstance(e.value, (TypeError, ValueError))
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_a_negative_label_is_refused():
    step = make_step()
    x, y = batch()
    y[0] = -1
    with pytest.raises(CmwnetValueError, match="label -1 is negative"):
        step.step(x, y, *batch(6, 2), iteration=0)


def test_model_and_weight_net_on_different_devices():
    step = make_step()
    step.weight_net.to("meta")
    with pytest.raises(CmwnetValueError, match="the weight net on meta"):
        step.step(*batch(), None, None, iteration=0)


# -- the Python API: weight nets ---------------------------------------------------------------------
def test_cmwnet_forward_needs_one_label_per_loss():
    net = cmwnet.CMWNet.from_counts([50, 30, 5])
    with pytest.raises(CmwnetValueError, match="3 losses but 2 labels"):
        net(torch.rand(3), torch.tensor([0, 1]))


def test_cmwnet_forward_refuses_a_label_without_a_curve():
    net = cmwnet.CMWNet.from_counts([50, 30, 5])
    for label in (-1, 3):
        with pytest.raises(CmwnetValueError, match=f"label {label} has no curve"):
            net(torch.rand(2), torch.tensor([0, label]))


@pytest.mark.parametrize("net", [cmwnet.CMWNet.from_counts([50, 30, 5]), cmwnet.MWNet(), cmwnet.MCWNet(3)])
def test_an_infinite_loss_is_refused_not_a_nan_weight(net):
    with pytest.raises(CmwnetValueError, match="NaN or Inf"):
        net(torch.tensor([0.5, float("inf")]), torch.tensor([0, 1]))


@pytest.mark.parametrize("counts,needle", [([50, -3, 5], "class_counts[1] is -3"), ([50, 2.5], "class_counts[1]"),
                                           ([50, float("nan")], "class_counts[1]"), ([], "non-empty"),
                                           (["a", "b"], "list of per-class sample counts")])
def test_from_counts_refuses_bad_counts(counts, needle):
    with pytest.raises(CmwnetError) as e:
        cmwnet.CMWNet.from_counts(counts)
    assert needle in str(e.value)


# -- the API's defaults are the command line's ----------------------------------------------------------
def test_api_defaults_equal_the_cli_defaults():
    from cmwnet.config import Config
    from cmwnet.weighting import build_weight_net

    w = Config().method.weight_net
    net = cmwnet.CMWNet.from_counts([50, 30, 5])
    curves = net.curves(torch.linspace(0, 10, 20))
    assert torch.allclose(curves, torch.full_like(curves, w.init_output)) and w.init_output == 0.9
    opt = cmwnet.weight_net_optimizer(net)
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == w.lr == 1e-4 and opt.param_groups[0]["weight_decay"] == w.weight_decay
    # the trainer's net with the config's default equals the API's; null still gives the authors' init
    torch.manual_seed(0)
    api = cmwnet.CMWNet.from_counts([50, 30, 5])
    torch.manual_seed(0)
    cli = build_weight_net("cmwnet", 3, [50, 30, 5], hidden=w.hidden, families=w.families, init_output=w.init_output)
    assert all(torch.equal(a, b) for a, b in zip(api.state_dict().values(), cli.state_dict().values()))
    torch.manual_seed(0)
    authors = build_weight_net("cmwnet", 3, [50, 30, 5], init_output=None)
    torch.manual_seed(0)
    raw = cmwnet.CMWNet([0, 1, 2], num_families=3)
    assert all(torch.equal(a, b) for a, b in zip(authors.state_dict().values(), raw.state_dict().values()))


def test_readme_and_example_use_the_default_optimizer():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = open(os.path.join(root, "README.md")).read().split("## Python API", 1)[1].split("```", 2)[1]
    example = open(os.path.join(root, "examples", "own_loop.py")).read()
    for text in (readme, example):
        assert "weight_net_optimizer(vnet)" in text and "1e-3" not in text


# -- unknown keys under free-form mappings ----------------------------------------------------------------
TINY = ["data.name=digits", "data.augment.normalize=half", "model.name=tiny_mlp", "optim.epochs=1",
        "run.max_steps=1", "run.progress=false", "run.plot=false", "run.device=cpu"]


def tiny_argv(out, *sets, name="r3"):
    a = ["--out", str(out), "--quiet", "--set", f"name={name}"]
    for s in TINY + list(sets):
        a += ["--set", s]
    return a


@pytest.mark.parametrize("sets,needles", [
    (["method.name=cmwnet", "data.meta.kind=clean", "method.args.intervall=5"],
     ["unknown method.args key 'intervall'", "did you mean 'method.interval'"]),
    (["method.args.foo=1"], ["unknown method.args key 'foo'", "method 'erm' takes no method.args"]),
    (["method.name=forward", "method.loss=forward", "method.args.percentil=90"],
     ["did you mean 'method.args.percentile'", "estimate_epoch"]),
    (["model.args.batchnrom=true"], ["unknown model.args key 'batchnrom'", "did you mean 'model.args.batchnorm'"]),
    (["method.loss=focal", "method.loss_args.gama=2"],
     ["unknown method.loss_args key 'gama'", "did you mean 'method.loss_args.gamma'"]),
    (["method.loss_args.q=0.7"], ["loss 'ce' takes no method.loss_args"]),
])
def test_unknown_keys_in_free_form_mappings_are_refused(tmp_path, capsys, sets, needles):
    one_error(capsys, train_main, tiny_argv(tmp_path, *sets), *needles)
    assert not (tmp_path / "r3").exists()   # refused before the run folder or the data


# -- table-runner options, checked before any cell starts ----------------------------------------------
from cmwnet.paper.cli import main as paper_main  # noqa: E402


@pytest.mark.parametrize("args,needles", [
    (["1", "--device", "tpu"], ["--device 'tpu' is not a device", "cuda:N"]),
    (["1", "--threads", "-5"], ["--threads must be >= 1, got -5"]),
    (["1", "--jobs", "0"], ["--jobs must be >= 1"]),
    (["1", "--gpus", "x,y"], ["--gpus 'x,y' is not a GPU list"]),
    (["1", "--gpus", "99"], ["GPU 99 is not visible"]),
    (["1", "--seeds", "1", "1"], ["repeats a seed"]),
    (["1", "--seeds", "-2"], ["a seed is an integer in [0, 2^32)"]),
    (["1", "--epochs", "0"], ["--epochs must be >= 1"]),
    (["1", "--filter", "no_such_cell"], ["--filter no_such_cell matches no cell of table 1", "cifar10_if100/erm"]),
    (["fig9", "--filter", "no_such_cell"], ["matches no cell of table fig9", "cifar10_q0.3/proden"]),
    (["6", "--smoke", "--weight-net", "/no/such/file.pt"], ["--weight-net does not apply with --smoke"]),
    (["7", "--smoke", "--pretrained", "/no/such/file.pt"], ["--pretrained does not apply with --smoke"]),
    (["6", "--weight-net", "/no/such/file.pt"], ["--weight-net /no/such/file.pt not found"]),
    (["8", "--dry-run"], ["table 8: no cell can run", "needs --pretrained"]),
])
def test_table_options_are_checked_before_any_cell(tmp_path, capsys, args, needles):
    one_error(capsys, paper_main, ["run", *args, "--out", str(tmp_path / "t")], *needles)
    assert not (tmp_path / "t" / "logs").exists()


# -- paper report ---------------------------------------------------------------------------------------
def _fake_result(folder, text=None):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"epoch": 0, "test_top1": 50.0, "test_top5": 90.0}) + "\n")
    with open(os.path.join(folder, "result.json"), "w") as f:
        f.write(text if text is not None else json.dumps({"best_top1": 50.0, "last_top1": 50.0, "best_top5": 90.0,
                                                         "last_top5": 90.0, "seed": 1}))


def test_report_of_a_table_from_an_empty_or_unrelated_folder_is_an_error(tmp_path, capsys):
    from cmwnet.paper.registry import get_table

    empty = tmp_path / "empty"
    empty.mkdir()
    one_error(capsys, paper_main, ["report", "1", str(empty), "--no-figure"], "no finished run of table 1")
    assert os.listdir(empty) == []   # no table of dashes written there
    spec = get_table("6")
    _fake_result(tmp_path / "t6" / spec.settings[0].key / spec.run_rows()[0].key / "s1")
    one_error(capsys, paper_main, ["report", "1", str(tmp_path / "t6"), "--no-figure"],
              "no finished run of table 1", "tables with runs there: 6")


def test_report_names_a_truncated_result_file(tmp_path, capsys):
    from cmwnet.paper.registry import get_table

    spec = get_table("1")
    s, r = spec.settings[0], spec.run_rows()[0]
    _fake_result(tmp_path / s.key / r.key / "s1")
    _fake_result(tmp_path / s.key / r.key / "s2", text='{"best_top1": 5')
    line = one_error(capsys, paper_main, ["report", "1", str(tmp_path), "--no-figure"], "is truncated or not a result")
    assert f"{s.key}/{r.key}/s2/result.json" in line


# -- internal errors that are user errors -------------------------------------------------------------
def _cifar10_tree(root, **override):
    """A tiny canonical CIFAR-10 tree (5 train batches and a test batch of 20 images); `override` replaces
    entries of data_batch_2 (data, labels), of the test batch (test_data, test_labels) or the label names."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [c for c in range(10) for _ in range(2)]
        d = {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), "labels": labels}
        if name == "data_batch_2":
            d.update({k: v for k, v in override.items() if k in ("data", "labels")})
        if name == "test_batch":
            d.update({k[5:]: v for k, v in override.items() if k.startswith("test_")})
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": override.get("names", [f"c{i}" for i in range(10)])}, f)
    return folder


CIFAR = ["data.name=cifar10", "model.name=tiny_cnn", "data.augment.normalize=cifar"]


@pytest.mark.parametrize("override,needles", [
    ({"labels": [str(c) for c in range(10) for _ in range(2)]}, ["'labels' that are str", "flat list of class numbers"]),
    ({"labels": [[c] for c in range(10) for _ in range(2)]}, ["'labels' that are 2-d"]),
    ({"test_data": np.zeros((0, 3072), np.uint8), "test_labels": []}, ["test_batch holds no images"]),
    ({"data": np.full((20, 3072), 0.5)}, ["pixels that are floats", "uint8"]),
    ({"data": np.full((20, 3072), -3, dtype=np.int64)}, ["pixels that are int64 values in [-3, -3]"]),
    ({"names": [f"c{i}" for i in range(20)]}, ["names 20 classes, not 10"]),
])
def test_bad_cifar_pickles_are_one_error(tmp_path, capsys, override, needles):
    root = tmp_path / "data"
    _cifar10_tree(root, **override)
    one_error(capsys, train_main, tiny_argv(tmp_path / "runs", *CIFAR, f"data.root={root}"), *needles)


def test_flip_map_target_out_of_range(tmp_path, capsys):
    one_error(capsys, train_main, tiny_argv(tmp_path, "data.noise.kind=asym", "data.noise.rate=0.4",
                                            "data.noise.flip_map={9: 15}"),
              "data.noise.flip_map maps 9 to 15", "classes 0..9")


def test_a_training_set_of_one_sample_through_batchnorm(tmp_path, capsys):
    one_error(capsys, train_main, tiny_argv(tmp_path, "data.train_subset=1", "model.name=resnet8"),
              "the training set has 1 sample(s)", "data.train_subset >= 2")


def _damaged_weight_nets(folder):
    net = cmwnet.CMWNet.from_counts([5, 4, 3])
    net.save(folder / "good.pt")
    blob = torch.load(folder / "good.pt", weights_only=True)
    no_config = dict(blob)
    del no_config["config"]
    torch.save(no_config, folder / "noconfig.pt")
    shapes = dict(blob, state_dict={k: torch.zeros(7, 7) for k in blob["state_dict"]})
    torch.save(shapes, folder / "shapes.pt")
    authors = {"feature.layer.0.weight": torch.zeros(3, 3), "feature.layer.0.bias": torch.zeros(3),
               "classfier.layers.0.0.weight": torch.zeros(1, 5), "classfier.layers.0.0.bias": torch.zeros(1)}
    torch.save(authors, folder / "authors.pt")


@pytest.mark.parametrize("name,needle", [("noconfig", "format tag but is damaged (KeyError: 'config')"),
                                         ("shapes", "format tag but is damaged (RuntimeError"),
                                         ("authors", "authors' CMW-Net layout but its tensors do not fit")])
def test_damaged_weight_net_files(tmp_path, capsys, name, needle):
    from cmwnet.tools.transfer import main as transfer_main

    _damaged_weight_nets(tmp_path)
    path = str(tmp_path / f"{name}.pt")
    one_error(capsys, transfer_main, ["convert", path, str(tmp_path / "out.pt")], needle)
    one_error(capsys, train_main, tiny_argv(tmp_path / "runs", "method.name=cmwnet", "data.meta.kind=clean",
                                            "data.meta.per_class=3", f"method.weight_net.init={path}"), needle)


def test_a_metrics_line_that_is_a_list(tmp_path, capsys):
    from cmwnet.run_folder.curves import main as curves_main

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text("[1, 2]\n")
    one_error(capsys, curves_main, [str(tmp_path / "r")], "line 1: a JSON list, not a record of one epoch")


@pytest.mark.parametrize("pattern,needle", [("([", "is not a regular expression"), ("zzz", "matches no cell of study")])
def test_study_filter_is_checked_first(tmp_path, capsys, pattern, needle):
    from cmwnet.studies.study import main as study_main

    one_error(capsys, study_main, ["run", "digits", "--filter", pattern, "--out", str(tmp_path / "s")], needle)
    assert not (tmp_path / "s").exists()
