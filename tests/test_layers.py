"""The package's import structure (issue 10): no import circles, and a lower layer never imports a higher
one. Every import counts (module level or inside a function), except under `if TYPE_CHECKING:`, and a
submodule taking a name from its own package (`from . import MODELS` in models/vgg.py): that is the
registration pattern, where the package's __init__ defines the registry before it imports the
submodules that fill it, so the package always loads first and the edge cannot form a circle."""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cmwnet")
# modules kept so that old `python -m cmwnet.X` commands work: each only re-exports the moved module's main
ALIASES = {"cmwnet.tables", "cmwnet.tables_real", "cmwnet.report", "cmwnet.partial_figure", "cmwnet.cpu_scale",
           "cmwnet.study", "cmwnet.bench", "cmwnet.killtest", "cmwnet.demo", "cmwnet.transfer", "cmwnet.gpu_check"}


def modules() -> dict[str, str]:
    """module name -> file path, for every .py file of the package."""
    out = {}
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), os.path.dirname(PKG))[:-3].split(os.sep)
                name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
                out[name] = os.path.join(root, f)
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(name: str, path: str, known: set[str]) -> set[str]:
    """The package modules `name` imports (a `from X import y` counts X.y when that is a module)."""
    is_pkg = path.endswith("__init__.py")
    package = name if is_pkg else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def add(mod: str) -> None:
        while mod and mod not in known:      # cmwnet.data.folders.read_x -> cmwnet.data.folders
            mod = mod.rsplit(".", 1)[0] if "." in mod else ""
        if mod and mod != name and not (mod == package and not is_pkg):   # registration: see the docstring
            found.add(mod)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for n in child.orelse:
                    visit(n)
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.split(".")[0] == "cmwnet":
                        add(a.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                if mod.split(".")[0] != "cmwnet":
                    continue
                for a in child.names:
                    sub = f"{mod}.{a.name}"
                    add(sub if sub in known else mod)
            visit(child)
    with open(path) as f:
        visit(ast.parse(f.read(), path))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(g):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def _in(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def violations() -> dict[str, list[str]]:
    g = graph()
    low = [m for m in g if _in(m, "cmwnet.data", "cmwnet.models", "cmwnet.losses")]
    library = [m for m in g if not _in(m, "cmwnet.paper", "cmwnet.tools") and m not in ALIASES]
    return {
        "cycles": [" <-> ".join(c) for c in cycles(g)],
        "lower layers importing higher": sorted(f"{m} -> {d}" for m in low for d in g[m]
                                                if _in(d, "cmwnet.methods", "cmwnet.engine", "cmwnet.paper",
                                                       "cmwnet.tools")),
        "library importing paper/tools": sorted(f"{m} -> {d}" for m in library for d in g[m]
                                                if _in(d, "cmwnet.paper", "cmwnet.tools")),
    }


def test_the_graph_sees_imports_at_every_level():
    g = graph()
    assert "cmwnet.paper.tables" in g["cmwnet.paper.registry"]           # module level, relative
    assert "cmwnet.engine" in g["cmwnet.paper.runner"]                   # inside a function
    assert "cmwnet.paper.cli" in g["cmwnet.tables"]                      # an alias


def test_aliases_only_point_at_the_moved_module():
    g = graph()
    for alias in ALIASES:
        assert g[alias] <= {m for m in g if _in(m, "cmwnet.paper", "cmwnet.tools")} | {"cmwnet.errors"}, alias
        with open(modules()[alias]) as f:
            assert len(f.read().splitlines()) <= 10, f"{alias} should stay a thin alias"


def test_paper_and_tools_layers():
    """The parts this layout owns: the paper wing and the tools form no circle, and the library
    never imports them."""
    v = violations()
    assert not [c for c in v["cycles"] if "cmwnet.paper" in c or "cmwnet.tools" in c], v["cycles"]
    assert not v["library importing paper/tools"], v["library importing paper/tools"]


def test_no_import_circles_and_lower_layers_never_import_higher():
    v = violations()
    assert not v["cycles"], v["cycles"]
    assert not v["lower layers importing higher"], v["lower layers importing higher"]
    assert not v["library importing paper/tools"], v["library importing paper/tools"]
