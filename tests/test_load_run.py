"""`cmwnet.load_run(path)`: a finished run's classifier predicts what the run measured, its weight net and
tables come back, `py.typed` ships, and bad input is one line."""
import os

import numpy as np
import pytest
import torch

import cmwnet
from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.errors import CmwnetError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    cfg = config_from_dict({
        "name": "cw", "data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.2},
                               "meta": {"kind": "clean", "per_class": 3}},
        "model": {"name": "digits_mlp"}, "optim": {"epochs": 4}, "method": {"name": "cmwnet"},
        "run": {"out": str(tmp), "progress": False, "plot": False, "save_best": True}})
    Trainer(cfg, quiet=True).run()
    return tmp / "cw"


def test_the_loaded_classifier_reproduces_the_runs_test_accuracy(run_dir):
    from cmwnet.data.digits import load_digits_arrays

    run = cmwnet.load_run(run_dir)
    assert run.which == "last" and not run.model.training and run.class_names == [str(k) for k in range(10)]
    arrays = load_digits_arrays(seed=0)
    x = torch.as_tensor(arrays.test_x)                    # uint8, as the data set stores them
    pred = run.predict(x)
    acc = 100.0 * float((pred.numpy() == arrays.test_y).mean())
    assert acc == pytest.approx(run.result["last_top1"], abs=1e-6)
    probs = run.predict_proba(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=64))
    assert probs.shape == (len(x), 10) and torch.allclose(probs.sum(1), torch.ones(len(x)), atol=1e-5)
    assert torch.equal(probs.argmax(1), pred)


def test_the_weight_net_tables_and_best_model_come_back(run_dir):
    run = cmwnet.load_run(run_dir)
    s, w = run.samples(), run.weights()
    assert s["probs"].shape[0] == len(w["weights"]) and np.array_equal(s["index"], w["index"])
    losses = torch.tensor([0.1, 2.0]); labels = torch.tensor([0, 1])
    assert run.weight_net(losses, labels).shape == (2,)
    best = cmwnet.load_run(run_dir, which="best")
    assert best.which == "best"


def test_load_run_errors_are_one_line(run_dir, tmp_path):
    with pytest.raises(CmwnetError, match="not a run folder"):
        cmwnet.load_run(tmp_path)
    with pytest.raises(CmwnetError, match="'last' or 'best'"):
        cmwnet.load_run(run_dir, which="first")
    with pytest.raises(CmwnetError, match="N x C x H x W"):
        cmwnet.load_run(run_dir).predict(torch.zeros(3, 8))


def test_py_typed_ships():
    assert os.path.exists(os.path.join(os.path.dirname(cmwnet.__file__), "py.typed"))
