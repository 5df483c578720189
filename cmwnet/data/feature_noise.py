"""Feature-dependent label noise (paper Tables 4-5), generated the way PLC does it.

PLC ("Learning with Feature-Dependent Label Noise: A Progressive Approach", Zhang et al., ICLR 2021)
defines Poly-Margin Diminishing (PMD) noise from the class posteriors eta(x) of a network trained on
the *clean* 45k training split (25 epochs, SGD lr 1e-3; eta = its softmax on each training sample
during the last epoch). With u, s the top-two classes of eta(x) and delta = eta_u - eta_s:

    Type-I:   q = max(1 - f, 1/2),  f = -delta^2 / 2 + 1/2     (so q = 1/2 + delta^2 / 2)
    Type-II:  q = |delta|^3
    Type-III: q = (|delta|^3 + delta^2 + |delta|) / 3

and the observed label is u with probability min(q / factor, 1), else s. PLC picks `factor` by hand
per data set and type so that the realised noise rate hits 35% or 70% (their README lists 1.43,
3.40, ...); we solve for it (bisection on the expected rate over the training set), then sample.

Table 5 adds i.i.d. noise on top of the 35% PMD labels, as PLC's `noise.py` does (rate 0.3, seed 1):
"unif" moves a label to each *other* class with probability rate / (C - 1); "flip" uses CIFAR-10's
truck->automobile, bird->airplane, cat<->dog, deer->horse, and for CIFAR-100 the next index within
each block of 5 consecutive class indices (PLC's definition, not the real super-classes).

Label files are cached (`<dataset>-type<k>-<rate>[+<iid><rate>].npy`) through
`cmwnet.data.label_store` (written once, with a checksum sidecar `<file>.meta.json` whose `meta`
records the factor, the realised rate(s), the seeds, and SHA-256 hashes of the clean labels and the
posteriors). A cached file is reused only when it still matches its checksum and was made for the
current training set; a changed file is an error, never silently used.

The posterior network runs as an ordinary training run with method `record_posteriors` (ERM that
keeps the softmax of each sample seen in the last epoch), so it gets the engine's resume, logs and
the table runner's GPU slots; `posterior_config` gives its config. That method, the reader of its run
(`posteriors_from_run`) and `label_files_for` live in `cmwnet.methods.record_posteriors`: this module
is the noise model and its label files only (data never imports the training side).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .label_store import read_label_file, read_label_meta, write_label_file
from ..errors import CmwnetError
from .noise import transition_matrix

FORMAT = "cmwnet-feature-noise/1"
PMD_TYPES = (1, 2, 3)
IID_KINDS = ("unif", "flip")
# PLC's CIFAR-10 "asymmetric" map: truck->automobile, bird->airplane, cat<->dog, deer->horse
PLC_CIFAR10_FLIP = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}


# -- the noise model ---------------------------------------------------------------------------------
def top_two(posteriors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s, delta): the most and second most likely class of each row and their probability gap."""
    p = np.asarray(posteriors, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise CmwnetError(f"posteriors must be N x C with C >= 2, got shape {p.shape}")
    order = np.argsort(-p, axis=1, kind="stable")[:, :2]
    u, s = order[:, 0], order[:, 1]
    rows = np.arange(len(p))
    return u, s, p[rows, u] - p[rows, s]


def pmd_q(delta: np.ndarray, noise_type: int) -> np.ndarray:
    """PLC's q(delta) for noise Type I, II or III (see the module docstring)."""
    d = np.abs(np.asarray(delta, dtype=np.float64))
    if noise_type == 1:
        return np.maximum(1.0 - (-0.5 * d ** 2 + 0.5), 0.5)
    if noise_type == 2:
        return d ** 3
    if noise_type == 3:
        return (d ** 3 + d ** 2 + d) / 3.0
    raise CmwnetError(f"unknown PMD noise type {noise_type!r}: use 1, 2 or 3 (Type-I, II, III)")


def keep_top_probability(posteriors: np.ndarray, noise_type: int, factor: float) -> np.ndarray:
    """P(observed label = u) per sample: min(q / factor, 1)."""
    if factor <= 0:
        raise CmwnetError(f"the PMD factor must be > 0, got {factor}")
    _, _, delta = top_two(posteriors)
    return np.minimum(pmd_q(delta, noise_type) / factor, 1.0)


def expected_noise_rate(posteriors: np.ndarray, clean: np.ndarray, noise_type: int, factor: float) -> float:
    """The mean over samples of P(observed label != clean label) for a given factor."""
    u, s, _ = top_two(posteriors)
    p_u = keep_top_probability(posteriors, noise_type, factor)
    clean = np.asarray(clean)
    return float(np.mean(p_u * (u != clean) + (1.0 - p_u) * (s != clean)))


def calibrate_factor(posteriors: np.ndarray, clean: np.ndarray, noise_type: int, target: float,
                     tol: float = 1e-4, strict: bool = True) -> float:
    """The factor whose expected noise rate equals `target` (bisection in log space).

    A larger factor moves more labels to the runner-up s, so the rate goes from the share of samples
    whose top class u is wrong (factor <= min q: every label is u) to the share whose runner-up s is
    wrong. The bisection keeps rate(lo) < target <= rate(hi), so it ends at the target even where the
    rate is not monotone. A target outside that range is an error; with `strict=False` (smoke runs,
    whose posterior network is barely trained) the nearer end is used instead."""
    q = pmd_q(top_two(posteriors)[2], noise_type)
    lo, hi = max(float(q.min()), 1e-6), 1e6
    r_lo = expected_noise_rate(posteriors, clean, noise_type, lo)
    r_hi = expected_noise_rate(posteriors, clean, noise_type, hi)
    if not r_lo - tol <= target <= r_hi + tol:
        if not strict:
            return lo if target < r_lo else hi
        raise CmwnetError(f"Type-{noise_type} noise cannot reach a rate of {target:.2f} with these posteriors "
                          f"(reachable: {r_lo:.3f} to {r_hi:.3f}); the posterior network may be too weak or too sure")
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        r = expected_noise_rate(posteriors, clean, noise_type, mid)
        if abs(r - target) < tol:
            return mid
        lo, hi = (mid, hi) if r < target else (lo, mid)
    return float(np.sqrt(lo * hi))


def pmd_labels(posteriors: np.ndarray, noise_type: int, factor: float, seed: int) -> np.ndarray:
    """Sample observed labels: u with probability min(q / factor, 1), else s."""
    u, s, _ = top_two(posteriors)
    p_u = keep_top_probability(posteriors, noise_type, factor)
    draw = np.random.default_rng(seed).random(len(u))
    return np.where(draw < p_u, u, s).astype(np.int64)


def iid_transition(kind: str, rate: float, num_classes: int) -> np.ndarray:
    """PLC's i.i.d. transition matrices for Table 5 (rows: current label, columns: new label)."""
    if not 0.0 <= rate <= 1.0:
        raise CmwnetError(f"i.i.d. noise rate must be in [0, 1], got {rate}")
    c = num_classes
    if kind == "unif":
        t = np.full((c, c), rate / (c - 1))
        np.fill_diagonal(t, 1.0 - rate)
        return t
    if kind != "flip":
        from ..errors import unknown_name
        raise unknown_name("i.i.d. noise kind", kind, IID_KINDS)
    t = np.eye(c)
    if c == 10:
        pairs = PLC_CIFAR10_FLIP.items()
    elif c == 100:
        pairs = [(b + i, b + (i + 1) % 5) for b in range(0, 100, 5) for i in range(5)]
    else:
        raise CmwnetError(f"'flip' noise is defined for 10 or 100 classes (PLC's CIFAR maps), not {c}")
    for src, dst in pairs:
        t[src, src], t[src, dst] = 1.0 - rate, rate
    return t


def apply_transition(labels: np.ndarray, transition: np.ndarray, seed: int | list[int]) -> np.ndarray:
    """Draw each new label from the row of its current label (`seed`: anything `default_rng` takes)."""
    labels = np.asarray(labels, dtype=np.int64)
    cum = np.cumsum(transition, axis=1)
    cum[:, -1] = 1.0
    draw = np.random.default_rng(seed).random(len(labels))
    return (draw[:, None] >= cum[labels]).sum(1).astype(np.int64)


# -- label files and their cache ---------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseSpec:
    """One label file: PMD Type `noise_type` at `rate`, optionally followed by i.i.d. noise."""
    dataset: str
    noise_type: int
    rate: float
    iid: str | None = None
    iid_rate: float = 0.0
    seed: int = 1           # the PMD draw uses `seed`, the i.i.d. draw [seed, 1] (PLC's train.py: seed 1)

    def __post_init__(self):
        if self.noise_type not in PMD_TYPES:
            raise CmwnetError(f"unknown PMD noise type {self.noise_type!r}: use 1, 2 or 3")
        if not 0.0 < self.rate < 1.0:
            raise CmwnetError(f"PMD noise rate must be in (0, 1), got {self.rate}")
        if self.iid is not None and self.iid not in IID_KINDS:
            from ..errors import unknown_name
            raise unknown_name("i.i.d. noise kind", self.iid, IID_KINDS)

    @property
    def filename(self) -> str:
        extra = f"+{self.iid}{self.iid_rate:.2f}" if self.iid else ""
        return f"{self.dataset}-type{self.noise_type}-{self.rate:.2f}{extra}.npy"


def sha256(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def make_labels(spec: NoiseSpec, posteriors: np.ndarray, clean: np.ndarray,
                strict: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """The observed labels of `spec` and the record that goes into the sidecar (`strict`: see
    `calibrate_factor`)."""
    clean = np.asarray(clean, dtype=np.int64)
    if len(clean) != len(posteriors):
        raise CmwnetError(f"{len(posteriors)} posteriors for {len(clean)} training labels: regenerate the posteriors")
    c = posteriors.shape[1]
    factor = calibrate_factor(posteriors, clean, spec.noise_type, spec.rate, strict=strict)
    labels = pmd_labels(posteriors, spec.noise_type, factor, spec.seed)
    expected = expected_noise_rate(posteriors, clean, spec.noise_type, factor)
    record: dict[str, Any] = {
        "format": FORMAT, "dataset": spec.dataset, "noise_type": spec.noise_type, "target_rate": spec.rate,
        "factor": round(factor, 6), "target_reached": bool(abs(expected - spec.rate) < 1e-3),
        "pmd_realised_rate": round(float((labels != clean).mean()), 6), "seed": spec.seed,
    }
    if spec.iid:
        # its own random stream: reusing the PMD draw would tie the two noises together
        iid_seed = [spec.seed, 1]
        labels = apply_transition(labels, iid_transition(spec.iid, spec.iid_rate, c), iid_seed)
        record["iid"] = {"kind": spec.iid, "rate": spec.iid_rate, "seed": iid_seed}
    record.update({
        "realised_rate": round(float((labels != clean).mean()), 6), "n": int(len(labels)), "num_classes": int(c),
        "labels_sha256": sha256(labels), "clean_labels_sha256": sha256(clean), "posteriors_sha256": sha256(posteriors),
        "transition": np.round(transition_matrix(clean, labels, c), 4).tolist() if c <= 10 else None,
    })
    return labels, record


def ensure_label_file(spec: NoiseSpec, folder: str, posteriors: np.ndarray, clean: np.ndarray,
                      strict: bool = True) -> tuple[str, dict]:
    """Return (path, sidecar record) of `spec`'s label file under `folder`, generating it if absent.

    An existing file is reused only if it passes `read_label_file`'s checks (an error otherwise)."""
    path = os.path.join(folder, spec.filename)
    clean = np.asarray(clean, dtype=np.int64)
    if os.path.exists(path):
        read_label_file(path, len(clean), posteriors.shape[1])   # checksum, length and range
        meta = read_label_meta(path)
        if meta.get("format") != FORMAT:
            raise CmwnetError(f"{path} was not made by cmwnet's feature-dependent noise generator: delete it to regenerate it")
        if meta.get("clean_labels_sha256") != sha256(clean):
            raise CmwnetError(f"label file {path} was made for another training set (clean labels differ): use another "
                              "noise folder, or delete the file to regenerate it")
        return path, meta
    labels, record = make_labels(spec, posteriors, clean, strict)
    os.makedirs(folder, exist_ok=True)
    write_label_file(path, labels, meta=record, num_classes=posteriors.shape[1])
    return path, record


# -- the posterior network's config (its method and run reader: cmwnet.methods.record_posteriors) -----
def posterior_config(dataset: str, root: str, train_subset: int | None = 45000, epochs: int = 25,
                     name: str | None = None) -> dict[str, Any]:
    """Config of PLC's posterior network: `plc_resnet34` trained with CE on the clean training split,
    SGD lr 1e-3 (momentum 0.9, nesterov, wd 5e-4), batch 128, crop + flip, seed 123 (PLC's defaults)."""
    return {
        "name": name or f"{dataset}_posteriors", "seed": 123,
        "data": {"name": dataset, "root": root, "train_subset": train_subset, "batch_size": 128,
                 "augment": {"crop_pad": 4, "pad_mode": "constant", "flip": True, "normalize": "cifar"}},
        "model": {"name": "plc_resnet34"},
        "optim": {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                  "epochs": epochs, "schedule": {"kind": "constant"}},
        "method": {"name": "record_posteriors"},
        "run": {"plot": False},
    }
