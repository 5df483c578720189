"""The package's import structure (issues 10 and 18): no import circles, and a lower layer never imports a
higher one. Every import counts: module level, inside a function, and type-only ones under
`if TYPE_CHECKING:` (a type hint is a real tie: the module knows the one it names). The one exception is a
submodule taking a name from its own package (`from . import MODELS` in models/vgg.py): that is the
registration pattern, where the package's __init__ defines the registry before it imports the
submodules that fill it, so the package always loads first and the edge cannot form a circle."""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cmwnet")
# the four parts, lowest first: an import from an earlier part into a later one runs up the house (the project's
# studies use the paper's runner, so they sit above it)
PARTS = ("library", "paper", "studies", "tools")
# no upward import: the authors' weight-net layout, which Tables 6 and 10 convert, sits beside the weight nets
UPWARD_ALLOWED = 0


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
        for child in ast.iter_child_nodes(node):   # every level, `if TYPE_CHECKING:` blocks included
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


def part(mod: str) -> str:
    for name in PARTS[1:]:
        if _in(mod, f"cmwnet.{name}"):
            return name
    return "library"


def upward(g: dict[str, set[str]]) -> list[str]:
    """Imports from a lower part into a higher one (library < paper < tools)."""
    return sorted(f"{m} -> {d}" for m in g for d in g[m] if PARTS.index(part(m)) < PARTS.index(part(d)))


def violations() -> dict[str, list[str]]:
    g = graph()
    low = [m for m in g if _in(m, "cmwnet.data", "cmwnet.models", "cmwnet.losses")]
    library = [m for m in g if part(m) == "library"]
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
    assert "cmwnet.config" in g["cmwnet.methods.context"]                # under `if TYPE_CHECKING:`


def test_type_only_imports_count(tmp_path):
    """A type hint ties two modules as much as a call does (issue 18: the Trainer hint closed a circle)."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cmwnet.engine import Trainer\n")
    assert imports("cmwnet.x", str(f), {"cmwnet.engine"}) == {"cmwnet.engine"}


def test_no_alias_rooms_at_the_root():
    """The old root-level names (`cmwnet/tables.py`, `bench.py`, ...) are gone: the one shim that names
    the new commands is `cmwnet/_moved.py`, which holds no module of theirs."""
    import cmwnet._moved as moved

    root = {m for m in modules() if m.count(".") == 1}
    assert not root & {f"cmwnet.{n}" for n in moved.MOVED}, root & {f"cmwnet.{n}" for n in moved.MOVED}
    assert graph()["cmwnet._moved"] == set()


def test_at_most_one_import_runs_up_the_house():
    up = upward(graph())
    assert len(up) <= UPWARD_ALLOWED, up


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


def _architecture_rooms() -> dict[str, str]:
    """docs/architecture.md: room (a `cmwnet/...` heading) -> its paragraph."""
    import re

    with open(os.path.join(os.path.dirname(PKG), "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^### `([^`]+)`\s*$", text, flags=re.M)
    rooms = dict(zip(parts[1::2], parts[2::2]))
    last = list(rooms)[-1]
    rooms[last] = rooms[last].split("\n## ", 1)[0]   # the recipes after the last room are not its paragraph
    return rooms


def test_the_architecture_doc_names_every_module_and_only_modules_that_exist():
    """Issue 18: docs/architecture.md stays true: one paragraph per room (a top-level module or a
    sub-package), and each sub-package's paragraph names every file in it."""
    import re

    root = os.path.dirname(PKG)
    rooms = _architecture_rooms()
    for room in rooms:
        assert os.path.exists(os.path.join(root, room)), f"docs/architecture.md names {room}, which does not exist"
    top = {f"cmwnet/{f}" for f in os.listdir(PKG) if f.endswith(".py")}
    folders = {f"cmwnet/{d}/" for d in os.listdir(PKG) if os.path.isfile(os.path.join(PKG, d, "__init__.py"))}
    assert set(rooms) == top | folders, sorted(set(rooms) ^ (top | folders))
    for folder in folders:
        files = {f for f in os.listdir(os.path.join(root, folder)) if f.endswith(".py")}
        named = set(re.findall(r"`([\w.]+\.py)`", rooms[folder]))
        assert files <= named, f"{folder}: not described in docs/architecture.md: {sorted(files - named)}"
        assert named <= files, f"{folder}: docs/architecture.md names missing files {sorted(named - files)}"


def test_the_recipes_name_files_that_exist():
    """The three recipes of docs/architecture.md touch files that are there (NAME/N: the new ones)."""
    import re

    root = os.path.dirname(PKG)
    with open(os.path.join(root, "docs", "architecture.md"), encoding="utf-8") as f:
        recipes = f.read().split("## Recipes", 1)[1]
    paths = set(re.findall(r"`((?:cmwnet|tests|\.ci)/[\w./]+)`", recipes))
    assert len(paths) >= 8
    for p in paths:
        if "NAME" not in p:
            assert os.path.exists(os.path.join(root, p)), p
