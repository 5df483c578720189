"""Forward loss correction with an estimated noise transition matrix, in one run (Patrini et al.,
CVPR 2017; loss `forward`, estimator `cmwnet.losses.estimate_transition`).

The paper trains a network with cross-entropy on the noisy labels, estimates T from its softmax on the
training set (anchor points, 97th-percentile rule), then trains again with the corrected loss. Here
one run does both: until `method.args.estimate_epoch` the loss `forward` has T = I (plain CE); at the
start of that epoch, T is estimated from the current model's softmax on every training image (eval
mode, no augmentation) and the same network goes on training with -log (T^T p)_y. The estimate is a
buffer of the loss and part of the method's checkpoint state; it is printed when made.
Options (`method.args`): estimate_epoch (20), percentile (97; null = plain argmax anchors).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CmwnetError
from ..losses import ForwardCorrection, estimate_transition
from . import METHODS
from .base import Method
from .context import RunContext
from .options import method_args

FORWARD_DEFAULTS: dict[str, Any] = {"estimate_epoch": 20, "percentile": 97.0}


@METHODS.register("forward")
class ForwardCorrectionMethod(Method):
    options, nullable_options = FORWARD_DEFAULTS, ("percentile",)

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        if not isinstance(self.loss_fn, ForwardCorrection):
            raise CmwnetError("method forward corrects the loss 'forward': set method.loss to forward")
        if "transition" in self.cfg.loss_args:
            raise CmwnetError("method forward estimates T itself: for a known T use method erm with loss forward "
                              "and method.loss_args.transition")
        self.args = method_args("forward", self.cfg.args, FORWARD_DEFAULTS, nullable=("percentile",))
        p = self.args["percentile"]
        if p is not None and not (isinstance(p, (int, float)) and 0 < p <= 100):
            raise CmwnetError(f"method.args.percentile of method 'forward' must be in (0, 100] or null, got {p!r}")
        if self.args["estimate_epoch"] < 0:
            raise CmwnetError("method.args.estimate_epoch of method 'forward' must be >= 0")
        self.estimated = False

    @torch.no_grad()
    def training_set_probs(self) -> torch.Tensor:
        """Softmax of the current model on every training image (eval mode, test transform)."""
        c = self.ctx
        was_training = self.model.training
        self.model.eval()
        train = c.data.train
        probs = torch.empty(len(train), c.data.num_classes, device=c.device)
        for x, _, pos in train.batches(c.cfg.data.test_batch_size):
            probs[pos] = F.softmax(self.model(x).float(), dim=1)
        self.model.train(was_training)
        return probs

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        if not self.estimated and epoch >= self.args["estimate_epoch"]:
            t_hat = estimate_transition(self.training_set_probs(), self.args["percentile"])
            self.loss_fn.set_transition(t_hat)
            self.estimated = True
            rows = "; ".join(" ".join(f"{v:.2f}" for v in row) for row in t_hat.tolist())
            self.ctx.log(f"forward correction: estimated T at epoch {epoch}: {rows}")

    def train_step(self, x: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return self.erm_step(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {"estimated": self.estimated, "loss": self.loss_fn.state_dict()}

    def summary(self) -> dict[str, Any]:
        """The estimated T (rows: observed-from true class), to read beside result.json's data.noise.transition."""
        if not self.estimated:
            return {}
        return {"estimated_transition": [[round(float(v), 4) for v in row] for row in self.loss_fn.transition.tolist()],
                "estimate_epoch": int(self.args["estimate_epoch"])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimated = bool(state["estimated"])
        self.loss_fn.load_state_dict(state["loss"])
