"""Transfer of a learned weighting function to a new data set (paper Sec. 6).

A CMW-Net learned on one data set (the authors ship `vnet_119.pth`, learned on CIFAR-10 with 35%
Type-I + 30% asymmetric noise) is used *frozen* on another: no meta data, no second-order step. A
run does it with `method.weight_net.init: PATH` and `method.weight_net.frozen: true` (methods
`cmwnet` or `cmwnet_sl`); the class -> task-family map is recomputed from the new data's per-class
counts (K-means, families numbered by class size, 0 = largest classes).

The authors' checkpoint layout carries no family map and numbers its branches arbitrarily. Their
hard-coded full-WebVision map puts 46 classes on branch 0, 718 on branch 1 and 236 on branch 2;
K-means on WebVision's long-tailed class counts gives a small cluster of the largest classes, a
middle one and a large cluster of the smallest classes, so (our inference) branch 0 serves the
largest classes, branch 2 the middle and branch 1 the smallest: `AUTHORS_HEAD_ORDER = (0, 2, 1)`
(head_order[f] = the authors' branch our family f uses). It agrees with the curves: branch 1 rises
with the loss (tail classes keep their hard samples), branch 0 falls sharply (head classes drop
their noisy ones). `convert` writes such a file in our format with the heads in our order.

    python -m cmwnet.tools.transfer convert vnet_119.pth vnet_119_cmwnet.pt      # authors' layout -> ours
    python -m cmwnet.tools.transfer show vnet_119_cmwnet.pt                      # weight vs loss per head
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from ..errors import CmwnetError, run_cli
from ..weighting import CMWNet, WeightNet, load_weighting

AUTHORS_HEAD_ORDER = (0, 2, 1)
SHOW_LOSSES = (0.0, 1.0, 2.0, 5.0, 12.0)


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


def curve_table(net: WeightNet, losses: Sequence[float] = SHOW_LOSSES) -> str:
    """Weight per head at a few loss values, as text."""
    grid = torch.tensor(list(losses), dtype=torch.float32)
    with torch.no_grad():
        w = net.curves(grid)
    lines = ["loss    " + "  ".join(f"head {k}" for k in range(w.shape[0]))]
    for i, loss in enumerate(losses):
        lines.append(f"{loss:<7g} " + "  ".join(f"{float(w[k, i]):6.3f}" for k in range(w.shape[0])))
    return "\n".join(lines)


def _load_any(path: str) -> WeightNet:
    """A weight net in our format (with its own family map) or the authors' layout (no map needed to
    draw its curves)."""
    try:
        return load_weighting(path)
    except CmwnetError as e:
        if "authors' layout" not in str(e):
            raise
        return load_weighting(path, families=[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmwnet.tools.transfer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="authors' checkpoint layout -> our weight-net file (heads reordered)")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--head-order", default=",".join(map(str, AUTHORS_HEAD_ORDER)),
                   help="the authors' branch for our family 0 (largest classes), 1, 2 (default %(default)s)")
    s = sub.add_parser("show", help="print weight vs loss per head")
    s.add_argument("path")
    a = p.parse_args(argv)
    if a.cmd == "convert":
        try:
            order = [int(v) for v in a.head_order.split(",")]
        except ValueError:
            raise CmwnetError(f"--head-order takes comma-separated integers, got '{a.head_order}'") from None
        net = convert(a.src, a.dst, order)
        print(f"wrote {a.dst} (heads from the authors' branches {order})\n{curve_table(net)}")
    else:
        print(curve_table(_load_any(a.path)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
