"""The weight net's defaults, in one place: the config (`method.weight_net.*`, what the CLI trains with)
and the Python API (`CMWNet.from_counts`, `build_weight_net`, `weight_net_optimizer`) read them here.

They were chosen by the measurements in the README ("The weighting's settings"): curves that start flat
at weight 0.9 and a weight-net lr of 1e-4 beat the authors' random init (digits AUC 0.968 vs 0.864).
No torch import: `cmwnet.config` reads this module too.
"""
WEIGHT_NET_HIDDEN = 100          # the authors' width
WEIGHT_NET_FAMILIES = 3          # the paper's K
WEIGHT_NET_LR = 1e-4             # Adam's lr for the weight net
WEIGHT_NET_WEIGHT_DECAY = 1e-4
WEIGHT_NET_INIT_OUTPUT = 0.9     # every curve starts flat at this weight (None: PyTorch's / the authors' init)
