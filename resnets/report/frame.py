"""Which rows of a loaded results frame each table and plot is about, and in what order.

Several runs can be loaded at once (a ``.benchmarks/`` folder, ``reports/*/``). Tables
then describe the most recent run that measured each *row group* (same model, mode,
device, batch and input: the cases that differ only by variant), so a speed-up never
divides numbers from two different runs; the trend plot shows every run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..case import CHOICES, DIMENSIONS, ROW_KEYS, VARIANTS
from ..compare.noise import level_se
from ..schema import KIND, SAMPLES, STATUS, Kind, Status
from ..stats import log_interval

DEFAULT_BASELINE = "contiguous-fp32-eager"
# What a speed-up divides by when the user names no baseline: PyTorch's default numerics
# (on CUDA, TF32 convolutions), else strict fp32, the default on CPU.
DEVICE_BASELINES = {"cuda": ("contiguous-default-eager", DEFAULT_BASELINE),
                    "cpu": (DEFAULT_BASELINE,)}
# Row keys (``case.ROW_KEYS``: the cases that differ only by variant) a table shows only
# when some row departs from the default (most runs are single-process, on synthetic
# inputs), and the label a reader sees for each dimension: both from ``case.DIMENSIONS``.
QUIET_KEYS = {name: d.default for name, d in DIMENSIONS.items() if d.quiet}
SHOWN = {name: d.label for name, d in DIMENSIONS.items() if d.label}
VARIANT_FIELDS = tuple(d.name for d in VARIANTS)
# Per-row statistics ``speed`` adds, computed once per loaded frame.
LEVEL_COLUMNS = ("level_se", "sps_low", "sps_high")


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """Reader's column names; the data-parallel and input columns only where they vary."""
    quiet = [k for k, default in QUIET_KEYS.items() if k in df
             and all((pd.isna(v) if default is None else v == default) for v in df[k])]
    return df.drop(columns=quiet).rename(columns=SHOWN).reset_index(drop=True)


def with_levels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each successful speed row's level statistics (``LEVEL_COLUMNS``): the
    standard error of its log level as another run would see it (``level_se``: its
    median's uncertainty and the device's run-to-run shift, see
    ``resnets.compare.noise``) and the 95% interval of its throughput. Done once, when
    the report loads its frame; the tables read them."""
    if df.empty or "level_se" in df:
        return df
    ok = (df[KIND] == Kind.SPEED) & (df[STATUS] == Status.OK)
    se = pd.Series(np.nan, index=df.index)
    se[ok] = [level_se(s, str(d)) if len(s) else np.nan
              for s, d in zip(df.loc[ok, SAMPLES], df.loc[ok, "device"])]
    sps = pd.to_numeric(df["samples_per_s"], errors="coerce")
    bounds = np.array([log_interval(0.0, e)[1:] for e in se], dtype=float).reshape(-1, 2)
    return df.assign(level_se=se, sps_low=sps * bounds[:, 0], sps_high=sps * bounds[:, 1])


def run_order(df: pd.DataFrame) -> pd.Series:
    """Each row's run position in time (0 = oldest); runs without a time sort first."""
    runs = (df[["run", "run_time"]].drop_duplicates("run")
            .sort_values(["run_time", "run"], na_position="first")["run"])
    return df["run"].map({r: i for i, r in enumerate(runs)})


def speed(df: pd.DataFrame, latest: bool = True) -> pd.DataFrame:
    """Successful speed cases (of the newest run per row group unless ``latest`` is off),
    with their level statistics (``with_levels``; computed here only for a frame that was
    not loaded through ``resnets.report.load``)."""
    df = with_levels(df)
    ok = df[(df[KIND] == Kind.SPEED) & (df[STATUS] == Status.OK)]
    ok = ok.assign(run_index=run_order(ok))
    if latest and not ok.empty:
        newest = ok.groupby(ROW_KEYS, dropna=False)["run_index"].transform("max")
        ok = ok[ok["run_index"] == newest]
    return ok


def baseline_for(device: str, variants, named: str | None = None) -> str | None:
    """The variant a ``device``'s speed-ups divide by: ``named`` if given, else the
    first of ``DEVICE_BASELINES`` that was measured (None: none was)."""
    if named:
        return named
    return next((v for v in DEVICE_BASELINES.get(str(device), (DEFAULT_BASELINE,))
                 if v in set(variants)), None)


def convergence(df: pd.DataFrame) -> pd.DataFrame:
    """Convergence results, one row per training run (a case on a dataset with a seed),
    the newest loaded run's where several have it."""
    conv = df[df[KIND] == Kind.CONVERGENCE]
    conv = conv.assign(run_index=run_order(conv)).sort_values("run_index", kind="stable")
    conv = conv[~conv["trial_id"].duplicated(keep="last")]
    return conv.assign(hyperparams=[_hyperparams(h) for h in conv["hyperparams"]])


def _hyperparams(params) -> str:
    if not isinstance(params, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def model_order(df: pd.DataFrame) -> list[str]:
    """Models from smallest to largest forward FLOPs per sample, then by name."""
    if df.empty:
        return []
    per_sample = (pd.to_numeric(df["flops_fwd"], errors="coerce") / df["batch_size"]
                  if "flops_fwd" in df else pd.Series(np.nan, index=df.index))
    size = per_sample.groupby(df["model"]).median().fillna(np.inf)
    return sorted(size.index, key=lambda m: (size[m], m))


def variant_order(variants, baseline: str = DEFAULT_BASELINE) -> list[str]:
    """The baseline first, then in ``Case``'s choice order (contiguous before channels_last,
    fp32 before bf16, eager before compile); unknown parts last."""
    def key(v: str):
        parts = v.split("-", 2)
        return (v != baseline, *(CHOICES[f].index(p) if p in CHOICES[f] else len(CHOICES[f])
                                 for f, p in zip(VARIANT_FIELDS, parts)), v)
    return sorted(set(variants), key=key)


def sort_rows(df: pd.DataFrame, baseline: str = DEFAULT_BASELINE) -> pd.DataFrame:
    """Rows in report order: model size, mode, device, variant, batch."""
    if df.empty:
        return df
    rank = {m: i for i, m in enumerate(model_order(df))}
    vrank = {v: i for i, v in enumerate(variant_order(df["variant"].dropna(), baseline))}
    keys = pd.DataFrame({"m": df["model"].map(rank), "mode": df["mode"], "device": df["device"],
                         "v": df["variant"].map(vrank), "bs": df["batch_size"]}, index=df.index)
    return df.loc[keys.sort_values(list(keys.columns), kind="stable").index]


def varying_label(df: pd.DataFrame, fields) -> pd.Series:
    """A label per row: the first of ``fields``, then those of the rest that differ between
    rows (a legend need not repeat what every line shares)."""
    fields = [f for f in fields if f in df]
    varying = fields[:1] + [f for f in fields[1:] if df[f].astype(str).nunique() > 1]
    parts = [("bs" if f == "batch_size" else "") + df[f].astype(str) for f in varying]
    return pd.concat(parts, axis=1).agg(" ".join, axis=1)
