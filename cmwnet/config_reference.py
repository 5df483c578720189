"""The configuration reference, generated from the config dataclasses (`cmwnet.config`): every key, its type, its
default and its one-line meaning (the comment beside the field, which is where it is kept).

    python -m cmwnet.config_reference --write docs/config-reference.md    # regenerate
    python -m cmwnet.config_reference --check docs/config-reference.md    # exit 1 when the page is stale

A test keeps both true: every key has a meaning, and the committed page is the generated one.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from typing import Any

from . import config as config_module

_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+?(?:=.*?)?(?:#\s*(.*))?$")
_CONTINUED = re.compile(r"^\s+#\s*(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """Each field's trailing comment (a comment line right below it continues it)."""
    lines, _ = inspect.getsourcelines(cls)
    out: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith(("def ", "@")):
            break
        cont = _CONTINUED.match(line)
        if cont and last is not None and out.get(last):
            out[last] += " " + cont.group(1).strip()
            continue
        m = _FIELD.match(line)
        if m and not stripped.startswith(("#", '"""')):
            last = m.group(1)
            out[last] = (m.group(2) or "").strip()
        else:
            last = None
    return out


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp.replace("Optional[", "").rstrip("]") + (" or null" if tp.startswith("Optional[") else "")
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:   # type: ignore[misc]
        return f.default_factory()   # type: ignore[misc]
    return None


def rows(cls: type = config_module.Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every leaf key below `cls`, depth first, in declaration order."""
    hints = typing.get_type_hints(cls, vars(config_module))
    comments = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        tp = hints.get(f.name, f.type)
        if dataclasses.is_dataclass(tp):
            out += rows(tp, key + ".")
            continue
        raw = f.type if isinstance(f.type, str) else _type_name(tp)
        default = _default(f)
        shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else repr(default)
                                                if isinstance(default, str) else str(default))
        out.append((key, _type_name(raw), shown, comments.get(f.name, "")))
    return out


def sections() -> dict[str, list[tuple[str, str, str, str]]]:
    """The rows grouped by top-level section (data, model, optim, method, ema, run; name and seed first)."""
    groups: dict[str, list] = {}
    for r in rows():
        head = r[0].split(".")[0] if "." in r[0] else "top level"
        groups.setdefault(head, []).append(r)
    return groups


def markdown() -> str:
    """The reference page."""
    out = ["# Configuration reference", "",
           "Generated from `cmwnet/config.py` by `python -m cmwnet.config_reference --write docs/config-reference.md`; "
           "a test keeps it complete and current. A config file (YAML) states only what differs from these defaults; "
           "`--set key=value` overrides one key on the command line (e.g. `--set optim.lr=0.05`). An unknown key is "
           "an error naming the closest valid one.", ""]
    for name, group in sections().items():
        out += [f"## {name}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, tp, default, meaning in group:
            cell = meaning.replace("|", "\\|")
            out.append(f"| `{key}` | {tp} | `{default}` | {cell} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from .errors import OneLineParser

    p = OneLineParser(prog="python -m cmwnet.config_reference", description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="FILE", help="write the reference page")
    g.add_argument("--check", metavar="FILE", help="exit 1 when FILE is not the generated page")
    a = p.parse_args(argv)
    text = markdown()
    if a.write:
        from .checkpoint import atomic_write_text

        atomic_write_text(text, a.write)
        print(a.write)
        return 0
    try:
        with open(a.check, encoding="utf-8") as f:
            same = f.read() == text
    except FileNotFoundError:
        same = False
    if not same:
        print(f"{a.check} is not the generated reference: python -m cmwnet.config_reference --write {a.check}",
              file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    from .errors import run_cli

    sys.exit(run_cli(main))
