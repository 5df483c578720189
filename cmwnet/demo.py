"""Alias kept for old commands: `python -m cmwnet.demo` is `python -m cmwnet.tools.demo`."""
import sys

from .tools.demo import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
