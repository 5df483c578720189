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


def get_table(key: str | int, scale: str = "paper", settings: list[str] | tuple[str, ...] | None = None) -> Table:
    """The table as the paper runs it, or at `scale` "cpu" (`cpu_tables`: CIFAR-10, ResNet-8, 2 seeds) or "full"
    (Table 2 on all 45,000 images, one seed); `settings` (Tables 1-5) keeps only those of its settings, at the CPU
    scales any CIFAR-10 setting of the paper's table (its default: the scale's own)."""
    import dataclasses

    from .cpu_tables import at_cpu_scale, check_scale, select_settings

    k = normalise(key)
    check_scale(scale, k)
    if settings and (k == "fig9" or int(k) not in tables.TABLES):
        raise CmwnetError(f"--settings applies to Tables 1-5, not to {k}" + (": use --datasets and --rates" if k == "fig9"
                                                                            else ""))
    if k == "fig9":
        return partial_figure.figure9(scale=scale)
    n = int(k)
    spec = tables.TABLES[n]() if n in tables.TABLES else tables_real.TABLES[n]()
    if scale != "paper":
        return at_cpu_scale(spec, scale, settings)
    return dataclasses.replace(spec, settings=select_settings(spec, settings)) if settings else spec


def kind(spec: Table) -> str:
    """"section4" (Tables 1-5), "real" (6-10) or "figure" (Fig. 9): which cell builder and layout apply."""
    return spec.kind
