"""Two-sample statistics on raw step times, numpy only: the bootstrap distribution of a
ratio of medians and the Mann-Whitney U test (tie-corrected, normal approximation).

Why these: step times are skewed and heavy-tailed (one preempted step can take 10x the
others), so means and t-tests mislead, while medians and ranks ignore a few wild steps.
scipy has both, but comparing results must work where only numpy and pandas are
installed; the tests check these against scipy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bootstrap resamples are drawn in blocks of at most this many numbers (memory bound:
# a 10,000-round case times 2,000 resamples would otherwise be 160 MB at once).
_BLOCK = 2_000_000


@dataclass(frozen=True)
class MannWhitney:
    u: float      # U of the first sample (the count of pairs where it is the larger)
    z: float      # standardized |U - n1*n2/2|, continuity-corrected
    p: float      # two-sided p-value


def mann_whitney(x, y) -> MannWhitney:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``.

    Average ranks for ties, the tie-corrected variance
    ``n1*n2/12 * ((n+1) - sum(t^3 - t) / (n*(n-1)))`` and a 0.5 continuity correction;
    the same numbers as ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney needs at least one sample on each side")
    _, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True,
                                   return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2
    u1 = float(mean_rank[inverse[:n1]].sum() - n1 * (n1 + 1) / 2)
    n = n1 + n2
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:  # every value identical: no evidence of any difference
        return MannWhitney(u1, 0.0, 1.0)
    z = (max(u1, n1 * n2 - u1) - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return MannWhitney(u1, z, min(1.0, math.erfc(z / math.sqrt(2))))


def bootstrap_medians(x, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` resamples (with replacement) of ``x``."""
    x = np.asarray(x, dtype=float)
    per_block = max(1, _BLOCK // max(1, x.size))
    out = np.empty(resamples)
    for start in range(0, resamples, per_block):
        stop = min(resamples, start + per_block)
        draws = x[rng.integers(0, x.size, size=(stop - start, x.size))]
        out[start:stop] = np.median(draws, axis=1)
    return out


