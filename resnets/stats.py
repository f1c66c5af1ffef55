"""Summary statistics of raw per-step samples (numpy and pytest-benchmark only: shared by
measuring, reporting and comparison code, none of which should need torch to read a number).

Modelled on ``torch.utils.benchmark.Measurement``: the object keeps every raw sample and
derives robust statistics (median, IQR) from them, so nothing is lost to a premature mean.
The statistics pytest-benchmark defines (min, max, mean, stddev, median, q1, q3, iqr,
outliers, ld15iqr, hd15iqr, ops) are pytest-benchmark's own ``Stats``, so a per-case file,
the record's ``time`` block and ``--benchmark-json`` give one answer for one set of
samples; ours (p90, p99, the median's confidence interval) sit beside them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pytest_benchmark.stats import Stats

from .schema import TimeStats


@dataclass(frozen=True)
class Measurement:
    """Raw per-step times in seconds, in the order they were taken."""

    samples: tuple[float, ...]

    def __post_init__(self):
        if not self.samples:
            raise ValueError("a Measurement needs at least one sample")

    @cached_property
    def stats(self) -> Stats:
        """pytest-benchmark's statistics of the samples."""
        s = Stats()
        for x in self.samples:
            s.update(float(x))
        return s

    @cached_property
    def _sorted(self) -> np.ndarray:
        return np.sort(np.asarray(self.samples, dtype=float))

    @property
    def rounds(self) -> int:
        return len(self.samples)

    def quantile(self, q: float) -> float:
        """Linear interpolation between order statistics (numpy's default): p90, p99."""
        return float(np.quantile(self._sorted, q))

    @property
    def median(self) -> float:
        return float(self.stats.median)

    @property
    def q1(self) -> float:
        return float(self.stats.q1)

    @property
    def q3(self) -> float:
        return float(self.stats.q3)

    @property
    def iqr(self) -> float:
        return float(self.stats.iqr)

    @property
    def min(self) -> float:
        return float(self._sorted[0])

    @property
    def max(self) -> float:
        return float(self._sorted[-1])

    @property
    def mean(self) -> float:
        return float(self.stats.mean)

    @property
    def stdev(self) -> float:
        return float(self.stats.stddev)

    def median_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Distribution-free CI of the median from order statistics.

        The number of samples below the true median is Binomial(n, 1/2); ranks
        n/2 -+ z*sqrt(n)/2 bracket it with the given confidence (normal approximation,
        conservative rounding). With fewer than 6 samples this is the full range.
        """
        n = self.rounds
        z = normal_quantile(1 - (1 - confidence) / 2)  # two-sided
        lo = max(0, math.floor(n / 2 - z * math.sqrt(n) / 2) - 1)
        hi = min(n - 1, math.ceil(n / 2 + z * math.sqrt(n) / 2))
        if n < 6:
            lo, hi = 0, n - 1
        return float(self._sorted[lo]), float(self._sorted[hi])

    def median_se_log(self) -> float:
        """Standard error of log(median), from the 95% CI of the median (0 for fewer than
        2 samples): one preempted step that takes 10x the others moves nothing."""
        if self.rounds < 2:
            return 0.0
        lo, hi = self.median_ci(0.95)
        return (math.log(hi) - math.log(lo)) / (2 * Z95) if lo > 0 else 0.0

    def median_ci_rel(self, confidence: float = 0.95) -> float:
        """Half-width of the median's CI relative to the median (0.02 = +-2%)."""
        lo, hi = self.median_ci(confidence)
        median = float(np.median(self._sorted))
        return (hi - lo) / 2 / median if median > 0 else math.inf

    def summary(self) -> TimeStats:
        ci_lo, ci_hi = self.median_ci()
        return TimeStats(rounds=self.rounds, median=self.median, q1=self.q1, q3=self.q3,
                         iqr=self.iqr, min=self.min, max=self.max, mean=self.mean,
                         stddev=self.stdev, p90=self.quantile(0.9), p99=self.quantile(0.99),
                         median_ci95_low=ci_lo, median_ci95_high=ci_hi)

    def pytest_benchmark_stats(self) -> dict:
        """The ``stats`` block pytest-benchmark writes for one benchmark (its own
        ``Stats``, so our per-case files and ``--benchmark-json`` read the same)."""
        return {**{k: _plain(v) for k, v in self.stats.as_dict().items()},
                "data": list(self.samples), "iterations": 1}


def _plain(value):
    return float(value) if isinstance(value, float) else value


def log_interval(d: float, se: float, z: float | None = None) -> tuple[float, float, float]:
    """A ratio from its log ``d`` and that log's standard error: ``(exp(d), exp(d - z se),
    exp(d + z se))``, the 95% interval unless ``z`` says otherwise. Every speed-up,
    efficiency and change interval here is this one (noise is multiplicative)."""
    z = Z95 if z is None else z
    return math.exp(d), math.exp(d - z * se), math.exp(d + z * se)


def normal_quantile(p: float) -> float:
    """Standard-normal quantile by bisection on erfc (exact to 1e-12; no scipy)."""
    lo, hi = -40.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


Z95 = normal_quantile(0.975)


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with a whole number ``df`` of degrees of freedom, in
    closed form (Abramowitz & Stegun 26.7.3-4: a finite series in cos(theta), theta =
    atan(|t| / sqrt(df))), so no scipy."""
    if df < 1:
        raise ValueError("a t-test needs at least 1 degree of freedom")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, term = math.cos(theta) ** 2, 1.0
    if df % 2:  # odd: (2/pi)(theta + sin cos (1 + 2/3 c2 + 2*4/(3*5) c2^2 + ...))
        total = 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    else:  # even: sin (1 + 1/2 c2 + 1*3/(2*4) c2^2 + ...)
        total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        inside = math.sin(theta) * total
    return min(1.0, max(0.0, 1.0 - inside))


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (``p`` > 0.5) by bisection on ``t_two_sided_p``."""
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > 2 * (1 - p):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
