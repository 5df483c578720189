"""Alias kept for old commands: `python -m cmwnet.bench` is `python -m cmwnet.tools.bench`."""
import sys

from .tools.bench import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
