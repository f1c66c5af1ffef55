"""Run the benchmark suite (the quick preset by default) and write its report.

Results land in reports/<run-id>/cases/ one file per case as each case finishes; the
report (index.html, summary.md, results.csv, plots/) is written when the run ends.
Interrupted? `resnets run --resume reports/<run-id>` measures only what is missing.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import options
from ..errors import UserError

OPTIONS_FILE = "run-options.json"
PYTEST_PREFIX = "--bench-"


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_options(p.add_argument, "--", options.SUITE)
    p.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run in RUN_DIR")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cases and their estimated time, run nothing")
    options.add_options(p.add_argument, "--", [options.RETRY_CRASHED])
    p.add_argument("--no-report", action="store_true", help="results only, no report")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="extra arguments for pytest, after --")


def _given(args: argparse.Namespace) -> dict:
    """The suite options that differ from their defaults (what the run was asked for)."""
    given = options.values(args, "--", options.SUITE)
    return {o.name: given[o.name] for o in options.SUITE if given[o.name] != o.initial}


def _resumed(args: argparse.Namespace) -> tuple[Path, dict]:
    run_dir = Path(args.resume)
    saved = run_dir / OPTIONS_FILE
    if not saved.is_file():
        raise UserError(f"--resume {run_dir}: not a run folder (no {OPTIONS_FILE}); "
                        "pass the folder `resnets run` created")
    given = _given(args)
    if given:
        raise UserError("--resume reuses the run's own options; drop " +
                        ", ".join(f"--{k.replace('_', '-')}" for k in given))
    from ..files import read_json

    start_anew = "this run cannot be resumed: start a new one"
    try:
        stored = read_json(saved)
    except UserError as exc:
        raise UserError(f"{exc}; {start_anew}") from None
    if not isinstance(stored, dict) or set(stored) - {o.name for o in options.SUITE}:
        raise UserError(f"{saved}: written by another version of resnets; {start_anew}")
    try:
        return run_dir, options.restore(options.SUITE, stored)
    except UserError as exc:
        raise UserError(f"{saved}: {exc}; {start_anew}") from None


def pytest_command(run_dir: Path, opts: dict, extra: list[str]) -> list[str]:
    """The pytest command line that runs the suite with ``opts`` into ``run_dir``. It loads
    pytest-benchmark and the suite's plugin, no other (PYTEST_DISABLE_PLUGIN_AUTOLOAD in
    its environment): another installed plugin can neither change what is timed nor add its
    imports to every run's start (hypothesis': a second); ``-- -p NAME`` loads one."""
    from ..suite import convergence, speed

    # -P: no working folder on the path, so a run started inside another checkout of this
    # project imports this resnets, not that one (pytest: "import file mismatch").
    cmd = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "pytest",
           speed.__file__, convergence.__file__, "-p", "pytest_benchmark.plugin",
           "-p", "resnets.suite.plugin", "-p", "no:cacheprovider", "--rootdir", str(run_dir),
           "-c", os.devnull, "--benchmark-only", "--benchmark-sort=name", "-v"]
    for o in options.SUITE:
        if o.name in opts and o.name != "out":
            cmd += o.argv(PYTEST_PREFIX, opts[o.name])
    return cmd + ["--bench-out", str(run_dir), *extra]


def dry_run(opts: dict) -> int:
    """The plan: every case with its estimated seconds, the count and the total."""
    from .. import plan
    from ..measure.workload import runtime_skip_reason
    from ..text import duration, text_table

    full = {o.name: o.initial for o in options.SUITE} | opts
    planned = plan.select(full)
    cases, trials = planned.cases, planned.trials
    rows, skipped = [], 0
    for item, e in zip([*cases, *trials], plan.run_estimates(full, cases, trials)):
        here = runtime_skip_reason(item.case if hasattr(item, "case") else item)
        if here:
            skipped += 1
            e = plan.Estimate(e.name, 0.0, f"skipped here: {here}")
        rows.append(e)
    total = sum(e.seconds for e in rows) + plan.COST["run_overhead_s"]
    sources = sorted({e.source for e in rows if e.seconds})
    print(text_table(("case", "estimate", "from"),
                     [(e.name, duration(e.seconds) if e.seconds else "-", e.source)
                      for e in rows], [False, True, False]))
    print(f"\n{len(cases)} speed case(s), {len(trials)} convergence run(s)"
          + (f" (shard {full['shard'][0]} of {full['shard'][1]})" if full["shard"] else "")
          + f", {skipped} of them skipped here; estimated total {total / 60:.1f} min (from "
            f"{' and '.join(sources) or '-'}, plus {plan.COST['run_overhead_s']:.0f} s to "
            f"start and report).")
    return 0


def main(args: argparse.Namespace) -> int:
    from .. import children, plan, runlock, store

    if args.dry_run:
        if args.resume:
            raise UserError("--dry-run plans a new run; drop --resume")
        return dry_run(_given(args))
    # Bad input is one line here, before the lock makes a folder: a --resume of a path
    # that is not a run, a selection the suite would refuse.
    # The plan is made here, once; the pytest child reads it (plan.PLAN_FILE).
    if args.resume:
        run_dir, opts = _resumed(args)
    else:
        opts = _given(args)
        run_dir = Path(args.out or store.REPORTS_DIR / store.run_id())
        store.writable(run_dir)
    stored_plan = run_dir / plan.PLAN_FILE
    planned = (plan.Plan.load(stored_plan) if args.resume and stored_plan.exists() else
               plan.select({o.name: o.initial for o in options.SUITE} | opts))
    with runlock.hold(run_dir):
        if not args.resume:
            if (run_dir / store.CASES_DIR).is_dir():
                raise UserError(f"--out {run_dir}: already holds a run; pick a new folder, or "
                                f"finish that run with: resnets run --resume {run_dir}")
            store.atomic_write_text(run_dir / OPTIONS_FILE, store.dumps(_json_ready(opts)))
        store.atomic_write_text(run_dir / plan.PLAN_FILE, planned.to_json())
        cmd = pytest_command(run_dir, opts, args.pytest_args)
        cmd += options.PLAN_FILE.argv(PYTEST_PREFIX, str(run_dir / plan.PLAN_FILE))
        if args.retry_crashed:
            cmd += options.RETRY_CRASHED.argv(PYTEST_PREFIX, True)
        print(f"resnets run: {opts.get('preset', 'quick')} preset -> {run_dir}", file=sys.stderr,
              flush=True)
        # The suite imports the resnets this command runs (its folder first on the path).
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               runlock.HELD_ENV: str(run_dir.resolve()),
               "PYTHONPATH": os.pathsep.join(filter(None, [here,
                                                           os.environ.get("PYTHONPATH")]))}
        code, signum = children.run(cmd, env)
    done = len(store.finished_case_ids(run_dir))
    kept = (f"{done} finished cases kept in {run_dir}; finish with: "
            f"resnets run --resume {run_dir}")
    if signum is not None:
        print(f"resnets run: interrupted; {kept}", file=sys.stderr)
        return children.EXIT_CODES[signum]
    if code not in (0, 1, 5):  # 1: some case failed (recorded); 5: nothing selected
        raise UserError(f"the suite stopped (pytest exit {code}); {kept}")
    if not args.no_report and done:
        _report(run_dir)
    return 1 if code == 1 else 0


def _json_ready(opts: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}


def _report(run_dir: Path) -> None:
    from ..report import write_report

    out = write_report([run_dir], run_dir)
    print(f"resnets run: report {out / 'index.html'}", file=sys.stderr)
