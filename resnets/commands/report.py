"""Write the report (index.html, summary.md, results.csv, tables/, plots/) for result files.

RESULTS are pytest-benchmark JSON files, run folders (reports/<run-id>/), folders of JSON
such as .benchmarks/, or globs; several runs add a trend plot. Needs no torch.
"""
from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, folders or globs")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="output folder (default reports/report-<UTC timestamp>)")
    p.add_argument("--baseline", metavar="VARIANT",
                   help="variant the speed-ups divide by (default contiguous-fp32-eager), "
                        "e.g. channels_last-fp32-eager")


def default_out() -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"report-{stamp}"


def main(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..report import write_report

    out = Path(args.out) if args.out else default_out()
    try:
        write_report(args.results, out, args.baseline)
    except OSError as exc:  # reading is checked by the loader; this is the output folder
        raise UserError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    print(out / "index.html")
    return 0
