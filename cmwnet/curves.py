"""`python -m cmwnet.curves RUN...`: the command keeps its name; its code is `cmwnet.run_folder.curves`."""
from .run_folder.curves import main  # noqa: F401

if __name__ == "__main__":
    import sys

    from .errors import run_cli

    sys.exit(run_cli(main))
