"""Follow every case across runs, find its change points; exit 1 on a recent slowdown.

Runs (folders, files or quoted globs) are grouped by environment (GPU, driver, torch,
CUDA, CPU model, threads) and ordered by commit time. Each series of run medians is cut
where its level changes (E-divisive means, as Hunter / Apache Otava do): a shift counts
when its size is beyond --threshold and a t-test against the series' own run-to-run
noise gives p < --alpha (adjusted for the places it could have been), with at least
--persist runs on each side; several shifts per series are found and reported each with
its run, commit, size, 95% interval and p-value. One run out at the end is only
"unconfirmed". Writes index.html (one self-contained page: every series with its trend,
the shifts with their commits, bisect results), history.md and a trend plot (PNG) per
series with a shift into -o DIR (default reports/history-<UTC time>). Bisect results are
read from bisect.json in any run folder (e.g. the first run at the new level) and from
--bisect FILE: {case_id: {"first_bad": sha, "change": ratio, "low": ratio, "high": ratio}},
the ratio being the first bad commit's step time over the good end's (1.3 = 30% slower).
Exit codes: 0 no recent slowdown, 1 a slowdown shift starting within the last --window
runs, 2 bad input.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="DIR|GLOB",
                   help="run folders, result files or globs")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="where index.html, history.md and the plots go (default "
                        "reports/history-<UTC time>)")
    p.add_argument("--bisect", type=Path, action="append", default=[], metavar="FILE",
                   help="bisect results (JSON) to show beside the shifts; may repeat")
    options.add_options(p.add_argument, "--", [*options.GATE, options.STRICT])
    p.add_argument("--persist", type=options.positive_int, default=2, metavar="N",
                   help="fewest runs in a segment, so on each side of a shift: a shift "
                        "needs N runs at its new level (default 2)")
    p.add_argument("--window", type=options.positive_int, default=5, metavar="N",
                   help="a slowdown fails the command when it starts within the last N "
                        "runs of its series (default 5)")


def main(args: argparse.Namespace) -> int:
    from ..history import Options, bisect_results, history, terminal, write
    from ..store import default_out

    opts = Options(threshold=args.threshold, alpha=args.alpha, persist=args.persist,
                   strict=args.strict,
                   window=args.window)
    series = history(args.paths, opts)
    bisect = bisect_results(args.paths, args.bisect)
    summary = write(series, args.out or default_out("history"), opts, bisect)
    print(terminal(series))
    print(f"resnets history: summary {summary}")
    return 1 if any(s.failing for s in series) else 0
