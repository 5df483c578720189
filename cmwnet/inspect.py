"""`python -m cmwnet.inspect RUN`: the command keeps its name; its code is `cmwnet.run_folder.inspect`."""
from .run_folder.inspect import console_main, main  # noqa: F401

if __name__ == "__main__":
    console_main()
