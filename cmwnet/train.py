"""`python -m cmwnet.train --config configs/X.yaml [--set a.b=c ...]`: one training run.

The run folder is `run.out/run.name` (default `runs/<config name>`). Rerunning the same command
resumes an interrupted run and skips a finished one; a folder holding a different config is refused
unless --force (which moves the old run aside). SIGINT/SIGTERM stop at the next step with a checkpoint
(exit status 130/143); a config typo or missing data is one `error:` line and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from .catalog import KINDS, registered_names
from .config import load_config
from .errors import OneLineParser, run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m cmwnet.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c", help="YAML config (keys not given take their defaults)")
    p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=0.05 (repeatable)")
    p.add_argument("--out", help="parent folder of the run folder (same as --set run.out=...)")
    p.add_argument("--force", action="store_true",
                   help="move the existing run folder aside (never deleted) and start over, e.g. when it holds another "
                        "config or a corrupt checkpoint")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list", choices=KINDS, help="print the registered names of one kind, one per line, and exit")
    return p.parse_args(argv)


def _refuse_bare_start() -> None:
    """Without --config or --set there is nothing the user asked for: say how to start instead of
    silently training the defaults (200 epochs of ResNet-32)."""
    import os

    from .errors import CmwnetError

    print("usage: python -m cmwnet.train --config CONFIG.yaml [--set KEY=VALUE ...]", file=sys.stdout)
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(folder) if f.endswith(".yaml")) \
        if os.path.isdir(folder) else []
    examples = f" (example configs in configs/: {', '.join(names)})" if names else ""
    raise CmwnetError("--config is needed: give a YAML config, e.g. --config configs/digits_cmwnet.yaml, or "
                      f"--set keys to train on the defaults{examples}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(registered_names(args.list)))
        return 0
    if args.config is None and not args.set and not args.print_config:
        # no arguments used to start a 200-epoch ResNet-32 run of the defaults into runs/run
        _refuse_bare_start()
    overrides = list(args.set) + ([f"run.out={args.out}"] if args.out else [])
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from .engine import train
    from .parent_watch import watch_parent

    watch_parent()
    result = train(cfg, force=args.force, quiet=args.quiet)
    from . import distributed

    if not args.quiet and distributed.get().is_main:   # under torchrun: rank 0 reports
        keys = ("best_top1", "last_top1", "best_top5", "last_top5")
        line = {k: round(result[k], 2) for k in keys}
        if result.get("ema"):
            line["ema_best_top1"] = round(result["ema"]["best_top1"], 2)
            line["ema_last_top1"] = round(result["ema"]["last_top1"], 2)
        print(f"{cfg.run_dir}: " + json.dumps(line))
    return 0


def _exit(status: int) -> None:
    """Exit; a SIGINT/SIGTERM that arrives now (the run is saved or finished) must not print a
    traceback from inside the interpreter's shutdown."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(status)


def console_main() -> None:
    """The `cmwnet-train` console script: the same one-line errors as `python -m cmwnet.train`."""
    _exit(run_cli(main))


if __name__ == "__main__":
    console_main()
