"""`method.args`: a method's own options, checked against its defaults (unknown key -> suggestion)."""
from __future__ import annotations

from typing import Any

from ..errors import CmwnetError, check_keys


def method_args(method: str, given: dict[str, Any], defaults: dict[str, Any],
                nullable: tuple[str, ...] = (), choices: dict[str, tuple] | None = None) -> dict[str, Any]:
    """`defaults` updated with `given`; a key the method does not know, or a value of the wrong kind
    (number for number, bool for bool; None only for `nullable` keys; one of `choices[key]` where the key has
    choices), is a one-line CmwnetError."""
    out = dict(defaults)
    check_keys("method.args", given, defaults, f"method '{method}'")
    for key, value in given.items():
        default = defaults[key]
        if choices and key in choices:
            if not any(type(value) is type(c) and value == c for c in choices[key]):
                listed = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices[key])
                raise CmwnetError(f"method.args.{key} of method '{method}' must be one of {listed}, got {value!r}")
            out[key] = value
            continue
        if value is None and key in nullable:
            ok = True
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(default, int) and not isinstance(default, bool):
                ok = float(value).is_integer()
                value = int(value) if ok else value
        else:
            ok = True
        if not ok:
            raise CmwnetError(f"method.args.{key} of method '{method}' must be like {default!r}, got {value!r}")
        out[key] = value
    return out
