"""Speed-ups with their intervals, and what to use: the advice behind the report's
"What to use" section, its headline and ``resnets advise``.

A speed-up is a variant's throughput over its baseline's, for the same model, mode,
device, batch and input in the same run. Its 95% interval comes from both cases'
samples and the device's run-to-run shift (``frame.speed``: another run could move
either case that much), on log scale: ``exp(d +- 1.96 sqrt(se_v^2 + se_b^2))``. A
speed-up whose interval holds 1 is within noise.

The advice for a model on a device in a mode (at one batch and input) is the fastest
variant whose speed-up interval lies above 1, never one whose interval holds 1 ("no
clear winner" when none does); beside it, how its peak memory compares with the
baseline's, and for a compiled variant the compile time and the steps after which it has
paid for itself against its eager twin; and the variants measured as slower (interval
below 1), with how much, so a user sees what not to do at that input size. A launch-bound
case gets no variant at all: when the GPU idles for most of the step (``gpu_busy`` below
half, measured by ``resnets.measure.busy``; for results without that measurement, a CUDA
baseline below ``LAUNCH_BOUND_UTILIZATION`` of the attainable FLOP/s), its precisions and
formats differ by launch noise, and the advice says what helps instead. A variant
measured while other work kept more than half a core busy (``timing.other_cores``) is
neither picked nor called slower: on 2 cores, a second busy process can slow a 2-thread
step 50-fold, and no interval tells that from the code; the advice names it for a rerun.

What users ship has two costs an interval of speed does not show. An ``export-aoti``
pick carries its build (``timing.compile_s``: export + packaging, paid once, offline)
and its package's size. Accuracy (``report.accuracy``, from ``resnets accuracy``): a
variant whose measured accuracy falls more than ``max_drop`` points below fp32 for the
model is never picked, nor is an int8 variant whose accuracy was not measured for it;
both are named with why ("held back"); a pick whose accuracy was measured carries the
change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compare.noise import BUSY_CORES
from ..errors import UserError
from ..schema import SAMPLES
from ..stats import log_interval
from ..text import nbytes
from .accuracy import DEFAULT_MAX_DROP, costs, verdict
from .frame import ROW_KEYS, baseline_for, shown, sort_rows, speed, variant_order

# Without a measured GPU-busy share: a CUDA case this far below its attainable FLOP/s is
# taken as launch-bound (on the H100 reference, LeNet-BN and ResNet-20 ran at <= 0.5%
# while every compute-bound case reached >= 9%).
LAUNCH_BOUND_UTILIZATION = 0.02
LAUNCH_BOUND_ADVICE = ("launch-bound: the GPU idles for most of each step, so precisions "
                       "and formats differ by launch noise; CUDA graphs "
                       "(compile-reduce-overhead) or larger batches help, precision does not")


def speedups(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per (row group, variant) with a baseline in the same group: throughput and
    its interval, speed-up over the baseline and its interval, ``within_noise``.
    A ``baseline`` the user named must exist (else ``UserError``)."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    if baseline is not None and baseline not in set(ok["variant"]):
        raise UserError(f"--baseline {baseline}: no successful case has this variant "
                        f"(variants here: {', '.join(variant_order(ok['variant'])) or 'none'})")
    rows = []
    for _, group in sort_rows(ok).groupby(ROW_KEYS, sort=False, dropna=False):
        base_name = baseline_for(group["device"].iloc[0], group["variant"], baseline)
        base = group[group["variant"] == base_name]
        if base.empty:
            continue
        b = base.iloc[0]
        # The baseline was timed side by side when any variant was paired with it: the
        # load then landed on both, and only their intervals widen.
        pairs = {r["variant"]: paired_change(r, b)
                 for _, r in group.iterrows() if r["variant"] != base_name}
        base_paired = any(p is not None for p in pairs.values())
        for _, r in group.iterrows():
            paired = pairs.get(r["variant"])
            side_by_side = paired is not None or (r["variant"] == base_name and base_paired)
            d, se = (0.0, 0.0) if r["variant"] == base_name else (paired or change(r, b))
            ratio, low, high = log_interval(d, se)
            rows.append({**{k: r[k] for k in ROW_KEYS}, "variant": r["variant"],
                         "baseline": base_name, "samples_per_s": r["samples_per_s"],
                         "sps_low": r["sps_low"], "sps_high": r["sps_high"],
                         "speedup": ratio, "speedup_low": low, "speedup_high": high,
                         "within_noise": bool(low <= 1 <= high) and r["variant"] != base_name,
                         "peak_memory_bytes": r["peak_memory_bytes"],
                         "launch_bound": launch_bound(r), "paired": paired is not None,
                         "row": r,  # the case itself, for comparisons between variants
                         "pairing": r["timing_pairing"],
                         # side by side, the load lands on both: it widens the interval
                         "busy": 0.0 if side_by_side else _busy(r, b),
                         "first_step_s": r["timing_first_step_s"], "latency_s": r["latency_s"],
                         "compile_s": r["timing_compile_s"],
                         "package_bytes": r["package_bytes"],
                         "samples_per_j": r["samples_per_s_per_watt"],
                         "cpu_capability": r["env_cpu_capability"], "cpu_flags": r["env_cpu_flags"],
                         "memory_format": r["memory_format"], "precision": r["precision"],
                         "compile": r["compile"]})
    return pd.DataFrame(rows)


def change(row, base) -> tuple[float, float]:
    """(log speed-up of ``row`` over ``base``, its standard error): from their blocks when
    they were timed side by side (``paired_change``), else from their two levels, each
    with the noise model's run-to-run shift."""
    paired = paired_change(row, base)
    if paired is not None:
        return paired
    return (math.log(row["samples_per_s"] / base["samples_per_s"]),
            math.hypot(row["level_se"], base["level_se"]))


def paired_change(row, base) -> tuple[float, float] | None:
    """(log speed-up of ``row`` over ``base``, its standard error) when both were timed
    side by side in one group (``measure.group``: the same ``pair``, blocks kept): the
    median over rounds of the log ratio of their block medians, its spread over the
    rounds, and the shift between builds that alternating blocks cannot cancel (the
    gate's calibrated prior). None: not paired, and the noise model's run-to-run shift
    applies instead."""
    from ..compare.noise import paired_sigma
    from ..compare.significance import MIN_BLOCK_PAIRS, paired_blocks

    if not (isinstance(row["pair"], str) and row["pair"] == base["pair"]
            and isinstance(row["blocks"], list) and isinstance(base["blocks"], list)):
        return None
    d, within, n = paired_blocks(base[SAMPLES], base["blocks"], row[SAMPLES], row["blocks"])
    if n < MIN_BLOCK_PAIRS:
        return None
    return -d, math.hypot(within, paired_sigma(str(row["device"]), within))


def _busy(row, base) -> float:
    """Most cores other work kept busy while the variant or its baseline was timed."""
    values = [pd.to_numeric(x.get("timing_other_cores"), errors="coerce") for x in (row, base)]
    return float(max([v for v in values if pd.notna(v)], default=0.0))


def launch_bound(row) -> bool:
    """Measured (``launch_bound``), or inferred for older results from utilization."""
    if isinstance(row["launch_bound"], bool):
        return row["launch_bound"]
    util = row["utilization"]
    return bool(row["device"] == "cuda" and util is not None and np.isfinite(util)
                and util < LAUNCH_BOUND_UTILIZATION)


def interval(value: float, low: float, high: float, unit: str = "×") -> str:
    """``1.82× (1.55–2.14)``: a value and its 95% interval, 3 significant digits."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{_num(value)}{unit} ({_num(low)}–{_num(high)})"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


@dataclass
class Advice:
    key: dict                         # the row group: ``case.ROW_KEYS`` -> value
    baseline: str = ""
    pick: str | None = None           # the variant to use, or None: no clear winner
    speedup: float = 1.0
    speedup_low: float = 1.0
    speedup_high: float = 1.0
    samples_per_s: float = 0.0        # of the pick (or of the baseline, with no pick)
    sps_low: float = 0.0
    sps_high: float = 0.0
    memory_ratio: float | None = None  # pick's peak memory / baseline's
    compile_cost_s: float | None = None   # once: the compiled case's first step, compiling included
    breakeven_steps: float | None = None  # steps until compiling pays off (inf: never)
    package_s: float | None = None        # export-aoti: export + packaging, once, offline
    package_bytes: float | None = None
    accuracy: str | None = None           # the pick's measured accuracy change (report.accuracy)
    # Faster, but not recommended for their accuracy: (variant, speed-up, low, high, why).
    held: list[tuple[str, float, float, float, str]] = field(default_factory=list)
    slower: list[tuple[str, float, float, float]] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)  # faster or slower within noise
    loaded: list[str] = field(default_factory=list)   # measured under load: not judged
    # A paired group timed under load: its ratios hold, its absolute numbers do not.
    paired_load: str | None = None
    # The most energy-efficient variant when it is not the pick: (variant, its samples per
    # joule, the pick's (or baseline's) samples per joule).
    efficient: tuple[str, float, float] | None = None
    why_slow: str | None = None       # what in the machine makes a slower variant slow
    unpaired: str | None = None       # why its variants were not timed side by side
    note: str | None = None

    def __getattr__(self, name: str):
        """The row group's values read as attributes: ``a.model``, ``a.batch_size``."""
        key = self.__dict__.get("key") or {}
        if name in key:
            return key[name]
        raise AttributeError(name)

    @property
    def verdict(self) -> str:
        if self.note:
            return self.note.split(":")[0]
        if self.pick is None:
            return "no clear winner"
        if self.pick == self.baseline:
            return f"keep {self.baseline}"
        return f"use {self.pick}"


def advise(df: pd.DataFrame, baseline: str | None = None, accuracy: pd.DataFrame | None = None,
           max_drop: float = DEFAULT_MAX_DROP) -> list[Advice]:
    """The advice for every model, device, mode, batch and input (see the module doc);
    ``accuracy`` is ``report.accuracy.load``'s frame, ``max_drop`` in points."""
    if not (math.isfinite(max_drop) and max_drop >= 0):
        raise UserError(f"the largest accuracy drop must be >= 0 points, not {max_drop}")
    table = speedups(df, baseline)
    known = costs(accuracy)
    out = []
    if table.empty:
        return out
    for key, g in table.groupby(ROW_KEYS, sort=False, dropna=False):
        base = g[g["variant"] == g["baseline"]].iloc[0]
        a = Advice(dict(zip(ROW_KEYS, key)), baseline=base["baseline"],
                   samples_per_s=base["samples_per_s"],
                   sps_low=base["sps_low"], sps_high=base["sps_high"])
        loaded = g[g["busy"] > BUSY_CORES]
        others = g[(g["variant"] != a.baseline) & (g["busy"] <= BUSY_CORES)]
        supported = others[others["speedup_low"] > 1]
        judged = {r.variant: verdict(r.model, r.precision, r.compile, known, max_drop)
                  for r in supported.itertuples()}
        a.held = [(r.variant, r.speedup, r.speedup_low, r.speedup_high, judged[r.variant][1])
                  for r in supported.itertuples() if not judged[r.variant][0]]
        supported = supported[[judged[v][0] for v in supported["variant"]]]
        a.slower = [(r.variant, r.speedup, r.speedup_low, r.speedup_high)
                    for r in others[others["speedup_high"] < 1].itertuples()]
        a.unclear = list(others[others["within_noise"]]["variant"])
        if g["launch_bound"].any():
            a.pick, a.note, a.slower, a.held = None, LAUNCH_BOUND_ADVICE, [], []
        elif base["busy"] > BUSY_CORES:
            a.pick, a.slower, a.unclear, a.held = None, [], [], []
            a.note = (f"not judged: the baseline was measured while other work kept "
                      f"{base['busy']:.1f} cores busy; rerun on a quiet machine")
        elif supported.empty:
            # The baseline is "kept" only when it was all there was; variants measured
            # under load are not judged, which is not the same as "nothing else".
            a.pick = None if len(g) > 1 else a.baseline
            a.speedup = a.speedup_low = a.speedup_high = 1.0
        else:
            best = _simplest_of_the_fastest(supported)
            a.pick = best["variant"]
            a.speedup, a.speedup_low, a.speedup_high = (best["speedup"], best["speedup_low"],
                                                        best["speedup_high"])
            a.samples_per_s, a.sps_low, a.sps_high = (best["samples_per_s"], best["sps_low"],
                                                      best["sps_high"])
            if _positive(best["peak_memory_bytes"]) and _positive(base["peak_memory_bytes"]):
                a.memory_ratio = best["peak_memory_bytes"] / base["peak_memory_bytes"]
            if best["compile"] == "compile":
                a.compile_cost_s, a.breakeven_steps = _breakeven(best, g)
            if best["compile"] == "export-aoti":
                a.package_s = best["compile_s"] if _positive(best["compile_s"]) else None
                a.package_bytes = (best["package_bytes"] if _positive(best["package_bytes"])
                                   else None)
            a.accuracy = judged[a.pick][1]
        if len(loaded) and not a.note:
            a.loaded = list(loaded["variant"])
        busiest = max(_busy(r, r) for r in g["row"])
        if g["paired"].any() and busiest > BUSY_CORES and not a.note:
            a.paired_load = (f"timed side by side while other work kept {busiest:.1f} cores "
                             f"busy: the speed-ups hold, the samples/s are a loaded machine's")
        if not a.note:
            a.efficient = (None if a.paired_load else
                           _most_efficient(g[g["busy"] <= BUSY_CORES], a.pick or a.baseline))
            a.why_slow = _why_slow(a, g)
        a.unpaired = _unpaired(g)
        out.append(a)
    return out


def _simplest_of_the_fastest(supported: pd.DataFrame):
    """The fastest supported variant, or the simplest (``variant_order``: fewest changes
    from the defaults) of those not shown to be slower than it: two variants within
    noise of each other must not swap places from run to run."""
    fastest = supported.loc[supported["speedup"].idxmax()]
    ties = [r for _, r in supported.iterrows()
            if r["variant"] == fastest["variant"]
            or not _beyond_noise(*change(fastest["row"], r["row"]))]
    order = variant_order([r["variant"] for r in ties], fastest["baseline"])
    return next(r for r in ties if r["variant"] == order[0])


def _beyond_noise(d: float, se: float) -> bool:
    _, low, high = log_interval(d, se)
    return not low <= 1 <= high


def _unpaired(group: pd.DataFrame) -> str | None:
    """Why a group's variants were not timed side by side (their records say), or, for a
    launch-bound group, why pairing would not help; None when they were paired."""
    if group["launch_bound"].any():
        return "launch-bound: pairing cannot help a ranking of launch noise"
    if group["paired"].any() or len(group) < 2 and not group["pairing"].notna().any():
        return None
    said = [p.split(":", 1)[1].strip() for p in group["pairing"].dropna()
            if str(p).startswith("unpaired:")]
    return said[0] if said else ("one variant only" if len(group) < 2 else
                                 "timed apart (an older run, or --unpaired)")


# CPU ISA features with native bf16 arithmetic (x86 AVX-512 BF16 or AMX; Arm's BF16).
NATIVE_BF16 = {"avx512_bf16", "amx_bf16", "bf16"}


def _why_slow(a: Advice, group: pd.DataFrame) -> str | None:
    """Why a bf16 variant the advice calls slower is slow on this CPU, when its recorded
    ISA flags have no native bf16 (on an AVX2-only machine bf16 ran 17x slower than fp32:
    every op converts)."""
    if a.device != "cpu" or not any("-bf16-" in v for v, *_ in a.slower):
        return None
    flags = next((f for f in group["cpu_flags"] if isinstance(f, str)), None)
    if flags is None or NATIVE_BF16 & set(flags.split()):
        return None
    capability = next((c for c in group["cpu_capability"] if isinstance(c, str)), "?")
    return f"no native bf16 on this CPU ({capability}): bf16 runs emulated"


def _most_efficient(group: pd.DataFrame, chosen: str) -> tuple[str, float, float] | None:
    """The variant with the most samples per joule, when it is not ``chosen`` and both
    were measured (energy is recorded where an NVML or RAPL counter exists)."""
    measured = group.dropna(subset=["samples_per_j"])
    mine = measured[measured["variant"] == chosen]
    if measured.empty or mine.empty:
        return None
    best = measured.loc[measured["samples_per_j"].idxmax()]
    if best["variant"] == chosen:
        return None
    return best["variant"], float(best["samples_per_j"]), float(mine["samples_per_j"].iloc[0])


def _breakeven(compiled, group) -> tuple[float | None, float | None]:
    """(what compiling costs once: the compiled case's first step, which compiles; steps
    after which that paid for itself against the same format and precision in eager
    mode; inf when the compiled step is not faster)."""
    twin = group[(group["memory_format"] == compiled["memory_format"])
                 & (group["precision"] == compiled["precision"]) & (group["compile"] == "eager")]
    cost = compiled["first_step_s"]
    if not _positive(cost):
        return None, None
    saved = twin.iloc[0]["latency_s"] - compiled["latency_s"] if len(twin) else math.nan
    if not np.isfinite(saved):
        return cost, None
    return cost, (cost / saved if saved > 0 else math.inf)


def _positive(value) -> bool:
    """A measured, positive number (not None, NaN or infinite: not recorded)."""
    return value is not None and bool(pd.notna(value)) and math.isfinite(value) and value > 0


def advice_rows(advice: list[Advice]) -> pd.DataFrame:
    """The "What to use" table, the report's first: one row per model, device, mode, batch
    and input: the pick (or why there is none), its speed-up and throughput with 95%
    intervals, its memory cost, the variants to avoid, and notes."""
    rows = []
    for a in advice:
        extra = []
        if a.compile_cost_s is not None:
            pays = ("never pays off" if a.breakeven_steps == math.inf else
                    f"pays off after {a.breakeven_steps:,.0f} steps"
                    if a.breakeven_steps is not None else "")
            extra.append(f"compiling takes {a.compile_cost_s:.0f} s once, {pays}".rstrip(", "))
        if a.package_s is not None or a.package_bytes is not None:
            extra.append(package_text(a))
        if a.accuracy:
            extra.append(a.accuracy)
        if a.held:
            extra.append("held back for accuracy: " + "; ".join(
                f"{v} {interval(s, lo, hi)}, {why}" for v, s, lo, hi, why in a.held))
        if a.efficient:
            v, best, mine = a.efficient
            extra.append(f"most energy-efficient: {v} ({best:.3g} samples/J against "
                         f"{mine:.3g})")
        if a.why_slow:
            extra.append(a.why_slow)
        if a.note:
            extra.append(a.note)
        elif a.unclear and a.pick is None:
            extra.append(f"within noise: {', '.join(a.unclear)}")
        if a.paired_load:
            extra.append(a.paired_load)
        if a.loaded:
            extra.append(f"not judged, measured while other work kept cores busy (rerun): "
                         f"{', '.join(a.loaded)}")
        picked = a.pick not in (None, a.baseline)
        rows.append({**a.key, "use": a.verdict,
                     "speed-up (95%)": interval(a.speedup, a.speedup_low, a.speedup_high)
                     if picked else "—",
                     "samples/s (95%)": interval(a.samples_per_s, a.sps_low, a.sps_high, ""),
                     "memory": f"{a.memory_ratio:.2f}×" if a.memory_ratio is not None
                     else "—",
                     "baseline": a.baseline,
                     "avoid (slower)": "; ".join(f"{v} {interval(s, lo, hi)}"
                                                for v, s, lo, hi in a.slower) or "—",
                     "notes": "; ".join(extra) or "—"})
    return shown(pd.DataFrame(rows))


def package_text(a: Advice) -> str:
    """What an export-aoti pick costs before it runs: its build, once, and its file."""
    parts = ([f"built once in {a.package_s:.0f} s (export + AOTInductor)"]
             if a.package_s is not None else [])
    parts += [f"package {nbytes(a.package_bytes)}"] if a.package_bytes is not None else []
    return ", ".join(parts)
