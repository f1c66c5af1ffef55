"""Speed results in the formats of the dashboards people already run (torch-free).

pytest-benchmark's JSON carries calls per second; these carry what the cases measure:
throughput (samples/s), step time, peak memory, utilization and, where a case has it,
energy per sample (every ``SpeedResult`` metric whose unit is "J": the schema's energy
fields are per sample).

* ``gab``: github-action-benchmark's custom tools, one JSON array of
  ``{name, unit, value, range, extra}`` per direction: ``customBiggerIsBetter.json``
  (throughput, utilization) and ``customSmallerIsBetter.json`` (step time, memory,
  energy). One run: the action keeps the history on its gh-pages branch.
* ``bmf``: the Bencher Metric Format, ``{case: {measure: {value, lower_value,
  upper_value}}}``. Throughput and step time use Bencher's built-in measures
  ``throughput`` (operations/s, one operation = one sample) and ``latency`` (ns); the
  bounds are 95% intervals: for throughput the report's (the run's median and the
  device's run-to-run shift, ``report.frame.speed``), for step time the distribution-free
  interval of the run's median. One run.
* ``otava``: Apache Otava's CSV source reads one file as one test's history (every row
  one point of every metric column), so a series per case needs a file per case: one
  CSV per case and environment (a time column, the attributes commit, branch, machine
  and run, a column per measure, one row per run, oldest first) and an ``otava.yaml``
  that declares each as a test, with each metric's direction, and groups them as
  ``resnets``. Any number of runs. A column is left out of a case's file unless every
  run has it: Otava cannot read an empty cell.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import UserError
from .history.analysis import env_label
from .report.frame import speed
from .results import load
from .schema import SpeedResult, metrics
from .store import atomic_write_text, safe_name
from .text import csv_cell

GAB_FILES = {True: "customBiggerIsBetter.json", False: "customSmallerIsBetter.json"}
OTAVA_CONFIG = "otava.yaml"
OTAVA_GROUP = "resnets"
OTAVA_ATTRIBUTES = ("commit", "branch", "machine", "run")
OTAVA_TIME = "%Y-%m-%d %H:%M:%S %z"  # the form Otava prints times in


@dataclass(frozen=True)
class Measure:
    """One exported number: ``column`` of the results frame times ``scale`` in ``unit``;
    ``interval`` names the frame's columns of its 95% bounds; ``bmf`` is its Bencher
    measure slug, ``bmf_scale`` the factor to that measure's unit."""

    key: str                  # the Otava column and the gab name's suffix
    label: str
    column: str
    unit: str
    scale: float
    bigger_is_better: bool
    bmf: str
    bmf_scale: float
    interval: tuple[str, str] | None = None


FIXED = (
    Measure("throughput", "throughput", "samples_per_s", "samples/s", 1.0, True,
            "throughput", 1.0, ("sps_low", "sps_high")),
    Measure("utilization_pct", "utilization of attainable", "utilization", "%", 100.0, True,
            "utilization", 100.0),
    Measure("step_time_ms", "step time (median)", "time_median", "ms", 1e3, False,
            "latency", 1e9, ("time_median_ci95_low", "time_median_ci95_high")),
    Measure("peak_memory_mib", "peak memory", "peak_memory_bytes", "MiB", 2.0 ** -20, False,
            "peak-memory", 2.0 ** -20),
)


def measures() -> list[Measure]:
    """The fixed measures, then every speed metric in joules (energy per sample: gross
    and net of the idle baseline, where measured), smaller is better."""
    energy = [Measure(name, meta["label"] or name, name, "J/sample", 1.0, False,
                      name.replace("_", "-"), 1.0)
              for name, meta in metrics(SpeedResult).items() if meta["unit"] == "J"]
    return [*FIXED, *energy]


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def values(row: pd.Series, m: Measure, scale: float) -> tuple[float, float, float] | None:
    """(value, low, high) of ``m`` in ``row`` scaled (low/high None without an
    interval); None when the case has no such number."""
    value = _number(row.get(m.column))
    if value is None:
        return None
    low, high = (_number(row.get(c)) for c in m.interval) if m.interval else (None, None)
    if low is None or high is None or not low <= value <= high:
        low = high = None
    return value * scale, None if low is None else low * scale, \
        None if high is None else high * scale


def speed_rows(paths, one_run: bool, strict: bool = False) -> pd.DataFrame:
    """Successful speed results of ``paths`` (with their throughput intervals), oldest
    run first; ``one_run`` refuses results from several runs."""
    df = load(paths, strict=strict)
    ok = speed(df, latest=False) if not df.empty else df
    if ok.empty:
        raise UserError(f"{' '.join(map(str, paths))}: no successful speed results to export")
    runs = list(dict.fromkeys(ok.sort_values("run_index")["run"]))
    if one_run and len(runs) > 1:
        raise UserError(f"gab and bmf export one run (the dashboard keeps the history); "
                        f"{len(runs)} runs given: {', '.join(map(str, runs[:3]))}"
                        f"{', ...' if len(runs) > 3 else ''}")
    return ok.sort_values(["run_index", "case_id"], kind="stable")


# --- github-action-benchmark -----------------------------------------------------------

def _extra(row: pd.Series) -> str:
    """The tooltip: where the number comes from."""
    commit = row.get("commit_id")
    parts = [f"run {row['run']}", f"commit {str(commit)[:12]}" if isinstance(commit, str)
             and commit else None, f"{int(row['time_rounds'])} timed steps"
             if _number(row.get("time_rounds")) else None, env_label(row)]
    return "\n".join(p for p in parts if p)


def gab(df: pd.DataFrame) -> dict[bool, list[dict]]:
    """``{bigger_is_better: [entry, ...]}``, one entry per case and measure."""
    out: dict[bool, list[dict]] = {True: [], False: []}
    for _, row in df.iterrows():
        for m in measures():
            got = values(row, m, m.scale)
            if got is None:
                continue
            value, low, high = got
            entry = {"name": f"{row['case_id']}: {m.label}", "unit": m.unit, "value": value}
            if low is not None:
                entry["range"] = f"95% CI {low:.4g} to {high:.4g}"
            entry["extra"] = _extra(row)
            out[m.bigger_is_better].append(entry)
    return out


# --- Bencher Metric Format -------------------------------------------------------------

def bmf(df: pd.DataFrame) -> dict[str, dict]:
    """``{case_id: {measure slug: {value, lower_value, upper_value}}}``."""
    out: dict[str, dict] = {}
    for _, row in df.iterrows():
        for m in measures():
            got = values(row, m, m.bmf_scale)
            if got is None:
                continue
            value, low, high = got
            metric = {"value": value}
            if low is not None:
                metric.update(lower_value=low, upper_value=high)
            out.setdefault(str(row["case_id"]), {})[m.bmf] = metric
    return out


# --- Apache Otava ----------------------------------------------------------------------

def _time(row: pd.Series) -> pd.Timestamp:
    """When the point was made: its commit's time, else its run's (as history orders)."""
    stamp = pd.to_datetime(row.get("commit_time"), utc=True, errors="coerce")
    return pd.Timestamp(row["run_time"]) if pd.isna(stamp) else stamp


def _attributes(row: pd.Series) -> list:
    machine = row.get("env_gpu_name") if isinstance(row.get("env_gpu_name"), str) \
        else row.get("env_cpu_model")
    return [csv_cell("" if pd.isna(v) else str(v)) for v in
            (row.get("commit_id"), row.get("commit_branch"), machine, row["run"])]


def otava(df: pd.DataFrame) -> dict[str, tuple[str, dict[str, int]]]:
    """``{test name: (CSV text, {metric column: direction})}``: one test per case and
    environment (the environment's number is added to the name only when a case has
    several), rows ordered by time."""
    df = df.assign(env=df.apply(env_label, axis=1))
    envs = sorted(set(df["env"]))
    tests = {}
    for (case_id, env), rows in df.groupby(["case_id", "env"], sort=True):
        several = df.loc[df["case_id"] == case_id, "env"].nunique() > 1
        name = f"{case_id}@env{envs.index(env)}" if several else str(case_id)
        rows = rows.assign(_t=[_time(r) for _, r in rows.iterrows()])
        if rows["_t"].isna().any():
            raise UserError(f"{case_id}: a run without a time (no commit or run date); "
                            "Otava orders points by time")
        rows = rows.sort_values(["_t", "run_index"], kind="stable")
        cells = {m.key: [values(r, m, m.scale) for _, r in rows.iterrows()]
                 for m in measures()}
        kept = [m for m in measures() if all(v is not None for v in cells[m.key])]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["time", *OTAVA_ATTRIBUTES, *(m.key for m in kept)])
        for i, (_, row) in enumerate(rows.iterrows()):
            writer.writerow([row["_t"].strftime(OTAVA_TIME), *_attributes(row),
                             *(repr(cells[m.key][i][0]) for m in kept)])
        tests[name] = (buffer.getvalue(), {m.key: 1 if m.bigger_is_better else -1
                                           for m in kept})
    return tests


def csv_names(names) -> dict[str, str]:
    """A file name per test name, safe in a path; where two names make one (``a|b`` and
    ``a_b``), the later ones are numbered."""
    files: dict[str, str] = {}
    for name in names:
        stem = safe_name(name)
        files[name] = next(f for k in range(len(files) + 1)
                           if (f := f"{stem}{f'-{k}' if k else ''}.csv") not in files.values())
    return files


def otava_config(tests: dict[str, tuple[str, dict[str, int]]],
                 files: dict[str, str]) -> str:
    """``otava.yaml`` for ``tests`` whose CSVs are ``files[name]`` (relative to the
    folder Otava runs in). Every scalar is written as a JSON string or number, which
    YAML reads as the same value, so no case name can break the file."""
    q = json.dumps
    lines = ["# Written by `resnets export --format otava`: one test per case, in the",
             f"# group {OTAVA_GROUP}. Run from this folder: otava analyze {OTAVA_GROUP} "
             f"--config-file {OTAVA_CONFIG}", "tests:"]
    for name, (_, directions) in tests.items():
        lines += [f"  {q(name)}:", "    type: csv", f"    file: {q(files[name])}",
                  "    time_column: time",
                  f"    attributes: [{', '.join(q(a) for a in OTAVA_ATTRIBUTES)}]",
                  "    metrics:"]
        lines += [f"      {q(key)}: {{direction: {d}}}" for key, d in directions.items()]
    lines += ["test_groups:", f"  {OTAVA_GROUP}:"]
    lines += [f"    - {q(name)}" for name in tests]
    return "\n".join(lines) + "\n"


# --- writing ---------------------------------------------------------------------------

def export(paths, fmt: str, out: Path | None, strict: bool = False) -> list[Path] | str:
    """Write ``fmt`` for the runs in ``paths``: the files written, or (bmf without
    ``out``) the JSON text for standard output."""
    df = speed_rows(paths, one_run=fmt != "otava", strict=strict)
    if fmt == "bmf":
        text = json.dumps(bmf(df), indent=1) + "\n"
        if out is None:
            return text
        atomic_write_text(out, text)
        return [out]
    assert out is not None  # the command gives gab and otava a folder
    written = []
    if fmt == "gab":
        for bigger, entries in gab(df).items():
            path = out / GAB_FILES[bigger]
            atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
            written.append(path)
        return written
    if fmt != "otava":
        raise ValueError(f"unknown export format {fmt!r}")
    tests = otava(df)
    files = csv_names(tests)
    for name, (text, _) in tests.items():
        atomic_write_text(out / files[name], text)
        written.append(out / files[name])
    atomic_write_text(out / OTAVA_CONFIG, otava_config(tests, files))
    return [out / OTAVA_CONFIG, *written]
