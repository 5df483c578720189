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
    m = create_model("preact_resnet18", 10)
    assert n_params(m) == 11_171_274
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name,shape", [("digits_cnn", (1, 8, 8)), ("digits_mlp", (1, 8, 8)),
                                        ("tiny_cnn", (3, 8, 8)), ("tiny_mlp", (3, 8, 8)), ("resnet8", (3, 16, 16))])
def test_small_models(name, shape):
    m = create_model(name, 4, in_channels=shape[0])
    assert m(torch.randn(3, *shape)).shape == (3, 4)
    assert isinstance(getattr(m, head_name(m)), torch.nn.Linear)


def test_unknown_model_lists_valid_names():
    with pytest.raises(CmwnetError, match="did you mean 'preact_resnet18'.*valid models: .*resnet32"):
        create_model("preact_resnet_18", 10)
