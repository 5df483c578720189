"""Every table and figure of the paper by its key ("1" ... "10", "fig9"): the one list the CLI, the
runner and the report read. Tables 1-5 are `tables.Table`, 6-10 `tables_real.RealTable`, Fig. 9 a
`partial_figure.Figure9`; the report renders any of them from a folder of runs."""
from __future__ import annotations

from typing import Union

from ..errors import CmwnetError
from . import partial_figure, tables, tables_real

Spec = Union[tables.Table, tables_real.RealTable, partial_figure.Figure9]
KEYS: tuple[str, ...] = tuple(str(n) for n in sorted({**tables.TABLES, **tables_real.TABLES})) + ("fig9",)


def normalise(key: str | int) -> str:
    """'1', 1, 'table1' or 'fig9' -> the registry key (one-line error naming the keys otherwise)."""
    k = str(key).strip().lower().removeprefix("table").strip()
    if k not in KEYS:
        raise CmwnetError(f"unknown table '{key}': available: {', '.join(KEYS)}")
    return k


def get_table(key: str | int) -> Spec:
    k = normalise(key)
    if k == "fig9":
        return partial_figure.Figure9()
    n = int(k)
    return tables.TABLES[n]() if n in tables.TABLES else tables_real.TABLES[n]()


def kind(spec: Spec) -> str:
    """"section4" (Tables 1-5), "real" (6-10) or "figure" (Fig. 9): which launcher and renderer apply."""
    if isinstance(spec, tables.Table):
        return "section4"
    if isinstance(spec, tables_real.RealTable):
        return "real"
    return "figure"
