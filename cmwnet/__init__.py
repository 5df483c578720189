"""cmwnet: meta-learned sample weighting (CMW-Net, Meta-Weight-Net) for noisy and long-tailed data.

    from cmwnet import CMWNet, MetaStep, task_families, load_weighting, weight_net_optimizer
    vnet = CMWNet.from_counts(class_counts)                 # K=3 task families by class size, curves flat at 0.9
    step = MetaStep(model, opt, vnet, weight_net_optimizer(vnet))   # Adam, lr 1e-4: the CLI's defaults
    stats = step.step(x, y, meta_x, meta_y, iteration)      # virtual step, meta update, real update
    vnet.save("vnet.pt"); w = load_weighting("vnet.pt", class_counts=new_counts)(losses, labels)
    run = load_run("runs/my_run"); run.predict(images)     # a finished run's classifier, weight net and tables
"""
from . import _moved
from .bilevel import MetaStep, weighted_mean
from .defaults import WEIGHT_NET_INIT_OUTPUT, WEIGHT_NET_LR
from .errors import CmwnetError, CmwnetTypeError, CmwnetValueError
from .run_folder.loaded_run import LoadedRun, load_run
from .weighting import (CMWNet, MCWNet, MWNet, WeightNet, build_weight_net, load_weighting, task_families,
                        weight_net_optimizer)

_moved.install()   # old root-level command names (`python -m cmwnet.bench`, ...) say where they went
__version__ = "0.1.0"
__all__ = ["MetaStep", "weighted_mean", "load_run", "LoadedRun", "CmwnetError", "CmwnetTypeError", "CmwnetValueError", "CMWNet", "MCWNet",
           "MWNet", "WeightNet", "build_weight_net", "load_weighting", "task_families", "weight_net_optimizer",
           "WEIGHT_NET_INIT_OUTPUT", "WEIGHT_NET_LR"]
