"""Write the report (index.html, summary.md, results.csv, tables/, plots/) for result files.

RESULTS are pytest-benchmark JSON files, run folders (reports/<run-id>/), folders of JSON
such as .benchmarks/, or globs; several runs add a trend plot. A damaged case file inside
a folder is skipped with a warning and counted (--strict refuses instead). Accuracy tables
(``resnets accuracy``) come from --accuracy and from the run folders. Needs no torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, folders or globs")
    p.add_argument("-o", "--out", type=Path, metavar="DIR",
                   help="output folder (default reports/report-<UTC timestamp>)")
    p.add_argument("--baseline", metavar="VARIANT",
                   help="variant the speed-ups divide by (default contiguous-fp32-eager), "
                        "e.g. channels_last-fp32-eager")
    p.add_argument("--strict", action="store_true",
                   help="refuse a damaged result file instead of skipping it")
    options.add_options(p.add_argument, "--", options.ACCURACY)


def main(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..report import write_report
    from ..store import default_out

    out = args.out or default_out("report")
    try:
        write_report(args.results, out, args.baseline, strict=args.strict,
                     accuracy=args.accuracy or (), max_drop=args.max_accuracy_drop)
    except OSError as exc:  # reading is checked by the loader; this is the output folder
        raise UserError(f"{exc.filename or out}: cannot write the report there "
                        f"({exc.strerror or exc})") from None
    print(out / "index.html")
    return 0
