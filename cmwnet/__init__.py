"""cmwnet: meta-learned sample weighting (CMW-Net, Meta-Weight-Net) for noisy and long-tailed data.

    from cmwnet import CMWNet, MetaStep, task_families, load_weighting
    vnet = CMWNet.from_counts(class_counts)                 # K=3 task families by class size
    step = MetaStep(model, opt, vnet, torch.optim.Adam(vnet.parameters(), 1e-4))
    stats = step.step(x, y, meta_x, meta_y, iteration)      # virtual step, meta update, real update
    vnet.save("vnet.pt"); w = load_weighting("vnet.pt", class_counts=new_counts)(losses, labels)
"""
from . import _moved
from .bilevel import MetaStep, weighted_mean
from .errors import CmwnetError
from .weighting import CMWNet, MCWNet, MWNet, WeightNet, build_weight_net, load_weighting, task_families

_moved.install()   # old root-level command names (`python -m cmwnet.bench`, ...) say where they went
__version__ = "0.1.0"
__all__ = ["MetaStep", "weighted_mean", "CmwnetError", "CMWNet", "MCWNet", "MWNet", "WeightNet",
           "build_weight_net", "load_weighting", "task_families"]
