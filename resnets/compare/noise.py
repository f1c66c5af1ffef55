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
# Paired runs (resnets.paired): the shift between pairs beyond their own block scatter.
# cpu: fitted on 4 calibration `resnets gate` A/A runs (quick preset, lenet, resnet20,
# resnet18: 92 quiet pairs, sd of log ratios 0.021 where the blocks' own standard errors
# explained 0.0175; the excess grew with that standard error: ResNet-18 training, block
# se 0.03, had sd 0.04-0.06, LeNet inference, se 0.006, had 0.001), so sigma is
# max(0.01, 1.2 x the pair's block se). cuda: the unpaired H100 floor and kappa, kept
# until GPU A/A gate runs measure it.
PAIRED = {"cpu": DeviceNoise(floor=0.01, kappa=1.2), "cuda": DeviceNoise(floor=0.005, kappa=1.0)}
# Paired in two processes (one per side: the gate's mode when the sides need different
# Python environments): each process also draws its own level. cpu: fitted on 3
# `resnets gate --two-processes` A/A runs (quick preset, lenet, resnet20, resnet18,
# contiguous fp32; bench/paired_noise.py) on a quiet 2-core Xeon: 72 pairs, sd of log
# ratios 0.012 where the blocks' own standard errors explained 0.010 (pooled excess
# 0.007, upper 90% bound 0.010), but with tails: the worst case's excess was 1.6x its
# block se (ResNet-18 inference, 64x64) and one pair moved 4.7% against a block se of
# 0.003; so the floor is twice the one-process floor and kappa 1.7. cuda: the unpaired
# H100 floor and kappa, kept until GPU A/A runs of this mode measure it.
PAIRED_TWO = {"cpu": DeviceNoise(floor=0.02, kappa=1.7),
              "cuda": DeviceNoise(floor=0.005, kappa=1.0)}
# A case timed in separate runs while other work kept more than this many cores busy is
# never called a regression: no statistic tells a shared machine from slower code. Paired
# blocks alternate under the same load, so there the load widens the interval instead.
BUSY_CORES = 0.5
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


def level_se(samples, device: str) -> float:
    """Standard error of a single case's log level as another run would see it: its
    median's own uncertainty and the run-to-run shift of the device, together. What a
    report's intervals use, so a speed-up within that noise reads as within noise."""
    from ..stats import Measurement

    se = Measurement(tuple(float(s) for s in samples)).median_se_log()
    return math.sqrt(se ** 2 + prior_sigma([samples], device) ** 2)


def repeat_sigma(prior: float, sides: list[list], spread=()) -> float:
    """``prior`` updated with the spread of log medians of repeated runs within each side
    (or, for paired runs, of the pairs' log ratios ``spread``).

    A scaled-inverse-chi-square update: the prior counts as ``PRIOR_DF`` degrees of
    freedom, each side with k runs (or k pairs) adds k-1."""
    squares, df = 0.0, 0
    for logs in [np.log([np.median(r) for r in runs]) for runs in sides] + (
            [np.asarray(spread, dtype=float)] if len(spread) else []):
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += len(logs) - 1
    return math.sqrt((PRIOR_DF * prior ** 2 + squares) / (PRIOR_DF + df))


def paired_sigma(device: str, within: float, floor: float | None = None,
                 two_processes: bool = False) -> float:
    """Expected shift between pairs of a paired (block-interleaved) comparison, beyond
    their own block scatter ``within`` (the standard error of a pair's log ratio): what
    alternating blocks cannot cancel (each build's memory layout; each process's, when the
    sides run in two). ``floor`` (``--noise``) replaces the device's floor."""
    table = PAIRED_TWO if two_processes else PAIRED
    model = table.get(device, table["cpu"])
    return max(model.floor if floor is None else floor, model.kappa * within)
