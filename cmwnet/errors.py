"""User-facing errors: one line that names the problem and the fix, never a traceback.

Library code raises `CmwnetError` for anything a user can fix (a config typo, a missing data set);
command-line entry points wrap `main` in `run_cli`, which prints the message and exits with status 2.
"""
from __future__ import annotations

import difflib
import sys
from typing import Callable, Iterable


class CmwnetError(Exception):
    """An error caused by the user's input; its message says what is wrong and how to fix it."""


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option most similar to `name`, or None when nothing is close."""
    match = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.5)
    return match[0] if match else None


def plural(kind: str) -> str:
    """'loss' -> 'losses', 'lr schedule (optim.schedule.kind)' -> 'lr schedules (optim.schedule.kind)'."""
    head, sep, tail = kind.partition(" (")
    if head.endswith(("s", "x", "ch", "sh")):
        head += "es"
    elif head.endswith("y") and head[-2:-1] not in ("a", "e", "i", "o", "u"):
        head = head[:-1] + "ies"
    else:
        head += "s"
    return head + sep + tail


def unknown_name(kind: str, name: str, options: Iterable[str]) -> CmwnetError:
    """The standard error for a name that is not registered: suggests the closest, lists all."""
    options = sorted(options)
    hint = closest(name, options)
    did_you_mean = f"did you mean '{hint}'? " if hint else ""
    return CmwnetError(f"unknown {kind} '{name}': {did_you_mean}valid {plural(kind)}: {', '.join(options)}")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a command-line main; a CmwnetError becomes one line on stderr and exit status 2."""
    try:
        return int(main(argv) or 0)
    except CmwnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
