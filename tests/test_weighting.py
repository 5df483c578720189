"""Weight nets: task families, the vectorised heads, saving, transfer and the authors' layout."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from cmwnet import CMWNet, MCWNet, MWNet, load_weighting, task_families
from cmwnet.data import long_tail_counts
from cmwnet.errors import CmwnetError


def test_task_families_cifar10_lt_numbered_by_size():
    fam = task_families(long_tail_counts(5000, 10, 100))
    # K-means(3) on 5000, 2997, ..., 50: the head alone, the next two, then the tail
    assert fam.tolist() == [0, 1, 1, 2, 2, 2, 2, 2, 2, 2]


def test_task_families_is_order_free_and_seeded():
    counts = np.array([50, 5000, 83, 2997, 1796, 139, 645, 387, 232, 1077])
    fam = task_families(counts)
    order = np.argsort(-counts)
    assert np.all(np.diff(fam[order]) >= 0), "families must grow as classes shrink"
    assert fam[np.argmax(counts)] == 0 and fam[np.argmin(counts)] == 2
    assert np.array_equal(fam, task_families(counts))


def test_task_families_few_distinct_counts():
    assert task_families([100] * 10).tolist() == [0] * 10
    assert task_families([10, 100, 10, 100]).tolist() == [1, 0, 1, 0]
    with pytest.raises(CmwnetError):
        task_families([])


def test_cmwnet_equals_separate_heads_with_per_sample_loop():
    torch.manual_seed(0)
    net = CMWNet([2, 0, 1, 1, 0], num_families=3)
    trunk = net.trunk
    heads = []
    for k in range(3):  # the authors' layout: K separate Linear(100, 1) heads
        h = nn.Linear(100, 1)
        h.weight.data.copy_(net.heads.weight[k:k + 1])
        h.bias.data.copy_(net.heads.bias[k:k + 1])
        heads.append(h)
    losses = torch.rand(16) * 5
    labels = torch.randint(0, 5, (16,))
    expected = torch.stack([torch.sigmoid(heads[[2, 0, 1, 1, 0][int(y)]](torch.relu(trunk(l.view(1, 1)))))[0, 0]
                            for l, y in zip(losses, labels)])
    assert torch.allclose(net(losses, labels), expected, atol=1e-6)


def test_mcwnet_equals_one_mlp_per_class():
    torch.manual_seed(0)
    net = MCWNet(num_classes=4, hidden=7)
    losses, labels = torch.rand(12) * 3, torch.randint(0, 4, (12,))
    out = net(losses, labels)
    for i in range(12):
        c = int(labels[i])
        h = torch.relu(losses[i] * net.trunk_weight[c] + net.trunk_bias[c])
        assert torch.allclose(out[i], torch.sigmoid(h @ net.head_weight[c] + net.head_bias[c]), atol=1e-6)
    # classes do not share parameters: moving class 0's net leaves class 1's weights alone
    before = net(losses, torch.ones(12, dtype=torch.long)).detach()
    with torch.no_grad():
        net.head_bias[0] += 5
    assert torch.equal(before, net(losses, torch.ones(12, dtype=torch.long)))


def test_mwnet_output_range_and_authors_initialisation():
    torch.manual_seed(0)
    w = MWNet()(torch.linspace(0, 10, 50)).detach()
    assert w.shape == (50,) and bool(((w > 0) & (w < 1)).all())
    # default nn.Linear init (as the authors): head weights U(-0.1, 0.1) keep initial weights near 0.5
    assert 0.3 < float(w.mean()) < 0.7


def test_curves_match_forward():
    net = CMWNet([0, 1, 2], num_families=3)
    grid = torch.linspace(0, 4, 9)
    curves = net.curves(grid)
    for k in range(3):
        assert torch.allclose(curves[k], net(grid, torch.full((9,), k)))


def test_save_load_roundtrip_and_transfer(tmp_path):
    counts = long_tail_counts(5000, 10, 100)
    net = CMWNet.from_counts(counts)
    path = tmp_path / "vnet.pt"
    net.save(path)
    loaded = load_weighting(path)
    losses, labels = torch.rand(20) * 4, torch.randint(0, 10, (20,))
    assert torch.allclose(loaded(losses, labels), net(losses, labels).detach())
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    # on a new data set the family map is rebuilt from the new class counts
    new_counts = [10] * 5 + [1000] * 5
    moved = load_weighting(path, class_counts=new_counts)
    assert moved.families.tolist() == [1] * 5 + [0] * 5
    assert moved.class_counts == new_counts


def _authors_state(k=3, hidden=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {"feature.layer.0.weight": torch.randn(hidden, 1, generator=g),
             "feature.layer.0.bias": torch.randn(hidden, generator=g)}
    for j in range(k):
        state[f"classfier.layers.{j}.0.weight"] = torch.randn(1, hidden, generator=g) * 0.1
        state[f"classfier.layers.{j}.0.bias"] = torch.randn(1, generator=g)
    return state


def test_reads_the_authors_checkpoint_layout(tmp_path):
    state = _authors_state()
    path = tmp_path / "vnet_119.pth"
    torch.save(state, path)
    fam = [0, 1, 2, 1, 2, 2, 0, 2, 2, 1]  # the authors' ANIMAL-10N class -> branch list
    net = load_weighting(path, families=fam)
    losses, labels = torch.rand(30) * 6, torch.randint(0, 10, (30,))
    h = torch.relu(losses[:, None] @ state["feature.layer.0.weight"].T + state["feature.layer.0.bias"])
    expected = torch.stack([torch.sigmoid(h[i] @ state[f"classfier.layers.{fam[y]}.0.weight"][0]
                                          + state[f"classfier.layers.{fam[y]}.0.bias"][0])
                            for i, y in enumerate(labels.tolist())])
    assert torch.allclose(net(losses, labels), expected, atol=1e-6)
    # head_order: our family f uses the authors' branch head_order[f]
    swapped = load_weighting(path, families=[0] * 10, head_order=[2, 0, 1])
    only2 = load_weighting(path, families=[2] * 10)
    assert torch.allclose(swapped(losses, labels), only2(losses, labels))


def test_authors_layout_needs_a_family_map(tmp_path):
    path = tmp_path / "vnet.pth"
    torch.save(_authors_state(), path)
    with pytest.raises(CmwnetError, match="class_counts"):
        load_weighting(path)
    with pytest.raises(CmwnetError, match="not found"):
        load_weighting(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CmwnetError, match="cannot read"):
        load_weighting(tmp_path / "junk.pt")
