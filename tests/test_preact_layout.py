"""`preact_resnet18` computes what the authors' `PreResNet_MWN.py` (DivideMix's layout) computes.

The reference below is numpy written from the definition of their network, not from our module:
stem 3x3 conv (stride 1, pad 1, no bias) -> BN -> ReLU; per block pre = relu(bn1(x)), shortcut =
1x1 conv (no BN) of pre where the shape changes, else pre itself; out = conv2(relu(bn2(conv1(pre)))) +
shortcut; stages of 2 blocks at w/2w/4w/8w channels, stride 2 from the second stage on; 4x4 average
pool; linear. BatchNorm in train mode (batch statistics, biased variance, eps 1e-5) with random affine
parameters, so relu(bn1(x)) is far from x. The textbook block (identity shortcut adds x) must disagree.
"""
import numpy as np
import pytest
import torch

from cmwnet.models import create_model
from cmwnet.models.preact_resnet import PreActBlock, PreActBlockHe

EPS = 1e-5


# -- the numpy reference ---------------------------------------------------------------------------------
def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation by im2col: one (N, C*kh*kw) patch matrix per output position."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    wm = w.reshape(o, -1)
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw].reshape(n, -1)
            out[:, :, i, j] = patch @ wm.T
    return out


def batchnorm_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def avg_pool(x: np.ndarray, k: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).mean(axis=(3, 5))


def block_np(x: np.ndarray, p: dict, prefix: str, stride: int) -> np.ndarray:
    pre = relu(batchnorm_train(x, p[prefix + "bn1.weight"], p[prefix + "bn1.bias"]))
    if prefix + "shortcut.weight" in p:
        shortcut = conv2d(pre, p[prefix + "shortcut.weight"], stride, 0)
    else:
        shortcut = pre   # the authors' layout: relu(bn1(x)), not x
    out = conv2d(pre, p[prefix + "conv1.weight"], stride, 1)
    out = relu(batchnorm_train(out, p[prefix + "bn2.weight"], p[prefix + "bn2.bias"]))
    return conv2d(out, p[prefix + "conv2.weight"], 1, 1) + shortcut


def network_np(x: np.ndarray, p: dict) -> np.ndarray:
    out = relu(batchnorm_train(conv2d(x, p["conv1.weight"], 1, 1), p["bn1.weight"], p["bn1.bias"]))
    for stage in range(1, 5):
        for b in range(2):
            out = block_np(out, p, f"layer{stage}.{b}.", 2 if (stage > 1 and b == 0) else 1)
    out = avg_pool(out, 4).reshape(x.shape[0], -1)
    return out @ p["fc.weight"].T + p["fc.bias"]


# -- helpers ---------------------------------------------------------------------------------------------
def _randomise_bn(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g, dtype=m.weight.dtype))
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))


def _params(module: torch.nn.Module) -> dict:
    return {k: v.detach().numpy() for k, v in module.named_parameters()}


def _input(shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _block(cls, in_planes: int, planes: int, stride: int) -> torch.nn.Module:
    torch.manual_seed(0)
    b = cls(in_planes, planes, stride).double().train()
    _randomise_bn(b, 1)
    return b


def _net(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model(name, 10, width=4).double().train()
    _randomise_bn(m, 1)
    return m


# -- the tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_planes,planes,stride", [(6, 6, 1), (4, 8, 2)], ids=["identity", "projection"])
def test_block_forward_equals_the_numpy_definition(in_planes, planes, stride):
    b = _block(PreActBlock, in_planes, planes, stride)
    assert (b.shortcut is None) == (stride == 1 and in_planes == planes)
    x = _input((3, in_planes, 8, 8), 2)
    ours = b(x).detach().numpy()
    ref = block_np(x.numpy(), _params(b), "", stride)
    assert np.abs(ref).max() > 0.1, "degenerate case"
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_textbook_block_disagrees_with_the_numpy_definition():
    """The check can fail: the He et al. block (identity shortcut adds x) is far from the reference."""
    b = _block(PreActBlockHe, 6, 6, 1)
    x = _input((3, 6, 8, 8), 2)
    diff = np.abs(b(x).detach().numpy() - block_np(x.numpy(), _params(b), "", 1)).max()
    assert diff > 0.1


def test_network_forward_equals_the_numpy_definition():
    m = _net("preact_resnet18")
    x = _input((4, 3, 32, 32), 3)
    ours = m(x).detach().numpy()
    ref = network_np(x.numpy(), _params(m))
    assert ours.shape == (4, 10) and np.abs(ref).std() > 0.05, "degenerate case"
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_textbook_network_disagrees_with_the_numpy_definition():
    m = _net("preact_resnet18_he")
    x = _input((4, 3, 32, 32), 3)
    assert np.abs(m(x).detach().numpy() - network_np(x.numpy(), _params(m))).max() > 0.1


def test_same_parameters_in_both_layouts():
    """The two registered names hold the same parameters; only the forward differs."""
    a, b = _net("preact_resnet18"), _net("preact_resnet18_he")
    assert [k for k, _ in a.named_parameters()] == [k for k, _ in b.named_parameters()]
