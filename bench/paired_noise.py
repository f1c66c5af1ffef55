#!/usr/bin/env python3
"""How far do paired A/A comparisons move beyond their own block scatter? (Not a pytest
file.) The numbers behind ``compare/noise.py``'s ``PAIRED`` and ``PAIRED_TWO`` priors.

    python bench/paired_noise.py GATE_OUT [GATE_OUT ...]

Each GATE_OUT is the ``-o`` folder of an A/A ``resnets gate`` (the same tree on both
sides; ``--two-processes`` for the two-process prior). For every case and pair it takes
the paired log ratio of block medians and that ratio's block standard error (the engine's
``paired_blocks``), then prints, per case and pooled, the sd of the ratios (about 0:
A/A) against the root-mean-square block se. Their excess, sqrt(sd^2 - se^2), is the shift
that pairing cannot cancel; the prior's ``floor`` is its pooled value and ``kappa`` the
smallest multiple of the block se that covers the cases where it grows with it.
"""
from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnets.compare.significance import paired_blocks
from resnets.results import load
from resnets.schema import CASE_ID, SAMPLES


def pairs(gate_out: Path) -> dict[str, list[tuple[float, float]]]:
    """case id -> [(log ratio, block se)] over the pairs of one gate run."""
    base, head = (load([gate_out / side]) for side in ("base", "head"))
    out = defaultdict(list)
    for case, b_rows in base.groupby(CASE_ID):
        h_rows = head[head[CASE_ID] == case]
        for pair in sorted(set(b_rows["pair"].dropna()) & set(h_rows["pair"].dropna())):
            b = b_rows[b_rows["pair"] == pair].iloc[-1]
            h = h_rows[h_rows["pair"] == pair].iloc[-1]
            d, se, _ = paired_blocks(b[SAMPLES], b["blocks"] or [len(b[SAMPLES])],
                                     h[SAMPLES], h["blocks"] or [len(h[SAMPLES])])
            out[case].append((d, se))
    return out


def main(folders: list[str]) -> int:
    every = defaultdict(list)
    for folder in folders:
        for case, got in pairs(Path(folder)).items():
            every[case] += got
    pooled_d, pooled_se, used = [], [], 0
    print(f"{'case':62s} pairs  sd(d)   rms se  excess  excess/se")
    for case, got in sorted(every.items()):
        ds, ses = [d for d, _ in got], [se for _, se in got]
        if len(ds) < 2:
            continue
        sd = statistics.stdev(ds)
        rms = math.sqrt(statistics.fmean(s * s for s in ses))
        excess = math.sqrt(max(0.0, sd * sd - rms * rms))
        pooled_d += [d - statistics.fmean(ds) for d in ds]
        pooled_se += ses
        used += 1
        print(f"{case[:62]:62s} {len(ds):5d} {sd:7.4f} {rms:7.4f} {excess:7.4f} "
              f"{excess / rms if rms else math.inf:8.2f}")
    if len(pooled_d) < 2:
        print("fewer than two pairs of any case: nothing to fit")
        return 1
    # Pooled over cases (each case's own mean removed: an A/A case's true ratio is 1, its
    # mean a chance offset shared by its pairs, so removing it is conservative by 1 df per case).
    dof = len(pooled_d) - used
    sd = math.sqrt(sum(d * d for d in pooled_d) / max(1, dof))
    rms = math.sqrt(statistics.fmean(s * s for s in pooled_se))
    print(f"pooled: {len(pooled_d)} pairs over {used} cases ({dof} df): sd {sd:.4f}, "
          f"rms block se {rms:.4f}, excess {math.sqrt(max(0.0, sd * sd - rms * rms)):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
