"""`python -m cmwnet.paper run N | list [N] | report N OUT` (see `cmwnet.paper.cli`)."""
import sys

from ..errors import run_cli
from .cli import main

sys.exit(run_cli(main))
