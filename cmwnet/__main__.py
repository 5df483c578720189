"""`python -m cmwnet --version`: the installed version; `python -m cmwnet` alone lists the commands."""
from __future__ import annotations

import sys

COMMANDS = ("cmwnet.train (one run)", "cmwnet.inspect (a run's lowest-weight samples and figures)",
            "cmwnet.paper (the paper's tables and figures)",
            "cmwnet.tools.sweep (a grid of own runs, one table)", "cmwnet.tools.demo")


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("--version", "-V"):
        print(f"cmwnet {__version__}")
        return 0
    if args and args[0] not in ("-h", "--help"):
        print(f"error: unknown option {args[0]}: use python -m cmwnet --version", file=sys.stderr)
        return 2
    print("usage: python -m cmwnet --version\ncommands: " + "; ".join(f"python -m {c}" for c in COMMANDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
