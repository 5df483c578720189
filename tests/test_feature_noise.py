"""Feature-dependent (PLC PMD) noise: the Type I/II/III formulas, the factor, Table 5's i.i.d. noise,
the cached label files and the posterior network run."""
import json
import os

import numpy as np
import pytest

from cmwnet.data import feature_noise as fn
from cmwnet.errors import CmwnetError

# two hand-made posterior rows: top-two gaps 0.5 and 0.1
POST = np.array([[0.7, 0.2, 0.1], [0.05, 0.5, 0.45]])


def test_top_two_and_gap():
    u, s, d = fn.top_two(POST)
    assert u.tolist() == [0, 1] and s.tolist() == [1, 2]
    assert np.allclose(d, [0.5, 0.05])


@pytest.mark.parametrize("noise_type,expected", [
    (1, [0.5 + 0.5 * 0.25, 0.5 + 0.5 * 0.0025]),      # q = max(1 - (-d^2/2 + 1/2), 1/2)
    (2, [0.125, 0.05 ** 3]),                         # q = |d|^3
    (3, [(0.125 + 0.25 + 0.5) / 3, (0.05 ** 3 + 0.05 ** 2 + 0.05) / 3]),  # (d^3 + d^2 + d) / 3
])
def test_pmd_q_formulas(noise_type, expected):
    _, _, d = fn.top_two(POST)
    assert np.allclose(fn.pmd_q(d, noise_type), expected)


def test_keep_probability_and_expected_rate_by_hand():
    # Type II, factor 0.1: P(u) = min(q / 0.1, 1) = [1.0, 0.00125]
    p_u = fn.keep_top_probability(POST, 2, 0.1)
    assert np.allclose(p_u, [1.0, 0.00125])
    clean = np.array([0, 1])   # sample 0: u correct; sample 1: u correct, s wrong
    # noisy iff the label is s: rate = mean(1 - p_u) = (0 + 0.99875) / 2
    assert fn.expected_noise_rate(POST, clean, 2, 0.1) == pytest.approx(0.99875 / 2)
    clean2 = np.array([1, 1])  # sample 0: u=0 wrong, s=1 right -> noisy with probability p_u = 1
    assert fn.expected_noise_rate(POST, clean2, 2, 0.1) == pytest.approx((1.0 + 0.99875) / 2)
    with pytest.raises(CmwnetError):
        fn.pmd_q(np.array([0.1]), 4)


def _fake_posteriors(n=4000, c=10, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), clean] += rng.uniform(0.5, 6, n)   # mostly right, varying confidence
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), clean


@pytest.mark.parametrize("noise_type", [1, 2, 3])
@pytest.mark.parametrize("target", [0.35, 0.70])
def test_calibrated_factor_hits_the_target_rate(noise_type, target):
    post, clean = _fake_posteriors()
    f = fn.calibrate_factor(post, clean, noise_type, target)
    assert fn.expected_noise_rate(post, clean, noise_type, f) == pytest.approx(target, abs=2e-4)
    labels = fn.pmd_labels(post, noise_type, f, seed=1)
    u, s, _ = fn.top_two(post)
    assert np.all((labels == u) | (labels == s))           # only ever the top-two classes
    assert (labels != clean).mean() == pytest.approx(target, abs=0.03)   # sampled: close to expected


def test_unreachable_rate_is_an_error_unless_not_strict():
    post, clean = _fake_posteriors()
    u, _, _ = fn.top_two(post)
    floor = (u != clean).mean()
    with pytest.raises(CmwnetError, match="cannot reach"):
        fn.calibrate_factor(post, clean, 1, floor / 2)
    f = fn.calibrate_factor(post, clean, 1, floor / 2, strict=False)
    assert fn.expected_noise_rate(post, clean, 1, f) == pytest.approx(floor)


def test_iid_transitions():
    t = fn.iid_transition("unif", 0.3, 10)
    assert np.allclose(t.sum(1), 1) and np.allclose(np.diag(t), 0.7) and t[0, 1] == pytest.approx(0.3 / 9)
    f = fn.iid_transition("flip", 0.3, 10)
    assert f[9, 1] == f[2, 0] == f[3, 5] == f[5, 3] == f[4, 7] == pytest.approx(0.3)
    assert f[0, 0] == f[1, 1] == 1.0
    f100 = fn.iid_transition("flip", 0.3, 100)
    assert f100[4, 0] == pytest.approx(0.3) and f100[7, 8] == pytest.approx(0.3) and f100[99, 95] == pytest.approx(0.3)
    with pytest.raises(CmwnetError):
        fn.iid_transition("flip", 0.3, 7)
    labels = np.repeat(np.arange(10), 2000)
    noisy = fn.apply_transition(labels, t, seed=1)
    assert (noisy != labels).mean() == pytest.approx(0.3, abs=0.015)
    assert np.all(noisy[noisy != labels] != labels[noisy != labels])


def test_label_file_cache_records_rate_and_detects_changes(tmp_path):
    post, clean = _fake_posteriors(2000)
    spec = fn.NoiseSpec("cifar10", 1, 0.35, "unif", 0.3, seed=1)
    path, meta = fn.ensure_label_file(spec, str(tmp_path), post, clean)
    assert os.path.basename(path) == "cifar10-type1-0.35+unif0.30.npy"
    labels = np.load(path)
    with open(path + ".meta.json") as f:
        side = json.load(f)["meta"]
    assert side == meta
    assert side["realised_rate"] == pytest.approx((labels != clean).mean(), abs=1e-6)
    assert side["pmd_realised_rate"] == pytest.approx(0.35, abs=0.04)
    assert side["realised_rate"] > side["pmd_realised_rate"]       # the i.i.d. part adds noise
    assert side["target_reached"] and side["iid"] == {"kind": "unif", "rate": 0.3, "seed": [1, 1]}
    # Table 5's file is Table 4's 35% file plus i.i.d. noise drawn independently of the PMD draw
    path4, _ = fn.ensure_label_file(fn.NoiseSpec("cifar10", 1, 0.35, seed=1), str(tmp_path), post, clean)
    labels4 = np.load(path4)
    moved = labels != labels4
    assert moved.mean() == pytest.approx(0.3, abs=0.04)
    u = fn.top_two(post)[0]
    assert moved[labels4 == u].mean() == pytest.approx(0.3, abs=0.05)
    assert moved[labels4 != u].mean() == pytest.approx(0.3, abs=0.06)
    mtime = os.path.getmtime(path)
    path2, _ = fn.ensure_label_file(spec, str(tmp_path), post, clean)   # cached: reused, not redrawn
    assert path2 == path and os.path.getmtime(path) == mtime
    with pytest.raises(CmwnetError, match="another training set"):
        fn.ensure_label_file(spec, str(tmp_path), post, (clean + 1) % 10)
    labels[0] = (labels[0] + 1) % 10
    np.save(path, labels)
    with pytest.raises(CmwnetError, match="changed since it was written"):
        fn.ensure_label_file(spec, str(tmp_path), post, clean)


def test_posterior_network_run_records_softmax(tmp_path):
    from cmwnet.config import config_from_dict
    from cmwnet.engine import train
    from cmwnet.methods.record_posteriors import posteriors_from_run

    cfg = {"name": "post", "seed": 0, "data": {"name": "digits", "batch_size": 64,
                                              "augment": {"crop_pad": 0, "flip": False, "normalize": "half"}},
           "model": {"name": "digits_mlp"}, "optim": {"lr": 0.1, "epochs": 2, "schedule": {"kind": "constant"}},
           "method": {"name": "record_posteriors"},
           "run": {"out": str(tmp_path), "device": "cpu", "progress": False, "plot": False, "max_steps": 5}}
    train(config_from_dict(cfg), quiet=True)
    eta, clean = posteriors_from_run(str(tmp_path / "post"))
    assert eta.shape == (len(clean), 10)
    assert np.allclose(eta.sum(1), 1, atol=1e-5)   # rows the last epoch skipped (max_steps) are filled in
    with pytest.raises(CmwnetError, match="not finished"):
        posteriors_from_run(str(tmp_path / "missing"))


def test_posterior_config_is_plc():
    from cmwnet.config import config_from_dict

    cfg = config_from_dict(fn.posterior_config("cifar100", "data"))
    assert cfg.model.name == "plc_resnet34" and cfg.optim.lr == 1e-3 and cfg.optim.epochs == 25
    assert cfg.data.train_subset == 45000 and cfg.method.name == "record_posteriors"
