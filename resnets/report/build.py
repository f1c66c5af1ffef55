"""``write_report``: load results, build every table and plot, write the report folder.

Output (see reports/README.md): ``index.html`` (self-contained), ``summary.md`` (short,
for a PR comment or ``$GITHUB_STEP_SUMMARY``), ``results.csv`` (one row per case, no raw
samples), ``tables/<name>.{csv,md,html}`` and ``plots/<name>.png``. Every file is written
atomically, and a table or plot with nothing to show this time has its old file removed,
so a folder never mixes two reports.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .. import __version__
from ..results import ResultsError, load
from ..schema import KIND, STATUS, Kind, Status, blob_columns
from ..store import atomic_write, atomic_write_text
from ..text import csv_frame
from . import plots as _plots
from . import tables as _tables
from .frame import DEFAULT_BASELINE
from .render import Section, html_page, markdown_page, markdown_table

TITLE = "resnets benchmark report"
# The intro's one-line machine description: (words, column).
MACHINE = (("CPU", "env_cpu_model"), ("cores", "env_cpu_count"), ("torch threads", "env_threads"),
           ("GPU", "env_gpu_name"), ("GPUs", "env_gpu_count"), ("torch", "env_torch"),
           ("CUDA build", "env_cuda"), ("Python", "env_python"), ("commit", "commit_id"))
# Page order: these tables, then the plots, then the other tables (detail and provenance).
BEFORE_PLOTS = ("models", "speedups", "torchvision", "cases", "convergence")
# The convergence table is wide: the summary keeps these of its columns.
SUMMARY_CONVERGENCE = ("rank", "model", "dataset", "input", "target acc", "reached",
                       "iters to target (median)", "train s to target (median)",
                       "best acc (median)", "final acc (median)")


def table_sections(df: pd.DataFrame, baseline: str | None) -> list[Section]:
    """Every table of the report, in order (raises ``UserError`` for an unknown baseline)."""
    base = baseline or DEFAULT_BASELINE
    t = _tables
    specs = [
        ("models", "Models", t.models_table(df), "no successful speed case",
         "Size and work per sample (forward FLOPs counted by torch, 2 per multiply-add; "
         "multiply-adds counted by fvcore), then per device and mode the best throughput over "
         "variants and batch sizes, the case that got it, and that case's peak memory."),
        ("speedups", f"Speed-ups vs {base}", t.speedup_matrix(df, baseline),
         f"no successful {base} case to divide by (name another with --baseline)",
         f"Throughput of each variant divided by that of {base} for the same model, mode, "
         "device, batch and input, in the same run; above 1 is faster."),
        ("torchvision", "Our models vs torchvision", t.torchvision_table(df),
         "not measured (no torchvision case in these results)",
         "Pairs a case of torchvision's model with ours at the same mode, device, variant, "
         f"batch and input. A case is torchvision's when its model name starts with "
         f"'{t.TV_PREFIX}' (tv_resnet18 pairs with resnet18)."),
        ("cases", "Every case: throughput, memory, utilization", t.cases_table(df, base),
         "no successful speed case",
         "Achieved FLOP/s = FLOPs per step x steps per second (median step). Attainable: the "
         "best matmul rate measured on the same machine at the case's precision. "
         + t.PROFILE_HINT),
        ("convergence", "Convergence", t.convergence_table(df), "no convergence results",
         "Per configuration over its seeds: iterations and seconds (training only, and total "
         "with evaluation) to the target test accuracy, median and min/max, and the best and "
         "final test accuracy. A seed that never reached the target counts as never (not "
         "reached), so such a configuration ranks slowest but stays in the table."),
        ("layers", f"Per-layer profile (top {t.TOP_LAYERS} by time)", t.layer_table(df),
         "no case was profiled (resnets run --profile-ops)",
         "Slowest leaf layers of each profiled case, from separate, untimed profiling steps "
         "(the profiler slows them down): time per step (forward and, when training, "
         "backward), forward FLOPs and the FLOP/s they achieve, and share of the step."),
        ("failures", "Failed cases", t.failures_table(df), "no case failed",
         "Cases the suite attempted that raised an error, with the recorded reason."),
        ("method", "How the numbers were made", t.method_table(df), "no timing information",
         "Speed cases: warm-up steps, then one timed step per sample with the clock below, "
         "until the 95% confidence interval of the median is within the target or the "
         "time budget or round limit is hit (stop reason). Throughput = batch size / median "
         "step time. Convergence runs: the clock runs over training steps only, and time to "
         "target is read at test evaluations. 'results': how many results have the value."),
        ("environment", "Environment", t.environment_table(df), "no environment recorded",
         "Machine and software of each run, as recorded with its results."),
    ]
    return [Section(name, title, caption, table, missing=None if not table.empty else missing)
            for name, title, table, missing, caption in specs]


def plot_sections(df: pd.DataFrame, baseline: str | None) -> list[Section]:
    """Every plot of the report, in order; one without data says why."""
    sections = []
    for name, title, caption, fn in _plots.PLOTS:
        try:
            png = _plots.render(fn, df, baseline or DEFAULT_BASELINE)
            sections.append(Section(name, title, caption, png=png))
        except _plots.Skip as why:
            sections.append(Section(name, title, caption, missing=str(why)))
    return sections


def _values(df: pd.DataFrame, col: str) -> str:
    """Distinct values of a column; whole floats (an int column with gaps) print as ints."""
    values = df[col].dropna()
    return " / ".join(dict.fromkeys(
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values))


def intro(df: pd.DataFrame, paths) -> list[str]:
    """What was loaded and on what, in a few lines a reader sees first."""
    speed = df[KIND] == Kind.SPEED
    runs = list(dict.fromkeys(df.sort_values("run_time", na_position="first")["run"]))
    lines = [
        f"{len(df)} results from {len(runs)} run(s) ({', '.join(runs)}): "
        f"{int((speed & (df[STATUS] == Status.OK)).sum())} speed cases measured, "
        f"{int((speed & (df[STATUS] == Status.FAILED)).sum())} failed, "
        f"{int((df[KIND] == Kind.CONVERGENCE).sum())} convergence results.",
        "Machine: " + ("; ".join(f"{what} {_values(df, col)}" for what, col in MACHINE
                                 if df[col].notna().any()) or "not recorded") + ".",
    ]
    rounds = pd.to_numeric(df["timing_rounds"], errors="coerce").dropna()
    if len(rounds):
        stops = df["timing_stop_reason"].value_counts()
        lines.append(f"Timing: {_values(df[speed], 'timing_clock')}; {rounds.min():.0f} to "
                     f"{rounds.max():.0f} timed steps per case; stopped by "
                     + ", ".join(f"{r} ({n} cases)" for r, n in stops.items()) + ".")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Generated {now} by resnets {__version__} from {', '.join(map(str, paths))}.")
    return lines


def _table_file(s: Section, ext: str) -> str:
    if ext == "csv":
        return csv_frame(s.table).to_csv(index=False)
    return markdown_table(s.table) + "\n" if ext == "md" else html_page(s.title, [], [s])


def summary_sections(tables: dict[str, Section]) -> list[Section]:
    """summary.md's tables: models and speed-ups always (a missing one says so in a line),
    convergence (its main columns) and failures when they have rows."""
    out = [tables["models"], tables["speedups"]]
    conv, failures = tables["convergence"], tables["failures"]
    if not conv.missing:
        out.append(replace(conv, table=conv.table[list(SUMMARY_CONVERGENCE)]))
    return out + ([failures] if not failures.missing else [])


def _write_parts(out: Path, df: pd.DataFrame, tables, figures) -> None:
    """results.csv, tables/ and plots/; an old file of a part that's missing now goes."""
    scalars = df.drop(columns=[c for c in blob_columns() if c in df])
    atomic_write_text(out / "results.csv", csv_frame(scalars).to_csv(index=False))
    for s in tables:
        for ext in ("csv", "md", "html"):
            path = out / "tables" / f"{s.name}.{ext}"
            if s.missing:
                path.unlink(missing_ok=True)
            else:
                atomic_write_text(path, _table_file(s, ext))
    for s in figures:
        path = out / "plots" / f"{s.name}.png"
        if s.missing:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, lambda tmp, data=s.png: Path(tmp).write_bytes(data))


def write_report(paths, out_dir, baseline: str | None = None, strict: bool = False) -> Path:
    """Load ``paths`` (files, folders, globs; see ``resnets.results``), write the report
    into ``out_dir`` and return ``out_dir``. Bad input raises a one-line ``UserError``
    before anything is written."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    df = load(paths, strict=strict)
    if df.empty:
        raise ResultsError(f"{', '.join(map(str, paths))}: no resnets results in it "
                           "(an empty 'benchmarks' list)")
    out = Path(out_dir)
    tables = {s.name: s for s in table_sections(df, baseline)}
    figures = plot_sections(df, baseline)
    _write_parts(out, df, tables.values(), figures)
    head = intro(df, paths)
    skipped = [s.title for s in figures if s.missing]
    footer = (f"Plots, utilization, per-layer profiles and how the numbers were made: "
              f"{out / 'index.html'}." +
              (f" Plots not drawn (data absent): {'; '.join(skipped)}." if skipped else ""))
    atomic_write_text(out / "summary.md",
                      markdown_page(TITLE, head, summary_sections(tables), footer))
    page = [*(tables[n] for n in BEFORE_PLOTS), *figures,
            *(s for n, s in tables.items() if n not in BEFORE_PLOTS)]
    atomic_write_text(out / "index.html", html_page(TITLE, head, page))
    return out
