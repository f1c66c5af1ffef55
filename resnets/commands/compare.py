"""Compare a candidate run with a baseline run, case by case; exit 1 on a regression.

BASELINE and CANDIDATE are result files, run folders or quoted globs; several runs on a
side (repeats, interleaved A/B runs) pool their steps and measure their own run-to-run
noise. Per case: the ratio of median step times with a bootstrap interval that includes
the run-to-run level shift, and a Mann-Whitney U test on the steps. A regression needs
the change beyond --threshold, p < --alpha AND the interval clear of 1; beyond the
threshold without both is "noisy", never a failure. Why: step medians of unchanged code
move between runs (4-6% on a 2-core CPU, 0.1-0.7% for GPU compute-bound cases), so the
steps of one run alone over-state significance. What it can see: on the 2-core CPU one
run per side found 55% of +30% and 97% of +50% slowdowns, ten interleaved runs per side
85% of +10%; on a GPU every +10% slowdown of a compute-bound case. Parameters and FLOPs
count on any change, peak memory beyond the threshold. If the environments differ (GPU,
driver, torch, CUDA, CPU model, threads) the result is informational unless
--allow-env-mismatch. Exit codes: 0 no regression, 1 regression (or a newly failing
case), 2 bad input.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="BASELINE", help="result file, run folder or glob")
    p.add_argument("candidate", metavar="CANDIDATE", help="result file, run folder or glob")
    p.add_argument("--threshold", type=float, default=0.05, metavar="F",
                   help="smallest change that counts, as a fraction (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level of the test and the interval (default 0.01)")
    p.add_argument("--noise", type=float, metavar="F",
                   help="per-run level shift to assume at least, as a fraction (default: "
                        "measured floor per device, 0.075 cpu, 0.005 cuda)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--allow-env-mismatch", action="store_true",
                   help="gate even if the two environments differ")
    p.add_argument("--fail-on-missing", action="store_true",
                   help="a case the baseline has and the candidate lacks gates like a regression "
                        "(use when both sides ran the same selection: a crash leaves no result)")
    p.add_argument("--markdown", metavar="FILE", help="also write a Markdown summary here")
    p.add_argument("--json", metavar="FILE", help="also write every number as JSON here")


def main(args: argparse.Namespace) -> int:
    from ..compare import Options, compare
    from ..compare.render import markdown, table, to_json
    from ..store import atomic_write_text

    options = Options(alpha=args.alpha, threshold=args.threshold, noise=args.noise,
                      resamples=args.resamples, allow_env_mismatch=args.allow_env_mismatch,
                      fail_on_missing=args.fail_on_missing)
    result = compare([args.baseline], [args.candidate], options)
    print(table(result))
    if args.markdown:
        atomic_write_text(Path(args.markdown), markdown(result))
    if args.json:
        atomic_write_text(Path(args.json), to_json(result))
    return result.exit_code
