"""Weight nets V(loss, y) -> w in (0, 1): MW-Net, CMW-Net and the class-wise MCW baseline.

CMW-Net (Shu et al., TPAMI 2023) sees each class as a task and groups classes into K "task families"
by K-means on the per-class training counts; a sample of observed class y is weighted by the head of
family(y). We compute all K heads as one Linear(100, K) and gather the sample's column: the same
function as the authors' K separate Linear(100, 1) heads, without their per-sample Python loop.

A saved weight net carries its family map, the class counts it was learned on and its config, so it
can be reloaded frozen and applied to a new data set (paper Sec. 6). `load_weighting` also reads the
authors' released checkpoint layout (`feature.layer.0.*`, `classfier.layers.{k}.0.*`).
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .defaults import (WEIGHT_NET_FAMILIES, WEIGHT_NET_HIDDEN, WEIGHT_NET_INIT_OUTPUT, WEIGHT_NET_LR,
                       WEIGHT_NET_WEIGHT_DECAY)
from .errors import CmwnetError, CmwnetTypeError, CmwnetValueError

FORMAT = "cmwnet-weighting/1"


def task_families(class_counts: Sequence[int], k: int = 3, seed: int = 0) -> np.ndarray:
    """Group classes into `k` task families by K-means on their sample counts.

    Families are numbered by class size (0 = the cluster of the largest classes) and K-means is
    seeded, so the same counts always give the same map and a family index means the same thing in
    every run. With fewer distinct counts than `k` (e.g. a balanced data set), each distinct count is
    its own family.
    """
    counts = _check_counts(class_counts)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise CmwnetValueError(f"k (the number of task families) must be an integer >= 1, got {k!r}: e.g. k=3, "
                               "the paper's K")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
        raise CmwnetValueError(f"seed (of the K-means over class counts) must be an integer in [0, 2^32), got "
                               f"{seed!r}: e.g. seed=0")
    distinct = np.unique(counts)
    if len(distinct) <= k:
        # rank of each class's count among the distinct counts, largest first
        return (len(distinct) - 1 - np.searchsorted(distinct, counts)).astype(np.int64)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(counts[:, None])
    order = np.argsort(-km.cluster_centers_[:, 0], kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[km.labels_]


def _check_positive_int(value: object, name: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CmwnetValueError(f"{name} must be an integer >= 1, got {value!r}: {what}")


def _family_map(families: object) -> torch.Tensor:
    """A class -> family map as a long tensor of non-negative whole numbers, or one clear error."""
    arr = np.asarray(families.detach().cpu().numpy() if torch.is_tensor(families) else families)
    if arr.dtype == bool or arr.dtype.kind not in "iuf" or arr.ndim != 1 or arr.size == 0:
        raise CmwnetValueError(f"families must be a list of family ids (integers >= 0), one per class, got "
                               f"{families!r:.80}")
    if (arr < 0).any() or (arr != np.round(arr)).any():
        bad = arr[(arr < 0) | (arr != np.round(arr))][0]
        raise CmwnetValueError(f"families holds {bad.item()!r}: a family id is a whole number >= 0")
    return torch.as_tensor(arr.astype(np.int64))


def _check_counts(class_counts: object) -> np.ndarray:
    """class_counts as a 1-d float array of non-negative whole numbers, or one clear error."""
    if torch.is_tensor(class_counts):
        class_counts = class_counts.detach().cpu().numpy()
    if np.asarray(class_counts, dtype=object).size and any(isinstance(c, (bool, np.bool_)) for c in
                                                           np.asarray(class_counts, dtype=object).ravel()):
        raise CmwnetTypeError(f"class_counts must be sample counts, got booleans {class_counts!r:.80}: e.g. "
                              "torch.bincount(labels, minlength=num_classes).tolist()")
    try:
        counts = np.asarray(class_counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise CmwnetTypeError(f"class_counts must be a list of per-class sample counts, got {class_counts!r:.80}: "
                              "e.g. torch.bincount(labels, minlength=num_classes).tolist()") from None
    if counts.ndim != 1 or counts.size == 0:
        raise CmwnetValueError(f"class_counts must be a non-empty list of per-class counts, got shape {counts.shape}: "
                               "e.g. torch.bincount(labels, minlength=num_classes).tolist()")
    bad = ~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CmwnetValueError(f"class_counts[{i}] is {class_counts[i]!r}: a count is a whole number >= 0 (the "
                               "training samples of that class)")
    return counts


def _check_weight_net_input(net: "WeightNet", losses: torch.Tensor, labels: torch.Tensor | None,
                            num_labels: int | None) -> None:
    """What a weight net's forward needs: a loss per label, labels with a curve, finite losses. The value
    checks cost a host sync, so they run only while `net.validate` (off in the trainer) and never inside
    a CUDA graph capture."""
    if not torch.is_tensor(losses) or not losses.is_floating_point():
        raise CmwnetTypeError(f"weight net: losses must be a floating tensor of per-sample losses, got "
                              f"{getattr(losses, 'dtype', type(losses).__name__)}: pass F.cross_entropy(..., "
                              "reduction='none')")
    if sum(d > 1 for d in losses.shape) > 1:
        raise CmwnetValueError(f"weight net: losses of shape {tuple(losses.shape)}: give one loss per sample, shape "
                               "(B,) or (B, 1) (F.cross_entropy(..., reduction='none'))")
    if labels is not None:
        if not torch.is_tensor(labels) or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8,
                                                               torch.int8):
            raise CmwnetTypeError(f"weight net: labels must be an integer tensor of class numbers, got "
                                  f"{getattr(labels, 'dtype', type(labels).__name__)}: convert with labels.long()")
        if labels.numel() != losses.numel():
            raise CmwnetValueError(f"weight net: {losses.numel()} losses but {labels.numel()} labels: give one label "
                                   "per loss")
        if sum(d > 1 for d in labels.shape) > 1:
            raise CmwnetValueError(f"weight net: labels of shape {tuple(labels.shape)}: give one label per sample, "
                                   "shape (B,) or (B, 1)")
    if not getattr(net, "validate", True) or (losses.is_cuda and torch.cuda.is_current_stream_capturing()):
        return
    param = next(net.parameters(), None)
    if param is not None and param.device.type != "meta":
        if losses.dtype != param.dtype:
            raise CmwnetTypeError(f"weight net: losses are {losses.dtype} but the net is {param.dtype}: convert with "
                                  f"losses.to({param.dtype}) (or the net with net.to({losses.dtype}))")
        for what, t in (("losses", losses), ("labels", labels)):
            if t is not None and t.device != param.device:
                raise CmwnetValueError(f"weight net: {what} are on {t.device} but the net on {param.device}: move "
                                       f"them with {what}.to({str(param.device)!r})")
    if not bool(torch.isfinite(losses).all()):
        raise CmwnetValueError("weight net: the losses hold NaN or Inf, which would give NaN weights: clean the "
                               "batch or lower the learning rate (the model diverged)")
    if labels is not None and num_labels is not None and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_labels:
            bad = low if low < 0 else high
            raise CmwnetValueError(f"weight net: label {bad} has no curve (the net knows classes 0..{num_labels - 1}): "
                                   "drop samples marked -1, or build the net from the counts of all classes")


def _linear_init_(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    """PyTorch's default nn.Linear init (what the authors' meta-nets use): U(-1/sqrt(fan_in), +)."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class WeightNet(nn.Module):
    """Base class: `forward(losses, labels) -> weights` of shape (B,), each in (0, 1).

    `losses` are per-sample losses (detach them: the net maps a loss value to a weight; its own
    gradient comes through the virtual update, see `cmwnet.bilevel`). `labels` are observed labels.
    """

    kind = "base"
    validate = True   # forward checks its inputs' values (one host sync); the trainer turns it off

    def __init__(self, hidden: int, class_counts: Sequence[int] | None = None):
        super().__init__()
        _check_positive_int(hidden, "hidden", "the width of the hidden layer, e.g. 100 (the authors')")
        self.hidden = hidden
        self.class_counts = None if class_counts is None else [int(c) for c in class_counts]

    @property
    def num_curves(self) -> int:
        """How many distinct weighting functions the net holds (heads, or classes for MCW)."""
        raise NotImplementedError  # each subclass defines it

    def curves(self, losses: torch.Tensor) -> torch.Tensor:
        """Every weighting function evaluated on a grid of loss values: shape (num_curves, len(grid))."""
        raise NotImplementedError  # each subclass defines it

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the layer before the output sigmoid, one row/entry per curve."""
        raise NotImplementedError  # each subclass defines it

    def config(self) -> dict[str, Any]:
        return {"hidden": self.hidden}

    def freeze(self) -> "WeightNet":
        """Fixed weighting for reuse: no gradients, eval mode."""
        self.requires_grad_(False)
        return self.eval()

    def save(self, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
        """Write weights, family map, class counts and config (atomically)."""
        from .checkpoint import atomic_torch_save

        blob = {
            "format": FORMAT,
            "kind": self.kind,
            "config": self.config(),
            "class_counts": self.class_counts,
            "families": getattr(self, "families", None),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "extra": extra or {},
        }
        if blob["families"] is not None:
            blob["families"] = blob["families"].cpu().tolist()
        atomic_torch_save(blob, path)


class MWNet(WeightNet):
    """Meta-Weight-Net (Shu et al., NeurIPS 2019): Linear(1, h) - ReLU - Linear(h, 1) - sigmoid.

    One weighting function for every class; `labels` are accepted and ignored.
    """

    kind = "mwnet"

    def __init__(self, hidden: int = 100, class_counts: Sequence[int] | None = None):
        super().__init__(hidden, class_counts)
        self.trunk = nn.Linear(1, hidden)
        self.head = nn.Linear(hidden, 1)

    @property
    def num_curves(self) -> int:
        return 1

    def forward(self, losses: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_weight_net_input(self, losses, labels, None)
        h = F.relu(self.trunk(losses.reshape(-1, 1)))
        return torch.sigmoid(self.head(h)).squeeze(1)

    def curves(self, losses: torch.Tensor) -> torch.Tensor:
        return self.forward(losses)[None]

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.weight, self.head.bias


class CMWNet(WeightNet):
    """CMW-Net: shared Linear(1, h) + ReLU, then K sigmoid heads; sample i uses head families[y_i].

    `families` maps each class to its task family (see `task_families`); build it from counts with
    `CMWNet.from_counts(class_counts)`.
    """

    kind = "cmwnet"

    def __init__(self, families: Sequence[int], num_families: int | None = None, hidden: int = 100,
                 class_counts: Sequence[int] | None = None):
        super().__init__(hidden, class_counts)
        fam = _family_map(families)
        if num_families is not None:
            _check_positive_int(num_families, "num_families", "the number of heads, e.g. 3 (the paper's K)")
        k = int(fam.max()) + 1 if num_families is None else int(num_families)
        if int(fam.max()) >= k:
            raise CmwnetError(f"family id {int(fam.max())} is out of range for {k} families")
        self.num_families = k
        self.register_buffer("families", fam)
        self.trunk = nn.Linear(1, hidden)
        self.heads = nn.Linear(hidden, k)

    @classmethod
    def from_counts(cls, class_counts: Sequence[int], k: int = WEIGHT_NET_FAMILIES, seed: int = 0,
                    hidden: int = WEIGHT_NET_HIDDEN,
                    init_output: float | None = WEIGHT_NET_INIT_OUTPUT) -> "CMWNet":
        """A CMW-Net for data with these per-class counts, started as the command line starts it: K=3
        families, every curve flat at `init_output` (None: PyTorch's init, the authors')."""
        net = cls(task_families(class_counts, k, seed), num_families=k, hidden=hidden,
                  class_counts=[int(c) for c in _check_counts(class_counts)])
        return init_flat(net, init_output)

    @property
    def num_curves(self) -> int:
        return self.num_families

    def forward(self, losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_weight_net_input(self, losses, labels, len(self.families))
        labels = labels.long().reshape(-1)   # uint8 would index as a mask; (B, 1) labels as (B,)
        h = F.relu(self.trunk(losses.reshape(-1, 1)))
        logits = self.heads(h)  # (B, K): every head at once
        fam = self.families[labels].unsqueeze(1)
        return torch.sigmoid(logits.gather(1, fam)).squeeze(1)

    def curves(self, losses: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.trunk(losses.reshape(-1, 1)))
        return torch.sigmoid(self.heads(h)).T

    def config(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "num_families": self.num_families}

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads.weight, self.heads.bias

    def with_families(self, families: Sequence[int]) -> "CMWNet":
        """The same heads applied with another class -> family map (transfer to a new data set)."""
        fam = _family_map(families).to(self.families.device)
        if int(fam.max()) >= self.num_families:
            raise CmwnetError(f"family id {int(fam.max())} is out of range for {self.num_families} heads")
        self.families = fam
        return self


class MCWNet(WeightNet):
    """Class-wise weighting ("MCW" in Table 1): one 1-h-1 sigmoid MLP per class.

    Stored as stacked per-class parameters and evaluated with a gather, which equals C separate
    MW-Nets each seeing only its own class.
    """

    kind = "mcwnet"

    def __init__(self, num_classes: int, hidden: int = 100, class_counts: Sequence[int] | None = None):
        _check_positive_int(num_classes, "num_classes", "one curve per class")
        if class_counts is not None and len(class_counts) != num_classes:
            raise CmwnetValueError(f"MCWNet: {len(class_counts)} class counts for num_classes={num_classes}: give one "
                                   "count per class")
        super().__init__(hidden, class_counts)
        self.num_classes = num_classes
        self.trunk_weight = nn.Parameter(torch.empty(num_classes, hidden))
        self.trunk_bias = nn.Parameter(torch.empty(num_classes, hidden))
        self.head_weight = nn.Parameter(torch.empty(num_classes, hidden))
        self.head_bias = nn.Parameter(torch.empty(num_classes))
        _linear_init_(self.trunk_weight, self.trunk_bias, 1)
        _linear_init_(self.head_weight, self.head_bias, hidden)

    @property
    def num_curves(self) -> int:
        return self.num_classes

    def _eval(self, losses: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        h = F.relu(losses.reshape(-1, 1) * self.trunk_weight[classes] + self.trunk_bias[classes])
        return torch.sigmoid((h * self.head_weight[classes]).sum(1) + self.head_bias[classes])

    def forward(self, losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_weight_net_input(self, losses, labels, self.num_classes)
        return self._eval(losses, labels.long().reshape(-1))

    def curves(self, losses: torch.Tensor) -> torch.Tensor:
        g = losses.numel()
        c = torch.arange(self.num_classes, device=losses.device).repeat_interleave(g)
        return self._eval(losses.reshape(-1).repeat(self.num_classes), c).reshape(self.num_classes, g)

    def config(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "num_classes": self.num_classes}

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head_weight, self.head_bias


def init_flat(net: WeightNet, init_output: float | None) -> WeightNet:
    """Start every curve of `net` flat at weight `init_output` (output-layer weights 0, biases
    logit(p)), so no random initial slope decides which samples the first meta steps favour; None
    leaves PyTorch's default init, as the authors' (curves near 0.5 with a random tilt)."""
    if init_output is None:
        return net
    if isinstance(init_output, bool) or not isinstance(init_output, (int, float)) or not 0.0 < init_output < 1.0:
        raise CmwnetValueError(f"weight net init_output must be in (0, 1) or None, got {init_output!r}: e.g. 0.9 "
                               "(the default), or None for the authors' random init")
    weight, bias = net.output_layer()
    with torch.no_grad():
        weight.zero_()
        bias.fill_(math.log(init_output / (1.0 - init_output)))
    return net


def build_weight_net(kind: str, num_classes: int, class_counts: Sequence[int], *, hidden: int = WEIGHT_NET_HIDDEN,
                     families: int = WEIGHT_NET_FAMILIES, seed: int = 0,
                     init_output: float | None = WEIGHT_NET_INIT_OUTPUT) -> WeightNet:
    """The weight net a method's config names: 'mwnet', 'cmwnet' or 'mcwnet', started flat at
    `init_output` (see `init_flat`; the config's default, None: the authors' init)."""
    if kind == "mwnet":
        net: WeightNet = MWNet(hidden, class_counts)
    elif kind == "cmwnet":
        if class_counts is not None and len(class_counts) != num_classes:
            raise CmwnetValueError(f"build_weight_net: {len(class_counts)} class counts for num_classes={num_classes}: "
                                   "give one count per class")
        net = CMWNet.from_counts(class_counts, k=families, seed=seed, hidden=hidden, init_output=None)
    elif kind == "mcwnet":
        net = MCWNet(num_classes, hidden, list(_check_counts(class_counts).astype(int)))
    else:
        from .errors import unknown_name
        raise unknown_name("weight net", kind, ["mwnet", "cmwnet", "mcwnet"])
    return init_flat(net, init_output)


def weight_net_optimizer(net: WeightNet, lr: float = WEIGHT_NET_LR,
                         weight_decay: float = WEIGHT_NET_WEIGHT_DECAY) -> torch.optim.Optimizer:
    """The weight net's optimizer as the command line builds it: Adam, lr 1e-4, weight decay 1e-4."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0.0 < lr < float("inf"):
        raise CmwnetValueError(f"weight_net_optimizer: lr must be a positive number, got {lr!r}: e.g. 1e-4")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or \
            not 0.0 <= weight_decay < float("inf"):
        raise CmwnetValueError(f"weight_net_optimizer: weight_decay must be a number >= 0, got {weight_decay!r}: e.g. "
                               "1e-4, or 0")
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise CmwnetValueError("weight_net_optimizer: every parameter of the weight net is frozen, so there is "
                               "nothing to learn: unfreeze it (net.requires_grad_(True)), or use it without an optimizer")
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


_AUTHORS_TRUNK = "feature.layer.0."
_AUTHORS_HEAD = "classfier.layers.{}.0."


def _from_authors_layout(state: dict[str, torch.Tensor]) -> CMWNet:
    heads = sorted({int(k.split(".")[2]) for k in state if k.startswith("classfier.layers.")})
    if heads != list(range(len(heads))) or not heads:
        raise CmwnetError("checkpoint looks like the authors' CMW-Net layout but its heads are not 0..K-1")
    w1 = state[_AUTHORS_TRUNK + "weight"]
    net = CMWNet([0], num_families=len(heads), hidden=w1.shape[0])
    with torch.no_grad():
        net.trunk.weight.copy_(w1)
        net.trunk.bias.copy_(state[_AUTHORS_TRUNK + "bias"])
        for k in heads:
            net.heads.weight[k].copy_(state[_AUTHORS_HEAD.format(k) + "weight"][0])
            net.heads.bias[k].copy_(state[_AUTHORS_HEAD.format(k) + "bias"][0])
    return net


def _from_our_format(blob: dict, path: str | os.PathLike) -> WeightNet:
    """A net from a file `WeightNet.save` wrote (any missing key or misfit tensor raises, the caller
    turns it into one line)."""
    cfg, state = blob["config"], blob["state_dict"]
    if not isinstance(cfg, dict) or not isinstance(state, dict):
        raise TypeError("config and state_dict must be mappings")
    counts = blob.get("class_counts")
    if blob["kind"] == "mwnet":
        net: WeightNet = MWNet(cfg["hidden"], counts)
    elif blob["kind"] == "cmwnet":
        net = CMWNet(blob["families"], cfg["num_families"], cfg["hidden"], counts)
    elif blob["kind"] == "mcwnet":
        net = MCWNet(cfg["num_classes"], cfg["hidden"], counts)
    else:
        raise CmwnetError(f"unknown weight net kind '{blob['kind']}' in {path}: this file is not a weight net "
                          "cmwnet can read (kinds: mwnet, cmwnet, mcwnet)")
    net.load_state_dict(state)
    if not all(bool(torch.isfinite(t).all()) for t in net.state_dict().values() if t.is_floating_point()):
        raise CmwnetError(f"{path} holds NaN or Inf weights: use a checkpoint saved before the run diverged")
    return net


def _read_or_refuse(read: Callable[[], "WeightNet"], problem: str, fix: str) -> "WeightNet":
    """`read()`, with a damaged file's error (a missing entry, a tensor of the wrong shape) as one line."""
    try:
        return read()
    except CmwnetError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else "missing entry"
        raise CmwnetError(f"{problem} ({type(e).__name__}: {detail}): {fix}") from None


def load_weighting(path: str | os.PathLike, class_counts: Sequence[int] | None = None,
                   families: Sequence[int] | None = None, head_order: Sequence[int] | None = None,
                   seed: int = 0, map_location: str | torch.device = "cpu") -> WeightNet:
    """Load a saved weight net, frozen, ready to weight samples of a (possibly new) data set.

    - A file written by `WeightNet.save` keeps its own family map unless `class_counts` (of the new
      data) or an explicit `families` map is given, in which case the map is rebuilt for the new data.
    - The authors' released layout (e.g. `vnet_119.pth`) carries no family map: give `class_counts`
      or `families`. Their branch numbering is arbitrary; `head_order[f]` names the authors' branch
      that our family f (0 = largest classes) should use.
    """
    if not os.path.exists(path):
        raise CmwnetError(f"weight net file not found: {path}")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise CmwnetError(f"cannot read weight net file {path} ({type(e).__name__}): is it a torch checkpoint?") from None
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        net = _read_or_refuse(lambda: _from_our_format(blob, path),
                              f"{path} has the cmwnet weight-net format tag but is damaged",
                              "save the net again with WeightNet.save, or use the original file")
    else:
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
        if not isinstance(state, dict) or _AUTHORS_TRUNK + "weight" not in state:
            raise CmwnetError(f"{path} is neither a cmwnet weight net nor the authors' CMW-Net layout")
        net = _read_or_refuse(lambda: _from_authors_layout(state),
                              f"{path} looks like the authors' CMW-Net layout but its tensors do not fit it",
                              "give the authors' vnet file as released")
        if families is None and class_counts is None:
            raise CmwnetError(f"{path} is in the authors' layout, which has no class->family map: "
                              "pass class_counts (of your data) or families")
    if isinstance(net, CMWNet):
        if families is None and class_counts is not None:
            families = task_families(class_counts, net.num_families, seed)
            net.class_counts = [int(c) for c in class_counts]
        if families is not None:
            fam = np.asarray(families)
            if head_order is not None:
                order = np.asarray(head_order)
                if sorted(order.tolist()) != list(range(net.num_families)):
                    raise CmwnetError(f"head_order must be a permutation of 0..{net.num_families - 1}")
                fam = order[fam]
            net.with_families(fam)
    elif families is not None or head_order is not None:
        raise CmwnetError(f"a {net.kind} weight net has no task families to remap")
    return net.freeze()
