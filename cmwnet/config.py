"""YAML -> typed config, `--set a.b=c` overrides, validation with suggestions.

Every key has a typed default here, so a config file only states what differs. An unknown key names
the closest valid one; a wrong type names the expected one.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from .defaults import (WEIGHT_NET_FAMILIES, WEIGHT_NET_HIDDEN, WEIGHT_NET_INIT_OUTPUT, WEIGHT_NET_LR,
                       WEIGHT_NET_WEIGHT_DECAY)
from .errors import CmwnetError, closest


@dataclass
class NoiseCfg:
    kind: str = "none"              # none | sym | asym | pair (+ kinds the noise module registers)
    rate: float = 0.0               # share of the labels drawn to be corrupted (sym, asym, pair)
    seed: int = 123                 # the authors' Table 2 seed
    flip_map: dict = field(default_factory=dict)   # asym: {true class: observed class}; default per data set
    file: Optional[str] = None      # a label file instead of kind/rate: one label per image of the reader's
    #                                 full training split (its order), or one per kept training sample


@dataclass
class PartialCfg:
    kind: str = "none"              # none | binomial | pair: candidate sets for partial-label learning (Fig. 9)
    rate: float = 0.0               # binomial: each other class enters w.p. rate; pair: the next class w.p. rate
    seed: int = 0                   # seed of the candidate-set draw


@dataclass
class MetaCfg:
    kind: str = "none"              # none | clean | lowest_loss | balanced_train
    per_class: int = 10             # meta images per class
    batch_size: int = 100           # meta batch size
    model: str = "ema"              # lowest_loss: score samples with the "ema" model or the "model"
    augment: bool = True            # meta batches get the train transform (the authors' code)


@dataclass
class AugmentCfg:
    crop_pad: int = 4               # random crop after padding by this many pixels (0: no crop; data sets
    #                                 with fixed crops, e.g. image folders, ignore this default)
    pad_mode: str = "constant"      # constant | reflect
    flip: bool = True               # random horizontal flip
    normalize: str = "cifar"        # cifar | cifar_lt | imagenet | half | none


@dataclass
class FoldCfg:
    """K-fold cross-validation (cleanlab's out-of-sample probabilities): the run trains without fold `index` of
    `folds` (drawn with `seed` from the training samples, after the val split, subset, long tail, meta split and
    noise, so every fold run sees the same noisy labels) and writes the final net's predictions on it."""
    folds: int = 0                  # 0: no fold held out
    index: int = 0                  # which fold is held out (0 .. folds-1)
    seed: int = 0                   # seed of the fold draw (the same in every fold run)


@dataclass
class DataCfg:
    name: str = "digits"            # digits | cifar10 | cifar100 (+ folder data sets)
    root: str = "data"              # where the data set is (a folder, or cifar10-jpeg.npz)
    download: bool = False          # download CIFAR when missing (needs the internet)
    imbalance: float = 1.0          # long-tail imbalance factor (1 = balanced)
    lt_seed: int = 42               # seed of the long-tail subsampling
    noise: NoiseCfg = field(default_factory=NoiseCfg)
    partial: PartialCfg = field(default_factory=PartialCfg)   # used by methods proden / proden_cmwnet
    meta: MetaCfg = field(default_factory=MetaCfg)
    augment: AugmentCfg = field(default_factory=AugmentCfg)
    batch_size: int = 100           # training batch size (the global batch under torchrun)
    test_batch_size: int = 1000     # evaluation batch size (test, val, predictions)
    drop_last: bool = False         # drop the last incomplete training batch of each epoch
    train_subset: Optional[int] = None   # keep only the first N training images (smoke runs)
    val_size: int = 0               # hold out the last N training images, true labels, as "val" (choose settings on it)
    test_subset: Optional[int] = None   # evaluate on the first N test images only (smoke runs)
    split_seed: int = 0             # digits train/test split, clean meta-set draw
    fold: FoldCfg = field(default_factory=FoldCfg)   # hold out one fold of K (cross-validated predictions)


@dataclass
class ModelCfg:
    name: str = "resnet32"          # the classifier (python -m cmwnet.train --list models)
    args: dict = field(default_factory=dict)   # keyword arguments of the model's constructor


@dataclass
class ScheduleCfg:
    kind: str = "multistep"         # multistep | constant | cosine | cosine_restarts
    milestones: list = field(default_factory=list)   # multistep: epochs at which the lr is multiplied by gamma
    gamma: float = 0.1              # multistep: the lr factor at each milestone
    warmup_epochs: int = 0          # linear warm-up from 0 (cosine)
    start: int = 0                  # cosine_restarts: constant lr before this epoch
    t0: int = 5                     # cosine_restarts: epochs of the first cycle
    t_mult: int = 2                 # cosine_restarts: each cycle this many times longer
    eta_min: float = 0.0            # cosine: the lr at the end of a cycle


@dataclass
class OptimCfg:
    name: str = "sgd"               # sgd | adam
    lr: float = 0.1                 # the classifier's learning rate (also the meta step's virtual step size)
    momentum: float = 0.9           # SGD momentum
    nesterov: bool = False          # Nesterov momentum (SGD)
    weight_decay: float = 5e-4      # L2 weight decay of the classifier
    epochs: int = 200               # training epochs
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)


@dataclass
class WeightNetCfg:   # defaults shared with the Python API: cmwnet/defaults.py
    hidden: int = WEIGHT_NET_HIDDEN   # hidden units of the weight net
    families: int = WEIGHT_NET_FAMILIES   # CMW-Net: task families (K-means over class sizes; the paper's K)
    lr: float = WEIGHT_NET_LR       # the weight net's Adam learning rate
    weight_decay: float = WEIGHT_NET_WEIGHT_DECAY   # the weight net's weight decay
    amsgrad: bool = False           # AMSGrad variant of Adam
    init_output: Optional[float] = WEIGHT_NET_INIT_OUTPUT    # start every curve flat at this weight (null: the authors' init, ~0.5, random tilt)
    init: Optional[str] = None      # a saved weight net to start from (or use frozen, see frozen)
    frozen: bool = False            # transfer: use `init` as a fixed weighting, no meta-learning


@dataclass
class SLCfg:
    warmup: int = 10                # epochs of plain CE before label correction
    mixup_alpha: float = 1.0        # CMW-Net-SL: Beta(a, a) mixup of the training batch (0: none)
    pseudo_momentum: float = 0.0    # z <- m z + (1-m) softmax(ema(x))
    pseudo_init: str = "onehot"     # onehot | zeros
    pseudo_reset_epoch: Optional[int] = None  # at this epoch z := softmax(ema(x)) (Tab. 4/5, WebFG)
    meta_mixup_alpha: float = 0.0   # > 0: mixup on the meta batch (Tab. 2: 1.0)
    partner_weight: str = "recomputed"  # recomputed: v2 = V(CE(p, y_perm)); permuted: v2 = v1[perm] (Tab. 2 code)


@dataclass
class MethodCfg:
    name: str = "erm"               # erm | mwnet | cmwnet | mcw | cmwnet_sl (+ more)
    loss: str = "ce"                # the per-sample loss (ce, focal, cb, ldam, gce, forward, ...)
    loss_args: dict = field(default_factory=dict)   # keyword arguments of the loss (e.g. focal gamma)
    start_epoch: int = 0            # meta-learning starts at this epoch (Table 1: 160)
    interval: int = 1               # meta update every k iterations
    normalize: str = "sum"          # sum | sum_detached | mean
    backend: str = "higher"         # higher | torch.func
    virtual_params: str = "all"     # all | head | tail (the last block and the head)
    meta_grad: str = "exact"        # exact | head (virtual step through the head only) | forward (forward-mode AD)
                                    # | tail (exact, the virtual step through the last block and the head)
    weight_net: WeightNetCfg = field(default_factory=WeightNetCfg)
    sl: SLCfg = field(default_factory=SLCfg)
    args: dict = field(default_factory=dict)   # method-specific extras (documented per method)


@dataclass
class EmaCfg:
    decay: float = 0.0              # 0 = no EMA model
    freeze_epoch: Optional[int] = None   # from this epoch the EMA stops moving (Tab. 2 asym)
    bn: str = "copy"                # BatchNorm statistics: copy (the live net's) | own (its own forwards, the authors')


@dataclass
class RunCfg:
    out: str = "runs"               # the folder run folders go under
    name: Optional[str] = None      # run folder name; default: the config's name
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    progress: bool = True           # a progress bar per epoch (on a terminal)
    max_steps: Optional[int] = None  # cap on iterations per epoch (smoke runs)
    plot: bool = True               # draw the run's figures at the end
    loggers: list = field(default_factory=list)   # csv | tensorboard | wandb | mlflow (cmwnet/loggers.py)
    project: Optional[str] = None   # the W&B project / MLflow experiment the loggers write to (default: theirs)
    deterministic: bool = False     # deterministic kernels (slower on a GPU; CPU runs are deterministic anyway)
    # speed (cmwnet/fast.py). Any: YAML reads on/off as true/false, and both spellings are accepted
    fast: Any = "auto"              # auto (CUDA graphs on a GPU) | on | off
    amp: Any = "off"                # off | bf16 (autocast of the classifier's forwards)
    channels_last: bool = False     # channels-last layout for the classifier (GPU: faster with bf16)
    save_best: bool = False         # best_model.pt: the net of the best val top-1 epoch (test top-1 without val)
    sample_table: bool = True       # samples.npz: the final net's predictions on every training sample (suspects)


@dataclass
class Config:
    name: str = "run"               # the config's name: the run folder's, unless run.name
    seed: int = 0                   # seed of the run (model init, data order, augmentation)
    data: DataCfg = field(default_factory=DataCfg)
    model: ModelCfg = field(default_factory=ModelCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    method: MethodCfg = field(default_factory=MethodCfg)
    ema: EmaCfg = field(default_factory=EmaCfg)
    run: RunCfg = field(default_factory=RunCfg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.run.out, self.run.name or self.name)


# keys whose value does not change what a run computes (allowed to differ when resuming)
# run.fast: CUDA graphs replay the same computation, so a run may resume either way. Where the data lie
# (data.root, a noise file's path) and which device runs (run.device) are not the run's identity either:
# the resumed run checks the labels it builds against the checkpoint's data fingerprint, so the same data
# under another spelling, or a table folder that was moved or copied, resumes instead of being refused.
PRESENTATION_KEYS = {("run", "progress"), ("run", "out"), ("run", "plot"), ("run", "loggers"), ("run", "project"),
                     ("run", "fast"), ("run", "device"),
                     ("data", "root"), ("data", "noise", "file")}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _check_value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _check_value(value, inner, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise CmwnetError(f"config key '{where}' must be a mapping of sub-keys, got {value!r}: set its sub-keys, "
                              f"e.g. --set {where}.<key>=<value>")
        return _from_dict(tp, value, where + ".")
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CmwnetError(f"config key '{where}' must be a number, got {value!r}: write it like 0.1 or 1.0e-3")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise CmwnetError(f"config key '{where}' must be an integer, got {value!r}: write a whole number like 100")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise CmwnetError(f"config key '{where}' must be true or false, got {value!r}: write true or false")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise CmwnetError(f"config key '{where}' must be a string, got {value!r}: write a name, e.g. in quotes")
        return str(value)
    if tp is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise CmwnetError(f"config key '{where}' must be a list, got {value!r}: write it like [80, 100]")
        return list(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise CmwnetError(f"config key '{where}' must be a mapping, got {value!r}: write it like {{key: value}}")
        return dict(value)
    return value


def _from_dict(cls: type, d: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in d.items():
        if key not in hints:
            hint = closest(str(key), names)
            suggestion = f"did you mean '{prefix}{hint}'? " if hint else ""
            raise CmwnetError(f"unknown config key '{prefix}{key}': {suggestion}valid keys here: {', '.join(names)}")
        kwargs[key] = _check_value(value, hints[key], prefix + key)
    obj = cls(**kwargs)
    _mark_given(obj, frozenset(kwargs))
    return obj


def _mark_given(obj: Any, given: frozenset) -> None:
    """Record which keys the file or overrides set, so a data set can tell a default from a choice
    (`given_keys`); sections left out entirely are all defaults."""
    object.__setattr__(obj, "_given_keys", given)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name not in given and dataclasses.is_dataclass(value):
            _mark_given(value, frozenset())


def given_keys(section: Any) -> frozenset | None:
    """The keys a config file or override set in this section, or None when unknown (built in code)."""
    return getattr(section, "_given_keys", None)


def config_from_dict(d: dict) -> Config:
    if not isinstance(d, dict):
        raise CmwnetError("a config must be a YAML mapping at the top level")
    cfg = _from_dict(Config, d)
    validate(cfg)
    return cfg


def _require(ok: bool, key: str, value: Any, rule: str, fix: str) -> None:
    if not ok:
        raise CmwnetError(f"config key '{key}' must be {rule}, got {value!r}: {fix}")


FLOAT32_MAX = 3.4028234663852886e38


def _require_float32(section: Any, prefix: str = "") -> None:
    """Every finite number the config holds must fit the float32 tensors it ends up in (1e40 overflows inside
    torch, deep in a training step, instead of failing here)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            _require_float32(value, f"{prefix}{f.name}.")
        elif isinstance(value, float) and value == value and abs(value) != float("inf"):
            _require(abs(value) <= FLOAT32_MAX, prefix + f.name, value, "at most 3.4e38 in size (float32)",
                     "give a realistic value")


def validate(cfg: Config) -> None:
    """Value ranges that no type check catches, so a typo fails at once instead of after data loading
    (or hours into a run). Names (methods, models, data sets) are checked by the engine's registries."""
    _require_float32(cfg)
    d, o = cfg.data, cfg.optim
    r = d.noise.rate
    _require(0.0 <= r <= 1.0, "data.noise.rate", r, "in [0, 1]", "give a fraction, e.g. 0.4 for 40% noisy labels")
    f = d.imbalance
    _require(1.0 <= f < float("inf"), "data.imbalance", f, ">= 1",
             "1 means balanced, 100 means the largest class is 100x the smallest")
    _require(d.meta.per_class >= 0, "data.meta.per_class", d.meta.per_class, ">= 0", "give samples per class")
    for key, v in (("data.batch_size", d.batch_size), ("data.test_batch_size", d.test_batch_size),
                   ("data.meta.batch_size", d.meta.batch_size), ("method.interval", cfg.method.interval),
                   ("optim.epochs", o.epochs)):
        _require(v >= 1, key, v, ">= 1", "give a positive integer")
    _require(d.val_size >= 0, "data.val_size", d.val_size, ">= 0",
             "give how many training images to hold out as a validation set, or 0 for none")
    for key, v in (("data.train_subset", d.train_subset), ("data.test_subset", d.test_subset),
                   ("run.max_steps", cfg.run.max_steps)):
        _require(v is None or v >= 1, key, v, ">= 1 or null", "give a positive integer, or null for no limit")
    _require(0.0 < o.lr < float("inf"), "optim.lr", o.lr, "a positive number", "e.g. optim.lr=0.1")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0", "e.g. 5e-4, or 0 for none")
    _require(0.0 <= o.momentum <= 1.0, "optim.momentum", o.momentum, "in [0, 1]", "e.g. 0.9")
    _require(0.0 <= cfg.ema.decay < 1.0, "ema.decay", cfg.ema.decay, "in [0, 1)", "0 turns the EMA net off; e.g. 0.997")
    _require(cfg.ema.bn in ("copy", "own"), "ema.bn", cfg.ema.bn, "copy or own",
             "copy takes the live net's BatchNorm statistics, own keeps the EMA net's own (the authors')")
    _require(cfg.method.start_epoch >= 0, "method.start_epoch", cfg.method.start_epoch, ">= 0",
             "the epoch meta-learning starts at")
    _require(0.0 < cfg.method.weight_net.lr < float("inf"), "method.weight_net.lr", cfg.method.weight_net.lr,
             "a positive number", "e.g. 1e-4")
    for key, name in (("name", cfg.name), ("run.name", cfg.run.name)):
        if name is not None:
            _check_run_name(key, name)
    for key, v in (("seed", cfg.seed), ("data.split_seed", d.split_seed), ("data.lt_seed", d.lt_seed),
                   ("data.noise.seed", d.noise.seed), ("data.partial.seed", d.partial.seed)):
        _require(0 <= v < 2 ** 32, key, v, "in [0, 2^32)", "a seed is a non-negative integer, e.g. 0")
    for k, v in d.noise.flip_map.items():
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in (k, v)):
            raise CmwnetError(f"config key 'data.noise.flip_map' maps class numbers to class numbers, got {k!r}: "
                              f"{v!r}: write it like {{9: 1, 2: 0}}")
    _validate_schedule(o)
    wn = cfg.method.weight_net
    _require(1 <= wn.hidden <= 100_000, "method.weight_net.hidden", wn.hidden, "in 1..100000",
             "e.g. 100 (the authors' width); a wider weight net only costs memory")
    _require(1 <= wn.families <= 10_000, "method.weight_net.families", wn.families, "in 1..10000",
             "e.g. 3 (the paper's K)")
    _require(wn.weight_decay >= 0, "method.weight_net.weight_decay", wn.weight_decay, ">= 0", "e.g. 1e-4")
    fe = cfg.ema.freeze_epoch
    _require(fe is None or fe >= 0, "ema.freeze_epoch", fe, ">= 0 or null", "the epoch the EMA net stops moving")
    _require(0 <= d.augment.crop_pad <= 64, "data.augment.crop_pad", d.augment.crop_pad, "in 0..64",
             "pixels of padding before the random crop, 0 for none (CIFAR: 4)")
    if d.noise.kind == "none" and not d.noise.file and r > 0:
        raise CmwnetError(f"data.noise.rate is {r} but data.noise.kind is none, so no label would change: set "
                          "data.noise.kind (sym, asym, pair) or drop the rate")
    f = d.fold
    _require(f.folds == 0 or f.folds >= 2, "data.fold.folds", f.folds, "0 (off) or >= 2", "e.g. 4 for 4-fold predictions")
    _require(f.folds == 0 or 0 <= f.index < f.folds, "data.fold.index", f.index, f"in [0, {max(f.folds, 1) - 1}]",
             "the fold this run holds out")
    modes = ("exact", "head", "forward", "tail")   # cmwnet.meta_grad.META_GRADS (no torch import here)
    _require(cfg.method.meta_grad in modes, "method.meta_grad", cfg.method.meta_grad, f"one of {', '.join(modes)}",
             "exact is the full second-order meta-gradient (checked for every method, as every other key)")
    io = cfg.method.weight_net.init_output
    _require(io is None or 0.0 < io < 1.0, "method.weight_net.init_output", io, "in (0, 1) or null",
             "e.g. 0.9 to start from weights near 0.9, or null for the default init (about 0.5)")
    from .fast import parse_amp, parse_fast

    parse_fast(cfg.run.fast)
    parse_amp(cfg.run.amp)
    from .loggers import check_loggers

    check_loggers(cfg.run.loggers)


def _check_run_name(key: str, name: str) -> None:
    """A run's folder is out/name: the name must stay inside out (sub-folders allowed, as tables use)."""
    parts = name.replace("\\", "/").split("/")
    if not name.strip() or os.path.isabs(name) or any(p in ("", ".", "..") for p in parts):
        raise CmwnetError(f"config key '{key}' must be a relative folder name inside --out (e.g. my_run or "
                          f"table1/erm/s1), got {name!r}: no leading /, no empty, '.' or '..' parts")


def _validate_schedule(o: OptimCfg) -> None:
    """The lr schedule's numbers: a negative gamma or a zero cycle length trains with a nonsense lr."""
    s = o.schedule
    _require(0.0 < s.gamma < float("inf"), "optim.schedule.gamma", s.gamma, "a positive number",
             "the factor the lr is multiplied by at each milestone, e.g. 0.1")
    for ms in s.milestones:
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
            raise CmwnetError(f"config key 'optim.schedule.milestones' must be a list of epochs >= 0, got "
                              f"{s.milestones!r}: write it like [80, 100]")
    _require(s.warmup_epochs >= 0, "optim.schedule.warmup_epochs", s.warmup_epochs, ">= 0", "0 for no warm-up")
    _require(s.start >= 0, "optim.schedule.start", s.start, ">= 0", "the epoch the restarts begin at")
    _require(s.t0 >= 1, "optim.schedule.t0", s.t0, ">= 1", "the first cycle's length in epochs, e.g. 5")
    _require(s.t_mult >= 1, "optim.schedule.t_mult", s.t_mult, ">= 1", "1 keeps every cycle t0 long, 2 doubles it")
    _require(0.0 <= s.eta_min < o.lr, "optim.schedule.eta_min", s.eta_min, f"in [0, optim.lr={o.lr})",
             "the lowest lr of a cosine cycle, e.g. 0")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise CmwnetError(f"the key '{key}' appears twice in one block (lines {seen[key] + 1} and "
                              f"{key_node.start_mark.line + 1}): YAML would keep only the last; merge the two")
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def apply_override(d: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to a nested dict."""
    if "=" not in assignment:
        raise CmwnetError(f"--set takes key=value (e.g. optim.lr=0.05), got '{assignment}'")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node = d
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise CmwnetError(f"--set {key}: '{p}' is not a group of keys")
        node = child
    node[parts[-1]] = value


def load_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or start from defaults when path is None) and apply overrides."""
    d: dict = {}
    if path is not None:
        if not os.path.exists(path):
            raise CmwnetError(f"config file not found: {path}")
        try:
            with open(path) as f:
                d = yaml.load(f, Loader=_UniqueKeyLoader) or {}
        except CmwnetError as e:
            raise CmwnetError(f"config file {path}: {e}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise CmwnetError(f"config file {path} is not valid YAML{where}") from None
        if not isinstance(d, dict):
            raise CmwnetError(f"config file {path} must be a YAML mapping of keys (name:, data:, ...) at the top "
                              f"level, not a {type(d).__name__}")
        d.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    for o in overrides:
        apply_override(d, o)
    return config_from_dict(d)


def config_differences(a: dict, b: dict, prefix: tuple = (), defaults: dict | None = None) -> list[str]:
    """Human-readable differences between two config dicts (a = the old run's, b = the new one),
    ignoring presentation-only keys. A key absent from `a` whose value in `b` is the default counts as
    equal: the old run was made before that key existed, so a run folder stays resumable (and a finished
    run stays finished) when a later version adds a config key."""
    if defaults is None:
        defaults = Config().to_dict()
        for p in prefix:
            defaults = defaults.get(p, {}) if isinstance(defaults, dict) else {}
    out = []
    for key in sorted(set(a) | set(b)):
        path = prefix + (key,)
        if path in PRESENTATION_KEYS:
            continue
        va, vb = a.get(key), b.get(key)
        dflt = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, path, dflt if isinstance(dflt, dict) else {})
        elif key not in a and isinstance(defaults, dict) and key in defaults and vb == dflt:
            continue
        elif va != vb:
            out.append(f"{'.'.join(path)}: {va!r} -> {vb!r}")
    return out
