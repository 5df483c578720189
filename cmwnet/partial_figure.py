"""Alias kept for old commands: `python -m cmwnet.partial_figure` is `python -m cmwnet.paper run fig9`."""
import sys

from .paper.cli import fig9_main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
