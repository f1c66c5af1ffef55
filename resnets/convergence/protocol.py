"""The training protocol of a convergence run: SGD and its learning-rate schedule.

- LeNets: the seed notebook's, SGD lr 1.0, no momentum, no weight decay, constant lr,
  batch 100, test accuracy every 50 iterations.
- Every other model (CIFAR ResNets and plain nets, ImageNet ResNets): SGD lr 0.1,
  momentum 0.9, weight decay 5e-4, linear warm-up over the first 5% of the budget, then
  cosine decay to 0 at ``max_iters`` (so the schedule spans the budget, not the time to
  target, as in airbench).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .. import models


@dataclass(frozen=True)
class HyperParams:
    """SGD and its schedule. ``lr_at`` gives the learning rate of each iteration."""

    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    warmup_frac: float = 0.0          # linear warm-up over this share of max_iters
    schedule: str = "constant"        # "constant" | "cosine" (to 0 at max_iters)
    eval_every: int = 50

    def lr_at(self, it: int, max_iters: int) -> float:
        warmup = math.ceil(self.warmup_frac * max_iters)
        if it < warmup:
            return self.lr * (it + 1) / warmup
        if self.schedule == "cosine":
            done = (it - warmup) / max(1, max_iters - warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * done))
        return self.lr

    def to_dict(self) -> dict:
        return {"optimizer": "SGD", **asdict(self)}


def default_hyperparams(model: str) -> HyperParams:
    """The documented protocol for ``model`` (see the module docstring)."""
    if models.spec(model).family == "lenet":
        return HyperParams(lr=1.0, batch_size=100, eval_every=50)
    return HyperParams(lr=0.1, batch_size=128, momentum=0.9, weight_decay=5e-4,
                       warmup_frac=0.05, schedule="cosine", eval_every=25)
