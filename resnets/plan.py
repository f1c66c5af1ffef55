"""How long a selection will take, and how to split it across machines.

``estimates`` gives each planned case (speed case or convergence trial) its expected
seconds, end to end (build, warm-up, timed rounds, memory and FLOP passes):

* from an earlier run (``--estimate-from RESULTS``): what the same case took there
  (``timing.case_s``; older results: build + warm-up + timed seconds, times 1.3 for the
  passes they did not record);
* otherwise from a cost model: a step takes its FLOPs at a fraction of the device's
  nominal peak, or its layers' launch overhead, whichever is more; warm-up, compilation
  and the extra passes are added as measured on the reference machines (see
  ``COST``). It is a plan, not a measurement: it says how it was made.

``shard`` splits the cases into N disjoint parts of about equal estimated time (longest
first, each to the part with the least so far; ties broken by case id), the same on every
machine, so ``--shard K/N`` on N machines runs each case exactly once. The nominal peaks
are fixed numbers, never measured here, so the split does not depend on the machine that
computes it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import presets
from .case import Case
from .errors import UserError
from .presets import Trial

# Fixed, so that every machine computes the same plan: FLOP/s a step reaches on each
# device (H100-class GPU, 2-core AVX2 CPU), and what else a case costs, in seconds.
NOMINAL_PEAK = {("cuda", "fp32"): 67e12, ("cuda", "default"): 495e12, ("cuda", "tf32"): 495e12,
                ("cuda", "bf16"): 989e12, ("cuda", "fp16"): 989e12, ("cpu", "fp32"): 300e9,
                ("cpu", "bf16"): 300e9, ("cpu", "int8"): 600e9}
COST = {
    "efficiency": {"cuda": 0.3, "cpu": 0.35},     # of the nominal peak, for big steps
    "per_layer_s": {"cuda": 12e-6, "cpu": 40e-6},  # launch/dispatch per leaf layer call
    "cold_s": {"cuda": 1.0, "cpu": 0.05},          # first step: cuDNN autotuning, caches
    "compile_s": {"cuda": 30.0, "cpu": 45.0},      # torch.compile (x1.5 for training)
    "package_s": {"cuda": 60.0, "cpu": 90.0},      # torch.export + AOTInductor package
    "quantize_s": 10.0,                            # int8 (CPU): PT2E calibrate, convert
    "case_overhead_s": 0.4,                        # FLOP count, result file, pytest
    "run_overhead_s": 15.0,                        # interpreter, imports, the report
}
TIMED_STEPS = 40  # steps until the median's 95% CI is within +-2%, typically


@dataclass(frozen=True)
class Estimate:
    name: str            # case id or trial id
    seconds: float
    source: str          # "earlier run" | "cost model"


@cache
def _shape_of_work(model: str, mode: str, batch: int, shape: tuple[int, int, int]):
    """(step FLOPs, leaf layers): counted on the meta device, no arithmetic."""
    from . import models
    from .measure.flops import meta_flops

    with __import__("torch").device("meta"):
        layers = sum(1 for m in models.create(model).modules() if not any(m.children()))
    return meta_flops(model, mode, batch, shape)["flops_step"], layers


def step_seconds(case: Case) -> float:
    flops, layers = _shape_of_work(case.model, case.mode, case.batch_size, case.input_shape)
    device = case.device
    peak = NOMINAL_PEAK.get((device, case.precision), NOMINAL_PEAK[(device, "fp32")])
    calls = layers * (3 if case.mode == "train" else 1)
    return max(flops / (peak * COST["efficiency"][device]), calls * COST["per_layer_s"][device])


def model_seconds(case: Case, budget_s: float, min_rounds: int, warmup_s: float) -> float:
    step = step_seconds(case)
    cold = COST["cold_s"][case.device]
    if case.compile == "compile":
        cold += COST["compile_s"][case.device] * (1.5 if case.mode == "train" else 1.0)
    if case.compile == "export-aoti":
        cold += COST["package_s"][case.device]
    if case.precision == "int8":
        cold += COST["quantize_s"]
    timed = min(budget_s, max(min_rounds, TIMED_STEPS) * step)
    memory = step * (3 if case.device == "cpu" else 1)
    return cold + max(warmup_s, 3 * step) + timed + memory + COST["case_overhead_s"]


def trial_seconds(trial: Trial) -> float:
    """Training to the budget (the worst case: a run may stop at its target), plus
    evaluations every 25-50 iterations."""
    step = step_seconds(trial.case)
    return trial.max_iters * step * 1.2 + COST["case_overhead_s"]


def earlier_seconds(df) -> dict[str, float]:
    """What each case (by case id, or trial id for convergence runs) took in the
    results ``df`` (``resnets.results.load``)."""
    from .schema import Kind

    out = {}
    for row in df.itertuples():
        total = getattr(row, "timing_case_s", None)
        if total is None or (isinstance(total, float) and math.isnan(total)):
            parts = [getattr(row, c, None) for c in ("timing_setup_s", "timing_warmup_s",
                                                     "timing_wall_s")]
            if row.kind == Kind.CONVERGENCE:
                parts = [getattr(row, "timing_setup_s", None), getattr(row, "total_s", None)]
            known = [p for p in parts if p is not None and not math.isnan(p)]
            total = sum(known) * 1.3 + COST["case_overhead_s"] if known else None
        if total is not None:
            key = row.trial_id if row.kind == Kind.CONVERGENCE else row.case_id
            out[str(key)] = float(total)
    return out


def estimates(cases: list[Case], trials: list[Trial], budget_s: float, min_rounds: int,
              warmup_s: float, earlier: dict[str, float] | None = None) -> list[Estimate]:
    earlier = earlier or {}
    out = []
    for item in [*cases, *trials]:
        name = item.id
        never = item.unsupported_reason() if isinstance(item, Case) else None
        if never:  # the same everywhere, so a shard plan stays machine-independent
            out.append(Estimate(name, 0.0, f"never runs: {never}"))
        elif name in earlier:
            out.append(Estimate(name, earlier[name], "earlier run"))
        elif isinstance(item, Trial):
            out.append(Estimate(name, trial_seconds(item), "cost model"))
        else:
            out.append(Estimate(name, model_seconds(item, budget_s, min_rounds, warmup_s),
                                "cost model"))
    return out


def shard(names_and_costs: list[tuple[str, float]], k: int, n: int) -> set[str]:
    """The names of shard ``k`` of ``n`` (1-based): longest first, each to the shard with
    the least estimated time so far (ties: the lower shard), names breaking cost ties."""
    loads = [0.0] * n
    owner = {}
    for name, cost in sorted(names_and_costs, key=lambda nc: (-nc[1], nc[0])):
        i = min(range(n), key=lambda j: (loads[j], j))
        loads[i] += cost
        owner[name] = i + 1
    return {name for name, i in owner.items() if i == k}


@dataclass(frozen=True)
class Plan:
    """What a run measures, decided once, before anything is measured: this shard's speed
    cases (each carrying how it runs, its batch sweep included) and convergence trials,
    and the names of everything the whole selection holds (every shard's), so a report
    can name what never got a result. ``resnets run`` writes it into the run folder
    (``PLAN_FILE``) and the pytest child it starts reads it instead of planning again."""

    cases: tuple[Case, ...]
    trials: tuple[Trial, ...]
    selected: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({
            "cases": [c.key() for c in self.cases],
            "trials": [{**t._asdict(), "case": t.case.key(), "protocol": list(t.protocol)}
                       for t in self.trials],
            "selected": list(self.selected)}, indent=1)

    @classmethod
    def load(cls, path: Path) -> Plan:
        """The plan in ``path``; ``UserError`` naming the file if it is not one."""
        from .files import read_json

        try:
            d = read_json(Path(path))
            return cls(tuple(Case.from_key(k) for k in d["cases"]),
                       tuple(Trial(**{**t, "case": Case.from_key(t["case"]),
                                      "protocol": tuple(map(tuple, t["protocol"]))})
                             for t in d["trials"]),
                       tuple(str(n) for n in d["selected"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path}: not a run plan ({str(exc)[:100]})") from None


PLAN_FILE = "plan.json"


def select(opts: dict) -> Plan:
    """The speed cases and convergence trials that the suite options ``opts`` select
    (this shard's only, with ``shard``). Raises ``UserError`` for a bad selection."""
    selection = presets.Selection.from_options(opts)
    cases = selection.cases()
    nodes = opts.get("nnodes") or 1
    if nodes > 1 and not opts.get("rdzv_endpoint"):
        raise UserError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the first node's)")
    for case in cases:
        if case.world_size % nodes:
            raise UserError(f"world size {case.world_size} does not split over {nodes} nodes")
    trials = (presets.trials(opts["preset"], opts["experiments"], selection, opts["dataset"])
              if opts["convergence"] else [])
    check_machine(opts, cases)
    if opts.get("image_sizes"):  # the presets' own sizes fit their models
        check_inputs(cases)
    selected = tuple(item.id for item in [*cases, *trials])
    if opts.get("shard"):
        mine = shard([(e.name, e.seconds) for e in run_estimates(opts, cases, trials)],
                     *opts["shard"])
        cases = [c for c in cases if c.id in mine]
        trials = [t for t in trials if t.id in mine]
    return Plan(tuple(cases), tuple(trials), selected)


def check_machine(opts: dict, cases) -> None:
    """What this machine cannot do is refused before anything runs: more threads, or
    more data-parallel ranks per node, than it has cores (unless ``oversubscribe``), or
    more ranks per node than it has GPUs."""
    import os

    cores, nodes = os.cpu_count() or 1, opts.get("nnodes") or 1
    force = opts.get("oversubscribe")
    if opts.get("threads") and opts["threads"] > cores and not force:
        raise UserError(f"--threads {opts['threads']}: this machine has {cores} cores "
                        "(--oversubscribe allows more)")
    per_node = {d: max((c.world_size // nodes for c in cases
                        if c.strategy != "none" and c.device == d), default=0)
                for d in ("cpu", "cuda")}
    if per_node["cpu"] > cores and not force:
        raise UserError(f"world size {per_node['cpu'] * nodes}: {per_node['cpu']} ranks per node "
                        f"on a machine with {cores} cores (--oversubscribe allows it)")
    if per_node["cuda"] > 1:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else None
        if gpus is not None and per_node["cuda"] > gpus:
            raise UserError(f"world size {per_node['cuda'] * nodes}: {per_node['cuda']} ranks "
                            f"per node on a machine with {gpus} GPUs")


def check_inputs(cases) -> None:
    """Every model can take its cases' inputs (one meta-device forward per model and
    size: no arithmetic), or the selection is refused in one line."""
    from .measure.workload import check_input_shape

    seen = {}
    for case in cases:
        seen.setdefault((case.model, case.input_shape), case)
    for case in seen.values():
        check_input_shape(case)


def run_estimates(opts: dict, cases, trials) -> list[Estimate]:
    """``estimates`` with the suite options' time budget and ``estimate_from`` results."""
    from .results import load

    budget = opts["time_budget"] or presets.PRESETS[opts["preset"]]["budget_s"]
    earlier = earlier_seconds(load(opts["estimate_from"])) if opts["estimate_from"] else {}
    return estimates(cases, trials, budget, opts["min_rounds"], 0.3, earlier)
