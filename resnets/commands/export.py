"""Export speed results for github-action-benchmark, Bencher or Apache Otava.

--format gab: github-action-benchmark's custom JSON, customBiggerIsBetter.json
(throughput in samples/s, utilization) and customSmallerIsBetter.json (step time,
peak memory, energy per sample where measured) in -o DIR. --format bmf: the Bencher
Metric Format with 95% intervals as lower/upper values, to -o FILE or standard output.
gab and bmf take one run (their dashboards keep the history). --format otava: for any
number of runs (a history), one CSV per case (time, commit, branch, machine, run, one
column per measure, a row per run) and the otava.yaml that declares them, in -o DIR.
Folders default to reports/export-<UTC time>. Needs no torch. Exit codes: 0 written,
2 bad input.
"""
from __future__ import annotations

import argparse

from .. import checks, options

FORMATS = ("gab", "bmf", "otava")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders, result files or globs (gab and bmf: one run)")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="gab (github-action-benchmark), bmf (Bencher) or otava (Apache Otava)")
    options.add_options(p.add_argument, "--", [options.STRICT])
    p.add_argument("-o", "--out", type=checks.path, metavar="PATH",
                   help="bmf: the file (default standard output); gab, otava: the folder "
                        "(default reports/export-<UTC time>)")


def main(args: argparse.Namespace) -> int:
    from ..export import export
    from ..store import default_out

    out = args.out
    if out is None and args.format != "bmf":
        out = default_out("export")
    written = export(args.runs, args.format, out, args.strict)
    if isinstance(written, str):
        print(written, end="")
    else:
        for path in written:
            print(f"resnets export: wrote {path}")
    return 0
