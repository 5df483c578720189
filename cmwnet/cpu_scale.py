"""Alias kept for old commands: `python -m cmwnet.cpu_scale` is `python -m cmwnet.paper.cpu_scale`."""
import sys

from .paper.cpu_scale import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
