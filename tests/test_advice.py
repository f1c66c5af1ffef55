"""What the report recommends (``resnets.report.advice``, its headline and ``resnets
advise``): the fastest variant whose interval clears the baseline, "no clear winner"
inside the noise, nothing for launch-bound GPU cases, nothing judged under load."""
import subprocess
import sys
from pathlib import Path

import records
from records import steady

from resnets.case import Case
from resnets.report import load
from resnets.report.advice import advice_rows, advise
from resnets.schema import Timing

ROOT = Path(__file__).resolve().parents[1]


def case(model="resnet50", device="cpu", fmt="contiguous", precision="fp32"):
    return Case(model, "infer", device=device, memory_format=fmt, precision=precision,
                batch_size=4, input_shape=(3, 224, 224))


def advice_for(tmp_path, variants, **fields):
    """Advice from a run holding these ``{Case: (step seconds, extra fields)}``."""
    run = records.write(tmp_path / "run", *(
        records.speed(c, steady(step, seed=i), **{**fields, **extra})
        for i, (c, (step, extra)) in enumerate(variants.items())))
    return advise(load([run]))


def test_the_fastest_supported_variant_is_picked_with_its_interval(tmp_path):
    got = advice_for(tmp_path, {case(): (0.010, {}),
                                case(fmt="channels_last"): (0.006, {}),
                                case(precision="bf16"): (0.005, {}),
                                case(fmt="channels_last", precision="bf16"): (0.02, {})})
    (a,) = got
    assert a.baseline == "contiguous-fp32-eager" and a.pick == "contiguous-bf16-eager"
    assert 1 < a.speedup_low < a.speedup < a.speedup_high
    assert abs(a.speedup - 2.0) < 0.1
    assert [v for v, *_ in a.slower] == ["channels_last-bf16-eager"]
    row = advice_rows(got).iloc[0]
    assert row["use"] == "use contiguous-bf16-eager" and "(" in row["speed-up (95%)"]


def test_a_difference_inside_the_noise_is_no_clear_winner(tmp_path):
    (a,) = advice_for(tmp_path, {case(): (0.010, {}), case(precision="bf16"): (0.0099, {})})
    assert a.pick is None and a.verdict == "no clear winner"
    assert a.unclear == ["contiguous-bf16-eager"]


def test_a_launch_bound_gpu_case_gets_what_helps_instead(tmp_path):
    cuda = {case("lenet_bn", "cuda", precision="default"): (0.001, {}),
            case("lenet_bn", "cuda", precision="bf16"): (0.0005, {})}
    (a,) = advice_for(tmp_path, cuda, launch_bound=True, gpu_busy=0.2)
    assert a.pick is None and a.verdict.startswith("launch-bound") and not a.slower


def test_variants_timed_under_load_are_not_judged(tmp_path):
    busy = {"timing": Timing(other_cores=1.0)}
    (a,) = advice_for(tmp_path, {case(): (0.010, {}), case(precision="bf16"): (0.5, busy),
                                 case(fmt="channels_last"): (0.007, {})})
    assert a.pick == "channels_last-fp32-eager" and not a.slower
    assert a.loaded == ["contiguous-bf16-eager"]
    (b,) = advice_for(tmp_path / "b", {case(): (0.010, busy), case(precision="bf16"): (0.005, {})})
    assert b.pick is None and b.verdict == "not judged"


def test_a_baseline_is_not_kept_when_the_others_were_only_measured_under_load(tmp_path):
    """Was "keep contiguous-fp32-eager (nothing else measured)" beside "not judged: ..."."""
    busy = {"timing": Timing(other_cores=1.0)}
    (a,) = advice_for(tmp_path, {case(): (0.010, {}), case(precision="bf16"): (0.005, busy)})
    assert a.pick is None and a.loaded == ["contiguous-bf16-eager"]
    assert a.verdict == "no clear winner"
    (alone,) = advice_for(tmp_path / "alone", {case(): (0.010, {})})
    assert alone.verdict == "keep contiguous-fp32-eager"


def test_missing_memory_and_compile_time_say_nothing_rather_than_nan(tmp_path):
    compiled = Case("resnet50", "infer", "cpu", precision="bf16", compile="compile",
                    batch_size=4, input_shape=(3, 224, 224))
    (a,) = advice_for(tmp_path, {case(): (0.010, {"peak_memory_bytes": None}),
                                 case(precision="bf16"): (0.006, {}),
                                 compiled: (0.004, {})})  # no compile time recorded
    assert a.pick == "contiguous-bf16-compile"
    assert a.memory_ratio is None and a.compile_cost_s is None and a.breakeven_steps is None
    notes = " ".join(str(v) for v in advice_rows([a]).iloc[0].values)
    assert "nan" not in notes.lower()


def test_advise_on_the_h100_reference_recommends_nothing_for_launch_bound_models():
    r = subprocess.run([sys.executable, "-m", "resnets", "advise",
                        str(ROOT / "reports" / "reference-h100")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if not x.startswith(" ")]
    small = [x for x in lines if x.startswith(("lenet_bn ", "resnet20 "))]
    assert small and all("launch-bound" in x for x in small)
    big = [x for x in lines if x.startswith("resnet50 ")]
    assert big and all("launch-bound" not in x for x in big)
    assert all("no clear winner" in x or "(" in x for x in big)  # an interval or no pick


def test_the_most_energy_efficient_variant_is_named_when_it_is_not_the_fastest(tmp_path):
    """bf16 is fastest, but channels-last fp32 does more samples per joule: the advice
    names both (energy is recorded where an NVML or RAPL counter exists)."""
    got = advice_for(tmp_path, {case(): (0.010, {"samples_per_s_per_watt": 2.0}),
                                case(precision="bf16"): (0.005, {"samples_per_s_per_watt": 3.0}),
                                case(fmt="channels_last"): (0.008,
                                                            {"samples_per_s_per_watt": 5.0})})
    (a,) = got
    assert a.pick == "contiguous-bf16-eager"
    assert a.efficient == ("channels_last-fp32-eager", 5.0, 3.0)
    assert "most energy-efficient: channels_last-fp32-eager (5 samples/J against 3)" in \
        advice_rows(got)["notes"].iloc[0]
    (b,) = advice_for(tmp_path / "b", {case(): (0.010, {"samples_per_s_per_watt": 2.0}),
                                       case(precision="bf16"): (0.005,
                                                                {"samples_per_s_per_watt": 4.0})})
    assert b.efficient is None  # the fastest is also the most efficient
    (c,) = advice_for(tmp_path / "c", {case(): (0.010, {}), case(precision="bf16"): (0.005, {})})
    assert c.efficient is None  # not measured


def test_energy_fields_reach_the_per_case_table(tmp_path):
    from resnets.report.tables import cases_table

    run = records.write(tmp_path / "run", records.speed(
        case(), steady(0.01), energy_j_per_sample=0.25, energy_net_j_per_sample=0.1,
        samples_per_s_per_watt=4.0))
    row = cases_table(load([run])).iloc[0]
    assert row["energy per sample mJ"] == 250.0 and row["net energy per sample mJ"] == 100.0
    assert row["energy efficiency samples/J"] == 4.0


def test_of_two_variants_within_noise_of_each_other_the_simpler_is_picked(tmp_path):
    """bf16 alone and channels-last bf16 are both clearly faster than fp32 but not
    clearly apart: the pick must not swap between them from run to run on which one's
    point estimate came out higher, so it is the simpler (fewer changes) of the two."""
    (a,) = advice_for(tmp_path, {case(): (0.010, {}),
                                 case(precision="bf16"): (0.0051, {}),
                                 case(fmt="channels_last", precision="bf16"): (0.0050, {})})
    assert a.pick == "contiguous-bf16-eager"
    (b,) = advice_for(tmp_path / "b", {case(): (0.010, {}),
                                       case(precision="bf16"): (0.0070, {}),
                                       case(fmt="channels_last", precision="bf16"): (0.0030, {})})
    assert b.pick == "channels_last-bf16-eager"  # clearly the fastest: no tie
