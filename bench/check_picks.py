#!/usr/bin/env python3
"""Does each pick of a report hold up in a plain hand-written loop? (Not a pytest file.)

    python bench/check_picks.py RUN [--rounds 9] [--seconds 0.5]

For every group where the advice picks a variant (``resnets advise RUN``), this builds the
pick and its baseline (``workload.build``, the step definition only: none of the engine's
timer, warm-up, pairing or statistics) in one process with the engine's process settings
(``Settings.apply``: threads, denormals, the allocator's thresholds, which are part of
what a case is), runs them alternately, ``rounds`` times, each for ``seconds`` of
back-to-back steps with one device sync at each end, and takes the median over rounds of
the ratio of their step rates. It prints each pick's
ratio beside the interval the report gave it, and how many land inside.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnets.case import Case
from resnets.measure.device import synchronizer
from resnets.measure.runner import Settings
from resnets.measure.workload import build, math_mode
from resnets.report import advise, load


def rate(work, case: Case, seconds: float) -> float:
    """Steps per second of ``seconds`` of back-to-back steps (at least 3)."""
    sync = synchronizer(case.device)
    with math_mode(case):
        sync()
        t0, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - t0 < seconds:
            work.step()
            n += 1
        sync()
        return n / (time.perf_counter() - t0)


def check(pick: Case, base: Case, rounds: int, seconds: float) -> float:
    works = {}
    for c in (base, pick):
        with math_mode(c):
            works[c] = build(c)
            for _ in range(3):
                works[c].step()
    ratios = []
    for i in range(rounds):
        order = (base, pick) if i % 2 == 0 else (pick, base)
        r = {c: rate(works[c], c, seconds) for c in order}
        ratios.append(r[pick] / r[base])
    return statistics.median(ratios)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="+", help="run folders (as for resnets advise)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args(argv)
    Settings().apply()
    df = load(args.run)
    inside = total = 0
    for a in advise(df):
        if a.pick in (None, a.baseline):
            continue
        shape = tuple(int(x) for x in str(a.input_shape).split("x"))
        base = Case(a.model, a.mode, a.device, *a.baseline.split("-", 2),
                    batch_size=int(a.batch_size), input_shape=shape)
        fmt, prec, comp = a.pick.split("-", 2)
        pick = replace(base, memory_format=fmt, precision=prec, compile=comp)
        ratio = check(pick, base, args.rounds, args.seconds)
        ok = a.speedup_low <= ratio <= a.speedup_high
        inside += ok
        total += 1
        print(f"{pick.id}: hand loop {ratio:.3f}x, report {a.speedup:.3f}x "
              f"({a.speedup_low:.3f}-{a.speedup_high:.3f}) {'inside' if ok else 'OUTSIDE'}",
              flush=True)
    print(f"{inside} of {total} picks inside their reported interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
