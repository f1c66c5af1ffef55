"""The report's tables: each a DataFrame built from ``load()``'s frame, in display units.

Units are in the column names (``samples/s``, ``MiB``, ``GFLOP/s``), so the CSV export
reads the same as the HTML. An empty DataFrame means "nothing to show"; the report then
says why. ``inf`` appears only in the convergence table and means "target not reached":
it sorts last, so a configuration that never got there ranks slowest and is never dropped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import KIND, STATUS, Kind, SpeedResult, Status, metrics
from .frame import (
    DEFAULT_BASELINE,
    ROW_KEYS,
    convergence,
    model_order,
    sort_rows,
    speed,
    variant_order,
)

MIB = 2 ** 20
TV_PREFIX = "tv_"
TOP_LAYERS = 10
# How a metric's unit (schema.metric) is shown in a table: (shown unit, factor).
DISPLAY_UNITS = {"bytes": ("MiB", 1 / MIB), "FLOP/s": ("GFLOP/s", 1e-9),
                 "FLOP": ("GFLOPs", 1e-9), "fraction": ("%", 100.0), "s": ("ms", 1e3)}
# Our column name -> the label a reader sees.
SHOWN = {"batch_size": "batch", "input_shape": "input"}


def _shown(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=SHOWN).reset_index(drop=True)


def _ints(s: pd.Series) -> pd.Series:
    """Whole numbers (counts, bytes) as nullable ints, so they print without a '.0'."""
    return pd.to_numeric(s, errors="coerce").round().astype("Int64")


def models_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model (and input): size, cost per sample, and for each device and mode the best
    throughput over variants and batch sizes, the case that got it and its peak memory."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    if ok.empty:
        return pd.DataFrame()
    keys = ["model", "input_shape"]
    ok = ok.assign(fwd=ok["flops_fwd"] / ok["batch_size"] / 1e6,
                   macs=ok["macs_fvcore"] / ok["batch_size"] / 1e6)
    out = ok.groupby(keys, sort=False).agg(params=("params", "max"), fwd=("fwd", "median"),
                                           macs=("macs", "median"))
    out = out.rename(columns={"fwd": "fwd MFLOPs/sample", "macs": "fvcore MMACs/sample"})
    out["params"] = _ints(out["params"])
    best = ok.loc[ok.groupby([*keys, "device", "mode"], sort=False)["samples_per_s"].idxmax()]
    for (device, mode), b in best.groupby(["device", "mode"]):
        b = b.set_index(keys)
        out[f"{device} {mode} samples/s"] = b["samples_per_s"]
        out[f"{device} {mode} best at"] = b["variant"] + " bs" + b["batch_size"].astype(str)
        out[f"{device} {mode} peak MiB"] = b["peak_memory_bytes"] / MIB
    order = {m: i for i, m in enumerate(model_order(ok))}
    out = out.reset_index().sort_values("model", key=lambda s: s.map(order), kind="stable")
    return _shown(out)


def speedup_matrix(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Throughput of each variant / throughput of the baseline variant of the same model,
    mode, device, batch and input (same run), as a (row group x variant) matrix.

    A ``baseline`` the user named must exist (else ``UserError``); the default one may be
    missing, which gives an empty matrix."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    variants = set(ok["variant"].dropna())
    if baseline is not None and baseline not in variants:
        raise UserError(f"--baseline {baseline}: no successful case has this variant "
                        f"(variants here: {', '.join(variant_order(variants)) or 'none'})")
    baseline = baseline or DEFAULT_BASELINE
    if baseline not in variants:
        return pd.DataFrame()
    # Rows keep the order they first appear in, so sort the long form first.
    wide = sort_rows(ok, baseline).pivot_table(index=ROW_KEYS, columns="variant",
                                               values="samples_per_s", aggfunc="first", sort=False)
    ratio = wide.div(wide[baseline], axis=0)[variant_order(wide.columns, baseline)]
    return _shown(ratio.reset_index().rename_axis(columns=None))


def torchvision_table(df: pd.DataFrame) -> pd.DataFrame:
    """Our model against torchvision's, case by case, where both were measured.

    Convention: a case measures torchvision's model when its model name starts with
    ``tv_``; its counterpart is the rest of the name (``tv_resnet18`` <-> ``resnet18``).
    Pairs match on mode, device, variant, batch and input."""
    ok = sort_rows(speed(df).dropna(subset=["samples_per_s"]))
    name = ok["model"].astype(str)
    ours = name.str.removeprefix(TV_PREFIX).where(name.str.startswith(TV_PREFIX))
    is_tv = ours.notna()
    theirs = ok[is_tv].assign(torchvision=name[is_tv], model=ours[is_tv].astype(str))
    cols = {"samples_per_s": "samples/s", "params": "params", "peak_memory_bytes": "peak MiB"}
    keys = [*ROW_KEYS, "variant"]
    pairs = ok[~is_tv][[*keys, *cols]].merge(theirs[[*keys, "torchvision", *cols]], on=keys,
                                             suffixes=(" ours", " tv"))
    if pairs.empty:
        return pd.DataFrame()
    pairs["ours / torchvision samples/s"] = pairs["samples_per_s ours"] / pairs["samples_per_s tv"]
    for side in (" ours", " tv"):
        pairs["params" + side] = _ints(pairs["params" + side])
        pairs["peak_memory_bytes" + side] = pairs["peak_memory_bytes" + side] / MIB
    pairs = pairs.rename(columns={f"{c}{side}": f"{shown}{side}" for c, shown in cols.items()
                                  for side in (" ours", " tv")})
    sides = [c for c in pairs.columns if c.endswith((" ours", " tv"))]
    return _shown(pairs[["model", "torchvision", *keys[1:], *sides,
                         "ours / torchvision samples/s"]])


def shown_metric(column: str, meta: dict) -> tuple[str, float]:
    """A metric's table header and the factor that takes it to the shown unit."""
    unit, factor = DISPLAY_UNITS.get(meta["unit"], (meta["unit"], 1.0))
    label = meta["label"] or column
    return (f"{label} {unit}".strip() if unit != "%" else f"% {label}"), factor


def cases_table(df: pd.DataFrame, baseline: str = DEFAULT_BASELINE) -> pd.DataFrame:
    """Every successful speed case: its throughput, then each metric the schema marks
    ``show`` (peak memory, achieved and attainable FLOP/s, utilization, ...), in the
    units a reader takes in."""
    ok = speed(df).dropna(subset=["samples_per_s"])
    if ok.empty:
        return pd.DataFrame()
    ok = sort_rows(ok, baseline)
    out = ok[[*ROW_KEYS[:3], "variant", *ROW_KEYS[3:], "samples_per_s"]].rename(
        columns={"samples_per_s": "samples/s"})
    for column, meta in metrics(SpeedResult, show=True).items():
        values = pd.to_numeric(ok[column], errors="coerce")
        if values.notna().any():
            header, factor = shown_metric(column, meta)
            out[header] = values * factor
    return _shown(out)


PROFILE_HINT = ("To see which layer or operator is slow in a case: resnets profile MODEL "
                "--mode MODE --device DEVICE --memory-format FORMAT --precision PRECISION "
                "--compile COMPILE --batch-size BATCH --input-shape C,H,W (the values of "
                "its row).")


CONVERGENCE_GROUP = ["model", "dataset", "target_acc", "device", "variant", "batch_size",
                     "input_shape", "hyperparams"]


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, over its seeds: iterations and seconds to the target accuracy
    (median, min, max; a seed that did not reach it counts as never, ``inf``), best and
    final test accuracy. Ranked by median training seconds to target among the
    configurations of the same dataset, input size and target, then by best accuracy."""
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
    out = g.agg(**{
        "seeds": ("case_id", "size"), "n_reached": ("reached", "sum"),
        "n_diverged": ("diverged", "sum"),
        "iters to target (median)": ("iters", "median"), "iters (min)": ("iters", "min"),
        "iters (max)": ("iters", "max"),
        "train s to target (median)": ("train_s", "median"), "train s (min)": ("train_s", "min"),
        "train s (max)": ("train_s", "max"), "total s to target (median)": ("total_s", "median"),
        "best acc (median)": ("best_acc", "median"), "final acc (median)": ("final_acc", "median"),
        "final acc (min)": ("final_acc", "min"), "final acc (max)": ("final_acc", "max"),
    }).reset_index()
    out.insert(len(CONVERGENCE_GROUP), "reached", [
        f"{r}/{n}" + (f", {d} diverged" if d else "")
        for r, n, d in zip(out.pop("n_reached"), out["seeds"], out.pop("n_diverged"))])
    race = ["dataset", "input_shape", "target_acc"]  # configurations that are ranked together
    out = out.sort_values([*race, "train s to target (median)", "iters to target (median)",
                           "best acc (median)"], ascending=[True] * 5 + [False], kind="stable")
    out.insert(0, "rank", out.groupby(race, dropna=False).cumcount() + 1)
    return _shown(out.rename(columns={"target_acc": "target acc"}))


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
                 "timing_wall_s": "timed wall time (s)", "timing_cold_s": "first (cold) step (s)",
                 "timing_compile_s": "compile time (s)"}


def method_table(df: pd.DataFrame) -> pd.DataFrame:
    """How the numbers were made: timing method, clock, rounds, stop reasons, threads and
    the methods behind memory, FLOPs, profiles and convergence times, each with the
    number of results it applies to."""
    rows = []
    for col, what in METHOD_COLUMNS.items():
        if col in df:
            for value, n in df[col].dropna().astype(str).value_counts().items():
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
    differs between cases of one run lists every value."""
    env = [c for c in df.columns if c.startswith("env_")]
    cols = ["commit_id", "run_time", *env]
    by_run = df[["run", *[c for c in cols if c in df]]].groupby("run", sort=False)
    out = by_run.agg(lambda s: " / ".join(dict.fromkeys(s.dropna().astype(str))))
    out.columns = [c.removeprefix("env_") for c in out.columns]
    return out.T.rename_axis("field").reset_index()


def failures_table(df: pd.DataFrame) -> pd.DataFrame:
    """Cases that were attempted and failed, with the recorded reason."""
    failed = df[(df[KIND] == Kind.SPEED) & (df[STATUS] == Status.FAILED)]
    failed = failed[["run", "case_id", "error"]].rename(columns={"case_id": "case"})
    return failed.reset_index(drop=True)
