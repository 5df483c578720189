"""Weights from a local file (there is no download here): ImageNet backbones, self-supervised
checkpoints (C2D's `{'model': ...}` with `module.`/`encoder.` prefixes), or a finished run's
`checkpoint.pt` (WebFG step 2 starts from step 1)."""
from __future__ import annotations

import os
import pickle

import torch
import torch.nn as nn

from ..errors import CmwnetError

PREFIXES = ("module.", "encoder.", "backbone.")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, whatever wraps them (`model`, `state_dict`, a run's checkpoint)."""
    if not os.path.isfile(path):
        raise CmwnetError(f"weights file not found: {path} (nothing is downloaded here: fetch the file once and "
                          "give its local path)")
    try:
        # a third-party file: weights_only=True loads tensors and plain containers, never code from the file
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CmwnetError(f"weights file {path} holds pickled objects beyond tensors, which are not unpickled here "
                          "(that could run code from the file): if you trust it, load it yourself and "
                          "torch.save its state dict") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise CmwnetError(f"cannot read weights file {path} ({type(e).__name__}): is it a torch checkpoint?") from None
    for key in ("model", "state_dict"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
            break
    if not isinstance(blob, dict) or not all(torch.is_tensor(v) for v in blob.values()):
        raise CmwnetError(f"{path} holds no state dict (expected tensors, or a dict with 'model'/'state_dict')")
    out = {}
    for k, v in blob.items():
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def load_pretrained(model: nn.Module, path: str, rename: dict[str, str] | None = None,
                    min_fraction: float = 0.5, strict: bool = False) -> dict[str, list[str]]:
    """Copy the tensors of `path` whose names and shapes match `model` (prefix renames first).

    `rename` maps name fragments (e.g. ".shortcut." -> ".downsample."). Lenient by default (the classifier of another class count is skipped) but refuses a file that
    fits less than `min_fraction` of the model's tensors: that is the wrong architecture. `strict`
    requires every tensor to match. Returns the names loaded and skipped.
    """
    state = read_state_dict(path)
    for old, new in (rename or {}).items():
        state = {k.replace(old, new): v for k, v in state.items()}
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(fits))
    if strict and (skipped or len(fits) != len(state)):
        extra = sorted(set(state) - set(fits))
        raise CmwnetError(f"{path} does not fit the model: {len(skipped)} tensors missing or of another shape "
                          f"({', '.join(skipped[:3])}), {len(extra)} unexpected")
    if len(fits) < min_fraction * len(own):
        raise CmwnetError(f"{path} fits only {len(fits)} of the model's {len(own)} tensors: is it a checkpoint of "
                          "this architecture?")
    model.load_state_dict(fits, strict=False)
    return {"loaded": sorted(fits), "skipped": skipped}
