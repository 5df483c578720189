"""Reliability, round four (issue 29): the Python API's weight-net constructors and optimizer refuse what the
probes found them accepting, each in one line (a CmwnetError, which is also a ValueError or TypeError)."""
import pytest
import torch

from cmwnet.errors import CmwnetError
from cmwnet.weighting import CMWNet, MCWNet, MWNet, build_weight_net, task_families, weight_net_optimizer


@pytest.mark.parametrize("make, says", [
    (lambda: build_weight_net("mcwnet", 3, [5] * 10), "10 class counts for num_classes=3"),
    (lambda: weight_net_optimizer(MWNet(), 1e-3, weight_decay=-1.0), "weight_decay must be a number >= 0"),
    (lambda: weight_net_optimizer(MWNet(), 1e-3, weight_decay=float("nan")), "weight_decay must be a number >= 0"),
    (lambda: weight_net_optimizer(MWNet().requires_grad_(False)), "every parameter of the weight net is frozen"),
    (lambda: MCWNet(-2), "num_classes must be an integer >= 1"),
    (lambda: MWNet(hidden=2.5), "hidden must be an integer >= 1"),
    (lambda: MWNet(hidden=0), "hidden must be an integer >= 1"),
    (lambda: task_families([True, False, True]), "got booleans"),
    (lambda: CMWNet([0, -1, 1]), "families holds -1"),
    (lambda: CMWNet([0, 1.5]), "families holds 1.5"),
    (lambda: CMWNet([0, 1], num_families=0), "num_families must be an integer >= 1"),
    (lambda: CMWNet.from_counts([5, 3, 1]).with_families([0, -1, 2]), "families holds -1"),
])
def test_the_api_refuses_bad_weight_net_arguments_in_one_line(make, says):
    with pytest.raises(CmwnetError, match=says):
        make()


def test_good_arguments_still_build():
    assert build_weight_net("mcwnet", 4, [9, 5, 3, 1]).num_curves == 4
    opt = weight_net_optimizer(MWNet(hidden=3), 1e-3, weight_decay=0)
    assert opt.param_groups[0]["weight_decay"] == 0
    assert CMWNet(torch.tensor([0, 1, 1])).num_families == 2
