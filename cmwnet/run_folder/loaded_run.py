"""A finished run, loaded back: `cmwnet.load_run(path)` gives its config, its classifier (the last epoch's, or the
best-on-val one where `run.save_best` kept it), its weight net, its per-sample tables, and predictions.

    run = cmwnet.load_run("runs/cpu/cifar10_if100/cmwnet_ce/s1")
    probs = run.predict_proba(images)        # uint8 N x C x H x W as the data set stores them, or a DataLoader
    labels = run.predict(images)
    run.weight_net(losses, labels)           # the learned weighting, frozen
    run.samples()["probs"]                   # the final net on every training sample (samples.npz)

Images: a uint8 tensor is converted as the run's test transform does (scaled to [0, 1] and normalised with the
run's `data.augment.normalize`); a float tensor is taken as already converted. A loader yields such tensors, or
tuples whose first element is one. Without a GPU everything loads on the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import CmwnetError
from .layout import BEST_MODEL, CHECKPOINT, CONFIG, FINAL_WEIGHTS, RESULT

BEST = BEST_MODEL


@dataclass
class LoadedRun:
    """A run folder's config, nets and tables (see the module docstring)."""
    path: str
    config: Any                      # cmwnet.config.Config
    result: dict | None              # result.json (None: the run has not finished)
    model: torch.nn.Module           # in eval mode
    which: str                       # "last" or "best"
    weight_net: Any | None           # cmwnet.weighting.WeightNet, frozen (None: the method learns none)
    class_names: list[str]
    device: torch.device

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        from ..data.gpu import Augment

        if not torch.is_tensor(x) or x.ndim != 4:
            raise CmwnetError(f"predict takes images as an N x C x H x W tensor (or a loader of them), got "
                              f"{type(x).__name__}{'' if not torch.is_tensor(x) else ' of shape ' + str(tuple(x.shape))}")
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise CmwnetError(f"predict takes uint8 images (0-255, as the data set stores them) or float images "
                              f"already converted, got {x.dtype}: convert with images.to(torch.uint8)")
        want = int((self.result or {}).get("in_channels") or 0)
        if want and x.shape[1] != want:
            hint = " (channels last? use images.permute(0, 3, 1, 2))" if x.shape[-1] == want else ""
            raise CmwnetError(f"predict: the run's model takes {want}-channel images N x {want} x H x W, got shape "
                              f"{tuple(x.shape)}{hint}")
        x = x.to(self.device)
        if x.dtype == torch.uint8:
            a = self.config.data.augment
            x = Augment(a.crop_pad, a.pad_mode, a.flip, a.normalize).to_float(x)
        return x.float()

    @torch.no_grad()
    def predict_proba(self, data: torch.Tensor | Iterable, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N x classes) of the run's classifier, in eval mode, on the CPU."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise CmwnetError(f"predict: batch_size must be an integer >= 1, got {batch_size!r}")
        if data is None:
            raise CmwnetError("predict takes images as an N x C x H x W tensor or a loader of them, got None")
        if torch.is_tensor(data):
            batches: Iterable = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
        else:
            batches = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
        out = [torch.softmax(self.model(self._to_input(x)).float(), dim=1).cpu() for x in batches]
        if not out:
            raise CmwnetError("predict got no images")
        return torch.cat(out)

    def predict(self, data: torch.Tensor | Iterable, batch_size: int = 256) -> torch.Tensor:
        """Predicted class indices (N,); `class_names[k]` names class k."""
        return self.predict_proba(data, batch_size).argmax(1)

    def samples(self) -> dict[str, np.ndarray]:
        """samples.npz: the final net on every training sample (probs, pred, final_losses) and who each one is."""
        from .sample_table import PREDICTIONS, load_predictions

        path = os.path.join(self.path, PREDICTIONS)
        if not os.path.exists(path):
            raise CmwnetError(f"{self.path} has no {PREDICTIONS}: the run has not finished, or ran with "
                              "run.sample_table=false")
        return load_predictions(path)

    def weights(self) -> dict[str, np.ndarray]:
        """final_weights.npz: the last epoch's weight and loss of every training sample (weighting runs)."""
        from .sample_table import load_sample_table

        path = os.path.join(self.path, FINAL_WEIGHTS)
        if not os.path.exists(path):
            raise CmwnetError(f"{self.path} has no final_weights.npz: only runs with per-sample weights write one")
        return load_sample_table(path)


def _checked_device(device: str | torch.device) -> torch.device:
    """The device to load on, or a one-line error (an unavailable CUDA used to be blamed on the checkpoint)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CmwnetError(f"load_run: {device!r} is not a device: use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CmwnetError(f"load_run: device {device!r} but CUDA is not available here: use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CmwnetError(f"load_run: device {device!r} but only {torch.cuda.device_count()} GPU(s) are visible")
    elif dev.type not in ("cpu", "mps"):
        raise CmwnetError(f"load_run: device {device!r} is not supported: use 'cpu' or 'cuda'")
    return dev


def load_run(path: str | os.PathLike, which: str = "last", device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run folder (module docstring). `which`: "last" (the last checkpoint) or "best" (best_model.pt,
    written with `run.save_best`)."""
    from ..checkpoint import load_checkpoint, read_json
    from ..config import load_config
    from ..models import create_model

    path = os.fspath(path)
    if which not in ("last", "best"):
        raise CmwnetError(f"load_run: which is 'last' or 'best', got {which!r}")
    if not os.path.isfile(os.path.join(path, CONFIG)):
        raise CmwnetError(f"{path} is not a run folder (no config.yaml): give the folder a training run wrote")
    cfg = load_config(os.path.join(path, CONFIG))
    result_path = os.path.join(path, RESULT)
    result = read_json(result_path) if os.path.exists(result_path) else None
    file = os.path.join(path, BEST if which == "best" else CHECKPOINT)
    if not os.path.exists(file):
        hint = "run it with --set run.save_best=true" if which == "best" else "the run has not saved an epoch yet"
        raise CmwnetError(f"{path} has no {os.path.basename(file)}: {hint}")
    device = _checked_device(device)
    if which == "best":   # {"model", "epoch", "selected_on", "top1"}: tensors and plain values only
        try:
            state = torch.load(file, map_location=device, weights_only=True)["model"]
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file raises many types
            raise CmwnetError(f"{file} cannot be read ({type(e).__name__}): rerun the training with --force") from None
    else:
        state = load_checkpoint(file, map_location=device)["model"]
    heads = [v for v in state.values() if torch.is_tensor(v) and v.ndim == 2]
    if not heads:
        raise CmwnetError(f"{file} holds no classifier weights: rerun the training with --force")
    names = (result or {}).get("class_names")
    classes = len(names) if names else int(heads[-1].shape[0])
    known = (result or {}).get("in_channels")   # result.json says it; older runs: the colour or grey that fits
    model, error = None, None
    for in_channels in ([known] if known else [3, 1]):
        try:
            model = create_model(cfg.model.name, classes, in_channels, **cfg.model.args).to(device)
            model.load_state_dict(state)
            break
        except (RuntimeError, TypeError, KeyError) as e:
            model, error = None, e
    if model is None:
        raise CmwnetError(f"{file} does not fit the run's model {cfg.model.name} ({type(error).__name__}): rerun the "
                          "training with --force")
    model.eval()
    weight_net = None
    wpath = os.path.join(path, "weight_net.pt")
    if os.path.exists(wpath):
        from ..weighting import load_weighting

        weight_net = load_weighting(wpath, map_location=device)
    return LoadedRun(path, cfg, result, model, which, weight_net,
                     [str(n) for n in names] if names else [str(k) for k in range(classes)], device)
