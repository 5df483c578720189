"""Every table and figure of the paper by its key ("1" ... "10", "fig9"): the one list the CLI, the
runner and the report read. Each is one `schema.Table` (Tables 1-5 from tables.py, 6-10 from
tables_real.py, Fig. 9 from partial_figure.py); its `kind` says how its cells are built and laid out."""
from __future__ import annotations

from ..errors import CmwnetError
from . import partial_figure, tables, tables_real
from .schema import Table

Spec = Table   # every table and figure has the one spec
KEYS: tuple[str, ...] = tuple(str(n) for n in sorted({**tables.TABLES, **tables_real.TABLES})) + ("fig9",)


def normalise(key: str | int) -> str:
    """'1', 1, 'table1' or 'fig9' -> the registry key (one-line error naming the keys otherwise)."""
    k = str(key).strip().lower().removeprefix("table").strip()
    if k not in KEYS:
        raise CmwnetError(f"unknown table '{key}': available: {', '.join(KEYS)}")
    return k


def get_table(key: str | int, scale: str = "paper") -> Table:
    """The table as the paper runs it, or at `scale` "cpu" (`cpu_tables`: CIFAR-10, ResNet-8, 2 seeds) or "full"
    (Table 2 on all 45,000 images, one seed)."""
    from .cpu_tables import at_cpu_scale, check_scale

    k = normalise(key)
    check_scale(scale, k)
    if k == "fig9":
        return partial_figure.figure9(scale=scale)
    n = int(k)
    spec = tables.TABLES[n]() if n in tables.TABLES else tables_real.TABLES[n]()
    return at_cpu_scale(spec, scale) if scale != "paper" else spec


def kind(spec: Table) -> str:
    """"section4" (Tables 1-5), "real" (6-10) or "figure" (Fig. 9): which cell builder and layout apply."""
    return spec.kind
