"""Alias kept for old commands: `python -m cmwnet.gpu_check` is `python -m cmwnet.tools.gpu_check`."""
import sys

from .tools.gpu_check import main as main

if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
