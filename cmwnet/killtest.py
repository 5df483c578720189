"""Alias kept for old commands: `python -m cmwnet.killtest` is `python -m cmwnet.tools.killtest`."""
import sys

from .tools.killtest import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
