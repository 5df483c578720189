"""What a run prints while it trains: a bar only on a terminal, an ETA, and the epoch line's legend.

Piped to a file (a cluster job's log), a tqdm bar becomes kilobytes of carriage-return redraws per epoch;
there the plain epoch line, with its ETA, is all that is printed.
"""
from __future__ import annotations

import sys
from typing import Sequence, TextIO

# the abbreviations of the epoch line, said once when a run starts
EPOCH_LEGEND = ("epoch line: loss = mean train loss, train/test = top-1 accuracy (best = best test so far), "
                "ema = top-1 of the EMA net, val = top-1 on the held-out val split, w = mean sample weight, "
                "auc = ROC AUC of the weights for telling clean from mislabelled samples (1 = perfect, "
                "0.5 = chance), ETA = mean epoch time x epochs left")


def show_bar(stream: TextIO | None = None) -> bool:
    """A progress bar only where someone watches: the stream is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # a replaced or closed stream
        return False


def epochs_eta(epoch_seconds: Sequence[float], left: int) -> float:
    """Seconds until the run is done: the mean epoch time so far x the epochs left."""
    if not epoch_seconds or left <= 0:
        return 0.0
    return sum(epoch_seconds) / len(epoch_seconds) * left


def format_eta(seconds: float) -> str:
    """'45s', '12m05s', '3h07m': short enough for the end of a line."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
