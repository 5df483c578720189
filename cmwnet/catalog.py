"""The names a config may use, per kind (`python -m cmwnet.train --list models`): read from the
registries themselves, so the list is never out of date."""
from __future__ import annotations

KINDS = ("models", "methods", "losses", "datasets")


def registered_names(kind: str) -> list[str]:
    """Sorted registered names of one kind: models | methods | losses | datasets."""
    if kind == "models":
        from .models import MODELS
        return sorted(MODELS.names())
    if kind == "methods":
        from .methods import METHODS
        return sorted(METHODS.names())
    if kind == "losses":
        from .losses import LOSSES
        return sorted(LOSSES.names())
    if kind == "datasets":
        from .data import ARRAY_DATASETS, BUNDLE_BUILDERS   # importing .data registers the folder data sets
        return sorted(set(ARRAY_DATASETS.names()) | set(BUNDLE_BUILDERS))
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
