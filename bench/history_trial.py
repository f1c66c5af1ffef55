"""How well ``resnets history`` finds real slowdowns, and how often it cries wolf.

Histories are drawn from the noise of real repeated runs (tests/data/noise_*.json: the
shared 2-core CPU VM, 4-6% between runs; an H100, 0.05-16% by case): each run's steps
are that case's measured within-run residuals around a level that moves by the case's
measured run-to-run shift. A history has BEFORE runs of unchanged code, then AFTER runs
in which the case is 25% slower, 10% slower or unchanged (every case, each change, in
every history). Per device and layout it prints, per true change:
the share of series with a regression found at the right run, off by one run, or
elsewhere, the share of found shifts whose 95% interval holds the true change, and for
the unchanged series the share with any shift at all (a false alarm); then, for the
longest layout, the share found per case beside the case's run-to-run noise.

    python bench/history_trial.py [--trials 60] [--seed 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from records import noise_model, noise_series  # noqa: E402  (the test fixtures' readers)

from resnets.history import Options, Series  # noqa: E402
from resnets.history.analysis import detect  # noqa: E402

LAYOUTS = ((4, 2), (8, 4), (12, 6))  # (unchanged runs, changed runs)
CHANGES = (1.25, 1.10, 1.0)


def trial(name: str, before: int, after: int, trials: int, rng) -> tuple[dict, dict]:
    """``{change: counts}`` and ``{(case, change): counts}``: every case of the fixture
    under every change in each of ``trials`` histories."""
    tally, per_case = {}, {}
    for _ in range(trials):
        for change in CHANGES:
            for s in noise_series(name, len(noise_model(name)), rng, change, at=before,
                                  runs=before + after):
                detect(s, Options())
                for row in (tally.setdefault(change, _counts()),
                            per_case.setdefault((s.case_id, change), _counts())):
                    _count(row, s, change, before)
    return tally, per_case


def _counts() -> dict:
    return dict(series=0, exact=0, near=0, elsewhere=0, covered=0, any=0)


def _count(row: dict, s: Series, change: float, before: int) -> None:
    row["series"] += 1
    row["any"] += bool(s.shifts)
    slow = [sh for sh in s.shifts if sh.kind == "regression"]
    exact = [sh for sh in slow if sh.start == before]
    if exact:
        row["exact"] += 1
        row["covered"] += exact[0].low < change < exact[0].high
    elif any(abs(sh.start - before) == 1 for sh in slow):
        row["near"] += 1
    elif slow:
        row["elsewhere"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"resnets history on histories drawn from real run-to-run noise: {args.trials} "
          f"histories of every case per layout, default options {Options()}")
    print(f"{'device':<6} {'runs':<7} {'change':>6} {'series':>6} {'found at run':>12} "
          f"{'off by 1':>8} {'elsewhere':>9} {'CI holds':>8} {'any shift':>9}")
    longest = {}
    for name in ("noise_cpu.json", "noise_cuda.json"):
        for before, after in LAYOUTS:
            tally, longest[name] = trial(name, before, after, args.trials, rng)
            for change, row in tally.items():
                n = row["series"]
                share = lambda k, n=n, row=row: f"{row[k] / n:.1%}"  # noqa: E731
                held = f"{row['covered'] / row['exact']:.0%}" if row["exact"] else "-"
                print(f"{name[6:-5]:<6} {before}+{after:<5} {change - 1:>+6.0%} {n:>6} "
                      f"{share('exact') if change != 1 else '-':>12} "
                      f"{share('near') if change != 1 else '-':>8} "
                      f"{share('elsewhere') if change != 1 else '-':>9} {held:>8} "
                      f"{share('any'):>9}")
    before, after = LAYOUTS[-1]
    print(f"\nper case, {before}+{after} runs: found at the right run (any shift if unchanged)")
    for name, per_case in longest.items():
        model = noise_model(name)
        for case in sorted(model):
            rows = {c: per_case[case, c] for c in CHANGES}
            got = "  ".join(f"{c - 1:+.0%} {r['exact' if c != 1 else 'any'] / r['series']:.0%}"
                            for c, r in rows.items())
            print(f"  {case:<58} run-to-run sd {model[case][1]:6.2%}:  {got}")


if __name__ == "__main__":
    main()
