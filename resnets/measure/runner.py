"""Measure one case end to end: the engine behind the suite, ``resnets run`` and tests.

Order matters and is fixed: build, warm up + time (nothing else running), then the
memory pass and the FLOP count (both perturb timing, so they come after). The result is
a ``schema.SpeedResult``.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from ..case import INDUCTOR, Case
from ..outcome import Outcome
from ..schema import Env, SpeedResult, Status, Timing
from ..stats import Measurement
from .allocator import keep_warm
from .busy import gpu_busy
from .env import environment
from .flops import count_flops
from .memory import peak_memory
from .peak import attainable_flops
from .timer import TimedSteps, TimingPolicy, time_block, time_step
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
    measure_energy: bool = True       # where a counter exists: >= 2 s more per case
    cudnn_benchmark: bool = True
    # Data-parallel cases across machines: torchrun's rendezvous (measure.distributed).
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    threads_reason: str | None = None  # why ``threads`` (measure.load.choose_threads)

    def apply(self) -> None:
        keep_warm()
        torch.set_num_threads(self.threads or os.cpu_count() or 1)
        torch.set_flush_denormal(self.flush_denormal)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        """Settings another version wrote: fields this one does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in d.items() if k in known},
                      "policy": TimingPolicy(**d["policy"])})

    def timing_fields(self) -> dict:
        """The settings as ``schema.Timing`` fields."""
        return {**self.policy.timing_fields(), "threads": self.threads or os.cpu_count(),
                "threads_reason": self.threads_reason,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "allocator": keep_warm(),
                "flush_denormal": self.flush_denormal, "seed": self.seed,
                "cudnn_benchmark": self.cudnn_benchmark}


# A run's idle power baseline, shared by its processes (the run folder's energy-idle.json).
ENERGY_FILE_ENV = "RESNETS_ENERGY_IDLE_FILE"


class Skipped(Exception):
    """The case cannot run here; the message is the precise reason."""


COLD_CACHE = "cold: a fresh, empty inductor and Triton cache for this case"


@contextlib.contextmanager
def compile_cache_folder():
    """A fresh, empty folder for one case's torch.compile caches (``compile_cache`` points
    the compilers at it), removed with the case: a compile time is never a warm cache's
    replay (in-process caches are reset between cases by ``release_memory``)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="resnets-compile-cache-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def compile_cache(folder: str):
    """Inductor's and Triton's on-disk caches in ``folder`` while the block runs (they
    read the variables when they compile)."""
    saved = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    os.environ["TRITON_CACHE_DIR"] = os.path.join(folder, "triton")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CaseRun:
    """One case from build to record, in three steps a caller can space out: ``start``
    (build and warm up), timed rounds (``time_adaptive`` once, or ``block`` many times
    while another process times its own blocks in between: paired A/B timing), and
    ``finish`` (memory pass, FLOP count, the record). Use as a context manager: it holds
    the case's math mode and frees its memory on exit.

    This is the only code that builds, warms up and times a case and makes its record;
    every way a case runs wraps it: in process (``measure``), in an isolated worker or the
    gate's pair worker (``worker.Session``), and on each torchrun rank of a data-parallel
    case, whose ``Rank`` (``measure.distributed``) wraps the model in DDP or FSDP and
    keeps the ranks' stop decisions agreed (``timer.Agreement``)."""

    def __init__(self, case: Case, settings: Settings = Settings(), rank=None):
        reason = runtime_skip_reason(case)
        if not reason and case.strategy != "none" and rank is None:
            reason = "a data-parallel case runs under torchrun (measure.distributed.launch)"
        if reason:
            raise Skipped(reason)
        self.case, self.settings, self.rank = case, settings, rank
        self.agree = rank.agreement if rank is not None else None
        self.samples: list[float] = []
        self.blocks: list[int] = []
        self.timed: TimedSteps | None = None
        self.compile_s: float | None = None
        self._cpu_s = self._wall_s = 0.0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> CaseRun:
        self.started = time.perf_counter()
        self.settings.apply()
        self._cache = (self._stack.enter_context(compile_cache_folder())
                       if self.case.compile in INDUCTOR else None)
        self._stack.callback(release_memory)
        try:
            t0 = time.perf_counter()
            seed = self.settings.seed + (self.rank.index if self.rank else 0)
            with self.mode():
                self.work = build(self.case.single(), seed=seed,
                                  wrap=self.rank.wrap if self.rank else None)
        except BaseException:
            self._stack.close()
            raise
        self._stack.callback(self.__dict__.pop, "work", None)
        if self.work.deployed is not None:  # export-aoti: packaging is its compile
            self.compile_s = self.work.deployed.compile_s
        self.feed = None
        if self.case.input == "real":  # the step pulls its batch from a DataLoader first
            from .pipeline import Feed

            self.feed = Feed(self.case, seed)
            self._stack.callback(self.feed.close)
            self.model_step = self.work.step
            self.work.step = self.feed.feeding(self.work)
        self.setup_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def mode(self):
        """The case's global state around each phase, not for the case's lifetime: its
        math mode (TF32 switches) and compile caches. Variants of a group are built, warmed
        up and timed in turns in one process (``measure.group``), each in its own state."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(math_mode(self.case))
            if self._cache is not None:
                stack.enter_context(compile_cache(self._cache))
            yield

    def time_adaptive(self) -> None:
        """Warm up and time until the policy says stop (the unpaired way)."""
        with self.mode(), self._compiling():
            self.timed = time_step(self.work.step, self.case.device, self.settings.policy,
                                   self.agree)
        self.samples = list(self.timed.measurement.samples)

    def warm_up(self) -> None:
        with self.mode(), self._compiling():
            self.timed = time_step(self.work.step, self.case.device,
                                   replace(self.settings.policy, budget_s=0.0, min_rounds=1),
                                   self.agree)

    def block(self, seconds: float, min_steps: int = 1) -> list[float]:
        """One block of timed steps (after ``warm_up``); returns them and keeps them."""
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with self.mode():
            samples = time_block(self.work.step, self.case.device, seconds, min_steps,
                                 self.agree)
        self._cpu_s += time.process_time() - cpu0
        self._wall_s += time.perf_counter() - wall0
        self.samples += samples
        self.blocks.append(len(samples))
        return samples

    @contextlib.contextmanager
    def _compiling(self):
        """Records the compiler's own seconds over the block (warm-up compiles)."""
        before = compiler_seconds() if self.case.compile.startswith("compile") else None
        yield
        if before is not None:
            after = compiler_seconds()
            self.compile_s = after - before if after is not None else None

    def finish(self, **timing) -> SpeedResult:
        """Memory pass and FLOP count (both after all timing), then the record.
        ``timing`` adds or overrides ``schema.Timing`` fields (paired runs' contention).
        Every rank of a data-parallel case calls it (the memory pass steps together)."""
        with self.mode():
            return self._finish(timing)

    def _finish(self, timing: dict) -> SpeedResult:
        case, work = self.case, self.work
        env = environment()  # inside math_mode: records the flags the case ran with
        pipeline = self._pipeline() if self.feed else {}
        memory = peak_memory(work) if self.settings.measure_memory else {}
        busy = gpu_busy(work, float(np.median(self.samples))) if self.samples else {}
        energy = self._energy() if self.settings.measure_energy else {}
        params = sum(p.numel() for p in work.model.parameters())
        flops = (count_flops(case.model, case.mode, case.batch_size, case.input_shape)
                 if self.settings.count_flops else {})
        peak = attainable_flops(case.device, case.precision)
        return _record(self, env, {**memory, **busy, **pipeline, **energy}, flops, peak,
                       params, {"case_s": time.perf_counter() - self.started, **timing})

    def _energy(self) -> dict:
        """Energy per sample over a stretch of steps after timing (``measure.energy``),
        against the run's idle baseline (measured once per run: ``ENERGY_FILE_ENV``)."""
        from . import energy
        from .device import synchronizer

        if self.rank is not None:  # each rank's window would need the ranks' agreement
            return energy.unavailable("not measured for data-parallel cases yet")
        cache = os.environ.get(ENERGY_FILE_ENV)
        idle = energy.idle_baseline(self.case.device, Path(cache) if cache else None)
        return energy.measure_energy(self.work.step, synchronizer(self.case.device),
                                     self.case.device, self.case.batch_size, idle.watts)

    def _pipeline(self) -> dict:
        """Loader alone and model alone, each for half the time budget (after the timed
        steps, so neither perturbs them): which of the two limits the case."""
        from .pipeline import verdict

        seconds = max(0.5, self.settings.policy.budget_s / 2)
        bs = self.case.batch_size
        loader = self.feed.loader_samples_per_s(seconds)
        model = time_block(self.model_step, self.case.device, seconds, 3, self.agree)
        return verdict(bs / float(np.median(self.samples)), loader,
                       bs / float(np.median(model)))


def compiler_seconds() -> float | None:
    """Seconds torch.compile has spent compiling in this process so far: dynamo's own
    timers for a compile (``_compile.compile_inner``, which includes inductor) and for
    the lazily compiled backward (``...bw_compiler``); None where this torch has no such
    timers (they are internal, ``torch._dynamo.utils.compilation_time_metrics``)."""
    if "torch._dynamo" not in sys.modules:
        return 0.0
    metrics = getattr(sys.modules.get("torch._dynamo.utils"), "compilation_time_metrics", None)
    if not isinstance(metrics, dict):
        return None
    return sum(sum(v) for k, v in metrics.items()
               if k == "_compile.compile_inner" or k.endswith("bw_compiler"))


def measure(case: Case, settings: Settings = Settings()) -> SpeedResult:
    """Time, size and count one case. Raises ``Skipped`` for impossible cases."""
    with CaseRun(case, settings) as run:
        run.time_adaptive()
        return run.finish()


def run_case(case: Case, settings: Settings = Settings()) -> Outcome:
    """``measure`` in this process, as an ``Outcome`` (never raises for the case's own
    errors; Ctrl-C and SIGTERM still interrupt)."""
    try:
        return Outcome.ok(measure(case, settings))
    except Skipped as exc:
        return Outcome.skipped(str(exc))
    except Exception as exc:
        return Outcome.of_error(exc)


STEP = {"infer": "inference_mode forward",
        "train": "zero_grad+forward+cross_entropy+backward+SGD(momentum) step"}


def _record(run: CaseRun, env: dict, memory: dict, flops: dict, peak: dict, params: int,
            extra_timing: dict) -> SpeedResult:
    case, timed = run.case, run.timed
    shipped = run.work.deployed
    m = Measurement(tuple(run.samples))
    flops_step = flops.get("flops_step")
    achieved = flops_step / m.median if flops_step else None  # per device
    attainable = peak["attainable_flops_per_s"]
    paired = bool(run.blocks)
    wall = run._wall_s if paired else timed.wall_s
    cpu = run._cpu_s if paired else timed.process_cpu_s
    method = "one step per sample: " + STEP[case.mode]
    parallel = {}
    if case.strategy != "none":
        method += (f", {case.strategy.upper()} on each of {case.world_size} ranks (torchrun, "
                   f"{'nccl' if case.device == 'cuda' else 'gloo'}); a step's time is the "
                   "slowest rank's, and rank 0 decides when to stop for all")
        parallel = {"samples_per_s_per_device": case.batch_size / m.median}
        if flops.get("flops_method"):
            flops = {**flops, "flops_method": flops["flops_method"] + ", per device"}
    timing = Timing(
        method=method, clock=timed.clock, rounds=m.rounds,
        stop_reason="paired blocks" if paired else timed.stop_reason,
        warmup_rounds=timed.warmup_rounds, warmup_s=timed.warmup_s,
        first_step_s=timed.first_step_s, compile_s=run.compile_s,
        compile_cache=(COLD_CACHE if case.compile in INDUCTOR else None),
        quantize_s=shipped.quantize_s if shipped else None,
        setup_s=run.setup_s, wall_s=wall,
        # Contention check: a CPU case that used far fewer cores than its threads, or ran
        # while other work kept cores busy, shared the machine.
        process_cpu_s=cpu, cores_busy=cpu / wall if wall > 0 else None,
        load_avg_1m=timed.load_avg_1m, other_cores=timed.other_cores,
        steal_cores=timed.steal_cores, gc="disabled while timing",
        **run.settings.timing_fields())
    timing = replace(timing, **extra_timing)
    return SpeedResult(
        case=case, status=Status.OK, samples=list(m.samples), timing=timing, env=Env(**env),
        time=m.summary(), params=params,
        samples_per_s=case.world_size * case.batch_size / m.median,
        latency_s=m.median, **memory, **flops, achieved_flops_per_s=achieved, **peak,
        utilization=achieved / attainable if achieved and attainable else None,
        blocks=run.blocks or None, **parallel,
        package_bytes=shipped.package_bytes if shipped else None,
        deploy_method=(shipped.method or None) if shipped else None)


def release_memory() -> None:
    """Free what a case left behind so a long sweep does not grow."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    if "torch._dynamo" in sys.modules:  # only if something compiled: importing it costs seconds
        torch._dynamo.reset()
