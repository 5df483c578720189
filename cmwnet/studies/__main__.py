"""`python -m cmwnet.studies ...` (also `python -m cmwnet.paper.study`, its earlier name)."""
import sys

from ..errors import run_cli
from .study import main

sys.exit(run_cli(main))
