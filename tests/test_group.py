"""Variants timed side by side (resnets.measure.group) and the speed-ups the report takes
from their blocks (report.advice.paired_change); the thread count chosen from the free
cores (measure.load.choose_threads)."""
from dataclasses import replace

import numpy as np
import pytest
import records

from resnets.case import Case
from resnets.measure.group import group_key, measure_group, unpaired_reason
from resnets.measure.load import choose_threads
from resnets.measure.runner import Settings
from resnets.measure.timer import TimingPolicy
from resnets.report import advise, load
from resnets.schema import Timing

LENET = Case("lenet", "infer", batch_size=16, input_shape=(1, 28, 28))
FAST = Settings(policy=TimingPolicy(budget_s=0.3, min_rounds=3, warmup_rounds=1,
                                    warmup_s=0.0), count_flops=False, measure_memory=False,
                measure_energy=False)


@pytest.mark.slow
def test_a_group_is_built_once_and_timed_in_rotating_blocks():
    cases = [LENET, replace(LENET, precision="bf16"), replace(LENET, precision="tf32")]
    out = measure_group(cases, FAST, "g1", blocks=4)
    assert out[cases[2]].status == "skipped"  # tf32 on CPU: the rules still hold
    records_ = [out[c].record for c in cases[:2]]
    for r in records_:
        assert r.pair == "g1" and len(r.blocks) == 4 and sum(r.blocks) == len(r.samples)
        assert r.timing.stop_reason == "paired blocks"
        assert "side by side with 1 other variant" in r.timing.pairing
    assert records_[0].samples_per_s != records_[1].samples_per_s  # each keeps its own


def test_groups_that_are_not_paired_say_why():
    assert unpaired_reason([LENET]) == "one variant only"
    two = [LENET, replace(LENET, memory_format="channels_last")]
    assert unpaired_reason(two) is None
    assert "torchrun" in unpaired_reason([replace(c, world_size=2, strategy="ddp")
                                          for c in two])
    assert "DataLoader" in unpaired_reason([replace(c, input="real") for c in two])
    assert "--isolate" in unpaired_reason(two, isolate=True)
    assert group_key(two[0]) == group_key(two[1]) != group_key(replace(LENET, batch_size=8))


def _paired_run(tmp_path, base_s, variant_s, drift, **fields):
    """Two variants timed in alternating blocks while the machine's speed drifts by
    ``drift`` across the rounds: each block's steps scaled by the same factor."""
    rng = np.random.default_rng(0)
    factors = np.linspace(1, 1 + drift, 10)
    base = [t * f for f in factors for t in base_s * np.exp(rng.normal(0, 0.01, 8))]
    var = [t * f for f in factors for t in variant_s * np.exp(rng.normal(0, 0.01, 8))]
    bf16 = replace(LENET, precision="bf16")
    return records.write(tmp_path / "run",
                         records.speed(LENET, base, pair="p", blocks=[8] * 10, **fields),
                         records.speed(bf16, var, pair="p", blocks=[8] * 10, **fields))


def test_a_paired_speed_up_comes_from_the_blocks_and_its_interval_is_tight(tmp_path):
    """A 40% drift over the run lands on both variants' blocks alike: the paired speed-up
    is the true 2x with an interval of a few percent, where the unpaired one (the noise
    model's 7.5% per case on CPU) spans tens of percent."""
    (a,) = advise(load([_paired_run(tmp_path, 0.01, 0.005, drift=0.4)]))
    assert a.pick == "contiguous-bf16-eager"
    assert 0.97 < a.speedup / 2 < 1.03 and a.speedup_low < 2 < a.speedup_high
    assert (a.speedup_high - a.speedup_low) / a.speedup < 0.08
    unpaired = _paired_run(tmp_path / "u", 0.01, 0.005, drift=0.4)
    for path in (unpaired / "cases").glob("*.json"):
        path.write_text(path.read_text().replace('"pair": "p"', '"pair": null'))
    (b,) = advise(load([unpaired]))
    assert (b.speedup_high - b.speedup_low) / b.speedup > 0.2


def test_a_paired_group_measured_under_load_is_still_judged(tmp_path):
    """Side by side, the load lands on the baseline and the variant alike and widens only
    their interval: the group is judged (it was "not judged" because the baseline, which
    has no pairing of its own, was taken as measured apart)."""
    busy = _paired_run(tmp_path, 0.01, 0.005, drift=0.4, timing=Timing(other_cores=1.0))
    (a,) = advise(load([busy]))
    assert a.pick == "contiguous-bf16-eager" and a.note is None and not a.loaded
    assert "1.0 cores busy" in a.paired_load and a.efficient is None  # absolute: loaded
    (quiet,) = advise(load([_paired_run(tmp_path / "q", 0.01, 0.005, drift=0.4)]))
    assert quiet.paired_load is None


def test_threads_follow_the_free_cores_unless_requested():
    assert choose_threads(None, 2, 0.1) == (2, "all 2 cores")
    threads, why = choose_threads(None, 2, 1.0)
    assert threads == 1 and "other work kept 1.0 busy" in why
    assert choose_threads(None, 2, 1.9)[0] == 1  # never none
    threads, why = choose_threads(2, 2, 1.0)
    assert threads == 2 and why.startswith("requested") and "1.0 of 2 cores" in why


def test_advise_says_why_a_group_was_not_paired(tmp_path, capsys):
    from resnets import cli
    from resnets.schema import Timing

    apart = Timing(pairing="unpaired: --unpaired")
    run = records.write(tmp_path / "run",
                        records.speed(LENET, records.steady(0.01), timing=apart),
                        records.speed(replace(LENET, precision="bf16"), records.steady(0.005),
                                      timing=apart),
                        records.speed(replace(LENET, batch_size=8), records.steady(0.01)))
    got = {a.batch_size: a.unpaired for a in advise(load([run]))}
    assert got == {16: "--unpaired", 8: None}  # one variant: nothing to pair, nothing said
    assert cli.main(["advise", str(run)]) == 0
    assert "(not paired: --unpaired)" in capsys.readouterr().out
    paired = _paired_run(tmp_path / "p", 0.01, 0.005, drift=0.0)
    assert [a.unpaired for a in advise(load([paired]))] == [None]
