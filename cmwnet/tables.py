"""Alias kept for old commands: `python -m cmwnet.tables` is `python -m cmwnet.paper`."""
import sys

from .paper.cli import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
