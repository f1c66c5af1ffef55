"""The device's attainable FLOP/s for a precision, measured by a large-matmul probe.

Utilization is only meaningful against what *this* device can do in *this* precision, so
the harness measures it once per run instead of trusting a spec sheet; a published
dense peak is shown beside it for known GPUs. Once per run, not per process: the suite
names a file in ``RESNETS_PEAK_FILE`` (the run folder's ``peaks.json``), and every
process of the run, isolated workers included, reads the probe from there or writes it
there first (under a file lock, so two workers never both probe).
"""
from __future__ import annotations

import json
import os
import time
from functools import cache
from pathlib import Path

import torch

from ..case import Case
from .device import synchronizer
from .workload import AUTOCAST_DTYPES, math_mode

# Dense (no sparsity) tensor-core peaks from NVIDIA's data sheets, FLOP/s.
PUBLISHED_PEAKS = {
    "H100 80GB HBM3": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "A100-SXM4-80GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
    "A100-SXM4-40GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
}


# PyTorch's default numerics run convolutions (most of a CNN's FLOPs) in TF32: that is
# the peak they are held against.
PEAK_PRECISION = {"default": "tf32"}


def published_peak(device_name: str, precision: str) -> float | None:
    precision = PEAK_PRECISION.get(precision, precision)
    for key, table in PUBLISHED_PEAKS.items():
        if key in device_name:
            return table.get(precision)
    return None


PEAK_FILE_ENV = "RESNETS_PEAK_FILE"


@cache
def attainable_flops(device: str, precision: str) -> dict:
    """The probe's result for ``device`` and ``precision``: from the run's peak file if
    another process already wrote it, else measured now (and written there)."""
    path = os.environ.get(PEAK_FILE_ENV)
    if not path:
        return _probe(device, precision)
    from filelock import FileLock

    from ..store import atomic_write_text

    path, key = Path(path), f"{device}/{PEAK_PRECISION.get(precision, precision)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        try:
            known = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}
        if isinstance(known.get(key), dict):
            return known[key]
        known[key] = _probe(device, precision)
        atomic_write_text(path, json.dumps(known, indent=1))
        return known[key]


def _probe(device: str, precision: str) -> dict:
    """Best-of-N FLOP/s of an n x n x n matmul in the case's precision mode."""
    n, reps = (8192, 20) if device == "cuda" else (1024, 6)
    precision = PEAK_PRECISION.get(precision, precision)
    case = Case("probe", device=device, precision=precision)
    # Operands already in the compute dtype: under autocast the fp32->bf16 casts of the
    # operands would be timed too and understate the peak.
    # int8: an int8 x int8 -> int32 matmul (torch._int_mm), operations counted as FLOPs.
    dtype = torch.int8 if precision == "int8" else AUTOCAST_DTYPES.get(precision, torch.float32)
    if dtype is torch.int8:
        a, b = (torch.randint(-128, 128, (n, n), device=device, dtype=dtype) for _ in "ab")
        matmul = torch._int_mm
    else:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in "ab")
        matmul = torch.matmul
    sync = synchronizer(device)
    best = float("inf")
    with math_mode(case):
        for i in range(reps + 2):
            sync()
            t0 = time.perf_counter()
            matmul(a, b)
            sync()
            if i >= 2:  # two warm-ups
                best = min(best, time.perf_counter() - t0)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"attainable_flops_per_s": 2 * n ** 3 / best,
            "attainable_method": f"best of {reps} {n}x{n}x{n} {dtype} matmuls "
                                 f"({precision} math mode), "
                                 "after 2 warm-ups, perf_counter with device sync",
            "published_peak_flops_per_s": published_peak(name, precision)}
