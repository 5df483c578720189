"""Issue 19: a run's per-sample files name the reader's samples (index, file, labels, class names),
`python -m cmwnet.inspect` lists and shows the lowest weights, the weighting is kept per epoch (no
duplicate epoch on resume), the figures are drawn from the run's files, and run.save_best keeps the
best-on-val net."""
import csv
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.errors import CmwnetError
from cmwnet.run_folder.inspect import main as inspect_main

PNG = b"\x89PNG\r\n\x1a\n"


def _digits_cfg(tmp_path, **run):
    return config_from_dict({
        "name": "files", "data": {"name": "digits", "val_size": 100, "imbalance": 5,
                                  "meta": {"kind": "clean", "per_class": 3}, "noise": {"kind": "asym", "rate": 0.4}},
        "model": {"name": "digits_mlp"}, "optim": {"epochs": 2}, "method": {"name": "cmwnet"},
        "run": {"out": str(tmp_path), "progress": False, "max_steps": 3, "save_best": True, **run}})


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 2-epoch digits run stopped after its first epoch and resumed (as by SIGTERM and a rerun)."""
    tmp_path = tmp_path_factory.mktemp("digits")
    cfg = _digits_cfg(tmp_path)
    real = Trainer._run_epoch

    def stop_after_one(self):
        real(self)
        self._stop_signal = signal.SIGTERM

    Trainer._run_epoch = stop_after_one
    try:
        with pytest.raises(SystemExit):
            Trainer(cfg, quiet=True).run()
    finally:
        Trainer._run_epoch = real
    Trainer(cfg, quiet=True).run()
    return tmp_path / "files"


def test_final_weights_name_the_readers_samples(digits_run):
    from cmwnet.data.digits import load_digits_arrays

    z = np.load(digits_run / "final_weights.npz")
    assert {"weights", "labels", "losses", "clean_labels", "index", "paths", "true_labels", "class_names"} <= set(z.files)
    reader = load_digits_arrays(seed=0)
    assert (reader.train_y[z["index"]] == z["true_labels"]).all()   # index = position in the reader's training split
    assert (z["true_labels"] != z["labels"]).any() and (z["true_labels"] == z["clean_labels"]).all()
    assert len(set(z["index"].tolist())) == len(z["index"]) and all(p == "" for p in z["paths"])
    rows = list(csv.DictReader(open(digits_run / "final_weights.csv")))
    assert len(rows) == len(z["weights"])
    i = int(np.flatnonzero(~np.isnan(z["weights"]))[0])
    assert rows[i]["index"] == str(z["index"][i]) and rows[i]["observed_name"] == str(z["class_names"][z["labels"][i]])
    assert abs(float(rows[i]["weight"]) - z["weights"][i]) < 1e-5
    assert rows[int(np.flatnonzero(np.isnan(z["weights"]))[0])]["weight"] == ""   # not weighted in the last epoch
    r = json.loads((digits_run / "result.json").read_text())
    assert r["class_names"] == [str(k) for k in range(10)]


def test_history_has_each_epoch_once_across_a_resume(digits_run):
    h = np.load(digits_run / "weighting_history.npz")
    assert h["epochs"].tolist() == [0, 1]
    assert h["weights"].shape == (2, 3, 64) and h["grid"].shape == (2, 64)
    assert (h["weights"] >= 0).all() and (h["weights"] <= 1).all()
    lines = [json.loads(x) for x in (digits_run / "metrics.jsonl").read_text().splitlines()]
    assert all(x["train_ce"] > 0 for x in lines)   # the unweighted CE beside the weighted train_loss


def test_best_model_is_chosen_on_val(digits_run):
    import torch

    r = json.loads((digits_run / "result.json").read_text())
    lines = [json.loads(x) for x in (digits_run / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda x: x["val_top1"])
    assert r["best_model"]["selected_on"] == "val_top1" and r["best_model"]["epoch"] == best["epoch"]
    blob = torch.load(digits_run / "best_model.pt", weights_only=True)
    assert blob["epoch"] == best["epoch"] and blob["selected_on"] == "val_top1"


def test_the_run_draws_its_figures(digits_run):
    for name in ("weighting.png", "weighting_evolution.png", "class_weights.png", "transition_matrix.png"):
        assert (digits_run / name).read_bytes()[:8] == PNG, name
    from cmwnet.run_folder.run_figures import describe

    r = json.loads((digits_run / "result.json").read_text())
    rate = r["data"]["noise"]["realised_rate"]
    assert describe(r) == f"cmwnet on digits (40% asym noise, {rate * 100:.1f}% of labels wrong)"
    assert rate < 0.4   # asym noise flips only some classes: the nominal rate is not what the data got


def test_inspect_lists_the_lowest_weights_and_writes_a_sheet(digits_run, capsys, tmp_path):
    out = tmp_path / "sheet.png"
    assert inspect_main([str(digits_run), "--lowest", "7", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    z = np.load(digits_run / "final_weights.npz")
    lowest = np.sort(z["weights"][~np.isnan(z["weights"])])[:7]
    shown = [float(ln.split()[4 if "*" not in ln else 5]) for ln in lines[1:8]]
    assert np.allclose(shown, lowest, atol=1e-4) and lines[0].split()[:2] == ["rank", "index"]
    assert out.read_bytes()[:8] == PNG
    assert inspect_main([str(digits_run), "--highest", "3", "--class", "2", "--no-sheet"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:4]
    assert all(r.split()[2] == "2" for r in rows)
    with pytest.raises(CmwnetError, match="unknown class .*'twelve'"):
        inspect_main([str(digits_run), "--class", "twelve"])


def test_inspect_errors_are_one_line(tmp_path):
    with pytest.raises(CmwnetError, match="is not a folder"):
        inspect_main([str(tmp_path / "nope")])
    with pytest.raises(CmwnetError, match="not a run folder"):
        inspect_main([str(tmp_path)])
    (tmp_path / "config.yaml").write_text("name: x\n")
    with pytest.raises(CmwnetError, match="no final_weights.npz .*has not finished"):
        inspect_main([str(tmp_path)])
    r = subprocess.run([sys.executable, "-m", "cmwnet.inspect", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error:")


def test_version():
    from cmwnet import __version__

    r = subprocess.run([sys.executable, "-m", "cmwnet", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"cmwnet {__version__}"


def test_an_image_folder_run_keeps_file_paths_and_says_val(tmp_path, capsys):
    from PIL import Image

    classes = ("cat", "dog", "fox")
    for split, n in (("train", 8), ("val", 2)):
        for k, c in enumerate(classes):
            (tmp_path / "tree" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), 60 * k + 5 * i, np.uint8)).save(tmp_path / "tree" / split / c / f"{i}.png")
    cfg = config_from_dict({
        "name": "folder", "data": {"name": "image_folder_32px", "root": str(tmp_path / "tree"), "batch_size": 8,
                                   "meta": {"kind": "lowest_loss", "per_class": 1, "model": "model"},
                                   "augment": {"crop_pad": 0}},
        "model": {"name": "tiny_cnn"}, "optim": {"epochs": 1}, "method": {"name": "mwnet"},
        "run": {"out": str(tmp_path / "runs"), "progress": False, "max_steps": 2, "plot": False}})
    Trainer(cfg).run()
    assert "test (val/)" in capsys.readouterr().out
    run = tmp_path / "runs" / "folder"
    z = np.load(run / "final_weights.npz")
    names = list(z["class_names"])
    assert names == list(classes)
    assert all(p.split("/")[-2] == names[y] for p, y in zip(z["paths"], z["labels"]))   # each path is its sample
    assert (z["true_labels"] == -1).all()   # the folder's own labels: the true label is unknown
    r = json.loads((run / "result.json").read_text())
    assert r["test_split"] == "val/" and "best_top1" in r
    assert inspect_main([str(run), "--lowest", "4"]) == 0
    assert "true label unknown" in capsys.readouterr().out
    assert (run / "lowest_weights.png").read_bytes()[:8] == PNG


def test_inspect_sheets_are_titled_by_the_run_and_one_per_class(tmp_path, monkeypatch):
    """The sheet's title named only 's1', and --class wrote over the same lowest_weights.png."""
    from cmwnet.run_folder import inspect as insp

    run = tmp_path / "cifar10_if100" / "cmwnet" / "s1"
    assert insp.run_label(str(run)) == "cifar10_if100/cmwnet/s1"
    assert insp.run_label(str(tmp_path / "myrun")) == "myrun"
    titles, paths = [], []
    monkeypatch.setattr(insp, "contact_sheet", lambda images, captions, path, title: (titles.append(title),
                                                                                    paths.append(path))[1])
    monkeypatch.setattr(insp, "load_images", lambda run, table, rows: [None] * len(rows))
    monkeypatch.setattr(insp, "open_run", lambda run: {
        "weights": np.array([0.1, 0.2, 0.3]), "labels": np.array([0, 1, 1]), "true_labels": np.array([0, 1, 0]),
        "index": np.arange(3), "paths": np.array(["", "", ""]), "class_names": np.array(["cat", "dog"])})
    assert insp.main([str(run), "--lowest", "2"]) == 0
    assert insp.main([str(run), "--lowest", "2", "--class", "dog"]) == 0
    assert paths == [str(run / "lowest_weights.png"), str(run / "lowest_weights_dog.png")]
    assert titles[0].startswith("cifar10_if100/cmwnet/s1: the 2 lowest-weight")


def test_weighting_evolution_spans_the_losses_the_net_saw(tmp_path):
    """Epochs before meta-learning have no losses and a fallback grid to 10: the axis used to run to 10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmwnet.run_folder import run_figures

    grid = np.stack([np.linspace(0, 10, 64), np.linspace(0, 10, 64), np.linspace(0, 2.5, 64)]).astype(np.float32)
    history = {"epochs": np.arange(3), "grid": grid, "weights": np.full((3, 2, 64), 0.5, np.float32)}
    captured = {}
    real = run_figures.save_figure

    def keep(fig, path, dpi=110):
        captured["xlim"] = [ax.get_xlim() for ax in fig.axes if ax.get_visible() and ax.get_title()]
        captured["titles"] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return real(fig, path, dpi=dpi)
    run_figures.save_figure = keep
    try:
        run_figures.plot_evolution(history, ["family 0", "family 1"], str(tmp_path / "e.png"), "cmwnet on x")
    finally:
        run_figures.save_figure = real
    assert captured["xlim"] == [(0.0, 2.5), (0.0, 2.5)] and captured["titles"] == ["family 0", "family 1"]
    plt.close("all")
