"""Alias kept for old commands: `python -m cmwnet.study` is `python -m cmwnet.paper.study`."""
import sys

from .paper.study import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
