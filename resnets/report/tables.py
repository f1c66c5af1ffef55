"""The report's tables: each a DataFrame built from ``load()``'s frame, in display units.

Units are in the column names (``samples/s``, ``MiB``, ``GFLOP/s``), so the CSV export
reads the same as the HTML. An empty DataFrame means "nothing to show"; the report then
says why. ``inf`` appears only in the convergence table and means "target not reached":
it sorts last, so a configuration that never got there ranks slowest and is never dropped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import KIND, STATUS, Kind, SpeedResult, Status, metrics
from ..stats import log_interval
from ..text import count, nbytes, si
from .advice import interval, speedups
from .frame import (
    DEFAULT_BASELINE,
    ROW_KEYS,
    baseline_for,
    convergence,
    model_order,
    shown,
    sort_rows,
    speed,
    variant_order,
)
from .scaling import efficiency

MIB = 2 ** 20
TV_PREFIX = "tv_"
TOP_LAYERS = 10
# How a metric's unit (schema.metric) is shown in a table: (shown unit, factor).
DISPLAY_UNITS = {"bytes": ("MiB", 1 / MIB), "FLOP/s": ("GFLOP/s", 1e-9),
                 "FLOP": ("GFLOPs", 1e-9), "fraction": ("%", 100.0), "s": ("ms", 1e3),
                 "J": ("mJ", 1e3)}
# Our column name -> the label a reader sees.



def _count(value) -> str:
    return count(value) if pd.notna(value) else "—"


def _ints(s: pd.Series) -> pd.Series:
    """Whole numbers (counts, bytes) as nullable ints, so they print without a '.0'."""
    return pd.to_numeric(s, errors="coerce").round().astype("Int64")


def models_table(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Per model, device and mode: size and work per sample, the best throughput over
    variants and batch sizes (with its 95% interval) and the case that got it, and peak
    memory at the baseline variant (the same variant for every model, so models compare)."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    if ok.empty:
        return pd.DataFrame()
    rows = []
    order = {m: i for i, m in enumerate(model_order(ok))}
    for (model, shape, device, mode), g in ok.groupby(["model", "input_shape", "device", "mode"],
                                                      sort=False):
        best = g.loc[g["samples_per_s"].idxmax()]
        base_name = baseline_for(device, g["variant"], baseline)
        base = g[g["variant"] == base_name].sort_values("batch_size")
        peak = (f"{nbytes(base['peak_memory_bytes'].iloc[-1])} at {base_name}, bs"
                f"{int(base['batch_size'].iloc[-1])}"
                if not base.empty and pd.notna(base["peak_memory_bytes"].iloc[-1]) else "—")
        rows.append({"model": model, "input size": shape, "params": _count(best["params"]),
                     "forward FLOPs/sample": si(best["flops_fwd"] / best["batch_size"], "FLOP")
                     if pd.notna(best["flops_fwd"]) else "—",
                     "device": device, "mode": mode,
                     "best samples/s (95%)": interval(best["samples_per_s"], best["sps_low"],
                                                      best["sps_high"], ""),
                     "best at": f"{best['variant']} bs{int(best['batch_size'])}",
                     "peak memory (baseline variant)": peak, "_order": order[model]})
    out = pd.DataFrame(rows).sort_values(["_order", "device", "mode"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def _pivot(long: pd.DataFrame, keys: list[str], values: str) -> pd.DataFrame:
    """A row per measured key and a column per variant. ``dropna=False`` keeps keys that
    are NaN (a case without an input size) but also fills in every combination of the
    keys' values, such as lenet at 3x224x224; only rows with a measurement stay."""
    wide = long.pivot_table(index=keys, columns="variant", values=values, aggfunc="first",
                            sort=False, dropna=False)
    return wide.dropna(how="all")


def speedup_display(long: pd.DataFrame) -> pd.DataFrame:
    """The speed-up matrix as text: a row per model, mode, device, batch and input, a
    column per variant, each cell the speed-up and its 95% interval; "≈" marks one whose
    interval holds 1 (within noise)."""
    if long.empty:
        return pd.DataFrame()
    cells = long.assign(cell=[("≈ " if n else "") + interval(s, lo, hi)
                              for s, lo, hi, n in zip(long["speedup"], long["speedup_low"],
                                                      long["speedup_high"], long["within_noise"])])
    keys = [*ROW_KEYS, "baseline"]
    wide = _pivot(cells, keys, "cell")
    wide = wide[variant_order(wide.columns)]
    return shown(wide.reset_index().rename_axis(columns=None)).fillna("—")


def speedup_matrix(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Speed-ups as numbers: a row per row group, a column per variant (the heatmap's)."""
    long = speedups(df, baseline)
    if long.empty:
        return pd.DataFrame()
    wide = _pivot(long, ROW_KEYS, "speedup")
    order = variant_order(wide.columns, baseline or DEFAULT_BASELINE)
    return shown(wide[order].reset_index().rename_axis(columns=None))


def torchvision_table(df: pd.DataFrame) -> pd.DataFrame:
    """Our model against torchvision's, case by case, where both were measured.

    Convention: a case measures torchvision's model when its model name starts with
    ``tv_``; its counterpart is the rest of the name (``tv_resnet18`` <-> ``resnet18``).
    Pairs match on mode, device, variant, batch and input. The ratio's 95% interval
    includes both cases' run-to-run shift, so "within noise" means no difference shown."""
    ok = sort_rows(speed(df).dropna(subset=["samples_per_s"]))
    name = ok["model"].astype(str)
    ours = name.str.removeprefix(TV_PREFIX).where(name.str.startswith(TV_PREFIX))
    is_tv = ours.notna()
    theirs = ok[is_tv].assign(torchvision=name[is_tv], model=ours[is_tv].astype(str))
    keys = [*ROW_KEYS, "variant"]
    cols = ["samples_per_s", "level_se", "params", "peak_memory_bytes"]
    pairs = ok[~is_tv][[*keys, *cols]].merge(theirs[[*keys, "torchvision", *cols]], on=keys,
                                             suffixes=("", " tv"))
    if pairs.empty:
        return pd.DataFrame()
    ratios = [log_interval(d, se) for d, se in zip(
        np.log(pairs["samples_per_s"] / pairs["samples_per_s tv"]),
        np.hypot(pairs["level_se"], pairs["level_se tv"]))]
    out = pairs[["model", "torchvision", *keys[1:]]].copy()
    out["ours samples/s"] = pairs["samples_per_s"].round(1)
    out["torchvision samples/s"] = pairs["samples_per_s tv"].round(1)
    out["ours / torchvision (95%)"] = [interval(*r) for r in ratios]
    out["verdict"] = ["within noise" if lo <= 1 <= hi else "ours faster" if lo > 1
                      else "torchvision faster" for _, lo, hi in ratios]
    out["same params"] = pairs["params"] == pairs["params tv"]
    return shown(out)


def shown_metric(column: str, meta: dict) -> tuple[str, float]:
    """A metric's table header and the factor that takes it to the shown unit."""
    unit, factor = DISPLAY_UNITS.get(meta["unit"], (meta["unit"], 1.0))
    label = meta["label"] or column
    return (f"{label} {unit}".strip() if unit != "%" else f"% {label}"), factor


def cases_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every successful speed case: its throughput with its 95% interval, then each metric
    the schema marks ``show`` (peak memory, achieved and attainable FLOP/s, utilization,
    ...), in the units a reader takes in."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    if ok.empty:
        return pd.DataFrame()
    ok = sort_rows(ok)
    out = ok[[*ROW_KEYS[:3], "variant", *ROW_KEYS[3:]]].copy()
    out["samples/s (95%)"] = [interval(v, lo, hi, "") for v, lo, hi
                              in zip(ok["samples_per_s"], ok["sps_low"], ok["sps_high"])]
    for column, meta in metrics(SpeedResult, show=True).items():
        values = pd.to_numeric(ok[column], errors="coerce")
        if values.notna().any():
            header, factor = shown_metric(column, meta)
            out[header] = (values * factor).round(3 if meta["unit"] == "fraction" else 1)
    return shown(out)


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each data-parallel case: global and per-device throughput, efficiency against
    world size 1 (95% intervals), communication per step, bus bandwidth, the share of
    communication hidden behind backward, and peak memory per device."""
    eff = efficiency(df)
    if eff.empty:
        return pd.DataFrame()

    def opt(v, fmt):
        return "-" if v is None or v != v else fmt(v)

    return pd.DataFrame({
        "model": eff["model"], "mode": eff["mode"], "device": eff["device"],
        "variant": eff["variant"], "batch/device": eff["batch_size"],
        "strategy": eff["strategy"], "world size": eff["world_size"],
        "bucket MiB": [opt(b, lambda v: f"{v:g}") for b in eff["bucket_mb"]],
        "samples/s (95%)": [interval(v, lo, hi, "") for v, lo, hi
                            in zip(eff["samples_per_s"], eff["sps_low"], eff["sps_high"])],
        "per device": eff["per_device"].round(1),
        "efficiency (95%)": ["-" if e is None or e != e else interval(e, lo, hi, "")
                             for e, lo, hi in zip(eff["efficiency"], eff["eff_low"],
                                                  eff["eff_high"])],
        "comm ms/step": [opt(c, lambda v: f"{v * 1e3:.2f}") for c in eff["comm_s"]],
        "bus bandwidth": [opt(b, lambda v: si(v, "B/s")) for b in eff["busbw"]],
        "comm hidden": [opt(h, lambda v: f"{v:.0%}") for h in eff["comm_hidden"]],
        "peak MiB/device": [opt(m, lambda v: f"{v / MIB:,.1f}") for m in eff["peak_memory_bytes"]],
    })


def pipeline_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each real-input case: throughput of loader + model, of each alone, and which of
    the two limits training (``measure.pipeline``)."""
    ok = speed(df)
    if ok.empty or "bottleneck" not in ok:
        return pd.DataFrame()
    ok = sort_rows(ok[ok["bottleneck"].notna()])
    if ok.empty:
        return pd.DataFrame()
    eff = pd.to_numeric(ok["pipeline_efficiency"], errors="coerce")
    return pd.DataFrame({
        "model": ok["model"], "mode": ok["mode"], "device": ok["device"],
        "variant": ok["variant"], "batch": ok["batch_size"], "input size": ok["input_shape"],
        "loader workers": ok["workers"],
        "samples/s, both (95%)": [interval(v, lo, hi, "") for v, lo, hi
                                  in zip(ok["samples_per_s"], ok["sps_low"], ok["sps_high"])],
        "loader alone": pd.to_numeric(ok["loader_samples_per_s"]).round(1),
        "model alone": pd.to_numeric(ok["model_samples_per_s"]).round(1),
        "bottleneck": ok["bottleneck"],
        "both / slower alone": [f"{v:.0%}" if v == v else "-" for v in eff],
    }).reset_index(drop=True)


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each batch sweep (``--batch-sizes auto``): throughput at every batch it measured
    and the knee, the smallest batch within 95% of its best."""
    ok = speed(df)
    if ok.empty or "knee_batch" not in ok:
        return pd.DataFrame()
    ok = ok[pd.to_numeric(ok["knee_batch"], errors="coerce").notna()]
    keys = [k for k in ROW_KEYS if k != "batch_size"] + ["variant"]
    rows = []
    for _, g in sort_rows(ok).groupby(keys, sort=False, dropna=False):
        g = g.sort_values("batch_size")
        best = g.loc[g["samples_per_s"].idxmax()]
        rows.append({"model": best["model"], "mode": best["mode"], "device": best["device"],
                     "variant": best["variant"], "input size": best["input_shape"],
                     "samples/s by batch": ", ".join(
                         f"{b}: {si(v)}" for b, v in zip(g["batch_size"], g["samples_per_s"])),
                     "best": f"{si(best['samples_per_s'])} at {best['batch_size']}",
                     "knee batch": int(best["knee_batch"])})
    return pd.DataFrame(rows)


PROFILE_HINT = ("To see which layer or operator is slow in a case: resnets profile MODEL "
                "--mode MODE --device DEVICE --memory-format FORMAT --precision PRECISION "
                "--compile COMPILE --batch-size BATCH --input-shape C,H,W (the values of "
                "its row).")


CONVERGENCE_GROUP = ["model", "dataset", "target_acc", "device", "variant", "batch_size",
                     "input_shape", "hyperparams"]


def _spread(median, low, high, digits: str) -> str:
    """``400 (300–500)``; "not reached" for inf, the way a never-reached run ranks."""
    def one(v):
        return "not reached" if np.isinf(v) else format(v, digits)
    return one(median) if low == high else f"{one(median)} ({one(low)}–{one(high)})"


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, over its seeds: iterations and seconds to the target accuracy
    (median and range; a seed that did not reach it counts as never, ranked last and
    shown as "not reached"), best and final test accuracy. Ranked by median training
    seconds to target among the configurations of the same dataset, input size and
    target, then by best accuracy. The protocol of each is in ``protocol_table``."""
    conv = convergence(df)
    if conv.empty:
        return pd.DataFrame()
    reached = conv[STATUS] == Status.REACHED
    conv = conv.assign(
        reached=reached, diverged=conv[STATUS] == Status.DIVERGED,
        iters=pd.to_numeric(conv["iters_to_target"], errors="coerce").where(reached, np.inf),
        train_s=pd.to_numeric(conv["train_s_to_target"], errors="coerce").where(reached, np.inf),
        total_s=pd.to_numeric(conv["total_s_to_target"], errors="coerce").where(reached, np.inf))
    g = conv.groupby(CONVERGENCE_GROUP, dropna=False, sort=False)
    out = g.agg(seeds=("case_id", "size"), n_reached=("reached", "sum"),
                n_diverged=("diverged", "sum"), it=("iters", "median"), it_lo=("iters", "min"),
                it_hi=("iters", "max"), s=("train_s", "median"), s_lo=("train_s", "min"),
                s_hi=("train_s", "max"), total=("total_s", "median"),
                best=("best_acc", "median"), final=("final_acc", "median"),
                final_lo=("final_acc", "min"), final_hi=("final_acc", "max")).reset_index()
    race = ["dataset", "input_shape", "target_acc"]  # configurations that are ranked together
    out = out.sort_values([*race, "s", "it", "best"], ascending=[True] * 5 + [False],
                          kind="stable")
    return pd.DataFrame({
        "rank": out.groupby(race, dropna=False).cumcount() + 1,
        "model": out["model"], "dataset": out["dataset"], "input size": out["input_shape"],
        "variant": out["variant"], "target acc": out["target_acc"],
        "reached": [f"{r}/{n}" + (f", {d} diverged" if d else "")
                    for r, n, d in zip(out["n_reached"], out["seeds"], out["n_diverged"])],
        "iterations to target (median, range)": [
            _spread(m, lo, hi, ",.0f") for m, lo, hi in zip(out["it"], out["it_lo"], out["it_hi"])],
        "train s to target (median, range)": [
            _spread(m, lo, hi, ".3g") for m, lo, hi in zip(out["s"], out["s_lo"], out["s_hi"])],
        "best test acc (median)": out["best"].round(3),
        "final test acc (median, range)": [
            _spread(m, lo, hi, ".3f") for m, lo, hi in zip(out["final"], out["final_lo"],
                                                             out["final_hi"])],
    }).reset_index(drop=True)


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each convergence configuration's protocol: optimizer, schedule, batch, budget."""
    conv = convergence(df)
    if conv.empty:
        return pd.DataFrame()
    rows = conv.drop_duplicates(["model", "dataset", "variant", "hyperparams"])
    return pd.DataFrame({"model": rows["model"], "dataset": rows["dataset"],
                         "variant": rows["variant"], "batch": _ints(rows["batch_size"]),
                         "protocol": rows["hyperparams"]}).reset_index(drop=True)


def layer_table(df: pd.DataFrame, top: int = TOP_LAYERS) -> pd.DataFrame:
    """The ``top`` slowest leaf layers of each profiled case (a container's time includes
    its children's, so containers would crowd out the layers that do the work).

    Reads ``profile["layers"]`` as ``resnets.profiling`` writes it: per module
    ``module``, ``type``, ``leaf``, ``time_ms`` and ``fwd_ms`` (per step), ``flops_fwd``,
    ``flops_per_s`` (forward FLOPs / forward time) and ``share`` (of the step). Cases
    without layer times (compiled ones) have no rows."""
    parts = []
    ok = speed(df)
    for case_id, profile in zip(ok["case_id"], ok["profile"]):
        layers = profile.get("layers") if isinstance(profile, dict) else None
        if not layers:
            continue
        t = pd.DataFrame(layers).reindex(columns=["module", "type", "leaf", "time_ms", "fwd_ms",
                                                  "flops_fwd", "flops_per_s", "share"])
        t = t[t["leaf"].ne(False)].dropna(subset=["time_ms"]).nlargest(top, "time_ms")
        parts.append(pd.DataFrame({
            "case": case_id, "layer": t["module"], "type": t["type"], "time ms": t["time_ms"],
            "forward ms": t["fwd_ms"], "forward MFLOPs": t["flops_fwd"] / 1e6,
            "forward GFLOP/s": t["flops_per_s"] / 1e9, "% of step": 100 * t["share"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# How a number was made: the value(s) of these columns, with how many results have each.
METHOD_COLUMNS = {
    "timing_method": "timing method", "timing_clock": "clock", "timing_stop_reason": "stop reason",
    "timing_gc": "garbage collector", "timing_rel_ci": "target 95% CI of median (+-fraction)",
    "timing_budget_s": "time budget per case (s)", "timing_min_rounds": "min rounds",
    "timing_max_rounds": "max rounds", "timing_threads": "threads (setting)",
    "env_threads": "torch threads", "env_interop_threads": "torch interop threads",
    "timing_flush_denormal": "flush denormals", "timing_cudnn_benchmark": "cudnn.benchmark",
    "env_float32_matmul_precision": "float32 matmul precision", "env_tf32_matmul": "tf32 matmul",
    "env_tf32_cudnn": "tf32 cudnn", "memory_method": "peak memory",
    "flops_method": "FLOPs", "macs_fvcore_note": "fvcore MACs",
    "attainable_method": "attainable peak", "timing_excluded": "not timed",
    "timing_resolution": "resolution",
}
# Spread of these per-case numbers: min / median / max.
RANGE_COLUMNS = {"timing_rounds": "timed rounds", "timing_warmup_rounds": "warm-up rounds",
                 "timing_wall_s": "timed wall time (s)",
                 "timing_first_step_s": "first (cold) step (s)",
                 "timing_compile_s": "compiler time (s)"}


def _plain(value) -> str:
    """A recorded setting as text: whole numbers without ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def method_table(df: pd.DataFrame) -> pd.DataFrame:
    """How the numbers were made: timing method, clock, rounds, stop reasons, threads and
    the methods behind memory, FLOPs, profiles and convergence times, each with the
    number of results it applies to."""
    rows = []
    for col, what in METHOD_COLUMNS.items():
        if col in df:
            for value, n in df[col].dropna().map(_plain).value_counts().items():
                rows.append((what, value, n))
    for col, what in RANGE_COLUMNS.items():
        values = pd.to_numeric(df[col], errors="coerce").dropna() if col in df else ()
        if len(values):
            rows.append((what, f"min {values.min():.4g}, median {values.median():.4g}, "
                               f"max {values.max():.4g}", len(values)))
    profiles = pd.Series([p.get("profile_method") if isinstance(p, dict) else None
                          for p in df["profile"]], dtype=object)
    for value, n in profiles.dropna().value_counts().items():
        rows.append(("per-layer profile", value, n))
    return pd.DataFrame(rows, columns=["what", "value", "results"])


def environment_table(df: pd.DataFrame) -> pd.DataFrame:
    """The machine and software of each run (``env_*``), one column per run; a field that
    differs between cases of one run lists every value. Bytes read as GiB."""
    env = [c for c in df.columns if c.startswith("env_")]
    cols = ["commit_id", "run_time", *env]
    shown = df[["run", *cols]].copy()
    shown["env_gpu_memory_bytes"] = shown["env_gpu_memory_bytes"].map(
        lambda v: nbytes(v) if pd.notna(v) else v)
    by_run = shown.groupby("run", sort=False)
    out = by_run.agg(lambda s: " / ".join(dict.fromkeys(s.dropna().map(_plain))))
    out.columns = [c.removeprefix("env_") for c in out.columns]
    return out.T.rename_axis("field").reset_index()


def missing_table(df: pd.DataFrame, expected: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """Every case without a measurement, with why: failed (its error), crashed (the
    process died), skipped (cannot run here: no CUDA, say), or no result (the run
    selected it, ``expected`` per run, but left no file: it was cut short or lost)."""
    noresult = df[df[STATUS].isin([Status.FAILED, Status.CRASHED, Status.SKIPPED])]
    rows = [{"run": r.run, "case": r.trial_id if getattr(r, KIND) == Kind.CONVERGENCE
             and isinstance(r.trial_id, str) else r.case_id,
             "why": str(getattr(r, STATUS)), "detail": r.error or ""}
            for r in noresult.itertuples()]
    for run, names in (expected or {}).items():
        have = set(df.loc[df["run"] == run, "case_id"]) | set(
            df.loc[df["run"] == run, "trial_id"].dropna())
        rows += [{"run": run, "case": n, "why": "no result",
                  "detail": "selected by the run, but no result file: the run stopped short "
                            "or the file was lost"} for n in sorted(names - have)]
    return pd.DataFrame(rows, columns=["run", "case", "why", "detail"])
