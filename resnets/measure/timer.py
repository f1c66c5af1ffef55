"""Time one step many times: warm-up first, then adaptive rounds until the median is known.

CPU steps are timed with ``time.perf_counter`` around each call. CUDA steps are timed with
a pair of CUDA events around each call, recorded on the stream with no per-step
synchronize (which would idle the GPU between steps and distort the steady state); the
events are read after a synchronize every ``check_every`` rounds. GC is off while timing.

Every decision to stop (warm-up done, timing done, a block over) can go through an
``Agreement``: a stop hook that sees this process's decision and returns the one to act
on. A data-parallel rank's hook returns rank 0's (``measure.distributed``), so every rank
takes the same number of steps and their collectives stay matched; it is asked once per
``every`` steps, outside the timed region. Without one, a decision is this process's own.
"""
from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..stats import Measurement
from .device import synchronizer
from .load import Snapshot, other_cores

MIN_CI_ROUNDS = 6       # fewest samples from which a CI of the median can end timing
MIN_BUDGET_ROUNDS = 3   # fewest samples a spent time budget still waits for


@dataclass(frozen=True)
class TimingPolicy:
    """When to stop. Rounds end when the 95% CI of the median is within +-``rel_ci`` of it
    (after ``min_rounds``, and never before 6), when ``budget_s`` of wall time is spent
    (after at least 3 rounds), or at ``max_rounds``."""

    rel_ci: float = 0.02
    budget_s: float = 5.0
    min_rounds: int = 10
    max_rounds: int = 10_000
    warmup_rounds: int = 3      # at least this many warm-up steps...
    warmup_s: float = 0.3       # ...and at least this long (cuDNN autotuning, caches, JIT)

    def timing_fields(self) -> dict:
        """The policy as ``schema.Timing`` fields."""
        return {"rel_ci": self.rel_ci, "budget_s": self.budget_s,
                "min_rounds": self.min_rounds, "max_rounds": self.max_rounds,
                "min_warmup_rounds": self.warmup_rounds, "min_warmup_s": self.warmup_s}


class Agreement(Protocol):
    """A stop hook shared by processes that must step together."""

    every: int   # steps between decisions (CPU; CUDA decides every ``check_every`` steps)

    def decide(self, local: str | None) -> str | None:
        """The decision to act on, given this process's (a stop reason, or None: go on)."""


@dataclass(frozen=True)
class TimedSteps:
    measurement: Measurement
    stop_reason: str            # "ci" | "budget" | "max_rounds"
    warmup_rounds: int
    warmup_s: float
    first_step_s: float         # the cold first call (includes compilation for compile)
    clock: str
    wall_s: float
    process_cpu_s: float        # CPU time this process used while timing (all threads)
    load_avg_1m: float | None   # system load when timing started: > cores means contention
    other_cores: float | None = None   # cores busy with others' work meanwhile
    steal_cores: float | None = None   # cores the hypervisor gave to someone else


def warm_up(step: Callable[[], None], policy: TimingPolicy, sync: Callable[[], None],
            agree: Agreement | None = None) -> tuple[int, float, float]:
    """Run ``step`` until the warm-up policy is met; return (rounds, seconds, first step s)."""
    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    rounds = 1
    while True:
        done = rounds >= policy.warmup_rounds and (
            time.perf_counter() - start - first >= policy.warmup_s or rounds > 1000)
        if agree is None or rounds % agree.every == 0:  # the same steps on every rank
            done = _decide(agree, "warm" if done else None) is not None
            if done:
                break
        step()
        rounds += 1
    sync()
    return rounds, time.perf_counter() - start, first


def _decide(agree: Agreement | None, local: str | None) -> str | None:
    return local if agree is None else agree.decide(local)


def timed_rounds(step, device: str, policy: TimingPolicy, deadline: float,
                 agree: Agreement | None = None) -> tuple[list[float], str]:
    """Time steps until ``policy`` (or ``deadline``) says stop: (samples, stop reason)."""
    rounds = _cuda_rounds if device == "cuda" else _cpu_rounds
    return rounds(step, policy, deadline, agree)


def clock_name(device: str) -> str:
    return ("cuda.Event elapsed_time per step (no per-step sync)" if device == "cuda"
            else "time.perf_counter per step")


def _cpu_rounds(step, policy: TimingPolicy, deadline: float,
                agree: Agreement | None) -> tuple[list[float], str]:
    samples: list[float] = []
    clock = time.perf_counter
    every = agree.every if agree else 1
    while True:
        t0 = clock()
        step()
        samples.append(clock() - t0)
        if len(samples) % every == 0:
            reason = _decide(agree, _stop(samples, policy, deadline))
            if reason:
                return samples, reason


def _cuda_rounds(step, policy: TimingPolicy, deadline: float, agree: Agreement | None,
                 check_every: int = 10):
    import torch

    samples: list[float] = []
    while True:
        events = []
        for _ in range(check_every):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            events.append((start, end))
        torch.cuda.synchronize()
        # Keep every sample already paid for, then decide once per batch.
        samples += [start.elapsed_time(end) / 1e3 for start, end in events]
        reason = _decide(agree, _stop(samples, policy, deadline))
        if reason:
            return samples, reason


def _stop(samples: list[float], policy: TimingPolicy, deadline: float) -> str | None:
    n = len(samples)
    if n >= policy.max_rounds:
        return "max_rounds"
    # The CI test sorts all samples: do it every round early on, then every ~5% more rounds.
    due = n < 100 or n % max(1, n // 20) == 0
    # Below 6 samples the order-statistic CI is just [min, max] with < 97% coverage: never
    # call the median "known" from that few.
    if policy.rel_ci > 0 and n >= max(policy.min_rounds, MIN_CI_ROUNDS) and due and \
            Measurement(tuple(samples)).median_ci_rel() <= policy.rel_ci:
        return "ci"
    if time.perf_counter() >= deadline and n >= min(policy.min_rounds, MIN_BUDGET_ROUNDS):
        return "budget"
    return None


def time_step(step: Callable[[], None], device: str = "cpu",
              policy: TimingPolicy = TimingPolicy(),
              agree: Agreement | None = None) -> TimedSteps:
    """Warm up, then adaptive rounds (see ``TimingPolicy``); GC is off throughout."""
    sync = synchronizer(device)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        w_rounds, w_s, first = warm_up(step, policy, sync, agree)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        cpu0, snap0 = time.process_time(), Snapshot.now()
        samples, reason = timed_rounds(step, device, policy, snap0.wall + policy.budget_s, agree)
        cpu, snap1 = time.process_time() - cpu0, Snapshot.now()
    finally:
        if gc_was_enabled:
            gc.enable()
    others, steal = other_cores(snap0, snap1, cpu)
    return TimedSteps(Measurement(tuple(samples)), reason, w_rounds, w_s, first,
                      clock_name(device), snap1.wall - snap0.wall, cpu, load, others, steal)


def time_block(step: Callable[[], None], device: str, seconds: float,
               min_steps: int = 1, agree: Agreement | None = None) -> list[float]:
    """One block of steps (paired timing, and the extra timings after a case's rounds):
    at least ``min_steps`` (up to 3), then until ``seconds`` are spent. GC is off while
    it runs."""
    policy = TimingPolicy(rel_ci=-1.0, budget_s=seconds, min_rounds=max(1, min_steps))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples, _ = timed_rounds(step, device, policy, time.perf_counter() + seconds, agree)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples
