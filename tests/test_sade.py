"""SADE: expert losses by formula, aggregation favouring the stable expert, the multi-expert model,
SADE and CMW-Net+SADE through the engine."""
import copy
import math

import numpy as np
import pytest
import torch

from cmwnet.config import config_from_dict
from cmwnet.errors import CmwnetError
from cmwnet.methods.sade import SADELoss, inverse_prior, learn_aggregation
from cmwnet.models import create_model, head_name
from cmwnet.models.sade_resnet import experts_output


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_inverse_prior_reverses_the_ranks():
    np.testing.assert_allclose(inverse_prior(np.array([0.5, 0.2, 0.3])), [0.2, 0.5, 0.3])
    np.testing.assert_allclose(inverse_prior(np.array([0.6, 0.3, 0.1])), [0.1, 0.3, 0.6])


def test_expert_losses_match_their_formulas():
    counts = [6, 3, 1]                                      # prior (0.6, 0.3, 0.1), inverted (0.1, 0.3, 0.6)
    prior, inv = np.array([0.6, 0.3, 0.1]), np.array([0.1, 0.3, 0.6])
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3, 3)) * 2
    y = np.array([0, 1, 2, 2])
    loss = SADELoss(counts, tau=2.0)
    got = loss.expert_losses(torch.tensor(z), torch.tensor(y)).numpy()
    rows = np.arange(4)
    ce = lambda logits: -_log_softmax(logits)[rows, y]  # noqa: E731
    want = np.stack([
        ce(z[:, 0]),                                                           # softmax CE
        ce(z[:, 1] + np.log(prior + 1e-9)),                                    # balanced softmax
        ce(z[:, 2] + np.log(prior + 1e-9) - 2.0 * np.log(inv + 1e-9)),         # inverse softmax, tau 2
    ], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(loss(torch.tensor(z), torch.tensor(y)).numpy(), want.sum(1), rtol=1e-6)
    # by hand for one entry: backward expert, sample 0 (class 0): logits shifted by log .6 - 2 log .1 etc.
    a = z[0, 2] + np.log(prior) - 2 * np.log(inv)
    assert got[0, 2] == pytest.approx(-(a[0] - math.log(np.exp(a).sum())), rel=1e-6)


def test_aggregation_learns_to_favour_the_stable_expert():
    """Expert 0 predicts the same class on both views; experts 1 and 2 change their minds between
    views. Maximising view agreement must move the weight to expert 0."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(8):
        stable = torch.randn(64, 10, generator=g) * 4
        z0 = torch.stack([stable, torch.randn(64, 10, generator=g) * 4, torch.randn(64, 10, generator=g) * 4], 1)
        z1 = torch.stack([stable, torch.randn(64, 10, generator=g) * 4, torch.randn(64, 10, generator=g) * 4], 1)
        batches.append((z0, z1))
    w = learn_aggregation(lambda: iter(batches), 3, epochs=5)
    assert w.sum().item() == pytest.approx(1.0)
    assert w.argmax().item() == 0 and w[0] > 0.6, w
    # and the mirror case: the third expert is the stable one
    swapped = [(z0[:, [1, 2, 0]], z1[:, [1, 2, 0]]) for z0, z1 in batches]
    w2 = learn_aggregation(lambda: iter(swapped), 3, epochs=5)
    assert w2.argmax().item() == 2 and w2[2] > 0.6, w2


def test_sade_model_shapes_and_aggregated_forward():
    torch.manual_seed(0)
    m = create_model("sade_resnet8", 5, in_channels=1)
    x = torch.randn(4, 1, 8, 8)
    m.eval()
    with experts_output(m):
        z = m(x)
    assert z.shape == (4, 3, 5) and not m.return_experts
    assert torch.allclose(m(x), z.mean(1), atol=1e-6)                # equal weights before aggregation
    m.expert_weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    assert torch.allclose(m(x), 0.5 * z[:, 0] + 0.3 * z[:, 1] + 0.2 * z[:, 2], atol=1e-5)
    assert z.abs().max() <= 30 + 1e-4                                  # cosine heads times s = 30
    assert head_name(m) == "heads"
    full = create_model("sade_resnet32", 100)
    assert full.layer2s[0][0].conv1.out_channels == 24 and full.heads[0].weight.shape == (100, 48)
    assert full(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def _cfg(tmp_path, method, data_extra=None, **extra):
    d = {"name": "sade", "data": {"name": "digits", "imbalance": 5, "batch_size": 32, "test_subset": 150,
                                   "meta": {"kind": "balanced_train", "per_class": 3, "batch_size": 20},
                                   "augment": {"crop_pad": 1, "flip": False, "normalize": "half"}},
         "model": {"name": "sade_resnet8"}, "optim": {"lr": 0.05, "epochs": 2},
         "method": method, "run": {"out": str(tmp_path), "max_steps": 3, "progress": False, "plot": False}}
    d["data"].update(data_extra or {})
    d.update(extra)
    return config_from_dict(d)


def test_sade_trains_two_epochs_and_aggregates_at_the_end(tmp_path):
    from cmwnet.engine import Trainer

    t = Trainer(_cfg(tmp_path, {"name": "sade", "args": {"tta_epochs": 2, "tta_batch_size": 64}}), quiet=True)
    r = t.run()
    assert r["epochs"] == 2
    agg = t.method.aggregation
    assert agg is not None and sum(agg) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(t.model.expert_weights.cpu(), torch.tensor(agg), atol=1e-4)
    assert all(math.isfinite(h["train_loss"]) for h in t.state.history)


@pytest.mark.parametrize("backend", ["higher", "torch.func"])
def test_cmwnet_sade_trains_two_epochs(tmp_path, backend):
    from cmwnet.engine import Trainer

    method = {"name": "cmwnet_sade", "start_epoch": 1, "backend": backend, "args": {"aggregate": False}}
    t = Trainer(_cfg(tmp_path, method), quiet=True)
    t.run()
    h = t.state.history
    assert "meta_loss" not in h[0] and math.isfinite(h[1]["meta_loss"]) and "mean_weight" in h[1]
    assert t.method.meta_step.meta_updates == 3
    assert t.method.aggregation is None and torch.allclose(t.model.expert_weights, torch.full((3,), 1 / 3))


def test_cmwnet_sade_weights_the_per_sample_sade_loss(tmp_path):
    """The real step's loss is sum_i v_i L_i / sum_i v_i, L_i the summed expert losses and
    v_i = V(L_i; family(y_i)); the meta loss is CE of the equal-weight aggregate."""
    from cmwnet.engine import Trainer

    t = Trainer(_cfg(tmp_path, {"name": "cmwnet_sade", "interval": 2, "args": {"aggregate": False}}), quiet=True)
    t._begin_epoch(0)
    m = t.method
    x, y = t.data.train.augment.to_float(t.data.train.images[:24]), t.data.train.labels[:24]
    ref = copy.deepcopy(t.model)
    with experts_output(ref), torch.no_grad():
        z = ref(x)
    L = m.sade_loss(z, y)
    v = m.weight_net(L, y).detach()
    stats = m.train_step(x, y, torch.arange(24), 1)            # step 1: no meta update (interval 2)
    assert torch.allclose(stats["weights"], v, atol=1e-6)
    assert stats["loss"].item() == pytest.approx(((v * L).sum() / v.sum()).item(), rel=1e-5)
    # the meta loss closure: CE of the mean of the experts' logits
    mx, my = x[:10], y[:10]
    with experts_output(ref):
        got = m._meta_loss(mx, my)(ref)
        want = torch.nn.functional.cross_entropy(ref(mx).mean(1), my)
    assert got.item() == pytest.approx(want.item())


def test_sade_errors_are_one_line(tmp_path):
    from cmwnet.engine import Trainer

    with pytest.raises(CmwnetError, match="sade_resnet32"):
        Trainer(_cfg(tmp_path, {"name": "sade"}, model={"name": "digits_mlp"}), quiet=True)
    with pytest.raises(CmwnetError, match="method.loss at ce"):
        Trainer(_cfg(tmp_path, {"name": "sade", "loss": "focal"}), quiet=True)
    with pytest.raises(CmwnetError, match="did you mean 'method.args.tau'"):
        Trainer(_cfg(tmp_path, {"name": "sade", "args": {"tua": 2}}), quiet=True)


@pytest.mark.parametrize("val_learned, kept", [(50.0, "equal"), (60.0, "learned"), (55.0, "learned")])
def test_aggregate_val_keeps_the_learned_weights_only_where_val_does_not_drop(tmp_path, monkeypatch, val_learned, kept):
    """`aggregate: val`: the learned expert weights are kept when val top-1 with them is at least the equal weights'
    (55% here), else the equal weights stay; the check is in the run's summary."""
    from cmwnet.engine import Trainer
    from cmwnet.methods import sade

    monkeypatch.setattr(sade, "learn_aggregation", lambda *a, **k: torch.tensor([0.9, 0.05, 0.05]))
    monkeypatch.setattr(sade.SADE, "_val_top1", lambda self, w: val_learned if float(w[0]) > 0.5 else 55.0)
    t = Trainer(_cfg(tmp_path, {"name": "sade", "args": {"aggregate": "val"}}, data_extra={"val_size": 100}),
                quiet=True)
    r = t.run()
    assert t.method.val_check == {"equal": 55.0, "learned": val_learned, "learned_weights": [0.9, 0.05, 0.05],
                                  "kept": kept}
    want = [0.9, 0.05, 0.05] if kept == "learned" else [1 / 3] * 3
    assert t.method.aggregation == pytest.approx(want, abs=1e-4)
    assert torch.allclose(t.model.expert_weights.cpu(), torch.tensor(want), atol=1e-4)
    assert r["method_summary"]["aggregation_on_val"]["kept"] == kept


def test_val_top1_of_an_aggregation_is_the_aggregated_predictions_accuracy(tmp_path):
    from cmwnet.engine import Trainer

    t = Trainer(_cfg(tmp_path, {"name": "sade", "args": {"aggregate": False}}, data_extra={"val_size": 100}),
                quiet=True)
    t.run()
    val = t.data.extra_tests["val"]
    w = torch.tensor([0.2, 0.5, 0.3])
    t.model.eval()
    with torch.no_grad(), experts_output(t.model):
        z = t.model(val.augment.to_float(val.images) if hasattr(val, "augment") else val.images)
    want = 100.0 * float((torch.einsum("k,bkc->bc", w, z).argmax(1) == val.labels).float().mean())
    assert t.method._val_top1(w) == pytest.approx(want)


def test_aggregate_val_needs_val_images_and_a_known_value(tmp_path):
    from cmwnet.engine import Trainer

    with pytest.raises(CmwnetError, match="needs held-out val images: set data.val_size"):
        Trainer(_cfg(tmp_path, {"name": "sade", "args": {"aggregate": "val"}}), quiet=True)
    with pytest.raises(CmwnetError, match="must be one of true, false, val, got 'test'"):
        Trainer(_cfg(tmp_path, {"name": "sade", "args": {"aggregate": "test"}}), quiet=True)
