"""Measure one case end to end: the engine behind the suite, ``resnets run`` and tests.

Order matters and is fixed: build, warm up + time (nothing else running), then the
memory pass and the FLOP count (both perturb timing, so they come after). The result is
a ``schema.SpeedResult``.
"""
from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from ..case import Case
from ..schema import Env, SpeedResult, Status, Timing
from .env import environment
from .flops import count_flops
from .memory import peak_memory
from .peak import attainable_flops
from .timer import TimedSteps, TimingPolicy, time_step
from .workload import build, math_mode, runtime_skip_reason


@dataclass(frozen=True)
class Settings:
    """How a run measures (the same for every case of the run)."""

    policy: TimingPolicy = field(default_factory=TimingPolicy)
    threads: int | None = None        # CPU threads; None = all cores
    flush_denormal: bool = True       # denormals slowed a sigmoid LeNet 2.5x on this CPU
    seed: int = 0
    count_flops: bool = True
    measure_memory: bool = True
    cudnn_benchmark: bool = True

    def apply(self) -> None:
        torch.set_num_threads(self.threads or os.cpu_count() or 1)
        torch.set_flush_denormal(self.flush_denormal)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        return cls(**{**d, "policy": TimingPolicy(**d["policy"])})

    def timing_fields(self) -> dict:
        """The settings as ``schema.Timing`` fields."""
        return {**self.policy.timing_fields(), "threads": self.threads or os.cpu_count(),
                "flush_denormal": self.flush_denormal, "seed": self.seed,
                "cudnn_benchmark": self.cudnn_benchmark}


class Skipped(Exception):
    """The case cannot run here; the message is the precise reason."""


def measure(case: Case, settings: Settings = Settings()) -> SpeedResult:
    """Time, size and count one case. Raises ``Skipped`` for impossible cases."""
    reason = runtime_skip_reason(case)
    if reason:
        raise Skipped(reason)
    settings.apply()
    work = None
    try:
        with math_mode(case):
            t0 = time.perf_counter()
            work = build(case, seed=settings.seed)
            setup_s = time.perf_counter() - t0
            timed = time_step(work.step, case.device, settings.policy)
            env = environment()  # inside math_mode: records the flags the case ran with
            memory = peak_memory(work) if settings.measure_memory else {}
            params = sum(p.numel() for p in work.model.parameters())
        flops = (count_flops(case.model, case.mode, case.batch_size, case.input_shape)
                 if settings.count_flops else {})
        peak = attainable_flops(case.device, case.precision)
    finally:
        del work
        release_memory()
    return _record(case, settings, timed, env, memory, flops, peak, params, setup_s)


def _record(case: Case, settings: Settings, timed: TimedSteps, env: dict, memory: dict,
            flops: dict, peak: dict, params: int, setup_s: float) -> SpeedResult:
    m = timed.measurement
    flops_step = flops.get("flops_step")
    achieved = flops_step / m.median if flops_step else None
    attainable = peak["attainable_flops_per_s"]
    timing = Timing(
        method="one step per sample: " + ("inference_mode forward" if case.mode == "infer"
                else "zero_grad+forward+cross_entropy+backward+SGD(momentum) step"),
        clock=timed.clock, rounds=m.rounds, stop_reason=timed.stop_reason,
        warmup_rounds=timed.warmup_rounds, warmup_s=timed.warmup_s, cold_s=timed.first_step_s,
        compile_s=timed.first_step_s if case.compile == "compile" else None, setup_s=setup_s,
        wall_s=timed.wall_s,
        # Contention check: a CPU case that used far fewer cores than its threads, or ran
        # with the load average above the core count, shared the machine.
        process_cpu_s=timed.process_cpu_s,
        cores_busy=timed.process_cpu_s / timed.wall_s if timed.wall_s > 0 else None,
        load_avg_1m=timed.load_avg_1m, gc="disabled while timing",
        **settings.timing_fields())
    return SpeedResult(
        case=case, status=Status.OK, samples=list(m.samples), timing=timing, env=Env(**env),
        time=m.summary(), params=params, samples_per_s=case.batch_size / m.median,
        latency_s=m.median, **memory, **flops, achieved_flops_per_s=achieved, **peak,
        utilization=achieved / attainable if achieved and attainable else None)


def release_memory() -> None:
    """Free what a case left behind so a long sweep does not grow."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    if "torch._dynamo" in sys.modules:  # only if something compiled: importing it costs seconds
        torch._dynamo.reset()
