"""data.fold: K-fold cross-validated predictions (what cleanlab's find_label_issues asks for): the folds partition
the training samples a plain run trains on, with the same noisy labels, and each fold run writes the final net's
out-of-sample probabilities on its held-out fold (heldout.npz)."""
import numpy as np
import pytest

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.errors import CmwnetError


def _cfg(tmp, name, **fold):
    data = {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4}}
    if fold:
        data["fold"] = fold
    return config_from_dict({"name": name, "data": data, "model": {"name": "digits_mlp"}, "optim": {"epochs": 1},
                             "method": {"name": "erm"}, "run": {"out": str(tmp), "progress": False, "plot": False}})


def test_three_folds_partition_the_plain_runs_samples_with_its_labels(tmp_path):
    Trainer(_cfg(tmp_path, "plain"), quiet=True).run()
    plain = np.load(tmp_path / "plain" / "samples.npz")
    held = []
    for i in range(3):
        Trainer(_cfg(tmp_path, f"f{i}", folds=3, index=i, seed=5), quiet=True).run()
        h = np.load(tmp_path / f"f{i}" / "heldout.npz")
        s = np.load(tmp_path / f"f{i}" / "samples.npz")
        assert not set(h["index"]) & set(s["index"])                       # held out: not trained on
        assert h["probs"].shape == (len(h["index"]), 10) and np.allclose(h["probs"].sum(1), 1, atol=1e-4)
        held.append(h)
    index = np.concatenate([h["index"] for h in held])
    assert sorted(index) == sorted(plain["index"]) and len(set(index)) == len(index)   # a partition
    label_of = dict(zip(plain["index"].tolist(), plain["labels"].tolist()))
    truth_of = dict(zip(plain["index"].tolist(), plain["true_labels"].tolist()))
    for h in held:   # the same noisy labels as the plain run, and the true ones beside them
        assert [label_of[i] for i in h["index"].tolist()] == h["labels"].tolist()
        assert [truth_of[i] for i in h["index"].tolist()] == h["true_labels"].tolist()


@pytest.mark.parametrize("fold, says", [({"folds": 1}, "data.fold.folds"), ({"folds": 3, "index": 3}, "data.fold.index"),
                                        ({"folds": 3, "index": -1}, "data.fold.index")])
def test_bad_folds_are_one_line(fold, says):
    with pytest.raises(CmwnetError, match=says):
        config_from_dict({"data": {"fold": fold}})
