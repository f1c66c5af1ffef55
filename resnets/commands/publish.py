"""Add a finished run to the history branch of a git remote (what the nightly job does).

Copies RUN_DIR's cases/*.json, run-state.json and run-options.json into runs/<run name>/
on --branch (default benchmark-results) of --remote, commits and pushes; a push that loses
a race with another job is rebased and tried again. Only regular files are copied: a
symlink, FIFO, device, folder or oversized file in the run is skipped with a warning. A
run that did not attempt every planned case is refused unless --partial, which publishes
it as runs/<name>-partial/ (resnets history leaves those out). Exit codes: 0 published,
2 bad input or a push that kept failing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder (resnets run -o)")
    p.add_argument("--remote", required=True, help="git remote URL or path of the history")
    p.add_argument("--branch", default="benchmark-results", help="(default: %(default)s)")
    p.add_argument("--name", help="folder name under runs/ (default: the run folder's name)")
    p.add_argument("--partial", action="store_true",
                   help="publish an incomplete run, marked as partial")
    p.add_argument("--retries", type=options.non_negative_int, default=5, metavar="N",
                   help="pushes to retry after a rejected one (default 5)")


def main(args: argparse.Namespace) -> int:
    from ..publish import publish

    where = publish(args.run, args.remote, args.branch, args.partial, args.retries, args.name)
    print(f"resnets publish: {args.run} -> {args.branch}:{where}")
    return 0
