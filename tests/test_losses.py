"""The loss zoo against hand-computed values (numpy, written out from each paper's formula)."""
import math

import numpy as np
import pytest
import torch

from cmwnet.config import config_from_dict
from cmwnet.errors import CmwnetError
from cmwnet.losses import LOSSES, build_loss, estimate_transition
from cmwnet.models import create_model

LOGITS = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [0.0, 0.0, 0.0]])
TARGETS = np.array([1, 0, 2])
COUNTS = [100, 10, 1]


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def p_target(z=LOGITS, y=TARGETS):
    return softmax(z)[np.arange(len(y)), y]


def run_loss(name, counts=COUNTS, logits=LOGITS, targets=TARGETS, **args):
    loss = build_loss(name, 3, counts, **args)
    out = loss(torch.tensor(logits, dtype=torch.float64), torch.tensor(targets))
    assert out.shape == (len(targets),)
    return out.numpy(), loss


def cb_weights(counts, beta):
    w = np.array([(1 - beta) / (1 - beta ** n) for n in counts])
    return w * len(counts) / w.sum()


def test_every_loss_is_registered():
    assert {"ce", "focal", "cb", "ldam", "gce", "forward"} <= set(LOSSES.names())


def test_ce_unchanged():
    out, _ = run_loss("ce")
    np.testing.assert_allclose(out, -np.log(p_target()), rtol=1e-12)


def test_focal_matches_lin_et_al():
    p = p_target()
    out, _ = run_loss("focal")                      # default gamma = 2
    np.testing.assert_allclose(out, -(1 - p) ** 2 * np.log(p), rtol=1e-10)
    out, _ = run_loss("focal", gamma=0.5)
    np.testing.assert_allclose(out, -(1 - p) ** 0.5 * np.log(p), rtol=1e-10)
    # first sample by hand: p = e^2 / (e + e^2 + e^0.5)
    p0 = math.exp(2) / (math.exp(1) + math.exp(2) + math.exp(0.5))
    assert out[0] == pytest.approx(-(1 - p0) ** 0.5 * math.log(p0), rel=1e-12)


def test_class_balanced_weights_effective_number():
    # beta = 0.9: w ~ (0.1/(1-0.9^100), 0.1/(1-0.9^10), 0.1/0.1) -> normalised to sum 3
    raw = np.array([0.1 / (1 - 0.9 ** 100), 0.1 / (1 - 0.9 ** 10), 1.0])
    w = raw * 3 / raw.sum()
    out, loss = run_loss("cb", beta=0.9)
    np.testing.assert_allclose(loss.class_weights.numpy(), w, rtol=1e-6)
    np.testing.assert_allclose(out, w[TARGETS] * -np.log(p_target()), rtol=1e-6)


def test_class_balanced_focal_and_default_beta():
    p = p_target()
    out, _ = run_loss("cb", base="focal", gamma=2.0)            # beta = 0.9999 by default
    w = cb_weights(COUNTS, 0.9999)
    np.testing.assert_allclose(out, w[TARGETS] * -(1 - p) ** 2 * np.log(p), rtol=1e-6)
    out, _ = run_loss("cb", beta=0.0)                            # beta = 0: no re-weighting
    np.testing.assert_allclose(out, -np.log(p), rtol=1e-6)


def test_ldam_margins_scale_and_drw():
    m = np.array(COUNTS, dtype=float) ** -0.25
    m = m * 0.5 / m.max()                                        # largest margin = max_m = 0.5 (class of 1 sample)
    assert m[2] == 0.5 and m[0] == pytest.approx(0.5 / math.sqrt(10))
    shifted = LOGITS.copy()
    shifted[np.arange(3), TARGETS] -= m[TARGETS]
    ce = -np.log(p_target(30 * shifted))
    out, loss = run_loss("ldam")
    np.testing.assert_allclose(loss.margins.numpy(), m, rtol=1e-6)
    np.testing.assert_allclose(out, ce, rtol=1e-5)              # before drw_epoch: weights 1
    loss.set_epoch(159)
    np.testing.assert_allclose(loss(torch.tensor(LOGITS), torch.tensor(TARGETS)).numpy(), ce, rtol=1e-5)
    loss.set_epoch(160)                                         # DRW: class-balanced weights, beta 0.9999
    w = cb_weights(COUNTS, 0.9999)
    np.testing.assert_allclose(loss(torch.tensor(LOGITS), torch.tensor(TARGETS)).numpy(), w[TARGETS] * ce, rtol=1e-5)
    # the switch is a buffer: a checkpointed loss state restores it
    fresh = build_loss("ldam", 3, COUNTS)
    fresh.load_state_dict(loss.state_dict())
    np.testing.assert_allclose(fresh.class_weights.numpy(), w, rtol=1e-6)
    never, _ = run_loss("ldam", drw_epoch=None, max_m=0.3, s=10.0)
    m3 = np.array(COUNTS, dtype=float) ** -0.25
    m3 = m3 * 0.3 / m3.max()
    shifted = LOGITS.copy()
    shifted[np.arange(3), TARGETS] -= m3[TARGETS]
    np.testing.assert_allclose(never, -np.log(p_target(10 * shifted)), rtol=1e-5)
    _, l2 = run_loss("ldam", drw_epoch=None)
    l2.set_epoch(10_000)
    np.testing.assert_allclose(l2.class_weights.numpy(), np.ones(3))


def test_gce_matches_zhang_sabuncu():
    p = p_target()
    out, _ = run_loss("gce")                                    # q = 0.7
    np.testing.assert_allclose(out, (1 - p ** 0.7) / 0.7, rtol=1e-10)
    out, _ = run_loss("gce", q=1.0)                             # q = 1: MAE-like 1 - p_y
    np.testing.assert_allclose(out, 1 - p, rtol=1e-10)
    # third sample: uniform logits, p = 1/3
    assert out[2] == pytest.approx(2 / 3)


def test_forward_correction_with_a_given_matrix():
    t = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])
    out, _ = run_loss("forward", transition=t.tolist())
    noisy = softmax(LOGITS) @ t                                 # p~_j = sum_k p_k T[k, j]
    np.testing.assert_allclose(out, -np.log(noisy[np.arange(3), TARGETS]), rtol=1e-6)
    ident, _ = run_loss("forward")                              # no matrix yet: plain CE
    np.testing.assert_allclose(ident, -np.log(p_target()), rtol=1e-10)


def test_forward_loss_gradient_is_finite_with_zero_entries():
    t = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]
    loss = build_loss("forward", 3, COUNTS, transition=t)
    z = torch.tensor(LOGITS, requires_grad=True)
    loss(z, torch.tensor(TARGETS)).sum().backward()
    assert torch.isfinite(z.grad).all()


def _planted_probs():
    """Noisy posteriors with known T: 5 'anchor' images per class whose softmax is T[i], mixtures that
    are less sure, and 3 over-confident outliers per class (the top 3% of 100 that the rule skips)."""
    t = np.array([[0.6, 0.3, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
    rows = []
    for i in range(3):
        rows += [t[i]] * 5
        outlier = np.full(3, 0.01)
        outlier[i] = 0.98
        rows += [outlier] * 3
    rng = np.random.default_rng(0)
    while len(rows) < 100:
        i, j = rng.choice(3, 2, replace=False)
        lam = rng.uniform(0.2, 0.8)
        rows.append(lam * t[i] + (1 - lam) * t[j])
    return np.array(rows), t


def test_transition_estimate_anchor_points_and_percentile():
    probs, t = _planted_probs()
    for i in range(3):   # the planted case is what it says: anchors are the 4th-largest p(i|x)
        thresh = np.percentile(probs[:, i], 97, method="higher")
        assert (probs[:, i] >= thresh).sum() == 3 and thresh == pytest.approx(0.98)
    est = estimate_transition(torch.tensor(probs), percentile=97).numpy()
    np.testing.assert_allclose(est, t, atol=1e-6)
    plain = estimate_transition(torch.tensor(probs), percentile=None).numpy()   # argmax: picks the outliers
    np.testing.assert_allclose(np.diag(plain), [0.98] * 3, atol=1e-6)


def test_transition_estimate_matches_numpy_rule_on_a_tiny_case():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1],
                      [0.2, 0.2, 0.6], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]])
    want = []
    for i in range(3):   # the authors' rule, written with numpy (on a copy per column)
        col = probs[:, i].copy()
        col[col >= np.percentile(col, 97, method="higher")] = 0.0
        want.append(probs[np.argmax(col)])
    est = estimate_transition(torch.tensor(probs), percentile=97).numpy()
    np.testing.assert_allclose(est, np.array(want))
    # n = 6: the threshold is the column maximum, so the anchor is the second most confident sample
    np.testing.assert_allclose(est[0], [0.7, 0.2, 0.1])


@pytest.mark.parametrize("name,args,match", [
    ("focal", {"gamma": -1}, "gamma"),
    ("focal", {"gamma": "two"}, "gamma"),
    ("cb", {"beta": 1.0}, "beta"),
    ("cb", {"base": "sigmoid"}, "base"),
    ("ldam", {"s": 0}, "s of loss"),
    ("ldam", {"drw_epoch": -3}, "drw_epoch"),
    ("ldam", {"max_m": -0.5}, "max_m"),
    ("gce", {"q": 0.0}, "q of loss"),
    ("gce", {"q": 1.5}, "q of loss"),
    ("forward", {"transition": [[1, 0], [0, 1]]}, "3x3"),
    ("forward", {"transition": [[0.5, 0.2, 0.2], [0, 1, 0], [0, 0, 1]]}, "sum to 1"),
    ("focal", {"gama": 2}, "did you mean 'method.loss_args.gamma'"),
])
def test_bad_loss_args_are_one_line_errors(name, args, match):
    with pytest.raises(CmwnetError, match=match) as e:
        build_loss(name, 3, COUNTS, **args)
    assert "\n" not in str(e.value)


def test_normed_head_gives_cosine_logits():
    torch.manual_seed(0)
    m = create_model("resnet8", 4, in_channels=1, normed_fc=True)
    out = m(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 4) and out.abs().max() <= 1 + 1e-6
    feats = m.features(torch.randn(5, 1, 8, 8))
    w = m.fc.weight
    cos = (feats / feats.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).t()
    assert torch.allclose(m.fc(feats), cos, atol=1e-6)
    assert isinstance(create_model("resnet8", 4, in_channels=1).fc, torch.nn.Linear)


def _digits_cfg(tmp_path, method: dict, **top) -> dict:
    d = {"name": "t", "data": {"name": "digits", "imbalance": 5, "batch_size": 32,
                                "meta": {"kind": "balanced_train", "per_class": 3, "batch_size": 20},
                                "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
         "model": {"name": "digits_mlp"}, "optim": {"lr": 0.05, "epochs": 2},
         "method": method, "run": {"out": str(tmp_path), "max_steps": 3, "progress": False, "plot": False}}
    d.update(top)
    return d


@pytest.mark.parametrize("loss,args", [("focal", {}), ("cb", {"base": "focal"}), ("gce", {}), ("ldam", {"drw_epoch": 1})])
def test_losses_train_through_the_engine(tmp_path, loss, args):
    from cmwnet.engine import Trainer

    t = Trainer(config_from_dict(_digits_cfg(tmp_path, {"name": "erm", "loss": loss, "loss_args": args})), quiet=True)
    r = t.run()
    assert r["epochs"] == 2 and all(math.isfinite(h["train_loss"]) for h in t.state.history)


def test_cmwnet_with_ldam_switches_drw_on(tmp_path):
    """'CMW-Net with LDAM loss' = method cmwnet + loss ldam; the engine's epoch hook turns DRW on."""
    from cmwnet.engine import Trainer

    method = {"name": "cmwnet", "loss": "ldam", "loss_args": {"drw_epoch": 1}, "start_epoch": 1,
              "normalize": "sum_detached"}
    cfg = _digits_cfg(tmp_path, method, model={"name": "resnet8", "args": {"normed_fc": True}})
    t = Trainer(config_from_dict(cfg), quiet=True)
    t.run()
    counts = t.data.class_counts
    np.testing.assert_allclose(t.method.loss_fn.class_weights.cpu().numpy(), cb_weights(counts, 0.9999), rtol=1e-5)
    assert t.method.meta_step.meta_updates == 3            # meta-learning ran in epoch 1 only
    assert "meta_loss" in t.state.history[1] and "meta_loss" not in t.state.history[0]


def test_forward_method_estimates_then_corrects(tmp_path):
    from cmwnet.engine import Trainer

    method = {"name": "forward", "loss": "forward", "args": {"estimate_epoch": 1}}
    t = Trainer(config_from_dict(_digits_cfg(tmp_path, method)), quiet=True)
    assert torch.equal(t.method.loss_fn.transition.cpu(), torch.eye(10))
    t.run()
    T = t.method.loss_fn.transition.cpu()
    assert t.method.estimated and not torch.equal(T, torch.eye(10))
    assert torch.allclose(T.sum(1), torch.ones(10), atol=1e-4)
    # the estimate is in the checkpointed state, and restores
    state = t.method.state_dict()
    t2 = Trainer(config_from_dict(_digits_cfg(tmp_path / "b", method)), quiet=True)
    t2.method.load_state_dict(state)
    assert t2.method.estimated and torch.equal(t2.method.loss_fn.transition.cpu(), T)


def test_forward_method_needs_the_forward_loss(tmp_path):
    from cmwnet.engine import Trainer

    with pytest.raises(CmwnetError, match="method.loss to forward"):
        Trainer(config_from_dict(_digits_cfg(tmp_path, {"name": "forward"})), quiet=True)
    with pytest.raises(CmwnetError, match="method erm with loss forward"):
        Trainer(config_from_dict(_digits_cfg(tmp_path, {"name": "forward", "loss": "forward",
                                                         "loss_args": {"transition": np.eye(10).tolist()}})), quiet=True)
    with pytest.raises(CmwnetError, match="did you mean 'method.args.estimate_epoch'"):
        Trainer(config_from_dict(_digits_cfg(tmp_path, {"name": "forward", "loss": "forward",
                                                         "args": {"estimate_epochs": 3}})), quiet=True)


def test_ldam_drw_weighted_mean_is_the_authors_code_form():
    """drw_mean=weighted: the batch mean of the per-sample losses equals sum(w * l) / sum(w) (their
    F.cross_entropy(weight=w)); before DRW both forms are plain LDAM."""
    import pytest
    import torch

    from cmwnet.errors import CmwnetError
    from cmwnet.losses import LDAMLoss

    torch.manual_seed(0)
    z, y = torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    plain = LDAMLoss(3, [100, 10, 1], drw_epoch=2)
    weighted = LDAMLoss(3, [100, 10, 1], drw_epoch=2, drw_mean="weighted")
    for loss in (plain, weighted):
        loss.set_epoch(1)
    assert torch.allclose(plain(z, y), weighted(z, y))
    for loss in (plain, weighted):
        loss.set_epoch(2)
    w = plain.drw_weights[y]
    unweighted = LDAMLoss(3, [100, 10, 1], drw_epoch=None)(z, y)
    assert torch.allclose(weighted(z, y).mean(), (w * unweighted).sum() / w.sum())
    assert torch.allclose(plain(z, y).mean(), (w * unweighted).mean())
    with pytest.raises(CmwnetError, match="drw_mean"):
        LDAMLoss(3, [100, 10, 1], drw_mean="sum")
