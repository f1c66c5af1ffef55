"""The noise model: how far a case's median moves between two runs of unchanged code.

A run's step times scatter around the run's own level, and that level itself moves from
run to run (CPU frequency and cache state, what else the machine runs, allocator and
kernel choices made at start-up). Resampling the steps of one run sees only the first
part, so a test on steps alone calls a level shift significant and cries wolf. Each
run's level is therefore given a random shift with standard deviation ``sigma``
(relative, i.e. on log time), taken as the larger of:

* the device's floor (or ``--noise``), measured on real repeated runs;
* the device's ``kappa`` x the largest relative IQR among the case's runs. On an H100 a
  case's run-to-run shift was about its within-run IQR (host-bound LeNet training:
  IQR 2-24%, shift 15%; ResNet-50: 0.1% and 0.1%), and the largest of the two runs'
  IQRs kept false alarms on 450 real A/A pairs at 0.7% where their median let 1.6%
  through. On the CPU the IQR does not predict the shift (ratios 0.2-1.8 across cases),
  so there the measured floor alone stands (kappa 0);

and, when a side holds several runs of the case, it is updated with their spread
(``repeat_sigma``), so repeated or interleaved runs measure the noise they have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceNoise:
    floor: float     # per-run level shift (sd of log median) at least
    kappa: float     # times the relative IQR of a run's steps


# Measured with tests/data/make_noise_fixture.py (runs back to back, quick-preset timing).
# cpu: 2 threads on a shared 2-core VM, 5 quick-preset cases: shifts of 4.1-6.4% between
# runs that had the cores to themselves (pooled 5.8% over 16 degrees of freedom; ResNet-18
# bs8 64x64: 18.1-20.8 ms); the floor is that estimate's upper 90% confidence bound.
# cuda: H100, full-preset cases: ResNet-18/50 0.1-0.7%; host-bound small models 11-16%,
# which kappa covers.
DEVICES = {"cpu": DeviceNoise(floor=0.075, kappa=0.0),
           "cuda": DeviceNoise(floor=0.005, kappa=1.0)}
# Weight of the prior sigma, in degrees of freedom, against the spread of repeated runs:
# two runs on each side (2 df) move it half way, ten runs (18 df) nearly all the way.
PRIOR_DF = 2


def device_noise(device: str) -> DeviceNoise:
    return DEVICES.get(device, DEVICES["cpu"])


def relative_iqr(samples) -> float:
    q1, median, q3 = np.quantile(np.asarray(samples, dtype=float), [0.25, 0.5, 0.75])
    return float((q3 - q1) / median) if median > 0 else math.inf


def prior_sigma(runs: list, device: str, floor: float | None = None) -> float:
    """Expected per-run level shift of a case from its device and its runs' own scatter;
    ``floor`` replaces the device's floor (``--noise``)."""
    model = device_noise(device)
    floor = model.floor if floor is None else floor
    return max(floor, model.kappa * max(relative_iqr(r) for r in runs))


def repeat_sigma(prior: float, sides: list[list]) -> float:
    """``prior`` updated with the spread of log medians of repeated runs within each side.

    A scaled-inverse-chi-square update: the prior counts as ``PRIOR_DF`` degrees of
    freedom, each side with k runs adds k-1."""
    squares, df = 0.0, 0
    for runs in sides:
        logs = np.log([np.median(r) for r in runs])
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += len(runs) - 1
    return math.sqrt((PRIOR_DF * prior ** 2 + squares) / (PRIOR_DF + df))
