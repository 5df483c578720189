"""Training methods by name: what one step computes (the engine drives the loop).

A method is built from the run's `RunContext` (cmwnet.methods.context), not the Trainer, and answers
`on_epoch_start(epoch)` and `train_step(x, y, pos, step) -> stats`; new methods register here and never
touch the engine. The meta-learning methods hold a `MetaLearner` (cmwnet.methods.meta_learner).
"""
from ..registry import Registry

METHODS: Registry = Registry("method")

from . import erm, label_correction, reweight, l2rw, sade, forward_correction, proden  # noqa: E402,F401  (registration)
from . import record_posteriors  # noqa: E402,F401  (registration: the posterior network of Tables 4-5's noise)
from .base import Method  # noqa: E402
from .context import RunContext  # noqa: E402
from .meta_learner import MetaLearner  # noqa: E402

__all__ = ["METHODS", "Method", "MetaLearner", "RunContext"]
