"""Per-sample losses by name: `build_loss("ce", num_classes, class_counts)` -> (logits, targets) -> (B,).

Every loss here returns one value per sample, so any of them can be reweighted. A loss whose form
changes during training (e.g. deferred re-weighting) has `set_epoch(epoch)` and keeps what it
switched in buffers, so `loss.state_dict()` carries it across a resume.

The zoo (config names): `ce`; `focal` (Lin et al. 2017); `cb`, class-balanced (Cui et al. 2019);
`ldam`, label-distribution-aware margins with deferred re-weighting (Cao et al. 2019); `gce`,
generalized cross-entropy (Zhang & Sabuncu 2018); `forward`, forward loss correction with a noise
transition matrix (Patrini et al. 2017; the matrix is given, or estimated by the `forward` method
with `estimate_transition`). Options come from `method.loss_args`; a bad one is a `CmwnetError`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CmwnetError
from .registry import Registry

LOSSES: Registry = Registry("loss")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum_c z_c log p_c per sample, for soft targets z (pseudo labels, mixed labels)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1)


@LOSSES.register("ce")
class CrossEntropy(nn.Module):
    """Plain cross-entropy, per sample."""

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none")


# -- helpers -------------------------------------------------------------------------------------------
def _number(loss: str, name: str, value, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    """A numeric loss option, range-checked; anything else is a one-line CmwnetError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CmwnetError(f"method.loss_args.{name} of loss '{loss}' must be a number, got {value!r}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        raise CmwnetError(f"method.loss_args.{name} of loss '{loss}' must be in {lo or '(-inf'}, {hi or 'inf)'}, "
                          f"got {value!r}")
    return float(value)


def _counts(loss: str, class_counts: Sequence[int] | None, num_classes: int | None) -> np.ndarray:
    """Per-class training counts as floats, at least 1 (a class with no sample would divide by zero)."""
    if class_counts is None:
        raise CmwnetError(f"loss '{loss}' needs the per-class training counts (class_counts)")
    counts = np.asarray(class_counts, dtype=np.float64).reshape(-1)
    if num_classes is not None and len(counts) != num_classes:
        raise CmwnetError(f"loss '{loss}': {len(counts)} class counts for {num_classes} classes")
    return np.maximum(counts, 1.0)


def class_balanced_weights(class_counts: Sequence[int], beta: float) -> np.ndarray:
    """Cui et al. 2019: w_j = (1 - beta) / (1 - beta^n_j), the inverse effective number of samples,
    scaled so the weights sum to the number of classes (beta = 0 gives all ones). Counts below 1
    count as 1."""
    n = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return w / w.sum() * len(n)


def _gather(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return values.gather(1, targets[:, None]).squeeze(1)


def focal_from_log_probs(log_probs: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """-(1 - p_t)^gamma * log p_t per sample, from log-probabilities (softmax form)."""
    log_pt = _gather(log_probs, targets)
    return -((1.0 - log_pt.exp()).clamp_min(0.0) ** gamma) * log_pt


# -- the zoo -------------------------------------------------------------------------------------------
@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Focal loss (Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection", ICCV 2017):
    FL = -(1 - p_t)^gamma log p_t with p_t the softmax probability of the target class; it lowers the
    loss of well-classified samples. Default gamma = 2 (the paper's choice); gamma = 0 is cross-entropy.
    The paper's alpha balancing term is for binary detection and is left out (CB-focal weighs classes).
    """

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None,
                 gamma: float = 2.0):
        super().__init__()
        self.gamma = _number("focal", "gamma", gamma, low=0.0)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_from_log_probs(F.log_softmax(logits, dim=1), targets, self.gamma)


@LOSSES.register("cb")
class ClassBalancedLoss(nn.Module):
    """Class-balanced loss (Cui, Jia, Lin, Song, Belongie, "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019): the base loss of a sample of class y times
    w_y = (1 - beta) / (1 - beta^n_y), weights normalised to sum to the number of classes.

    Options: beta = 0.9999 (the paper's usual CIFAR-LT value), base = "ce" (softmax) or "focal"
    (softmax focal loss with `gamma`, default 1.0 from the paper's grid {0.5, 1, 2}; unused with ce).
    The paper's sigmoid variant is not included.
    """

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None,
                 beta: float = 0.9999, base: str = "ce", gamma: float = 1.0):
        super().__init__()
        beta = _number("cb", "beta", beta, low=0.0, high=1.0, high_open=True)
        if base not in ("ce", "focal"):
            raise CmwnetError(f"method.loss_args.base of loss 'cb' must be ce or focal, got {base!r}")
        self.base = base
        self.gamma = _number("cb", "gamma", gamma, low=0.0)
        w = class_balanced_weights(_counts("cb", class_counts, num_classes), beta)
        self.register_buffer("class_weights", torch.tensor(w, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        if self.base == "focal":
            base = focal_from_log_probs(log_probs, targets, self.gamma)
        else:
            base = -_gather(log_probs, targets)
        return self.class_weights.to(logits.dtype)[targets] * base


@LOSSES.register("ldam")
class LDAMLoss(nn.Module):
    """LDAM loss with deferred re-weighting (Cao, Wei, Gaidon, Arechiga, Ma, "Learning Imbalanced
    Datasets with Label-Distribution-Aware Margin Loss", NeurIPS 2019).

    loss = w_y * CE(s * (z - Delta_y e_y), y): the target logit is lowered by a class margin
    Delta_j proportional to n_j^(-1/4), scaled so the largest margin is `max_m` (0.5), and the logits
    are multiplied by `s` (30). The logits z are meant to be cosines (a normalised classifier: model
    arg `normed_fc: true`); any logits work. DRW: before `drw_epoch` (160) w = 1; from it, w are the
    class-balanced weights of `drw_beta` (0.9999), switched by `set_epoch` (`drw_epoch: null`: never).
    `drw_mean`: "plain" (default) follows the paper's Algorithm 1, the batch mean of w_y * loss; "weighted" is
    the authors' code (`F.cross_entropy(..., weight=w)`): the weighted sum over the batch's sum of weights, so the
    loss keeps its scale when the re-weighting starts (per sample: w_y * loss * B / sum of the batch's w).
    """

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None,
                 max_m: float = 0.5, s: float = 30.0, drw_epoch: int | None = 160, drw_beta: float = 0.9999,
                 drw_mean: str = "plain"):
        super().__init__()
        counts = _counts("ldam", class_counts, num_classes)
        max_m = _number("ldam", "max_m", max_m, low=0.0, low_open=True)
        self.s = _number("ldam", "s", s, low=0.0, low_open=True)
        self.logit_scale = self.s   # the clean meta loss of MetaStep scales the logits alike
        if drw_epoch is not None:
            if isinstance(drw_epoch, bool) or not isinstance(drw_epoch, int) or drw_epoch < 0:
                raise CmwnetError(f"method.loss_args.drw_epoch of loss 'ldam' must be an epoch >= 0 or null, "
                                  f"got {drw_epoch!r}")
        self.drw_epoch = drw_epoch
        if drw_mean not in ("plain", "weighted"):
            raise CmwnetError(f"method.loss_args.drw_mean of loss 'ldam' must be plain or weighted, got {drw_mean!r}")
        self.drw_mean = drw_mean
        beta = _number("ldam", "drw_beta", drw_beta, low=0.0, high=1.0, high_open=True)
        margins = counts ** -0.25
        margins = margins * (max_m / margins.max())
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32))
        self.register_buffer("drw_weights", torch.tensor(class_balanced_weights(counts, beta), dtype=torch.float32))
        # the weights in use now: ones before drw_epoch (a buffer, so a checkpoint carries the switch)
        self.register_buffer("class_weights", torch.ones(len(counts)))

    def set_epoch(self, epoch: int) -> None:
        on = self.drw_epoch is not None and epoch >= self.drw_epoch
        self.class_weights.copy_(self.drw_weights if on else torch.ones_like(self.drw_weights))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        shifted = logits - onehot * self.margins.to(logits.dtype)[targets][:, None]
        ce = F.cross_entropy(self.s * shifted, targets, reduction="none")
        w = self.class_weights.to(logits.dtype)[targets]
        if self.drw_mean == "weighted":   # the batch mean of this is sum(w * ce) / sum(w); 1 before DRW
            w = w * (len(w) / w.sum().clamp_min(torch.finfo(w.dtype).tiny))
        return w * ce


@LOSSES.register("gce")
class GeneralizedCrossEntropy(nn.Module):
    """Generalized cross-entropy L_q (Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training
    Deep Neural Networks with Noisy Labels", NeurIPS 2018): (1 - p_y^q) / q. q -> 0 gives CE, q = 1 the
    noise-robust MAE; default q = 0.7 (the paper's choice). The truncated variant is not included.
    """

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None, q: float = 0.7):
        super().__init__()
        self.q = _number("gce", "q", q, low=0.0, high=1.0, low_open=True)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p_y_q = (self.q * _gather(F.log_softmax(logits, dim=1), targets)).exp()   # p_y^q, stable near 0
        return (1.0 - p_y_q) / self.q


def check_transition(t, num_classes: int, where: str = "method.loss_args.transition") -> torch.Tensor:
    """A row-stochastic num_classes x num_classes matrix T[i, j] = P(observed j | true i), or CmwnetError."""
    try:
        m = torch.as_tensor(np.asarray(t, dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError):
        raise CmwnetError(f"{where} must be a {num_classes}x{num_classes} matrix of numbers") from None
    if m.shape != (num_classes, num_classes):
        raise CmwnetError(f"{where} must be {num_classes}x{num_classes}, got shape {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
        raise CmwnetError(f"{where} must hold probabilities (finite, >= 0)")
    if not torch.allclose(m.sum(1), torch.ones(num_classes), atol=1e-3):
        raise CmwnetError(f"{where}: every row must sum to 1 (row i = P(observed label | true class i))")
    return m


@LOSSES.register("forward")
class ForwardCorrection(nn.Module):
    """Forward loss correction (Patrini, Rozza, Menon, Nock, Qu, "Making Deep Neural Networks Robust
    to Label Noise: a Loss Correction Approach", CVPR 2017): -log (T^T p)_y, i.e. cross-entropy of the
    observed label against the softmax p pushed through the noise, T[i, j] = P(observed j | true i).

    `transition` (loss_args) gives T; without it T is the identity (plain CE) until `set_transition`
    is called, which the `forward` method does with the matrix `estimate_transition` finds. T is a
    buffer, so checkpoints carry it.
    """

    def __init__(self, num_classes: int | None = None, class_counts: Sequence[int] | None = None,
                 transition=None):
        super().__init__()
        if num_classes is None:
            raise CmwnetError("loss 'forward' needs num_classes")
        t = torch.eye(num_classes) if transition is None else check_transition(transition, num_classes)
        self.register_buffer("transition", t)

    def set_transition(self, t: torch.Tensor) -> None:
        self.transition.copy_(check_transition(t.detach().cpu(), self.transition.shape[0], "transition matrix"))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # log sum_k p_k T[k, y], in log space so a zero entry of T is exact (-inf, not log(0 + eps))
        log_t = self.transition.to(logits.dtype).log().t()[targets]          # (B, C): log T[k, y_b]
        return -torch.logsumexp(F.log_softmax(logits, dim=1) + log_t, dim=1)


def estimate_transition(probs: torch.Tensor, percentile: float | None = 97.0) -> torch.Tensor:
    """Patrini et al.'s anchor-point estimate of T from softmax outputs on the (noisy) training set.

    For each class i, the anchor x_i is the sample with the highest p(i | x), or, with `percentile`
    (97 in the paper's code), the highest below the `percentile`-th percentile of p(i | x) ("higher"
    interpolation: the smallest observed value at or above it) to skip outliers; row i of T is
    p(. | x_i). Unlike the authors' numpy code, earlier rows' filtering does not leak into later rows
    (they zero entries of the probability array in place).
    """
    probs = probs.detach().float()
    n, c = probs.shape
    rows = []
    for i in range(c):
        col = probs[:, i]
        if percentile is None:
            idx = col.argmax()
        else:
            k = min(n - 1, math.ceil(percentile / 100.0 * (n - 1)))
            thresh = col.sort().values[k]
            below = torch.where(col < thresh, col, torch.full_like(col, -1.0))
            idx = below.argmax() if bool((col < thresh).any()) else col.argmax()
        rows.append(probs[idx])
    return torch.stack(rows)


def build_loss(name: str, num_classes: int, class_counts: Sequence[int], **args) -> nn.Module:
    """A registered per-sample loss; `args` are the loss's own options (config: method.loss_args)."""
    from .errors import CmwnetError

    cls = LOSSES.get(name)
    check_loss_args(name, args)
    try:
        return cls(num_classes=num_classes, class_counts=class_counts, **args)
    except TypeError as e:
        raise CmwnetError(f"bad method.loss_args for loss '{name}': {e}") from None


def check_loss_args(name: str, args: dict) -> None:
    """`method.loss_args` keys the loss does not take: refused with the closest valid name."""
    from .errors import check_builder_args

    check_builder_args("method.loss_args", LOSSES.get(name), args, ("num_classes", "class_counts"), f"loss '{name}'")
