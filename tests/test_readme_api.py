"""The README's five-line Python API runs as written, on a toy loop."""
import re

import torch
import torch.nn as nn

import cmwnet


def test_readme_python_api(tmp_path, monkeypatch):
    text = open("README.md").read()
    code = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(3)]
    meta_batches = iter([(torch.randn(6, 4), torch.randint(0, 3, (6,))) for _ in range(3)])
    losses, labels = torch.rand(5), torch.randint(0, 3, (5,))
    scope = {"model": model, "opt": opt, "loader": loader, "meta_batches": meta_batches, "class_counts": [50, 20, 5],
             "new_counts": [5, 20, 50], "losses": losses, "labels": labels}
    monkeypatch.chdir(tmp_path)
    before = [p.detach().clone() for p in model.parameters()]
    exec(code, scope)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert moved == [True, False, True, True, True, True]   # a bias right before BatchNorm gets no gradient
    w = scope["w"]
    assert w.shape == (5,) and bool(((w > 0) & (w < 1)).all())
    assert isinstance(scope["vnet"], cmwnet.CMWNet) and (tmp_path / "vnet.pt").exists()
