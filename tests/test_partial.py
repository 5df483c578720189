"""Candidate sets for partial-label learning: the true label is always in, the binomial rate, the pair rule."""
import numpy as np
import pytest

from cmwnet.data.partial import candidate_sets, candidate_summary
from cmwnet.errors import CmwnetError


def _labels(n, c, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


@pytest.mark.parametrize("kind", ["binomial", "pair"])
def test_true_label_always_a_candidate(kind):
    y = _labels(5000, 10)
    cand = candidate_sets(y, 10, kind, 0.3, seed=1)
    assert cand.shape == (5000, 10) and cand.dtype == bool
    assert cand[np.arange(5000), y].all()


@pytest.mark.parametrize("c,q", [(10, 0.1), (10, 0.5), (100, 0.05)])
def test_binomial_rate_matches_q_with_the_top_up(c, q):
    """Each false class is in w.p. q, plus the top-up of one uniform class for a set left alone:
    expected share of false classes = q + (1 - q)^(C-1) / (C-1)."""
    n = 40000
    y = _labels(n, c)
    cand = candidate_sets(y, c, "binomial", q, seed=2)
    false_share = (cand.sum() - n) / (n * (c - 1))
    expected = q + (1 - q) ** (c - 1) / (c - 1)
    assert abs(false_share - expected) < 4 * np.sqrt(expected / (n * (c - 1))) + 1e-4
    assert (cand.sum(1) >= 2).all()


def test_binomial_top_up_adds_exactly_one_other_class():
    # q tiny: almost every set is topped up, so nearly all have exactly 2 classes, spread uniformly
    y = np.zeros(20000, dtype=np.int64)
    cand = candidate_sets(y, 5, "binomial", 1e-6, seed=3)
    assert (cand.sum(1) == 2).all() and cand[:, 0].all()
    share = cand[:, 1:].mean(0)
    assert np.allclose(share, 0.25, atol=0.02)


def test_pair_rule_is_exact():
    c, q, n = 10, 0.4, 20000
    y = _labels(n, c, seed=4)
    cand = candidate_sets(y, c, "pair", q, seed=5)
    partner = (y + 1) % c
    others = cand.copy()
    others[np.arange(n), y] = False
    others[np.arange(n), partner] = False
    assert not others.any()                       # nothing but the true class and the next one
    assert cand[y == c - 1, 0].mean() > 0.3       # cyclic: class C-1 pairs with class 0
    assert abs(cand[np.arange(n), partner].mean() - q) < 0.02


def test_seeded_and_reported():
    y = _labels(1000, 10)
    a = candidate_sets(y, 10, "binomial", 0.3, seed=7)
    assert np.array_equal(a, candidate_sets(y, 10, "binomial", 0.3, seed=7))
    assert not np.array_equal(a, candidate_sets(y, 10, "binomial", 0.3, seed=8))
    s = candidate_summary(a, y, "binomial", 0.3, 7)
    assert s["true_label_always_in"] and s["single_candidate_share"] == 0.0
    assert s["mean_candidates"] == pytest.approx(a.sum(1).mean(), abs=1e-4)


@pytest.mark.parametrize("kind,rate,c", [("triple", 0.3, 10), ("binomial", 0.0, 10), ("binomial", 1.5, 10),
                                         ("pair", 0.3, 1)])
def test_bad_input_is_a_clear_error(kind, rate, c):
    with pytest.raises(CmwnetError):
        candidate_sets([0, 0, 0], c, kind, rate)


def test_candidate_sets_with_a_method_that_ignores_them_is_refused():
    import pytest

    from cmwnet.config import config_from_dict
    from cmwnet.engine import check_names
    from cmwnet.errors import CmwnetError

    cfg = config_from_dict({"data": {"partial": {"kind": "pair", "rate": 0.3}}, "method": {"name": "cmwnet"}})
    with pytest.raises(CmwnetError, match="ignores candidate sets: use method proden or proden_cmwnet"):
        check_names(cfg)
    check_names(config_from_dict({"data": {"partial": {"kind": "pair", "rate": 0.3}}, "method": {"name": "proden"}}))
