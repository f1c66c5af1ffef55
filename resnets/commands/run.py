"""Run the benchmark suite (the quick preset by default) and write its report.

Results land in reports/<run-id>/cases/ one file per case as each case finishes; the
report (index.html, summary.md, results.csv, plots/) is written when the run ends.
Interrupted? `resnets run --resume reports/<run-id>` measures only what is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import UserError

OPTIONS_FILE = "run-options.json"
# CLI option -> pytest option; each takes a comma-separated list (see `presets`).
FILTERS = {"models": "--bench-models", "modes": "--bench-modes", "devices": "--bench-devices",
           "formats": "--bench-formats", "precisions": "--bench-precisions",
           "compile": "--bench-compile", "batch_sizes": "--bench-batch-sizes"}
FLAGS = {"isolate": "--bench-isolate", "max_batch": "--bench-max-batch",
         "profile_ops": "--bench-profile-ops", "no_convergence": "--no-bench-convergence",
         "download": "--bench-download"}
# CLI option -> pytest option, one value each.
VALUES = {"experiments": "--bench-experiments", "dataset": "--bench-dataset",
          "data_root": "--bench-data-root", "time_budget": "--bench-time-budget",
          "threads": "--bench-threads"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..measure.presets import PRESETS

    p.add_argument("--preset", default="quick", choices=list(PRESETS),
                   help="quick (CPU, ~5 min) or full (GPU runners)")
    for name in FILTERS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="A,B",
                       help=f"comma-separated {name.replace('_', ' ')} (default: the preset's)")
    p.add_argument("--time-budget", type=float, metavar="S", help="seconds of timed rounds per case")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--isolate", action="store_true", help="each case in a fresh subprocess")
    p.add_argument("--max-batch", action="store_true", help="find the largest batch that fits on CUDA")
    p.add_argument("--profile-ops", action="store_true", help="attach operator/layer profiles")
    p.add_argument("--no-convergence", action="store_true", help="speed cases only, no training runs")
    p.add_argument("--experiments", metavar="A,B", help="convergence experiments (bn, degradation)")
    p.add_argument("--dataset", help="dataset for every convergence run (default: each experiment's)")
    p.add_argument("--data-root", metavar="DIR", help="folder with fashion-mnist / cifar10")
    p.add_argument("--download", action="store_true", help="download missing datasets to --data-root")
    p.add_argument("--out", metavar="DIR", help="run folder (default reports/<run-id>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run in RUN_DIR")
    p.add_argument("--no-report", action="store_true", help="results only, no report")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="extra arguments for pytest, after --")


def _options(args: argparse.Namespace) -> dict:
    opts = {"preset": args.preset}
    opts.update({k: getattr(args, k) for k in [*FILTERS, *FLAGS, *VALUES]})
    return opts


def _resumed(args: argparse.Namespace) -> tuple[Path, dict]:
    run_dir = Path(args.resume)
    saved = run_dir / OPTIONS_FILE
    if not saved.is_file():
        raise UserError(f"--resume {run_dir}: not a run folder (no {OPTIONS_FILE}); "
                        "pass the folder `resnets run` created")
    given = {k: v for k, v in _options(args).items() if v not in (None, False, "quick")}
    if given or args.out:
        raise UserError("--resume reuses the run's own options; drop " +
                        ", ".join(f"--{k.replace('_', '-')}" for k in given or ["out"]))
    try:
        return run_dir, json.loads(saved.read_text())
    except ValueError as exc:
        raise UserError(f"{saved}: not valid JSON ({exc})") from None


def _check(opts: dict) -> None:
    """Fail fast, in one line, on values the suite would reject after importing torch."""
    from .. import models
    from ..measure.presets import Selection

    from .. import convergence, data
    from ..measure.presets import split

    Selection.parse(opts["preset"], *(opts[k] for k in FILTERS), known_models=models.names())
    split(opts["experiments"], "--experiments", tuple(convergence.EXPERIMENTS))
    if opts["dataset"] is not None and opts["dataset"] not in data.NAMES:
        raise UserError(f"--dataset: invalid value {opts['dataset']!r} (valid: {', '.join(data.NAMES)})")
    for key in ("time_budget", "threads"):
        if opts[key] is not None and opts[key] <= 0:
            raise UserError(f"--{key.replace('_', '-')} must be > 0, not {opts[key]}")


def pytest_command(run_dir: Path, opts: dict, extra: list[str]) -> list[str]:
    from ..suite import convergence, speed

    cmd = [sys.executable, "-m", "pytest", speed.__file__, convergence.__file__,
           "-p", "resnets.suite.plugin",
           "-p", "no:cacheprovider", "--rootdir", str(run_dir), "-c", os.devnull,
           "--benchmark-only", "--benchmark-sort=name", "-v", "--bench-out", str(run_dir),
           "--bench-preset", opts["preset"]]
    for key, flag in FILTERS.items():
        if opts[key]:
            cmd += [flag, opts[key]]
    for key, flag in FLAGS.items():
        if opts[key]:
            cmd.append(flag)
    for key, flag in VALUES.items():
        if opts[key] is not None:
            cmd += [flag, str(opts[key])]
    return cmd + extra


def main(args: argparse.Namespace) -> int:
    from .. import store
    from ..suite.plugin import run_id

    if args.resume:
        run_dir, opts = _resumed(args)
    else:
        opts = _options(args)
        _check(opts)
        run_dir = Path(args.out or Path("reports") / run_id())
        if (run_dir / store.CASES_DIR).is_dir():
            raise UserError(f"--out {run_dir}: already holds a run; pick a new folder, or finish "
                            f"that run with: resnets run --resume {run_dir}")
        store.atomic_write_text(run_dir / OPTIONS_FILE, json.dumps(opts, indent=1))
    cmd = pytest_command(run_dir, opts, args.pytest_args)
    print(f"resnets run: {opts['preset']} preset -> {run_dir}", file=sys.stderr, flush=True)
    try:
        code = subprocess.call(cmd)
    except KeyboardInterrupt:
        code = 130
    done = len(store.finished_case_ids(run_dir))
    if code not in (0, 1, 5):  # 1: some case failed (recorded); 5: nothing selected
        raise UserError(f"the suite stopped (pytest exit {code}); {done} finished cases kept in "
                        f"{run_dir}; finish with: resnets run --resume {run_dir}")
    if not args.no_report and done:
        _report(run_dir)
    return 1 if code == 1 else 0


def _report(run_dir: Path) -> None:
    from ..report import write_report

    out = write_report([run_dir], run_dir)
    print(f"resnets run: report {out / 'index.html'}", file=sys.stderr)
