"""Find the commit that made cases slower: a bisection timed paired, the gate's rule per probe.

Bisects the first-parent range from --good to --bad of the git repository here (--repo):
each probe is a commit checked out as a git worktree and timed paired against the good
end (and against the bad end when it is close to both), both versions in one process in
alternating blocks, as `resnets gate` times them, so the machine's drift cancels. A
probe is bad when its change from the good end is a regression by the gate's rule
(--threshold, --alpha), good when unchanged; an unclear one is timed once more and, if
still unclear, skipped like a commit that does not build or run (`git bisect skip`).
Only the cases that regressed between the ends are bisected (they share probes); a range
of n commits takes at most 1 + log2(n) probes without skips. --from-history RUNS bisects
each new slowdown shift `resnets history` finds there, between the commits of the runs
on either side of it, with the cases that shifted (no case selection then), and adds
the answers to the bisect.json of the first run at the new level. Writes -o DIR:
bisect.md (the first bad commit per case, with its change and 95% interval, and every
probe), bisect.json ({case_id: {first_bad, change, low, high}}, what `resnets history`
shows), probes.json (every probe and timing) and each timing's gate folder. Exit codes:
0 the first bad commit found (for every case that regressed), 1 not found, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .. import options
from .gate import _blocks, _repeats


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("what to bisect")
    src.add_argument("--repo", type=Path, default=Path("."), metavar="DIR",
                     help="git repository holding the commits (default: here)")
    src.add_argument("--good", metavar="REF", help="a commit without the slowdown")
    src.add_argument("--bad", metavar="REF", help="a later commit with it (its first "
                     "parents lead back to --good)")
    src.add_argument("--from-history", action="append", default=[], metavar="DIR|GLOB",
                     help="run folders (as `resnets history` takes them) whose new slowdown "
                          "shifts to bisect, instead of --good/--bad; may repeat")
    preset, *matrix = options.MATRIX
    options.add_options(p.add_argument, "--", [
        replace(preset, default="gate", help="case matrix preset (default gate; with "
                "--from-history only its time budget counts)"),
        *matrix, *options.TIMING, *options.GATE])
    p.add_argument("--repeats", type=_repeats, default="auto", metavar="auto|N",
                   help="passes per paired timing, as in `resnets gate` (default auto)")
    p.add_argument("--blocks", type=_blocks, default=10, metavar="N",
                   help="alternating blocks per side and case (default 10)")
    p.add_argument("-o", "--out", type=Path, metavar="DIR",
                   help="output folder (default reports/bisect-<UTC time>)")


def main(args: argparse.Namespace) -> int:
    from .. import bisect, history, presets, store
    from ..compare import Options
    from ..errors import UserError
    from ..git import commit_of
    from .gate import timing_settings

    opts = Options(alpha=args.alpha, threshold=args.threshold)
    opts.check()  # before any checkout or measurement
    out = args.out or store.default_out("bisect")
    settings = timing_settings(args)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.from_history:
        given = [f for f in (*presets.FILTERS, "global_batch") if getattr(args, f) is not None]
        if args.good or args.bad or given:
            what = ["--good/--bad"] if args.good or args.bad else []
            what += [f"--{f.replace('_', '-')}" for f in given]
            raise UserError(f"--from-history takes the commits and cases from the history; "
                            f"drop {', '.join(what)}")
        if list(out.glob("shift-*")):
            raise UserError(f"{out}: already holds a bisection; pick a new folder")
        done, notes = bisect.run_history(
            args.repo, args.from_history, out, settings, opts,
            history.Options(threshold=args.threshold, alpha=args.alpha), args.repeats,
            args.blocks, progress)
        for note in notes:
            print(f"resnets bisect: {note}", file=sys.stderr)
        if not done:
            print("resnets bisect: no new slowdown shift to bisect in the history")
        for job, outcome in done:
            print(f"shift {job.good[:12]}..{job.bad[:12]}:")
            print("\n".join(f"  {line}" for line in bisect.summary(outcome)))
        print(f"resnets bisect: {out / 'bisect.md'}", file=sys.stderr)
        return 0 if done and all(o.exit_code == 0 for _, o in done) else 1
    if not (args.good and args.bad):
        raise UserError("give --good and --bad (or --from-history)")
    good = commit_of(args.repo, args.good, "--good")
    bad = commit_of(args.repo, args.bad, "--bad")
    cases = presets.Selection.from_options(vars(args)).cases()
    if not cases:
        raise UserError("the filters select no case")
    outcome = bisect.run(args.repo, good, bad, cases, out, settings, opts, args.repeats,
                         args.blocks, progress)
    print("\n".join(bisect.summary(outcome)))
    print(f"resnets bisect: {out / 'bisect.md'}", file=sys.stderr)
    return outcome.exit_code
