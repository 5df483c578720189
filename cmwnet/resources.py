"""Where the package's data files live: the experiment configs ship inside the package
(`cmwnet/configs/`, package data), so table scripts and tools find them after `pip install` too."""
from __future__ import annotations

import os
from importlib import resources

from .errors import CmwnetError

CONFIG_DIR = str(resources.files("cmwnet") / "configs")


def config_file(name: str) -> str:
    """The path of `configs/<name>` shipped with the package (one-line error naming the choices)."""
    path = os.path.join(CONFIG_DIR, name)
    if not os.path.isfile(path):
        names = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml")) if os.path.isdir(CONFIG_DIR) else []
        raise CmwnetError(f"no config '{name}' in {CONFIG_DIR}: available: {', '.join(names) or 'none'}")
    return path
