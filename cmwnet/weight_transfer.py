"""The authors' checkpoint layout for a CMW-Net, beside the weight nets: converting their `vnet_*.pth` (heads in
their branch order) to ours and back (paper Sec. 6, Tables 6 and 10).

The authors' layout carries no family map and numbers its branches arbitrarily. Their hard-coded full-WebVision map
puts 46 classes on branch 0, 718 on branch 1 and 236 on branch 2; K-means on WebVision's long-tailed class counts
gives a small cluster of the largest classes, a middle one and a large cluster of the smallest classes, so (our
inference) branch 0 serves the largest classes, branch 2 the middle and branch 1 the smallest:
`AUTHORS_HEAD_ORDER = (0, 2, 1)` (head_order[f] = the authors' branch our family f uses). The command around it is
`python -m cmwnet.tools.transfer`.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import CmwnetError
from .weighting import CMWNet, load_weighting

AUTHORS_HEAD_ORDER = (0, 2, 1)


def reorder_heads(net: CMWNet, head_order: Sequence[int]) -> CMWNet:
    """A copy of `net` whose head f is `net`'s head head_order[f] (same trunk, same family map)."""
    order = list(head_order)
    if sorted(order) != list(range(net.num_families)):
        raise CmwnetError(f"head order must be a permutation of 0..{net.num_families - 1}, got {order}")
    out = CMWNet(net.families.tolist(), net.num_families, net.hidden, net.class_counts)
    with torch.no_grad():
        out.trunk.load_state_dict(net.trunk.state_dict())
        out.heads.weight.copy_(net.heads.weight[order])
        out.heads.bias.copy_(net.heads.bias[order])
    return out.freeze()


def to_authors_layout(net: CMWNet) -> dict[str, torch.Tensor]:
    """Our CMW-Net as the authors' state dict (`feature.layer.0.*`, `classfier.layers.{k}.0.*`), head
    k -> branch k; the inverse of what `load_weighting` reads (for their scripts, and for tests)."""
    state = {"feature.layer.0.weight": net.trunk.weight.detach().cpu().clone(),
             "feature.layer.0.bias": net.trunk.bias.detach().cpu().clone()}
    for k in range(net.num_families):
        state[f"classfier.layers.{k}.0.weight"] = net.heads.weight[k:k + 1].detach().cpu().clone()
        state[f"classfier.layers.{k}.0.bias"] = net.heads.bias[k:k + 1].detach().cpu().clone()
    return state


def convert(src: str, dst: str, head_order: Sequence[int] = AUTHORS_HEAD_ORDER) -> CMWNet:
    """Read a weight net in the authors' layout and write it in our format with its heads in our family
    order (family 0 = largest classes), ready for `method.weight_net.init`. A file already in our format
    is refused: its heads are in our order, and reordering them again would swap two families' curves."""
    try:
        load_weighting(src)
    except CmwnetError as e:
        if "authors' layout" not in str(e):
            raise
    else:
        raise CmwnetError(f"{src} is already a cmwnet weight-net file (heads in our family order): use it as "
                          "method.weight_net.init directly; convert reads only the authors' layout")
    net = load_weighting(src, families=[0])
    if not isinstance(net, CMWNet):
        raise CmwnetError(f"{src} holds a {net.kind} net: only CMW-Net heads can be reordered")
    out = reorder_heads(net, head_order)
    out.save(dst, extra={"converted_from": src, "head_order": list(head_order)})
    return out
