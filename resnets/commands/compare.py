"""Compare a candidate run with a baseline run, case by case; exit 1 on a regression.

BASELINE and CANDIDATE are result files, run folders or quoted globs; several runs on a
side (repeats) measure their own run-to-run noise; runs made by `resnets gate` are
compared pair by pair, block by block. Per case: the ratio of median step times, its
interval with the run-to-run shift included, and a p-value; a regression needs the
change beyond --threshold and p < --alpha after Holm's correction over all cases (so
--alpha bounds the chance of any false alarm in the whole comparison); beyond the
threshold without that, or measured while the machine was busy, is "noisy", never a
failure (see resnets.compare for the rule and the measured noise behind it).
Parameters and FLOPs count on any change, peak memory beyond the threshold. If the
environments differ (GPU, driver, torch, CUDA, CPU model and capability, threads) the result is
informational unless --allow-env-mismatch. Exit codes: 0 no
regression, 1 regression (or a newly failing case), 2 bad input.
"""
from __future__ import annotations

import argparse

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="BASELINE", help="result file, run folder or glob")
    p.add_argument("candidate", metavar="CANDIDATE", help="result file, run folder or glob")
    options.add_options(p.add_argument, "--", [*options.GATE, options.STRICT])
    p.add_argument("--noise", type=options.non_negative_share, metavar="F",
                   help="per-run level shift to assume at least: 2%% or 0.02 (default: "
                        "measured floor per device, see resnets.compare.noise)")
    p.add_argument("--allow-env-mismatch", action="store_true",
                   help="gate even if the two environments differ")
    p.add_argument("--fail-on-missing", action="store_true",
                   help="a case the baseline has and the candidate lacks gates like a regression "
                        "(use when both sides ran the same selection: a crash leaves no result)")
    p.add_argument("--markdown", type=checks.path, metavar="FILE",
                   help="also write a Markdown summary here")
    p.add_argument("--json", type=checks.path, metavar="FILE",
                   help="also write every number as JSON here")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="also write compare.md and compare.json into DIR")


def main(args: argparse.Namespace) -> int:
    from ..compare import Options, compare
    from ..compare.render import markdown, table, to_json
    from ..store import atomic_write_text

    opts = Options(alpha=args.alpha, threshold=args.threshold, noise=args.noise,
                   strict=args.strict,
                   allow_env_mismatch=args.allow_env_mismatch,
                   fail_on_missing=args.fail_on_missing)
    result = compare([args.baseline], [args.candidate], opts)
    outputs = {args.markdown: markdown, args.json: to_json}
    if args.out:
        outputs.update({args.out / "compare.md": markdown, args.out / "compare.json": to_json})
    # Written before the verdict is printed: a path we cannot write is exit 2, and then
    # nothing has claimed "OK".
    for path, render in outputs.items():
        if path is not None:
            atomic_write_text(path, render(result))
    print(table(result))
    return result.exit_code
