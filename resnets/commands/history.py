"""Follow every case across runs and flag level shifts that persist; exit 1 on a recent slowdown.

Runs (folders, files or quoted globs) are grouped by environment (GPU, driver, torch,
CUDA, CPU model, threads) and ordered by commit time. One run beyond the threshold is
noise (step medians of unchanged code move between runs); a shift is flagged only when
--persist consecutive runs (default 2) sit beyond both --threshold and the series' own
run-to-run noise at --alpha, on the same side of the level before them. Writes
history.md and a trend plot (PNG) per flagged case into -o DIR (default
reports/history-<UTC time>). Exit codes: 0 no recent slowdown, 1 a slowdown shift
starting within the last --window runs, 2 bad input.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="DIR|GLOB",
                   help="run folders, result files or globs")
    p.add_argument("-o", "--out", type=Path, metavar="DIR",
                   help="where history.md and the plots go (default reports/history-<UTC time>)")
    options.add_options(p.add_argument, "--", options.GATE)
    p.add_argument("--persist", type=options.positive_int, default=2, metavar="N",
                   help="consecutive runs beyond the band that make a shift (default 2)")
    p.add_argument("--window", type=options.positive_int, default=5, metavar="N",
                   help="runs in the reference level, and how recent a shift must be to "
                        "fail (default 5)")


def main(args: argparse.Namespace) -> int:
    from ..history import Options, history, terminal, write
    from ..store import default_out

    opts = Options(threshold=args.threshold, alpha=args.alpha, persist=args.persist,
                   window=args.window)
    series = history(args.paths, opts)
    summary = write(series, args.out or default_out("history"), opts)
    print(terminal(series))
    print(f"resnets history: summary {summary}")
    return 1 if any(s.failing for s in series) else 0
