"""Where the old root-level commands went: `python -m cmwnet.bench` (and the other names below) prints
one line naming the new command and exits 2, so an old note or script fails with the fix in hand instead
of "No module named". One file for every moved name; the modules themselves live in `cmwnet.paper` and
`cmwnet.tools` only."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

MOVED = {
    "tables": "python -m cmwnet.paper", "tables_real": "python -m cmwnet.paper",
    "report": "python -m cmwnet.paper report", "partial_figure": "python -m cmwnet.paper run fig9",
    "study": "python -m cmwnet.studies", "cpu_scale": "python -m cmwnet.paper run 2 --scale full",
    "bench": "python -m cmwnet.tools.bench", "demo": "python -m cmwnet.tools.demo",
    "gpu_check": "python -m cmwnet.tools.gpu_check", "killtest": "python -m cmwnet.tools.killtest",
    "transfer": "python -m cmwnet.tools.transfer",
    **{m: f"cmwnet.run_folder.{m}" for m in ("sample_table", "weight_history", "best_model", "run_figures", "plotting",
                                              "suspects", "loaded_run")},
    "paper.cpu_scale": "python -m cmwnet.paper run 2 --scale full (the full preset; the small one became Tables 1 "
                       "and 2 at --scale cpu)",
}


def message(name: str) -> str:
    return f"moved: use {MOVED[name]} (cmwnet.{name} is gone)"


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds `cmwnet.<old name>`: run as `-m`, it prints the new name and exits 2; imported, an ImportError."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ARG002
        pkg, _, name = fullname.partition(".")
        if pkg == "cmwnet" and name in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def get_source(self, fullname: str) -> str:   # what `python -m` runs
        text = message(fullname.partition(".")[2])
        return f"import sys\nprint({text!r}, file=sys.stderr)\nraise SystemExit(2)\n"

    def create_module(self, spec):  # noqa: ARG002
        return None

    def exec_module(self, module: types.ModuleType) -> None:   # a plain import
        raise ImportError(message(module.__name__.partition(".")[2]), name=module.__name__)


def install() -> None:
    if not any(isinstance(f, _Moved) for f in sys.meta_path):
        sys.meta_path.insert(0, _Moved())   # ahead of any finder that still maps the old files
