"""Opt-in sweep for the largest batch that fits on CUDA (``--bench-max-batch``).

Doubles the batch until a step runs out of memory, then bisects between the last size
that fit and the first that did not. Memory is freed after every try. Normal runs never
change a batch size on their own; this only records a ceiling beside the case.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..case import Case
from .runner import release_memory
from .workload import build, math_mode


def _fits(case: Case) -> bool:
    work = None
    try:
        with math_mode(case):
            work = build(case)
            for _ in range(2):  # the second step holds optimizer state and grads too
                work.step()
            torch.cuda.synchronize()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del work
        release_memory()


def max_batch_size(case: Case, limit: int = 1 << 16) -> tuple[int | None, str]:
    """(largest batch that fits, how it was found)."""
    if case.device != "cuda":
        return None, "the max-batch sweep is CUDA only"
    good, bad = 0, None
    bs = case.batch_size
    while bs <= limit:
        if _fits(replace(case, batch_size=bs)):
            good, bs = bs, bs * 2
        else:
            bad = bs
            break
    if good == 0:  # even the case's own batch does not fit: bisect below it
        lo, hi = 0, case.batch_size
    else:
        lo, hi = good, bad
    while hi is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(replace(case, batch_size=mid)):
            lo = mid
        else:
            hi = mid
    return lo, (f"largest batch whose train/infer step ran twice without CUDA OOM "
                f"(doubling from {case.batch_size}, then bisection; capped at {limit})")
