#!/usr/bin/env python3
"""How far do paired A/A comparisons move beyond their own block scatter? (Not a pytest
file.) The numbers behind ``compare/noise.py``'s ``PAIRED`` and ``PAIRED_TWO`` priors.

    python bench/paired_noise.py GATE_OUT [GATE_OUT ...]
    python bench/paired_noise.py RUN RUN RUN ...

Each GATE_OUT is the ``-o`` folder of an A/A ``resnets gate`` (the same tree on both
sides; ``--two-processes`` for the two-process prior). For every case and pair it takes
the paired log ratio of block medians and that ratio's block standard error (the engine's
``paired_blocks``), then prints, per case and pooled, the sd of the ratios (about 0:
A/A) against the root-mean-square block se. Their excess, sqrt(sd^2 - se^2), is the shift
that pairing cannot cancel; the prior's ``floor`` is its pooled value and ``kappa`` the
smallest multiple of the block se that covers the cases where it grows with it.

Each RUN is a ``resnets run`` folder with paired variant groups (``measure.group``), the
same selection in every one: then a "case" is one variant against its group's baseline,
with one ratio per run, and the excess is how far a variant's speed-up moves between runs
beyond its blocks' scatter: what the advice's paired intervals must also cover. The last
line says whether they do: the z of every two ratios of a case over the sigma the prior
gives them (about 1 when the intervals are calibrated, below 1 when they are too wide).
"""
from __future__ import annotations

import itertools
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnets.case import ROW_KEYS
from resnets.compare.noise import paired_sigma
from resnets.compare.significance import paired_blocks
from resnets.report import ResultsError, load, speedups
from resnets.schema import CASE_ID, SAMPLES


def pairs(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """case id (a gate's) or variant against its baseline (a run's) -> [(log ratio,
    block se)] over the pairs of one gate or run folder."""
    if not (folder / "base").is_dir():
        return variant_pairs(folder)
    base, head = (load([folder / side]) for side in ("base", "head"))
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


def variant_pairs(run: Path) -> dict[str, list[tuple[float, float]]]:
    """Each paired variant of the run against its group's baseline."""
    out = {}
    table = speedups(load([run]))
    for _, group in table.groupby(ROW_KEYS, dropna=False):
        base = group[group["variant"] == group["baseline"]]
        for _, r in group[group["paired"]].iterrows():
            b, h = base.iloc[0]["row"], r["row"]
            d, se, _ = paired_blocks(b[SAMPLES], b["blocks"], h[SAMPLES], h["blocks"])
            out[f"{h[CASE_ID]} / {r['baseline']}"] = [(d, se)]
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
    print(coverage(every))
    return 0


def coverage(every: dict[str, list[tuple[float, float]]]) -> str:
    """Do the intervals the one-process CPU prior gives (``paired_sigma``: the block se and
    the shift beyond it) cover another pair's or run's ratio of the same case? The pooled
    excess is weighted toward the noisiest cases; this z of each two ratios' difference
    over their combined sigma is not: sd(z) about 1 and 5% beyond 1.96 when calibrated."""
    def sigma(se: float) -> float:
        return math.hypot(se, paired_sigma("cpu", se))

    zs = [(d1 - d2) / math.hypot(sigma(s1), sigma(s2))
          for got in every.values() for (d1, s1), (d2, s2) in itertools.combinations(got, 2)]
    if not zs:
        return "no case with two ratios: no coverage to check"
    beyond = sum(abs(z) > 1.96 for z in zs)
    return (f"with the prior: {len(zs)} differences, sd(z) {statistics.pstdev(zs):.2f}, "
            f"{beyond} ({beyond / len(zs):.0%}) beyond 1.96")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ResultsError as exc:
        sys.exit(f"paired_noise: {exc}")
