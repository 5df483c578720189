"""`cmwnet/data/` is a lower layer: no module in it imports methods, the engine or the paper/tool side,
at module or function level (issue 10). Checked on the source, so a function-level import counts too."""
import ast
import pathlib

import cmwnet

HIGHER = ("methods", "engine", "tables", "tables_real", "report", "runner", "paper", "tools", "train")
DATA = pathlib.Path(cmwnet.__file__).parent / "data"


def imported_modules(path: pathlib.Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved against cmwnet.data)."""
    package = ["cmwnet", "data"]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)   # `from .. import methods`
    return out


def test_data_never_imports_a_higher_layer():
    bad = {f"{p.name}: {m}" for p in DATA.glob("*.py") for m in imported_modules(p)
           if any(m == f"cmwnet.{h}" or m.startswith(f"cmwnet.{h}.") for h in HIGHER)}
    assert not bad, sorted(bad)
