"""The pull-request regression gate: merge-base against head, timed paired; exit 1 on a regression.

Checks out the merge-base of --base and --head (default: origin/main and HEAD of the
repository here) as git worktrees, or takes two source folders (--base-src, --head-src),
then times every case of the preset (default: gate) on both versions side by side, in
alternating blocks, both versions in one worker process (so the machine's drift lands on
both), repeats in fresh pairs the cases whose noise would hide a slowdown of twice
--threshold and those beyond it that only one pair has seen (--repeats auto, at most 3
passes), and compares: Holm's correction keeps the chance of any false alarm in
the whole gate at --alpha. Writes -o DIR: base/ and head/ run folders, compare.md (the PR
comment body, under 60,000 characters), compare.json and gate.json. Exit codes: 0 no
regression, 1 regression (or a case that newly fails), 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .. import checks, options


def _repeats(text: str):
    if text == "auto":
        return text
    value = options.positive_int(text)
    if value > 3:
        raise options.Invalid(f"at most 3 passes, not {value}")
    return value


def _blocks(text: str) -> int:
    from ..compare.significance import MIN_BLOCK_PAIRS  # numpy: only when --blocks is given

    value = options.positive_int(text)
    if value < MIN_BLOCK_PAIRS:
        raise options.Invalid(f"at least {MIN_BLOCK_PAIRS} (fewer block pairs give a case "
                              f"no verdict, so the gate could not fail), not {value}")
    return value


def _revision(text: str) -> str:
    """A --base/--head value that git could take for an option is refused here, first."""
    from ..errors import UserError
    from ..git import check_revision

    try:
        return check_revision(text)
    except UserError as exc:
        raise options.Invalid(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("what to compare")
    src.add_argument("--repo", type=Path, default=Path("."), metavar="DIR",
                     help="git repository holding both versions (default: here)")
    src.add_argument("--base", type=_revision, default="origin/main", metavar="REF",
                     help="the branch the PR goes into; its merge-base with --head is "
                          "measured (default origin/main)")
    src.add_argument("--head", type=_revision, default="HEAD", metavar="REF",
                     help="the PR's head (default HEAD)")
    src.add_argument("--base-src", type=Path, metavar="DIR",
                     help="use this checkout as the baseline instead of a worktree")
    src.add_argument("--head-src", type=Path, metavar="DIR",
                     help="use this checkout as the candidate instead of a worktree")
    src.add_argument("--base-python", metavar="PY",
                     help="Python with the baseline's dependencies (default: this one)")
    src.add_argument("--head-python", metavar="PY",
                     help="Python with the candidate's dependencies (default: this one)")
    src.add_argument("--two-processes", action="store_true",
                     help="one worker process per side even with one Python (the mode two "
                          "Pythons need; its noise prior is its own)")
    preset, *matrix = options.MATRIX
    options.add_options(p.add_argument, "--", [
        replace(preset, default="gate", help="case matrix preset (default gate)"),
        *matrix, *options.TIMING, *options.GATE])
    p.add_argument("--repeats", type=_repeats, default="auto", metavar="auto|N",
                   help="passes over the cases: auto (from the measured noise, at most 3) "
                        "or 1-3 (default auto)")
    p.add_argument("--blocks", type=_blocks, default=10, metavar="N",
                   help="alternating blocks per side and case (enough pairs for a verdict; "
                        "default 10)")
    p.add_argument("--case-timeout", type=options.positive_float, metavar="S",
                   help="a case whose sides give no answer in this many seconds counts as "
                        "hung: a newly failing case (default: 300, or 30x the time budget, "
                        "plus 20 minutes when compiled)")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="output folder (default reports/gate-<UTC time>)")


def timing_settings(args: argparse.Namespace):
    """The measuring settings of the timing options (``options.TIMING``), the budget
    defaulting to the preset's: the gate's, and ``resnets bisect``'s."""
    from .. import presets
    from ..measure.runner import Settings
    from ..measure.timer import TimingPolicy

    budget = args.time_budget or presets.PRESETS[args.preset]["budget_s"]
    return Settings(policy=TimingPolicy(budget_s=budget, rel_ci=args.rel_ci,
                                        min_rounds=args.min_rounds),
                    threads=args.threads, flush_denormal=not args.no_flush_denormal,
                    measure_energy=False)  # not judged; would cost 2 s a side and case


def main(args: argparse.Namespace) -> int:
    from .. import gate, presets, store
    from ..compare import Options
    from ..errors import UserError

    out = args.out or store.default_out("gate")
    gate.check_empty(out)
    compare_opts = Options(alpha=args.alpha, threshold=args.threshold)
    compare_opts.check()  # before any checkout or measurement, not after a whole pass
    selection = presets.Selection.from_options(vars(args))
    cases = selection.cases()
    if not cases:
        raise UserError("the filters select no case")
    settings = timing_settings(args)
    made, commits = [], {}
    sources = {"base": args.base_src, "head": args.head_src}
    try:
        if sources["base"] is None or sources["head"] is None:
            trees = gate.worktrees(args.repo, args.base, args.head, out / "src", made)
            for side, (folder, sha) in trees.items():
                sources[side] = sources[side] or folder
                commits[side] = sha
        result = gate.run_gate(
            cases, settings, sources, out,
            compare_opts,
            pythons={"base": args.base_python, "head": args.head_python},
            repeats=args.repeats, blocks=args.blocks, commits=commits,
            two_processes=args.two_processes, case_timeout=args.case_timeout,
            progress=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        gate.remove_worktrees(args.repo, made)
    print(f"resnets gate: {out / 'compare.md'} ({result.seconds / 60:.1f} min)",
          file=sys.stderr)
    return result.comparison.exit_code
