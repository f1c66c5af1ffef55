"""The training protocol of a convergence run: SGD, its learning-rate schedule, and when
the test accuracy is read.

- LeNets: the seed notebook's, SGD lr 1.0, no momentum, no weight decay, constant lr,
  batch 100.
- Every other model (CIFAR ResNets and plain nets, ImageNet ResNets): SGD lr 0.1,
  momentum 0.9, weight decay 5e-4, linear warm-up over the first 5% of the budget, then
  cosine decay to 0 at ``max_iters`` (so the schedule spans the budget, not the time to
  target, as in airbench).
- Evaluations: every 5 iterations up to 100, then at iterations growing by 25% each
  (rounded to a multiple of 5), and at the end; time-to-target is read between the last
  evaluation below the target and the first at or above it, so a 12x and a 50x
  advantage read differently where a fixed interval of 50 could not tell them apart.
  ``eval_every`` fixes the interval instead (the seed notebook: every 500).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .. import models

DENSE_UNTIL, DENSE_STEP, GROWTH = 100, 5, 1.25


@dataclass(frozen=True)
class HyperParams:
    """SGD, its schedule and the evaluation points. ``lr_at`` gives the learning rate of
    each iteration; ``eval_points`` the iterations after which the test set is read."""

    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    warmup_frac: float = 0.0          # linear warm-up over this share of max_iters
    schedule: str = "constant"        # "constant" | "cosine" (to 0 at max_iters)
    eval_every: int | None = None     # None: dense, then geometric (module docstring)
    shuffle: bool = True              # a fresh permutation per epoch (else the file order)
    normalize: bool = True            # standardize inputs (else pixels in [0, 1])

    def lr_at(self, it: int, max_iters: int) -> float:
        warmup = math.ceil(self.warmup_frac * max_iters)
        if it < warmup:
            return self.lr * (it + 1) / warmup
        if self.schedule == "cosine":
            done = (it - warmup) / max(1, max_iters - warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * done))
        return self.lr

    def eval_points(self, max_iters: int) -> list[int]:
        if self.eval_every:
            points = list(range(self.eval_every, max_iters, self.eval_every))
        else:
            points = list(range(DENSE_STEP, min(DENSE_UNTIL, max_iters), DENSE_STEP))
            it = DENSE_UNTIL
            while it < max_iters:
                points.append(it)
                it = max(it + DENSE_STEP, math.ceil(it * GROWTH / DENSE_STEP) * DENSE_STEP)
        return [p for p in points if p < max_iters] + [max_iters]

    def to_dict(self) -> dict:
        return {"optimizer": "SGD", **asdict(self)}


def default_hyperparams(model: str) -> HyperParams:
    """The documented protocol for ``model`` (see the module docstring)."""
    if models.spec(model).family == "lenet":
        return HyperParams(lr=1.0, batch_size=100)
    return HyperParams(lr=0.1, batch_size=128, momentum=0.9, weight_decay=5e-4,
                       warmup_frac=0.05, schedule="cosine")
