"""How long loading and tabulating 10,000 result rows takes (the report's data path).

The rows are synthetic (10 runs x 1,000 cases with made-up numbers and 50 samples each),
shaped like the suite's result files: only the time to read and tabulate them matters.
Plots and HTML are not timed here. Done when: well under 5 s.
"""
import json
import random
from itertools import product

from resnets import store
from resnets.case import Case
from resnets.report import load
from resnets.report.build import table_sections
from resnets.schema import Env, SpeedResult, Status, Timing
from resnets.stats import Measurement

RUNS, MODELS, BATCHES = 10, 25, (1, 4, 16, 64, 256)
VARIANTS = [(f, p) for f in ("contiguous", "channels_last") for p in ("fp32", "bf16")]


def _benchmark(rng: random.Random, model: int, mode: str, fmt: str, prec: str, bs: int) -> dict:
    case = Case(f"net{model}", mode, "cpu", fmt, prec, "eager", bs, (3, 32, 32))
    m = Measurement(tuple(bs / 1e4 * rng.uniform(0.9, 1.2) for _ in range(50)))
    flops = int(2e6 * (model + 1) * bs * (3 if mode == "train" else 1))
    record = SpeedResult(
        case=case, status=Status.OK, samples=list(m.samples), time=m.summary(),
        params=1000 * (model + 1), samples_per_s=bs / m.median, latency_s=m.median,
        peak_memory_bytes=2 ** 20 * bs, flops_fwd=flops, flops_step=flops,
        macs_fvcore=flops // 2, achieved_flops_per_s=flops / m.median,
        attainable_flops_per_s=3e11, utilization=flops / m.median / 3e11,
        timing=Timing(method="synthetic", clock="time.perf_counter per step", rounds=50,
                      stop_reason="ci", rel_ci=0.02, budget_s=2.0, threads=2),
        env=Env(hostname="bench", cpu_model="synthetic", cpu_count=2, torch="0", threads=2))
    return store.benchmark_entry(record)


def _write_runs(folder) -> None:
    rng = random.Random(0)
    for run in range(RUNS):
        benchmarks = [_benchmark(rng, m, mode, f, p, bs) for m, mode, (f, p), bs
                      in product(range(MODELS), ("infer", "train"), VARIANTS, BATCHES)]
        doc = {"machine_info": {}, "commit_info": {}, "benchmarks": benchmarks,
               "datetime": f"2026-01-{run + 1:02d}T00:00:00+00:00", "version": "synthetic"}
        (folder / f"run{run:02d}.json").write_text(json.dumps(doc))


def test_load_and_tabulate_10k_rows(benchmark, tmp_path):
    _write_runs(tmp_path)

    def load_and_tabulate():
        df = load(tmp_path)
        return df, table_sections(df, None)

    df, sections = benchmark(load_and_tabulate)
    benchmark.extra_info.update(rows=len(df), runs=RUNS, tables=len(sections))
    assert len(df) == RUNS * MODELS * 2 * len(VARIANTS) * len(BATCHES) == 10_000
    assert not next(s for s in sections if s.name == "speedups").table.empty
