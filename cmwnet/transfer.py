"""Alias kept for old commands: `python -m cmwnet.transfer` is `python -m cmwnet.tools.transfer`."""
import sys

from .tools.transfer import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
