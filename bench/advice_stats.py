#!/usr/bin/env python3
"""How tight and how stable is the advice? (Not a pytest file.)

    python bench/advice_stats.py RUN [RUN ...]

For each run folder on its own: the half-width of every variant's 95% speed-up interval
(as a share of the speed-up, on the log scale: exp(half-width) - 1) and its median over
all groups, with ResNet-50 224x224 inference shown apart; then, across the runs, how many
groups got the same pick (or "no clear winner") in every run.
"""
from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnets.report import advise, load, speedups


def half_width(low: float, high: float) -> float:
    return math.exp(math.log(high / low) / 2) - 1


def main(runs: list[str]) -> int:
    picks = defaultdict(list)
    for run in runs:
        df = load([run])
        table = speedups(df)
        table = table[table["variant"] != table["baseline"]]
        widths = [half_width(r.speedup_low, r.speedup_high) for r in table.itertuples()]
        r50 = table[(table["model"] == "resnet50") & (table["mode"] == "infer")
                    & (table["input_shape"] == "3x224x224")]
        paired = int(table["paired"].sum())
        print(f"{run}: {len(table)} speed-ups ({paired} paired), median half-width "
              f"{statistics.median(widths):.1%}, widest {max(widths):.1%}")
        for r in r50.itertuples():
            print(f"    resnet50 224 infer {r.variant}: {r.speedup:.3f}x "
                  f"({r.speedup_low:.3f}-{r.speedup_high:.3f}), +-"
                  f"{half_width(r.speedup_low, r.speedup_high):.1%}")
        for a in advise(df):
            picks[(a.model, a.mode, a.device, a.batch_size, a.input_shape)].append(a.verdict)
    if len(runs) > 1:
        same = [k for k, v in picks.items() if len(v) == len(runs) and len(set(v)) == 1]
        print(f"same pick in all {len(runs)} runs: {len(same)} of {len(picks)} groups "
              f"({len(same) / len(picks):.0%})")
        for k, v in picks.items():
            if len(set(v)) > 1:
                print(f"    differs: {' '.join(map(str, k))}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
