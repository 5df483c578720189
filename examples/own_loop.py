"""CMW-Net inside your own training loop: a plain PyTorch loop on CIFAR-shaped data (3x32x32, 10 classes)
with 40% symmetric label noise; the lines marked `# CMW-Net` are all it takes to add the learned weighting.

    python examples/own_loop.py                           # synthetic images, a few seconds on a CPU
    python examples/own_loop.py --data-root ~/data/cifar10 --steps 2000  # torchvision's CIFAR-10 (local files)

At the end it prints the mean weight the weight net gives clean and mislabelled training samples.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import cmwnet
from cmwnet.data import add_label_noise


def synthetic_cifar(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images = a fixed random pattern per class + noise, so that a small CNN can learn them in seconds."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.randn(10, 3, 32, 32, generator=g)
    g.manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    return patterns[y] + 2.0 * torch.randn(n, 3, 32, 32, generator=g), y


def cifar10(root: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n CIFAR-10 training images as normalised tensors (torchvision, no download)."""
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(root, train=True, download=False)
    x = torch.tensor(ds.data[:n]).permute(0, 3, 1, 2).float().div(255)
    mean, std = torch.tensor([0.491, 0.482, 0.447]), torch.tensor([0.247, 0.243, 0.262])
    return (x - mean[:, None, None]) / std[:, None, None], torch.tensor(ds.targets[:n])


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--data-root", help="a CIFAR-10 folder (torchvision layout); default: synthetic images")
    a = p.parse_args(argv)
    torch.manual_seed(0)

    x, clean = cifar10(a.data_root, a.train_size + 200) if a.data_root else synthetic_cifar(a.train_size + 200, 1)
    meta_x, meta_y = x[:200], clean[:200]                   # a small clean meta set (CMW-Net needs one)
    x, clean = x[200:], clean[200:]
    y = torch.as_tensor(add_label_noise(clean.tolist(), "sym", 0.4, 10, seed=1).labels)   # 40% symmetric noise
    mislabelled = y != clean

    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    vnet = cmwnet.CMWNet.from_counts(torch.bincount(y, minlength=10).tolist())               # CMW-Net
    step = cmwnet.MetaStep(model, opt, vnet, cmwnet.weight_net_optimizer(vnet))              # CMW-Net

    for it in range(a.steps):
        idx = torch.randint(0, len(x), (a.batch,))
        midx = torch.randint(0, len(meta_x), (a.batch,))
        # the usual `loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()` becomes:
        step.step(x[idx], y[idx], meta_x[midx], meta_y[midx], iteration=it)                # CMW-Net
        if (it + 1) % max(1, a.steps // 5) == 0:
            with torch.no_grad():
                model.eval()
                acc = (model(meta_x).argmax(1) == meta_y).float().mean().item()
                model.train()
            print(f"step {it + 1:>5}/{a.steps}: accuracy on the clean meta set {100 * acc:.1f}%", flush=True)

    with torch.no_grad():                                     # what the learned weighting does with the noise
        model.eval()
        w = vnet(F.cross_entropy(model(x), y, reduction="none"), y)
    print(f"noise: {mislabelled.float().mean().item():.0%} of {len(y)} training labels are wrong")
    print(f"mean weight: clean {w[~mislabelled].mean().item():.3f}, mislabelled {w[mislabelled].mean().item():.3f}")


if __name__ == "__main__":
    main()
