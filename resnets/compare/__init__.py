"""Regression gate: compare a candidate's results with a baseline's, case by case.

A gate that cries wolf gets switched off, so a regression must be real beyond
reasonable doubt, and the doubt includes what moves between runs of unchanged code.

The rule, per case matched by its config key (``case_id``), on log time (a slowdown is a
difference, noise is multiplicative):

* **change** d = log(candidate level / baseline level), a side's level being its median
  step time (the mean of log run medians when a side holds repeated runs). For paired
  runs (``resnets gate``: both sides timed in alternating blocks, sharing ``pair`` ids)
  d is the median over adjacent block pairs of the log ratio of block medians, averaged
  over the pairs (``significance.paired_blocks``);
* **standard error** se of d: each run's median uncertainty (distribution-free, from
  order statistics) plus the noise model's run-to-run shift ``sigma`` per run (or per
  pair), updated by the spread of repeated runs (``noise``);
* **p**: the two-sided normal test of d / se, then **Holm's correction over every timed
  case**, so the chance of *any* false alarm in the whole comparison stays at alpha;
* **regression**: ratio > 1 + threshold and adjusted p < alpha; **improvement**: the
  mirror image; **noisy**: beyond the threshold without that proof, or, unpaired,
  measured while other work kept more than half a core busy (``measure.load``; no
  statistic tells a shared machine from slower code; paired blocks share the load);
  **unchanged**: within the threshold; **new** / **missing**: on one side only;
  **failed**: the candidate has no successful measurement (gates if the baseline had
  one). Each case also says the slowdown it could have detected (80% power at its noise).
* Deterministic metrics: parameters and FLOPs count on any change, peak memory beyond
  the threshold, iterations to target (convergence) when the candidate's median over
  seeds leaves the baseline seeds' range and moves beyond the threshold. An increase is a
  regression, whatever the timing says.
* If GPU, driver, torch, CUDA, CPU model or thread count differ, the comparison is
  informational and gates nothing, unless ``allow_env_mismatch``.

Why this rule. A case's median moves between runs of unchanged code more than its
steps scatter within a run (2-core VM: 4-21% between runs minutes apart; H100:
ResNet-18/50 0.1-0.7%, host-bound LeNet/ResNet-20 training 11-16%), so a test on one
run's steps flags such shifts at any alpha; the per-run shift in se is what keeps
unpaired comparisons honest. Pairing cancels most of it (both builds timed in one
process, block by block: sd of pair log ratios 2% on the CPU), which is what lets the
gate see 10% there. The threshold keeps significant but tiny changes out of the gate.
"""
from .verdict import Comparison, Options, compare

__all__ = ["Comparison", "Options", "compare"]
