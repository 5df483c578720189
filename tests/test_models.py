"""The CIFAR models have the published sizes and shapes; names resolve through the registry."""
import pytest
import torch

from cmwnet.errors import CmwnetError
from cmwnet.models import create_model, head_name


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet32_is_the_0_46m_cifar_resnet():
    m = create_model("resnet32", 10)
    assert n_params(m) == 464_154  # He et al. 2016: ResNet-32 (option A) has 0.46M parameters
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert len(convs) == 31  # 1 + 3 stages x 5 blocks x 2 (option-A shortcuts have no conv) + fc = 32 layers
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_preact_resnet18_matches_the_divide_mix_layout():
    """Size and shape; the forward pass itself is pinned against numpy in test_preact_layout.py."""
    m = create_model("preact_resnet18", 10)
    assert n_params(m) == 11_171_274 == n_params(create_model("preact_resnet18_he", 10))
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name,adds", [("preact_resnet18", "relu(bn1(x))"), ("preact_resnet18_he", "x")])
def test_preact_identity_shortcut(name, adds):
    """With the residual branch zeroed, a block returns its identity shortcut: relu(bn1(x)) in the
    authors' layout, x in He et al.'s."""
    block = create_model(name, 10, width=4).layer1[0].eval()
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.bn1.weight.fill_(2.0)
        block.bn1.bias.fill_(-0.5)
        x = torch.randn(2, 4, 6, 6)
        want = torch.relu(block.bn1(x)) if adds != "x" else x
        assert torch.allclose(block(x), want, atol=1e-6)
        assert not torch.allclose(torch.relu(block.bn1(x)), x, atol=1e-2)


@pytest.mark.parametrize("name,shape", [("digits_cnn", (1, 8, 8)), ("digits_mlp", (1, 8, 8)),
                                        ("tiny_cnn", (3, 8, 8)), ("tiny_mlp", (3, 8, 8)), ("resnet8", (3, 16, 16))])
def test_small_models(name, shape):
    m = create_model(name, 4, in_channels=shape[0])
    assert m(torch.randn(3, *shape)).shape == (3, 4)
    assert isinstance(getattr(m, head_name(m)), torch.nn.Linear)


def test_unknown_model_lists_valid_names():
    with pytest.raises(CmwnetError, match="did you mean 'preact_resnet18'.*valid models: .*resnet32"):
        create_model("preact_resnet_18", 10)
