"""Transfer of a learned weighting function to a new data set (paper Sec. 6).

A CMW-Net learned on one data set (the authors ship `vnet_119.pth`, learned on CIFAR-10 with 35%
Type-I + 30% asymmetric noise) is used *frozen* on another: no meta data, no second-order step. A
run does it with `method.weight_net.init: PATH` and `method.weight_net.frozen: true` (methods
`cmwnet` or `cmwnet_sl`); the class -> task-family map is recomputed from the new data's per-class
counts (K-means, families numbered by class size, 0 = largest classes).

The authors' checkpoint layout and its conversion live beside the weight nets (`cmwnet.weight_transfer`);
`convert` writes such a file in our format with the heads in our order.

    python -m cmwnet.tools.transfer convert vnet_119.pth vnet_119_cmwnet.pt      # authors' layout -> ours
    python -m cmwnet.tools.transfer show vnet_119_cmwnet.pt                      # weight vs loss per head
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from ..errors import CmwnetError, run_cli
from ..weight_transfer import AUTHORS_HEAD_ORDER, convert, reorder_heads, to_authors_layout  # noqa: F401 (the command's)
from ..weighting import WeightNet, load_weighting

SHOW_LOSSES = (0.0, 1.0, 2.0, 5.0, 12.0)


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
