"""Regression gate: compare a candidate's results with a baseline's, case by case.

A gate that cries wolf gets switched off, so a regression must be real beyond
reasonable doubt, and the doubt includes what moves between runs of unchanged code.

The rule, per case matched by its config key (``case_id``):

* **ratio** = candidate level / baseline level, a side's level being the median step
  time (the geometric mean of run medians when a side holds repeated runs);
* **interval**: a percentile bootstrap of the ratio in which every draw resamples each
  run's steps *and* shifts each run's level by a random factor with standard deviation
  ``sigma``, the noise model's run-to-run shift (``noise``); its ends are the alpha and
  1 - alpha quantiles, so "above 1" is a one-sided test at level alpha;
* **p**: a two-sided Mann-Whitney U test of all baseline steps against all candidate
  steps (tie-corrected, normal approximation);
* **regression**: ratio > 1 + threshold, p < alpha and the interval above 1;
  **improvement**: the mirror image (ratio < 1 / (1 + threshold));
  **noisy**: beyond the threshold either way but not both significant;
  **unchanged**: within the threshold; **new** / **missing**: on one side only;
  **failed**: the candidate has no successful measurement (gates if the baseline had).
* Deterministic metrics: parameters and FLOPs count on any change, peak memory beyond
  the threshold, iterations to target (convergence) when the candidate's median over
  seeds leaves the baseline seeds' range and moves beyond the threshold. An increase is a
  regression, whatever the timing says.
* If GPU, driver, torch, CUDA, CPU model or thread count differ, the comparison is
  informational and gates nothing, unless ``allow_env_mismatch``.

Why this rule. Measured with ``tests/data/make_noise_fixture.py``: a case's median
moves between runs of unchanged code minutes apart by more than its steps scatter within
a run. On a shared 2-core VM (2 threads) the shift was 4.1-6.4% between runs that had
the cores to themselves (ResNet-18 bs8 64x64: 18.1-20.8 ms), and runs that overlapped
another benchmark were 2-50x slower with steady steps; on an H100, ResNet-18/50 moved
0.1-0.7% and host-bound LeNet/ResNet-20 training 11-16%. A U test or a bootstrap on the
steps of one run each sees only the within-run scatter and flags such shifts at any
alpha. With the shift in the interval, false regressions on pairs drawn from that noise
were 0.3% (CPU) and 0.2% (GPU) of 1000, and 4 of 450 real GPU run pairs (0.9%).
A 10% slowdown was found in 100% of GPU compute-bound pairs; on the CPU one run per side
cannot prove it (3.9% regression, 73% noisy), ten interleaved runs per side found 85%.
The threshold keeps significant but tiny changes out of the gate. Requiring the *whole
interval* beyond the threshold was rejected: it needs the true change to exceed the
threshold by several noise widths, blinding the gate to 10% wherever runs shift by more
than about 1.5%. No statistic can tell a run that shared its cores with another
benchmark from a regression: gate on dedicated machines, interleave baseline and
candidate (several runs per side estimate the shift from their own spread and average
it down), and read a CPU comparison on a shared machine as informational.
"""
from .verdict import Comparison, Options, compare

__all__ = ["Comparison", "Options", "compare"]
