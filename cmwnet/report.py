"""Alias kept for old commands: `python -m cmwnet.report` is `python -m cmwnet.paper report`."""
import sys

from .paper.report import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
