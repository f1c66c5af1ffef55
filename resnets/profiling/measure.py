"""Where a step's time goes, per operator and per layer, measured with ``torch.profiler``.

Method (the same words go out with every result as ``profile_method``):

* The case is built exactly as for timing (``measure.workload.build``), warmed up with the
  timer's warm-up policy, then profiled for ``steps`` steps after one more step that the
  profiler discards (the first step under a profiler pays its start-up cost). GC is off
  and CUDA is synchronized at the end of each step, so a step's range is its wall time.
  Profiling perturbs time (a range per module call, recorded shapes), so these tables
  explain a step; they never stand in for a timed one, and never run on timed steps.
* Times are per step, on the case device's clock: a range's wall time on CPU; on CUDA the
  summed duration of the kernels launched inside it (so a layer's share is of the GPU's
  busy time; the step's wall time is reported beside it).
* Layers: forward hooks open a ``record_function`` range around every module call, so a
  module's forward time includes its children and the Python between them. Backward time
  is attributed through autograd's sequence numbers: the engine tags the evaluation of
  each backward node with the number of the forward op that created it, and that
  evaluation's time goes to every module whose range held the op. Accumulating into
  leaf gradients, the loss's backward and the optimizer belong to no layer.
* FLOPs per module come from ``FlopCounterMode`` (2 FLOPs per multiply-add, matmul/conv
  family only, so norms, activations and pooling count 0) over one extra forward of the
  eager model, as ``measure.flops`` counts the whole model; a layer's FLOP/s is its forward
  FLOPs over its forward time. Backward FLOPs are counted for the whole step only: the
  counter's module tracker charges a backward op to every module whose backward is open
  at the time, which over-counts where a residual block's two branches interleave.
* ``torch.compile``'d cases fuse across module boundaries: they get the operator table
  and the layers' static columns, but no layer times.
"""
from __future__ import annotations

import contextlib
import gc
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, record_function, schedule
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..case import Case
from ..errors import UserError
from ..measure.device import synchronizer
from ..measure.timer import TimingPolicy, warm_up
from ..measure.workload import Workload, autocast, build, math_mode, runtime_skip_reason
from ..store import atomic_write

RANGE = "layer: "  # name prefix of the profiler range around each module call
MODEL = "<model>"  # the range name of the model itself (its fqn is "")
BACKWARD = "autograd::engine::evaluate_function: "  # the engine's range per backward node
STEP = "ProfilerStep"
PROFILER_WARMUP_STEPS = 1


@dataclass(frozen=True)
class Profile:
    """Per-step tables of one case; ``tables()`` is the JSON-ready form."""

    case: Case
    ops: list[dict]
    layers: list[dict]
    summary: dict
    method: str

    def tables(self) -> dict:
        return {"ops": self.ops, "layers": self.layers, "summary": self.summary,
                "profile_method": self.method}


def profile_case(case: Case, steps: int = 3, trace: str | Path | None = None,
                 memory_timeline: str | Path | None = None, seed: int = 0) -> Profile:
    """Profile ``steps`` steps of ``case``; optionally write the Chrome trace and (CUDA) an
    HTML memory timeline of one more step. Thread count and the other run settings are the
    caller's (``measure.runner.Settings.apply``), so a profile sees what a timed run sees."""
    reason = runtime_skip_reason(case)
    if reason:
        raise UserError(f"cannot profile {case.id}: {reason}")
    if steps < 1:
        raise UserError(f"steps must be >= 1, not {steps}")
    # kineto logs its start/stop (and, without a GPU, a failed device query) on stderr.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with math_mode(case):
        work = build(case, seed=seed)
        layers, flops = _structure(work)
        warmup_rounds = warm_up(work.step, TimingPolicy(), synchronizer(case.device))[0]
        timed = case.compile == "eager"
        with _module_ranges(work.model) if timed else contextlib.nullcontext():
            prof = _profiled_steps(work, steps)
        if trace is not None:
            atomic_write(trace, prof.export_chrome_trace)
        if memory_timeline is not None and case.device == "cuda":
            _memory_timeline(work, memory_timeline)
    return _tables(case, prof, layers, flops, warmup_rounds, timed)


# --- one un-profiled pass for what does not need a clock ----------------------------

@contextlib.contextmanager
def _hooks(model: nn.Module, enter: Callable[[str], None],
           leave: Callable[[str, tuple, object], None]) -> Iterator[None]:
    """Call ``enter(fqn)`` before and ``leave(fqn, args, output)`` after every module call
    (``fqn`` is "" for the model itself), for as long as the context lasts."""
    handles = []
    for fqn, module in model.named_modules():
        def pre(_mod, _args, fqn=fqn) -> None:
            enter(fqn)

        def post(_mod, args, output, fqn=fqn) -> None:
            leave(fqn, args, output)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _structure(work: Workload) -> tuple[dict[str, dict], dict]:
    """Static columns per module, keyed by fqn in the order modules are first called (a
    parent before its children): type, depth, calls, parameters, output shape, new
    activation bytes, FLOPs. Also the model's forward and step FLOPs."""
    modules = dict(work.model.named_modules())
    rows: dict[str, dict] = {}

    def enter(fqn: str) -> None:
        if fqn and fqn not in rows:
            module = modules[fqn]
            rows[fqn] = {"module": fqn, "type": type(module).__name__,
                         "depth": fqn.count(".") + 1,
                         "leaf": next(module.children(), None) is None, "calls": 0,
                         "params": sum(p.numel() for p in module.parameters()),
                         "output_shape": None, "activation_bytes": 0}

    def leave(fqn: str, args: tuple, output) -> None:
        if fqn:
            row = rows[fqn]
            row["calls"] += 1
            row["output_shape"] = _shape(output)
            row["activation_bytes"] += _new_bytes(args, output)

    with _hooks(work.model, enter, leave):
        fwd, step = _flops(work)
    for fqn, row in rows.items():
        row["flops_fwd"] = fwd.get(fqn, 0)
    return rows, {"flops_fwd": fwd[""], "flops_step": step}


def _flops(work: Workload) -> tuple[dict[str, int], int]:
    """Forward FLOPs per module fqn ("" = the model), and the FLOPs of a whole step (with
    the backward when training; the optimizer does not step and the gradients are dropped)."""
    counter = FlopCounterMode(display=False)
    with counter:
        if work.case.mode == "infer":
            with torch.inference_mode(), autocast(work.case):
                work.model(work.inputs)
            return _forward_counts(counter), counter.get_total_flops()
        with autocast(work.case):
            loss = F.cross_entropy(work.model(work.inputs), work.targets)
        forward = _forward_counts(counter)
        loss.backward()
    work.model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops()


def _forward_counts(counter: FlopCounterMode) -> dict[str, int]:
    """``{fqn: flops}``; the counter names modules ``<RootClass>.<fqn>``, the root "" here."""
    return {key.partition(".")[2]: sum(by_op.values())
            for key, by_op in counter.get_flop_counts().items() if key != "Global"}


def _shape(output) -> str:
    """``2x64x56x56``; several tensors are joined with ", "."""
    shapes = ["x".join(map(str, t.shape)) for t in tree_leaves(output) if torch.is_tensor(t)]
    return ", ".join(shapes) or type(output).__name__


def _new_bytes(args: tuple, output) -> int:
    """Bytes of the output tensors that are not stored in an input (in-place ops make 0)."""
    inputs = {t.untyped_storage().data_ptr() for t in tree_leaves(args) if torch.is_tensor(t)}
    return sum(t.numel() * t.element_size() for t in tree_leaves(output)
               if torch.is_tensor(t) and t.untyped_storage().data_ptr() not in inputs)


# --- the profiled steps -------------------------------------------------------------

@contextlib.contextmanager
def _module_ranges(model: nn.Module) -> Iterator[None]:
    """Wrap every module call in a profiler range named ``RANGE + fqn``."""
    open_ranges: list[record_function] = []

    def enter(fqn: str) -> None:
        open_ranges.append(record_function(RANGE + (fqn or MODEL)).__enter__())

    def leave(_fqn: str, _args: tuple, _output) -> None:
        open_ranges.pop().__exit__(None, None, None)

    with _hooks(model, enter, leave):
        yield


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No collector pauses inside profiled steps, as inside timed ones."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _profiled_steps(work: Workload, steps: int) -> profile:
    cuda = work.case.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    plan = schedule(wait=0, warmup=PROFILER_WARMUP_STEPS, active=steps, repeat=1)
    # acc_events: there is one cycle only; without it some torch versions warn about losing
    # events of earlier cycles.
    sync = synchronizer(work.case.device)
    with _gc_paused(), profile(activities=activities, record_shapes=True, schedule=plan,
                               acc_events=True) as prof:
        for _ in range(PROFILER_WARMUP_STEPS + steps):
            work.step()
            sync()
            prof.step()
    return prof


def _memory_timeline(work: Workload, path: str | Path) -> None:
    """One more step under a memory-recording profiler: recording allocations and stacks
    costs too much to do during the profile the tables come from."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], profile_memory=True,
                 record_shapes=True, with_stack=True, acc_events=True) as prof:
        work.step()
        torch.cuda.synchronize()
    device = str(work.inputs.device)
    with warnings.catch_warnings():
        # Deprecated for a pickled snapshot that needs an online viewer; this HTML page is
        # self-contained, so keep it while it exists.
        warnings.filterwarnings("ignore", ".*export_memory_timeline", FutureWarning)
        atomic_write(path, lambda tmp: prof.export_memory_timeline(tmp, device=device))


# --- from events to tables ----------------------------------------------------------

def _tables(case: Case, prof: profile, layers: dict[str, dict], flops: dict,
            warmup_rounds: int, timed: bool) -> Profile:
    events = sorted((e for e in prof.events() if e.device_type == DeviceType.CPU),
                    key=lambda e: e.time_range.start)
    steps = [e for e in events if e.name.startswith(STEP)]
    n = len(steps)
    clock = _clock(case, n)
    step_wall_ms = sum(e.cpu_time_total for e in steps) / 1e3 / n
    step_ms = (sum(e.self_device_time_total for e in events) / 1e3 / n
               if case.device == "cuda" else step_wall_ms)
    fwd, bwd = _layer_times(events, clock)
    ops = _op_rows(prof, case, n, step_ms)
    summary = {
        "profiled_steps": n, "profiler_warmup_steps": PROFILER_WARMUP_STEPS,
        "warmup_steps": warmup_rounds, "step_ms": step_ms, "step_wall_ms": step_wall_ms,
        "forward_ms": fwd.get("") if timed else None,
        "backward_ms": sum(clock(e) for e in events if e.name.startswith(BACKWARD))
        if case.mode == "train" else None,
        "backward_in_layers_ms": bwd.get("") if case.mode == "train" and timed else None,
        "ops_self_ms": sum(r[f"self_{case.device}_ms"] for r in ops),
        **flops, "achieved_flops_per_s": flops["flops_step"] / (step_wall_ms / 1e3),
        "layer_times": (("forward+backward" if case.mode == "train" else "forward")
                        if timed else None),
    }
    rows = [_layer_row(row, fwd, bwd, case, step_ms, timed) for row in layers.values()]
    return Profile(case, ops, rows, summary, _method(case, n))


def _clock(case: Case, steps: int) -> Callable[[FunctionEvent], float]:
    """A CPU event's time in ms per step on the case's clock: its wall time on CPU, the
    kernels that it and its children launched on CUDA."""
    if case.device == "cuda":
        return lambda e: e.device_time_total / 1e3 / steps
    return lambda e: e.cpu_time_total / 1e3 / steps


def _layer_times(events: list[FunctionEvent], clock) -> tuple[dict, dict]:
    """Forward and backward ms per module fqn (see the module docstring for the method)."""
    fwd: dict[str, float] = defaultdict(float)
    bwd: dict[str, float] = defaultdict(float)
    owners: dict[tuple[int, int], tuple[str, ...]] = {}
    for e in events:
        if e.name.startswith(RANGE):
            fwd[_fqn(e.name)] += clock(e)
        elif e.sequence_nr >= 0 and not e.name.startswith(BACKWARD):
            # Ops that create no autograd node share the next op's number; in time order
            # the op that does create it comes last and wins.
            owner = _enclosing_modules(e)
            if owner:
                owners[(e.thread, e.sequence_nr)] = owner
    for e in events:
        if e.name.startswith(BACKWARD):
            for fqn in owners.get((e.fwd_thread, e.sequence_nr), ()):
                bwd[fqn] += clock(e)
    return fwd, bwd


def _enclosing_modules(e: FunctionEvent) -> tuple[str, ...]:
    out = []
    parent = e.cpu_parent
    while parent is not None:
        if parent.name.startswith(RANGE):
            out.append(_fqn(parent.name))
        parent = parent.cpu_parent
    return tuple(out)


def _fqn(range_name: str) -> str:
    name = range_name[len(RANGE):]
    return "" if name == MODEL else name


def _layer_row(row: dict, fwd: dict, bwd: dict, case: Case, step_ms: float,
               timed: bool) -> dict:
    fqn = row["module"]
    train = case.mode == "train"
    fwd_ms = fwd.get(fqn, 0.0) if timed else None
    bwd_ms = bwd.get(fqn, 0.0) if timed and train else None
    time_ms = fwd_ms + (bwd_ms or 0.0) if timed else None
    return {**row, "time_ms": time_ms, "fwd_ms": fwd_ms, "bwd_ms": bwd_ms,
            "share": time_ms / step_ms if time_ms is not None else None,
            "flops_per_s": row["flops_fwd"] / (fwd_ms / 1e3) if fwd_ms else None}


def _op_rows(prof: profile, case: Case, steps: int, step_ms: float) -> list[dict]:
    """Operators (and framework ranges such as the optimizer step) by self time on the
    case's clock; kernels are not rows of their own, they are in their op's CUDA columns."""
    cuda = case.device == "cuda"
    rows = []
    for avg in prof.key_averages():
        if avg.device_type != DeviceType.CPU or avg.key.startswith((RANGE, STEP)):
            continue
        row = {"op": avg.key, "calls": avg.count / steps,
               "self_cpu_ms": avg.self_cpu_time_total / 1e3 / steps,
               "cpu_total_ms": avg.cpu_time_total / 1e3 / steps,
               "self_cuda_ms": avg.self_device_time_total / 1e3 / steps if cuda else None,
               "cuda_total_ms": avg.device_time_total / 1e3 / steps if cuda else None}
        row["share"] = row[f"self_{case.device}_ms"] / step_ms
        rows.append(row)
    return sorted(rows, key=lambda r: r[f"self_{case.device}_ms"], reverse=True)


def _method(case: Case, steps: int) -> str:
    clock = ("CUDA kernel time launched inside each range (shares are of the GPU's busy "
             "time per step)" if case.device == "cuda" else "CPU wall time of each range")
    layers = (f"no layer times: a {case.compile} step runs no module's forward in Python "
              "(a compiled, exported or captured graph)" if case.compile != "eager"
              else "layer time = record_function range per module call (forward hooks), "
              "children included" + ("; backward time attributed to the modules whose "
                                     "forward created each autograd node (sequence numbers)"
                                     if case.mode == "train" else ""))
    return (f"torch {torch.__version__} torch.profiler, record_shapes=True; warm-up as for "
            f"timing, {PROFILER_WARMUP_STEPS} discarded profiler step, then profiled steps: "
            f"{steps}, GC off; times are ms per step on the {case.device} clock: {clock}; "
            f"{layers}; forward FLOPs per module by FlopCounterMode (2 per multiply-add, "
            f"conv/matmul only), eager model; layer FLOP/s = forward FLOPs / forward time; "
            f"profiling overhead inflates times, use timed runs for speed")
