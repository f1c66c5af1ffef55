"""Write the report (index.html, summary.md, results.csv, tables/, plots/) for result files.

RESULTS are pytest-benchmark JSON files, run folders (reports/<run-id>/), folders of JSON
such as .benchmarks/, or globs; several runs add a trend plot. A damaged case file inside
a folder is skipped with a warning and counted (--strict refuses instead). Accuracy tables
(``resnets accuracy``) come from --accuracy and from the run folders. Needs no torch.
"""
from __future__ import annotations

import argparse

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, folders or globs")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="output folder (default reports/report-<UTC timestamp>)")
    p.add_argument("--baseline", metavar="VARIANT",
                   help="variant the speed-ups divide by (default contiguous-fp32-eager), "
                        "e.g. channels_last-fp32-eager")
    options.add_options(p.add_argument, "--", [options.STRICT, *options.ACCURACY])


def main(args: argparse.Namespace) -> int:
    from .. import runlock
    from ..errors import UserError
    from ..report import write_report
    from ..store import default_out, writable

    out = args.out or default_out("report")
    writable(out)
    try:
        with runlock.if_run(out):  # into a run folder: never while a run writes it
            write_report(args.results, out, args.baseline, strict=args.strict,
                         accuracy=args.accuracy or (), max_drop=args.max_accuracy_drop)
    except OSError as exc:  # reading is checked by the loader; this is the output folder
        raise UserError(f"{exc.filename or out}: cannot write the report there "
                        f"({exc.strerror or exc})") from None
    print(out / "index.html")
    return 0
