"""`data.val_size`: a held-out part of the training set, true labels, for choosing settings without the
test split; and `method.weight_net.init_output`."""
import json

import numpy as np
import pytest
import torch

from cmwnet.config import DataCfg, load_config
from cmwnet.data import build_data
from cmwnet.data.builder import validation_indices
from cmwnet.data.digits import load_digits_arrays
from cmwnet.errors import CmwnetError
from cmwnet.train import main
from cmwnet.weighting import build_weight_net


def _digits(**kw) -> DataCfg:
    cfg = DataCfg(name="digits", **kw)
    cfg.augment.normalize, cfg.augment.flip = "half", False
    return cfg


def test_validation_set_is_disjoint_clean_and_independent_of_the_training_choices():
    arrays = load_digits_arrays(seed=0)
    plain = build_data(_digits(val_size=200), torch.device("cpu"))
    noisy = _digits(val_size=200, train_subset=500, imbalance=5)
    noisy.noise.kind, noisy.noise.rate = "sym", 0.6
    other = build_data(noisy, torch.device("cpu"))
    val = plain.extra_tests["val"]
    assert len(val) == 200 and plain.info["val_size"] == 200
    assert len(plain.train) == len(arrays.train_y) - 200
    # the same images and true labels whatever subset, long tail or noise the training set gets
    assert torch.equal(val.images, other.extra_tests["val"].images)
    assert torch.equal(val.labels, other.extra_tests["val"].labels)
    keep, held = validation_indices(len(arrays.train_y), 200, 0)
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(arrays.train_y)))
    assert np.array_equal(val.labels.numpy(), arrays.train_y[held])   # true labels, never noisy ones
    assert np.array_equal(val.images.numpy(), arrays.train_x[held])
    assert np.array_equal(plain.train.images.numpy(), arrays.train_x[keep])   # training keeps the rest, in order


def test_val_top1_is_reported_per_epoch_and_in_the_result(tmp_path):
    argv = ["--out", str(tmp_path), "--set", "name=v", "--set", "data.name=digits", "--set", "data.val_size=150",
            "--set", "data.augment.normalize=half", "--set", "data.augment.flip=false", "--set", "model.name=digits_mlp",
            "--set", "optim.epochs=2", "--set", "run.progress=false", "--set", "run.plot=false"]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= x["val_top1"] <= 100 for x in lines)
    result = json.loads((tmp_path / "v" / "result.json").read_text())
    assert result["val"]["best_top1"] == max(x["val_top1"] for x in lines)
    assert result["data"]["val_size"] == 150


def test_validation_size_errors_are_one_line():
    with pytest.raises(CmwnetError, match="data.val_size"):
        load_config(None, ["data.val_size=-1"])
    with pytest.raises(CmwnetError, match="at most"):
        build_data(_digits(val_size=100000), torch.device("cpu"))


@pytest.mark.parametrize("kind", ["mwnet", "cmwnet", "mcwnet"])
def test_init_output_starts_every_curve_flat_at_the_given_weight(kind):
    torch.manual_seed(0)
    counts = [50, 40, 30, 20, 10, 5]
    losses = torch.linspace(0, 3, 50).repeat(6)
    labels = torch.arange(6).repeat_interleave(50)
    with torch.no_grad():
        authors = build_weight_net(kind, 6, counts, init_output=None)(losses, labels)
        default = build_weight_net(kind, 6, counts)(losses, labels)
        high = build_weight_net(kind, 6, counts, init_output=0.95)(losses, labels)
    assert 0.3 < float(authors.mean()) < 0.7 and float(authors.std()) > 1e-3   # the authors' init: a random tilt
    assert torch.allclose(default, torch.full_like(default, 0.9), atol=1e-6)    # the library default (defaults.py)
    assert torch.allclose(high, torch.full_like(high, 0.95), atol=1e-6)       # flat at the given weight
    with pytest.raises(CmwnetError, match="init_output"):
        build_weight_net(kind, 6, counts, init_output=1.0)
    with pytest.raises(CmwnetError, match="init_output"):
        load_config(None, ["method.weight_net.init_output=0"])
