"""The statistics of a timing change, numpy only (comparing results must work where only
numpy and pandas are installed; the tests check these against scipy).

Everything is on log time, where a slowdown is a difference and noise is multiplicative:

* ``median_se(samples)``: the standard error of a run's log median, from the
  distribution-free 95% confidence interval of the median (order statistics), so one
  preempted step that takes 10x the others moves nothing;
* ``paired_blocks(...)``: for two sides timed in alternating blocks, the median over
  adjacent block pairs of log(head block median / base block median), and its standard
  error from the pairs' robust spread (MAD);
* ``z_test(d, se)``: the two-sided normal p-value of a log ratio;
* ``holm(p)``: Holm's step-down adjustment, so that across all the cases of a comparison
  the chance of any false alarm stays at alpha (the gate as a whole, not each case).
"""
from __future__ import annotations

import math

import numpy as np

from ..stats import Measurement

# sd of a sample median / sd of the mean, for normal data: sqrt(pi / 2).
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)
MAD_TO_SD = 1.4826
# Adjacent block pairs below which a paired case has no evidence either way.
MIN_BLOCK_PAIRS = 3


def median_se(samples) -> float:
    """Standard error of log(median) of one run's samples (0 for a single sample: such a
    run's only uncertainty is the run-to-run shift of the noise model)."""
    return Measurement(tuple(float(s) for s in samples)).median_se_log()


def split_blocks(samples, sizes) -> list[np.ndarray]:
    """A run's samples cut into its timed blocks (``sizes``: samples per block)."""
    edges = np.cumsum([0, *sizes])
    x = np.asarray(samples, dtype=float)
    return [x[a:b] for a, b in zip(edges[:-1], edges[1:]) if b > a]


def paired_blocks(base, base_sizes, head, head_sizes) -> tuple[float, float, int]:
    """(d, se, n): the median over n adjacent block pairs of log(head / base block
    median), and its standard error (robust spread of the pairs / sqrt(n), times the
    median's efficiency). Adjacent blocks ran within a second of each other, so the
    machine's drift cancels in each pair."""
    b = [float(np.median(x)) for x in split_blocks(base, base_sizes)]
    h = [float(np.median(x)) for x in split_blocks(head, head_sizes)]
    n = min(len(b), len(h))
    r = np.log(np.asarray(h[:n]) / np.asarray(b[:n]))
    d = float(np.median(r))
    if n < MIN_BLOCK_PAIRS:
        return d, abs(d) + 1.0, n  # too few pairs to know anything: no evidence
    spread = MAD_TO_SD * float(np.median(np.abs(r - d)))
    return d, MEDIAN_EFFICIENCY * spread / math.sqrt(n), n


def z_test(d: float, se: float) -> float:
    """Two-sided p-value of ``d`` against 0 when ``d ~ Normal(0, se^2)``."""
    if se <= 0:
        return 0.0 if d else 1.0
    return math.erfc(abs(d) / se / math.sqrt(2))


def holm(p_values) -> list[float]:
    """Holm-adjusted p-values: reject those below alpha and the family-wise error rate is
    at most alpha, whatever the dependence between cases."""
    p = list(p_values)
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted
