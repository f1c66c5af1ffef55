"""The measurement scripts under bench/ that compute what the code's constants rest on:
``paired_noise`` reads the ratios of paired variants out of run folders and says whether
the prior's intervals cover the other runs' ratios."""
import dataclasses
import math
import sys
from pathlib import Path

import pytest
from records import speed, steady, write

from resnets.case import Case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import paired_noise

BASE = Case("resnet20", "infer", "cpu", batch_size=16, input_shape=(3, 32, 32))
VARIANT = dataclasses.replace(BASE, memory_format="channels_last")


def _run(folder: Path, variant_step: float, seed: int) -> Path:
    blocks = [4] * 10
    write(folder, speed(BASE, steady(0.010, seed=seed), pair="g", blocks=blocks),
          speed(VARIANT, steady(variant_step, seed=seed + 1), pair="g", blocks=blocks))
    return folder


def test_a_run_folder_gives_each_paired_variant_against_its_baseline(tmp_path):
    got = paired_noise.pairs(_run(tmp_path / "a", 0.008, seed=0))
    (key, [(d, se)]), = got.items()
    assert key.startswith(VARIANT.id) and key.endswith("/ contiguous-fp32-eager")
    assert d == pytest.approx(math.log(0.8), abs=0.01)  # the variant's steps over the base's
    assert 0 < se < 0.01


def test_coverage_counts_the_runs_the_intervals_do_not_cover(tmp_path):
    same = [paired_noise.pairs(_run(tmp_path / f"s{i}", 0.008, seed=2 * i)) for i in range(2)]
    moved = [paired_noise.pairs(_run(tmp_path / "m", 0.0075, seed=9)), same[0]]
    for runs, beyond in ((same, "0 (0%) beyond"), (moved, "1 (100%) beyond")):
        every = {k: [p for r in runs for p in r[k]] for k in runs[0]}
        assert beyond in paired_noise.coverage(every)
