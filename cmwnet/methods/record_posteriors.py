"""The posterior network of feature-dependent noise (paper Tables 4-5, PLC's eta(x)): a training method
and the reader of its finished run.

`record_posteriors` is ERM that keeps the softmax of every sample it trains on in the last epoch, so the
posterior network runs as an ordinary training run (the engine's resume, logs and the table runner's GPU
slots); `cmwnet.data.feature_noise.posterior_config` gives its config. `posteriors_from_run` reads the
result back and `label_files_for` turns it into the cached label files (`cmwnet.data.feature_noise`
holds the noise model and the files; this module is what needs a model and a run folder).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..config import config_from_dict
from ..data.builder import build_data
from ..data.feature_noise import NoiseSpec, ensure_label_file
from ..errors import CmwnetError
from ..models import create_model
from . import METHODS
from .base import Method
from .context import RunContext
from ..run_folder.layout import CHECKPOINT, RESULT


@METHODS.register("record_posteriors")
class RecordPosteriors(Method):
    """ERM that stores softmax(logits) of every sample it trains on in the last epoch (PLC's eta)."""

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.eta = torch.zeros(len(ctx.data.train), ctx.data.num_classes, device=ctx.device)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        stats = self.erm_step(x, y)
        if self.ctx.epoch == self.ctx.cfg.optim.epochs - 1:
            self.eta[pos] = F.softmax(stats["logits"].float(), dim=1)
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"eta": self.eta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.eta.copy_(state["eta"])


def posteriors_from_run(run_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(posteriors, clean training labels) of a finished `record_posteriors` run.

    Samples the last epoch did not train on (only when `run.max_steps` cut the epoch short, as in
    smoke runs) get the final model's eval-mode softmax instead."""
    if not os.path.exists(os.path.join(run_dir, RESULT)):
        raise CmwnetError(f"the posterior network in {run_dir} has not finished: run it first")
    blob = load_checkpoint(os.path.join(run_dir, CHECKPOINT))
    eta = blob["method"]["eta"].float().cpu().numpy()
    cfg = config_from_dict(blob["config"])
    data = build_data(cfg.data, torch.device("cpu"))
    clean = data.train.clean_labels.numpy()
    missing = np.flatnonzero(eta.sum(1) == 0)
    if len(missing):
        model = create_model(cfg.model.name, data.num_classes, data.in_channels, **cfg.model.args)
        model.load_state_dict(blob["model"])
        model.eval()
        train = data.train
        with torch.no_grad():
            for i in range(0, len(missing), 1000):
                p = torch.as_tensor(missing[i:i + 1000])
                eta[p.numpy()] = F.softmax(model(train.augment.to_float(train.images[p])).float(), dim=1).numpy()
    return eta, clean


def label_files_for(specs: list[NoiseSpec], folder: str, posterior_runs: dict[str, str],
                    strict: bool = True) -> dict[NoiseSpec, str]:
    """Generate (or reuse) every spec's label file; posteriors come from the run of its data set."""
    out, cache = {}, {}
    for spec in specs:
        if spec.dataset not in posterior_runs:
            raise CmwnetError(f"no posterior network run for {spec.dataset}")
        if spec.dataset not in cache:
            cache[spec.dataset] = posteriors_from_run(posterior_runs[spec.dataset])
        eta, clean = cache[spec.dataset]
        out[spec] = ensure_label_file(spec, folder, eta, clean, strict)[0]
    return out
