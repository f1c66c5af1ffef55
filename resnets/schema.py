"""The result record: one typed record per measurement, and the one place result fields are
named. Torch-free: the report, compare and history read results without torch.

A result file is pytest-benchmark JSON; the ``extra_info`` of each benchmark in it is one
record's ``to_dict()``, and its ``stats.data`` holds the record's raw samples (seconds).
``from_dict`` reads a record back, upgrading files of older schema versions and checking
every value's type, so a hostile or damaged file is a one-line ``SchemaError``, never a
wrong number. ``row()`` is the flat form the report, compare and history work on: one
column per field, the fields of a nested record under its prefix (``time_median``,
``timing_rounds``, ``env_torch``); ``columns()`` lists them all.

Where a new thing goes:

* **a metric**: one field on ``SpeedResult`` (or ``ConvergenceResult``) declared with
  ``metric(unit, label)``, and the line that sets it where the record is built
  (``measure/runner.py`` or ``convergence/trainer.py``). It is then a column of
  ``results.csv``; ``show=True`` also gives it a column in the report's per-case table,
  and ``gate="exact"`` or ``"threshold"`` makes ``resnets compare`` check it. Nothing
  else lists metrics.
* **a kind of result**: a ``Result`` subclass with its ``kind``, added to ``RECORDS``.
* **a status**: a ``Status`` member (and ``FINISHED`` if ``--resume`` may skip it).
* **a change of meaning** of a stored field: bump ``SCHEMA_VERSION`` and teach
  ``_upgrade`` to read the old form (the committed reference reports must keep loading).

Modelled on ``torch.utils.benchmark.Measurement`` (raw samples kept, statistics derived)
and pytest-benchmark's ``Stats.fields`` (``TimeStats`` is the single list of statistics).
"""
import functools
import math
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, ClassVar, Union, get_args, get_origin

from .case import FIELDS, Case

# Version of the meaning of a record; readers upgrade older ones and refuse newer ones.
# 3: ``timing.cold_s`` is ``first_step_s``, and ``compile_s`` is the compiler's own time
# (version 2 called the whole cold first step ``compile_s``).
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


class _Name(str, Enum):
    """A string constant that prints (and serializes) as its value."""

    def __str__(self) -> str:
        return self.value


class Kind(_Name):
    SPEED = "speed"
    CONVERGENCE = "convergence"


class Status(_Name):
    OK = "ok"                    # a speed case was measured
    REACHED = "reached"          # a convergence run reached its target
    NOT_REACHED = "not_reached"  # ... spent its budget first
    DIVERGED = "diverged"        # ... its loss turned NaN/inf
    FAILED = "failed"            # raised an error (``error`` says which)
    CRASHED = "crashed"          # the process died while measuring it (``error`` says when)
    SKIPPED = "skipped"          # cannot run here (``error`` says why: no CUDA, say)


# Results ``--resume`` keeps; a failed or skipped case is tried again, a crashed one only
# with --retry-crashed.
FINISHED = frozenset({Status.OK, Status.REACHED, Status.NOT_REACHED, Status.DIVERGED})

# Columns every row has, besides the ``Case`` fields and the record's own.
SCHEMA, KIND, STATUS, CASE_ID, VARIANT, ERROR, SAMPLES = (
    "schema_version", "kind", "status", "case_id", "variant", "error", "samples")
# Columns the loader adds: where and when the row's run was made.
RUN_COLUMNS = ("run", "run_complete", "source", "datetime", "run_time", "commit_id",
               "commit_time", "commit_branch", "commit_dirty", "benchmark_name")
CASE_COLUMNS = FIELDS


# Bounds on stored values (a result file is hostile until proven otherwise).
MAX_WHOLE = 2 ** 63
MAX_SAMPLES = 10_000_000


class SchemaError(ValueError):
    """A record that does not match the schema; the message names the field."""


# --- field declarations ------------------------------------------------------------------

def metric(unit: str = "", label: str = "", *, show: bool = False, gate: str | None = None):
    """A measured number. ``unit`` drives display (bytes -> MiB, FLOP/s -> GFLOP/s,
    fraction -> %, s -> ms); ``show`` puts it in the report's per-case table; ``gate``
    is how ``resnets compare`` judges a change: "exact" (any change counts) or
    "threshold" (beyond --threshold counts)."""
    if gate not in (None, "exact", "threshold"):
        raise ValueError(f"gate must be exact or threshold, not {gate!r}")
    return field(default=None, metadata={"unit": unit, "label": label, "show": show,
                                         "gate": gate})


def nested(prefix: str, factory):
    """A nested record whose fields become columns ``<prefix><name>``."""
    return field(default_factory=factory, metadata={"prefix": prefix})


def blob():
    """A JSON object or list kept whole (a curve, a profile): not a CSV column."""
    return field(default=None, metadata={"blob": True})


# --- nested records ----------------------------------------------------------------------

@dataclass
class TimeStats:
    """Statistics of the raw samples, in seconds: the single list every reader uses."""

    rounds: int | None = None
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    iqr: float | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    stddev: float | None = None
    p90: float | None = None
    p99: float | None = None
    median_ci95_low: float | None = None    # distribution-free 95% CI of the median
    median_ci95_high: float | None = None


@dataclass
class Timing:
    """How a result was timed, one shape for every kind (what does not apply is None)."""

    method: str | None = None         # what one timed sample is
    clock: str | None = None
    rounds: int | None = None         # timed samples
    stop_reason: str | None = None    # speed: ci | budget | max_rounds
    warmup_rounds: int | None = None
    warmup_s: float | None = None
    first_step_s: float | None = None  # the cold first step: lazy init, autotuning, compiling
    compile_s: float | None = None    # the compiler's own seconds (torch.compile's, measured;
    #                                   export-aoti: torch.export + AOTInductor packaging)
    compile_cache: str | None = None  # whether compilation started from an empty cache
    setup_s: float | None = None      # building the model and data, before any clock
    quantize_s: float | None = None   # int8: export, calibration and convert (in setup_s)
    wall_s: float | None = None       # wall time of the timed rounds
    case_s: float | None = None       # the whole case: build to record (what plans estimate)
    process_cpu_s: float | None = None
    cores_busy: float | None = None   # process CPU seconds / wall seconds while timing
    load_avg_1m: float | None = None  # system load when timing started
    other_cores: float | None = None  # cores busy with work not ours while timing (Linux)
    steal_cores: float | None = None  # cores the hypervisor gave to others meanwhile
    pairing: str | None = None        # how a paired (A/B interleaved) measurement was made
    excluded: str | None = None       # what the clock leaves out
    resolution: str | None = None
    gc: str | None = None
    threads: int | None = None
    threads_reason: str | None = None  # why that many (the free cores when it started)
    omp_wait_policy: str | None = None  # OpenMP's: PASSIVE threads sleep, ACTIVE ones spin
    allocator: str | None = None      # host malloc's thresholds (measure.allocator)
    flush_denormal: bool | None = None
    cudnn_benchmark: bool | None = None
    seed: int | None = None
    rel_ci: float | None = None       # the stopping policy of adaptive rounds
    budget_s: float | None = None
    min_rounds: int | None = None
    max_rounds: int | None = None
    min_warmup_rounds: int | None = None
    min_warmup_s: float | None = None


@dataclass
class Env:
    """The machine and software a number depends on."""

    hostname: str | None = None
    python: str | None = None
    platform: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    cpu_capability: str | None = None   # torch.backends.cpu.get_cpu_capability()
    cpu_flags: str | None = None        # the ISA flags that decide a precision's speed
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    gpu_name: str | None = None
    gpu_count: int | None = None
    gpu_sm_count: int | None = None
    gpu_memory_bytes: int | None = None
    gpu_capability: str | None = None
    driver: str | None = None
    threads: int | None = None
    interop_threads: int | None = None
    tf32_matmul: bool | None = None
    tf32_cudnn: bool | None = None
    cudnn_benchmark: bool | None = None
    float32_matmul_precision: str | None = None


# What a number depends on: if any of these differ, two results are not comparable.
COMPARABLE_ENV = ("gpu_name", "driver", "torch", "cuda", "cpu_model", "cpu_capability",
                  "cpu_flags", "threads")


# --- the records -------------------------------------------------------------------------

@dataclass(kw_only=True)
class Result:
    """What every result has: the case, how it ended, how it was timed, and where."""

    kind: ClassVar[Kind]
    case: Case
    status: Status
    error: str | None = None     # why there is no measurement (failed, crashed, skipped)
    samples: list[float] = field(default_factory=list, metadata={"stats": True})
    timing: Timing = nested("timing_", Timing)
    env: Env = nested("env_", Env)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def name(self) -> str:
        """Names this result in its run: the case id, or a run of it (convergence seeds)."""
        return self.case.id

    def to_dict(self) -> dict:
        """The JSON-ready ``extra_info``: identity first, then the fields in order. The
        samples go to the benchmark's stats, not here."""
        out: dict[str, Any] = {SCHEMA: SCHEMA_VERSION, KIND: self.kind, STATUS: self.status,
                               CASE_ID: self.case.id, **self.case.key(),
                               VARIANT: self.case.variant}
        for f in fields(self):
            if f.name in ("case", "status") or f.metadata.get("stats"):
                continue
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        return out

    def row(self) -> dict:
        """One flat row: every column of ``columns(type(self))``."""
        out: dict[str, Any] = {KIND: str(self.kind), STATUS: str(self.status),
                               CASE_ID: self.case.id, VARIANT: self.case.variant,
                               **self.case.key()}
        out["input_shape"] = "x".join(map(str, self.case.input_shape))
        for name, prefix, subfields in _layout(type(self)):
            value = getattr(self, name)
            if prefix:
                out.update({prefix + k: getattr(value, k) for k in subfields})
            else:
                out[name] = value
        return out


@dataclass(kw_only=True)
class SpeedResult(Result):
    """One speed case: per-step times and what the step costs."""

    kind: ClassVar[Kind] = Kind.SPEED
    time: TimeStats = nested("time_", TimeStats)
    params: int | None = metric("", "parameters", gate="exact")
    samples_per_s: float | None = metric("samples/s", "throughput")
    latency_s: float | None = metric("s", "median step")
    peak_memory_bytes: int | None = metric("bytes", "peak memory", show=True,
                                           gate="threshold")
    peak_memory_reserved_bytes: int | None = metric("bytes", "peak reserved")
    memory_method: str | None = None
    flops_fwd: int | None = metric("FLOP", "forward FLOPs", gate="exact")
    flops_step: int | None = metric("FLOP", "step FLOPs", gate="exact")
    flops_method: str | None = None
    macs_fvcore: int | None = metric("MAC", "fvcore MACs")
    macs_fvcore_note: str | None = None
    achieved_flops_per_s: float | None = metric("FLOP/s", "achieved", show=True)
    attainable_flops_per_s: float | None = metric("FLOP/s", "attainable", show=True)
    attainable_method: str | None = None
    published_peak_flops_per_s: float | None = metric("FLOP/s", "published peak")
    utilization: float | None = metric("fraction", "of attainable", show=True)
    gpu_busy: float | None = metric("fraction", "GPU busy", show=True)
    launch_bound: bool | None = None  # the GPU idles more than half the step (measure.busy)
    gpu_busy_method: str | None = None
    max_batch_size: int | None = metric("", "max batch")
    max_batch_note: str | None = None
    max_batch_error: str | None = None
    profile: dict | None = blob()
    profile_error: str | None = None
    # Data-parallel cases (measure.distributed): samples_per_s is global.
    samples_per_s_per_device: float | None = metric("samples/s", "per device")
    grad_bytes: int | None = metric("bytes", "gradient bytes")
    comm_s: float | None = metric("s", "communication per step")
    busbw: float | None = metric("B/s", "bus bandwidth")
    comm_hidden: float | None = metric("fraction", "communication hidden")
    compute_s: float | None = metric("s", "step without gradient sync")
    comm_method: str | None = None
    # Real inputs (measure.pipeline): samples_per_s is loader + copy + model together.
    loader_samples_per_s: float | None = metric("samples/s", "loader alone", show=True)
    model_samples_per_s: float | None = metric("samples/s", "model alone", show=True)
    bottleneck: str | None = None     # "loader" or "model": the slower alone
    pipeline_efficiency: float | None = metric("fraction", "combined / slower alone")
    pipeline_method: str | None = None
    # Batch sweeps (--batch-sizes auto, measure.sweep): the smallest batch of the case's
    # sweep within 95% of the sweep's best throughput, on every point of the sweep.
    knee_batch: int | None = metric("", "knee batch")
    sweep_method: str | None = None
    # Energy (measure.energy: NVML on CUDA, RAPL on CPU, around a synchronized stretch of
    # at least 2 s after timing): gross and net of the run's idle baseline.
    energy_j_per_sample: float | None = metric("J", "energy per sample", show=True)
    energy_net_j_per_sample: float | None = metric("J", "net energy per sample", show=True)
    samples_per_s_per_watt: float | None = metric("samples/J", "energy efficiency",
                                                  show=True)
    energy_power_w: float | None = metric("W", "mean power")
    energy_idle_w: float | None = metric("W", "idle power")
    energy_window_s: float | None = metric("s", "energy window")
    energy_method: str | None = None
    energy_error: str | None = None
    # What users ship (measure.deploy): the AOTInductor package's file size (export-aoti),
    # and how the shipped form was built (export, quantization, packaging).
    package_bytes: int | None = metric("bytes", "package size", show=True, gate="threshold")
    deploy_method: str | None = None
    # Paired runs (``resnets gate``): both sides of a pair share ``pair``; ``blocks`` is
    # the number of samples in each block, in the order they alternated with the other side.
    pair: str | None = None
    blocks: list | None = blob()
    flops_fwd_by_op: dict | None = blob()
    macs_fvcore_by_op: dict | None = blob()


@dataclass(kw_only=True)
class ConvergenceResult(Result):
    """One training run (a case on a dataset with a seed) to a target accuracy."""

    kind: ClassVar[Kind] = Kind.CONVERGENCE
    dataset: str
    target_acc: float
    seed: int
    experiment: str | None = None     # the preset experiment it belongs to (presets.py)
    max_iters: int | None = None
    # To target: the first evaluation at or above it; *_low the last one below it (0 at
    # the start); *_interp accuracy linearly interpolated between the two.
    iters_to_target: int | None = metric("iterations", "iterations to target")
    iters_to_target_low: int | None = metric("iterations", "iterations to target, from")
    iters_to_target_interp: float | None = metric("iterations", "iterations to target, interp.")
    samples_to_target: int | None = metric("samples", "samples to target")
    train_s_to_target: float | None = metric("s", "train seconds to target")
    train_s_to_target_low: float | None = metric("s", "train seconds to target, from")
    train_s_to_target_interp: float | None = metric("s", "train seconds to target, interp.")
    total_s_to_target: float | None = metric("s", "total seconds to target")
    best_acc: float | None = metric("fraction", "best test accuracy")
    final_acc: float | None = metric("fraction", "final test accuracy")
    iters_run: int | None = metric("iterations", "iterations run")
    epochs_run: float | None = metric("epochs", "epochs run")
    diverged_at_iter: int | None = metric("iterations", "diverged at")
    train_s: float | None = metric("s", "train seconds")
    total_s: float | None = metric("s", "total seconds")
    hyperparams: dict | None = blob()
    dataset_info: dict | None = blob()
    curve: dict | None = blob()

    @property
    def name(self) -> str:
        return trial_id(self.case, self.dataset, self.seed, self.experiment)

    @property
    def benchmark_s(self) -> float:
        """The one "round" pytest-benchmark gets: seconds to target, or of the whole
        budget when not reached (which ranks it slowest)."""
        reached = self.status == Status.REACHED and self.train_s_to_target is not None
        return float(self.train_s_to_target if reached else self.train_s or 0.0)

    def row(self) -> dict:
        return {**super().row(), "trial_id": self.name}


@functools.cache
def _layout(cls) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(field, column prefix of a nested record or None, its fields) of a record class."""
    return [(f.name, f.metadata.get("prefix"),
             tuple(k.name for k in fields(f.default_factory)) if f.metadata.get("prefix")
             else ()) for f in fields(cls) if f.name not in ("case", "status")]


def trial_id(case: Case, dataset: str, seed: int, experiment: str | None = None) -> str:
    """Names one convergence run (a case on a dataset with a seed, in an experiment):
    files and test ids."""
    return f"{case.id}-{dataset}-{experiment + '-' if experiment else ''}seed{seed}"


RECORDS: dict[str, type[Result]] = {r.kind.value: r for r in (SpeedResult, ConvergenceResult)}


# --- columns -----------------------------------------------------------------------------

def _columns_of(record: type[Result]) -> list[str]:
    out = [KIND, STATUS, CASE_ID, VARIANT, *CASE_COLUMNS]
    for f in fields(record):
        if f.name in ("case", "status"):
            continue
        prefix = f.metadata.get("prefix")
        out += [prefix + k.name for k in fields(f.default_factory)] if prefix else [f.name]
    return out + (["trial_id"] if record is ConvergenceResult else [])


def columns(record: type[Result] | None = None) -> list[str]:
    """Column names of ``record``'s rows (all records' when None), in field order."""
    records = [record] if record else RECORDS.values()
    return list(dict.fromkeys(c for r in records for c in _columns_of(r)))


def blob_columns() -> list[str]:
    """Columns holding a list or object per row (samples, curves, profiles): not CSV."""
    return list(dict.fromkeys(f.name for r in RECORDS.values() for f in fields(r)
                              if f.metadata.get("blob") or f.metadata.get("stats")))


def metrics(record: type[Result], **where) -> dict[str, dict]:
    """``{column: metadata}`` of ``record``'s metrics matching ``where`` (e.g. show=True)."""
    return {f.name: dict(f.metadata) for f in fields(record)
            if "unit" in f.metadata and all(f.metadata.get(k) == v for k, v in where.items())}


# --- reading -----------------------------------------------------------------------------

def from_dict(extra: dict, samples=()) -> Result:
    """The record in ``extra`` (a benchmark's ``extra_info``) with its raw ``samples``.
    Raises ``SchemaError`` for an unknown version or kind, a bad case or a mistyped field."""
    if not isinstance(extra, dict):
        raise SchemaError("extra_info is not an object")
    version = extra.get(SCHEMA)
    if version not in READABLE_VERSIONS:
        raise SchemaError(f"unknown schema_version {version!r} "
                          f"(this resnets reads {', '.join(map(str, READABLE_VERSIONS))})")
    d = _upgrade(extra) if version < SCHEMA_VERSION else extra
    record = RECORDS.get(str(d.get(KIND)))
    if record is None:
        raise SchemaError(f"unknown kind {d.get(KIND)!r} (kinds: {', '.join(RECORDS)})")
    try:
        case = Case.from_key(d)
        status = Status(d.get(STATUS))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"bad case or status: {exc}") from None
    values: dict[str, Any] = {"case": case, "status": status, "samples": _samples(samples)}
    parsers = _parsers(record)
    values.update({name: parse(d[name]) for name, parse in parsers.items() if name in d})
    missing = [f.name for f in fields(record) if f.name not in values
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise SchemaError(f"{record.kind} result lacks {', '.join(missing)}")
    return record(**values)


def _samples(samples) -> list[float]:
    """Raw per-step seconds: finite, non-negative, a bounded number of them."""
    if not isinstance(samples, (list, tuple)) or len(samples) > MAX_SAMPLES:
        raise SchemaError("stats.data is not a list of seconds")
    out = []
    for s in samples:
        if type(s) not in (int, float) or (type(s) is int and abs(s) > MAX_WHOLE):
            raise SchemaError("stats.data is not a list of seconds")
        if not (math.isfinite(s) and s >= 0):
            raise SchemaError("stats.data holds a negative or non-finite time")
        out.append(float(s))
    return out


def _base(hint) -> type:
    """``float | None`` -> float; ``dict | None`` -> dict."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    return get_origin(hint) or hint


def _number(value, kind: type, name: str):
    """A stored number: every number a record holds is a count, a size, a time, a rate or
    a share, so a negative one (or a whole number beyond 64 bits) is damage, not data."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{name}: expected a number, got {type(value).__name__} "
                          f"{str(value)[:40]!r}")
    if isinstance(value, int) and abs(value) > MAX_WHOLE:
        raise SchemaError(f"{name}: {str(value)[:20]}... is not a plausible value")
    if not math.isfinite(value):
        return None  # NaN/inf written by an older version means "no value"
    if value < 0:
        raise SchemaError(f"{name}: negative ({value:g}); not a measurement")
    if kind is int:
        if value != int(value):
            raise SchemaError(f"{name}: expected a whole number, got {value}")
        return int(value)
    return float(value)


def _parser(name: str, hint, factory=None):
    """A function that checks and converts one stored value of a field."""
    if factory is not None:  # a nested record
        inner = _parsers(factory)

        def nested_record(value):
            if value is None:
                return factory()
            if not isinstance(value, dict):
                raise SchemaError(f"{name}: expected an object")
            return factory(**{k: inner[k](v) for k, v in value.items() if k in inner})

        return nested_record
    base = _base(hint)

    def parse(value):
        if value is None:
            return None
        if base in (int, float):
            return _number(value, base, name)
        if base is bool:
            if not isinstance(value, bool):
                raise SchemaError(f"{name}: expected true or false, got {str(value)[:40]!r}")
            return value
        if base is str:
            if isinstance(value, (dict, list)):
                raise SchemaError(f"{name}: expected text, got {type(value).__name__}")
            return str(value)
        if base in (dict, list) and not isinstance(value, base):
            raise SchemaError(f"{name}: expected {'an object' if base is dict else 'a list'}")
        return value

    return parse


@functools.cache
def _parsers(cls) -> dict[str, Any]:
    """``{field: parser}`` of a record class, built once per class."""
    return {f.name: _parser(f.name, f.type, f.default_factory if f.metadata.get("prefix")
                            else None)
            for f in fields(cls) if f.name not in ("case", "status", "samples")}


def _plain(value):
    """A field's JSON form: nested records as dicts, enums as their value, and a
    non-finite float as None (JSON has no NaN; readers take None as "no value")."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- older schema versions ---------------------------------------------------------------

_V1_SETTINGS = {"rel_ci": "rel_ci", "budget_s": "budget_s", "min_rounds": "min_rounds",
                "max_rounds": "max_rounds", "warmup_rounds": "min_warmup_rounds",
                "warmup_s": "min_warmup_s", "threads": "threads",
                "flush_denormal": "flush_denormal", "seed": "seed",
                "cudnn_benchmark": "cudnn_benchmark"}
_V1_TIMING = {"first_step_s": "first_step_s", "build_s": "setup_s", "setup_s": "setup_s",
              "first_interval_s": "first_step_s"}
_V1_CONVERGENCE_TEXT = ("train_s", "total_s", "benchmark_s", "compile")


def _upgrade(d: dict) -> dict:
    """An older record in the current schema's form."""
    return _v2_to_v3(_v1_to_v2(d) if d.get(SCHEMA) == 1 else d)


def _v2_to_v3(d: dict) -> dict:
    """Version 2 called the first step ``cold_s`` and, for compiled cases, ``compile_s``
    too: that is the first step, not the compiler's time, which it did not measure."""
    timing = dict(d["timing"]) if isinstance(d.get("timing"), dict) else {}
    if "cold_s" in timing:
        timing["first_step_s"] = timing.pop("cold_s")
    timing.pop("compile_s", None)
    return {**d, SCHEMA: SCHEMA_VERSION, "timing": timing}


def _v1_to_v2(d: dict) -> dict:
    """Schema 1 -> 2 (``cold_s`` already under its version-3 name). Version 1 kept speed
    statistics flat (``time_*``), the run settings under ``timing.settings``, and
    convergence timing notes as strings under ``timing`` (so ``timing.train_s`` was text
    while ``train_s`` was a number)."""
    out = {k: v for k, v in d.items() if not k.startswith("time_") and k != "time_unit"}
    if d.get(KIND) == Kind.SPEED:
        out["time"] = {k[len("time_"):]: v for k, v in d.items()
                       if k.startswith("time_") and k != "time_unit"}
    old = d.get("timing") if isinstance(d.get("timing"), dict) else {}
    timing = {k: v for k, v in old.items()
              if k != "settings" and k not in _V1_TIMING and k not in _V1_CONVERGENCE_TEXT}
    timing.update({new: old[k] for k, new in _V1_TIMING.items() if k in old})
    settings = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    timing.update({new: settings[k] for k, new in _V1_SETTINGS.items() if k in settings})
    if d.get(KIND) == Kind.CONVERGENCE:
        notes = [f"{k}: {old[k]}" for k in _V1_CONVERGENCE_TEXT if isinstance(old.get(k), str)]
        timing["method"] = "; ".join(notes) or None
        timing.pop("compile", None)
        # Version 1 had two experiments: the LeNets' BatchNorm one and the depth one.
        out.setdefault("experiment", "bn" if str(d.get("model", "")).startswith("lenet")
                       else "degradation")
    out["timing"] = timing
    return out
