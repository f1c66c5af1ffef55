"""``--batch-sizes auto``: a doubling sweep of a case's batch size, and its knee.

Throughput grows with the batch until the device is full, then flattens; the knee is the
smallest batch within ``KNEE_SHARE`` of the best throughput the sweep measured: the
batch to use when latency or memory matter too. The sweep doubles from 1 (the case's
own batch is added) up to the largest batch that fits, found by the max-batch search on
CUDA (``measure.maxbatch``). On CPU, memory rarely ends it, so it stops once two
doublings in a row gained less than ``PLATEAU_GAIN`` (past the knee, by then), a step
takes longer than ``STEP_LIMIT_S``, or at ``LIMIT`` (the case's own batch is measured
even then, as the suite's test for it records it). Each point is a case of its own,
measured and recorded like any other; every point carries the knee.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from ..case import Case
from ..outcome import Outcome

KNEE_SHARE = 0.95
PLATEAU_GAIN = 0.02
STEP_LIMIT_S = 2.0
LIMIT = 4096
METHOD = (f"doubling batch from 1 (plus the case's own) up to the largest that fits (CUDA: "
          f"max-batch search) or, on CPU, until two doublings gain < {PLATEAU_GAIN:.0%}, a "
          f"step exceeds {STEP_LIMIT_S:g} s or the batch {LIMIT}; knee = smallest batch "
          f"within {KNEE_SHARE:.0%} of the best throughput")


def batches(case: Case, ceiling: int) -> list[int]:
    """1, 2, 4, ... up to ``ceiling``, with the case's own batch and the ceiling itself."""
    out = {case.batch_size, ceiling} if case.batch_size <= ceiling else {ceiling}
    b = 1
    while b <= ceiling:
        out.add(b)
        b *= 2
    return sorted(out)


def knee(points: list[tuple[int, float]]) -> int | None:
    """The smallest batch whose samples/s is within ``KNEE_SHARE`` of the best."""
    if not points:
        return None
    best = max(sps for _, sps in points)
    return min(b for b, sps in points if sps >= KNEE_SHARE * best)


def run(case: Case, measure: Callable[[Case], Outcome],
        ceiling: int | None = None) -> Iterator[tuple[Case, Outcome]]:
    """Measure the sweep's points in order, yielding (case, outcome); the records of
    successful points get ``knee_batch`` once the sweep is over, so they are yielded
    together at the end (failed and skipped points as they happen)."""
    if ceiling is None:
        if case.device == "cuda":
            from .maxbatch import max_batch_size

            ceiling = max_batch_size(case)[0] or 1
        else:
            ceiling = LIMIT
    done: list[tuple[Case, object]] = []
    gains: list[float] = []
    stopped = False  # past the end of the sweep: only the case's own batch is left to do
    for b in batches(case, ceiling):
        if stopped and b != case.batch_size:
            continue
        point = replace(case, batch_size=b)
        outcome = measure(point)
        if not outcome.is_ok:
            yield point, outcome
            stopped = stopped or outcome.status == "failed"
            continue
        result = outcome.record
        if done:
            gains.append(result.samples_per_s / done[-1][1].samples_per_s - 1)
        done.append((point, result))
        flat = len(gains) >= 2 and max(gains[-2:]) < PLATEAU_GAIN
        stopped = stopped or (case.device == "cpu" and (result.latency_s > STEP_LIMIT_S or flat))
    k = knee([(p.batch_size, r.samples_per_s) for p, r in done])
    for point, result in done:
        result.knee_batch, result.sweep_method = k, METHOD
        yield point, Outcome.ok(result)
