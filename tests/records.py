"""Result records for test fixtures, built through the schema (never by hand), and
written as ``resnets run`` writes them. The numbers are made up; the shapes are real."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from resnets import store
from resnets.case import Case
from resnets.history import Series
from resnets.schema import ConvergenceResult, Env, SpeedResult, Status
from resnets.stats import Measurement

ENV = {"cpu_model": "Test CPU", "threads": 2, "torch": "2.4.0", "cuda": None,
       "gpu_name": None, "driver": None, "hostname": "ci"}


def speed(case: Case, samples, env: dict | None = None, **fields) -> SpeedResult:
    """A speed result of ``case`` with these per-step ``samples`` (None: it failed)."""
    if samples is None:
        return SpeedResult(case=case, status=Status.FAILED, error="RuntimeError: boom",
                           env=Env(**{**ENV, **(env or {})}))
    m = Measurement(tuple(float(s) for s in samples))
    defaults = {"params": 1000, "flops_step": 5000, "peak_memory_bytes": 10_000_000,
                "samples_per_s": case.batch_size / m.median, "latency_s": m.median}
    return SpeedResult(case=case, status=Status.OK, samples=list(m.samples), time=m.summary(),
                       env=Env(**{**ENV, **(env or {})}), **{**defaults, **fields})


def convergence(case: Case, seed: int, status: Status, dataset: str = "synthetic",
                target: float = 0.9, **fields) -> ConvergenceResult:
    r = ConvergenceResult(case=case, status=status, dataset=dataset, target_acc=target,
                          seed=seed, env=Env(**ENV), **fields)
    r.samples = [r.benchmark_s or 1.0]
    return r


def write(run_dir: Path, *records, commit: dict | None = None, datetime: str | None = None):
    """Write each record as its own case file in ``run_dir``."""
    for r in records:
        path = store.write_case(run_dir, store.benchmark_entry(r), {}, commit or {})
        if datetime:
            import json

            doc = json.loads(path.read_text())
            doc["datetime"] = datetime
            path.write_text(json.dumps(doc))
    return run_dir


def steady(median, n=40, spread=0.01, seed=0):
    return median * np.exp(np.random.default_rng(seed).normal(0, spread, n))


# --- cases and whole runs, shared by the compare, history, export, bisect and browser tests

CASE = Case("resnet20", "train", batch_size=16, input_shape=(3, 32, 32))
OTHER = Case("lenet", batch_size=64, input_shape=(1, 28, 28))
RESNET18 = Case("resnet18", batch_size=8, input_shape=(3, 64, 64))


def write_run(run_dir, cases, env=None, commit=None, extra=None):
    """A run folder as ``resnets run`` writes it: ``{Case: samples (None = failed)}``."""
    return write(run_dir, *(speed(case, samples, env, **(extra or {}))
                            for case, samples in cases.items()), commit=commit)


# Real repeated runs' noise (tests/data/noise_*.json, see make_noise_fixture.py).
DATA = Path(__file__).parent / "data"
CONTENDED = 1.5  # CPU runs this much slower than the case's fastest shared the 2 cores


def noise_model(name):
    """Per case: within-run log residuals (pooled), run-to-run sd of log medians and the
    rounds default runs took. On the shared 2-core VM (noise_cpu.json) some runs overlapped
    another benchmark and ran 2-50x slower, with steady steps: a broken measurement that
    no statistic can tell from a regression, not noise, so those runs are left out."""
    doc = json.loads((DATA / name).read_text())
    model = {}
    for case in doc["runs"][0]["samples_us"]:
        runs = [np.array(r["samples_us"][case]) / 1e6 for r in doc["runs"]]
        fastest = min(np.median(r) for r in runs)
        clean = [r for r in runs if "-cpu-" not in case or np.median(r) < CONTENDED * fastest]
        logs = np.log([np.median(r) for r in clean])
        model[case] = (np.concatenate([np.log(r / np.median(r)) for r in clean]),
                       float(logs.std(ddof=1)), [len(r) for r in clean])
    return model


def draw_run(model, case, rng, factor=1.0):
    residuals, shift, rounds = model[case]
    n = rounds[rng.integers(len(rounds))]
    level = math.exp(rng.normal(0, shift)) * factor
    return level * np.exp(rng.choice(residuals, n))


DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def write_cases(root, levels: dict, noise: float, seed: int):
    """One run per element of each case's ``levels`` (relative to 30 ms), a day apart,
    every run's level times its own run-to-run shift (lognormal, sd ``noise``)."""
    rng = np.random.default_rng(seed)
    runs = len(next(iter(levels.values())))
    for k in range(runs):
        commit = {"id": f"{k:02d}{'c' * 38}", "time": (START + k * DAY).isoformat()}
        write_run(root / f"run{k:02d}", {
            case: steady(0.030 * lv[k] * np.exp(rng.normal(0, noise)), n=30, spread=0.02,
                         seed=100 * k + i) for i, (case, lv) in enumerate(levels.items())},
            commit=commit)
    return root


def noise_series(name, count, rng, slowdown=1.0, at=8, runs=12, max_shift=1.0):
    """``count`` series of run medians (relative) drawn from the noise of real repeated
    runs, of the cases whose run-to-run shift is below ``max_shift``."""
    model = noise_model(name)
    device = "cuda" if "cuda" in name else "cpu"
    cases = sorted(c for c in model if model[c][1] < max_shift)
    for i in range(count):
        case = cases[i % len(cases)]
        samples = [draw_run(model, case, rng, slowdown if k >= at else 1.0)
                   for k in range(runs)]
        q = np.array([np.quantile(s, [0.25, 0.5, 0.75]) for s in samples])
        yield Series("env", case, device, pd.DataFrame({"run": range(runs), "commit": None,
                                                        "q1": q[:, 0], "median": q[:, 1],
                                                        "q3": q[:, 2], "samples": samples}))
