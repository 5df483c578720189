"""A training process started by a runner stops (checkpointing) when that runner dies: the library's
half of the contract with `cmwnet.paper.runner`, so `cmwnet.train` needs nothing from the paper wing."""
from __future__ import annotations

import os
import signal
import threading
import time

WATCH_PARENT = "CMWNET_WATCH_PARENT"


def watch_parent(interval: float = 2.0) -> None:
    """In a process the runner started (env CMWNET_WATCH_PARENT=1): send ourselves SIGTERM when the
    runner goes away, so no cell keeps training unattended; the engine then checkpoints and exits.
    A daemon thread polls the parent pid (reparenting is how a POSIX child learns its parent died)."""
    if os.environ.get(WATCH_PARENT) != "1":
        return
    parent = os.getppid()

    def poll() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return
    threading.Thread(target=poll, name="watch-parent", daemon=True).start()
