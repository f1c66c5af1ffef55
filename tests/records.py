"""Result records for test fixtures, built through the schema (never by hand), and
written as ``resnets run`` writes them. The numbers are made up; the shapes are real."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnets import store
from resnets.case import Case
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
