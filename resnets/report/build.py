"""``write_report``: load results, build every table and plot, write the report folder.

Output (see reports/README.md): ``index.html`` (self-contained), ``summary.md`` (short,
for a PR comment or ``$GITHUB_STEP_SUMMARY``), ``results.csv`` (one row per case, no raw
samples), ``tables/<name>.{csv,md,html}`` and ``plots/<name>.png``. Every file is written
atomically, and a table or plot with nothing to show this time has its old file removed,
so a folder never mixes two reports.

The page opens with what a reader acts on: the machine, date and commit, the headline
(per model the best variant whose advantage is supported, with its interval), and what
to use; then the tables and plots that back it, then how the numbers were made.
"""
from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import pandas as pd

from .. import __version__
from ..errors import UserError
from ..results import ResultsError, load, run_folder
from ..schema import KIND, STATUS, Kind, Status, blob_columns
from ..store import atomic_write, atomic_write_text
from ..text import csv_frame
from . import plots as _plots
from . import tables as _tables
from .accuracy import DEFAULT_MAX_DROP, accuracy_table, beside, points
from .advice import advice_rows, advise, speedups
from .findings import findings_table
from .frame import DEVICE_BASELINES, speed, with_levels
from .render import Section, html_page, markdown_page, markdown_table

# Page order: these tables, then the plots, then the rest (detail and provenance).
# The first screen: the speed-ups drawn, then what to use; the plot is drawn from the same
# intervals the table states.
FIRST = ("forest", "advice")
BEFORE_PLOTS = ("advice", "speedups", "accuracy", "models", "torchvision", "findings",
                "convergence")
IN_SUMMARY = ("advice", "accuracy", "findings", "convergence", "missing")
BASELINE_WHY = ("Baselines: on CUDA, PyTorch's default numerics (contiguous-default-eager: "
                "fp32 tensors, cuDNN convolutions in TF32, matmuls in fp32), which is what a "
                "PyTorch user gets without asking; strict fp32 (TF32 off everywhere) is "
                "measured and shown as a variant. On CPU, fp32 (PyTorch's default there).")


def _baseline_note(df: pd.DataFrame, baseline: str | None) -> str:
    """Which baseline each device's speed-ups divide by, and why; a result set that
    predates the default-numerics baseline says so."""
    if baseline:
        return f"Every speed-up divides by {baseline} (--baseline)."
    ok = speed(df)
    cuda = ok[ok["device"] == "cuda"]
    note = BASELINE_WHY
    if not cuda.empty and DEVICE_BASELINES["cuda"][0] not in set(cuda["variant"]):
        note += (" These CUDA results predate that baseline (no contiguous-default-eager "
                 "case): their speed-ups divide by strict fp32, which overstates what "
                 "reduced precision gains over what users run.")
    return note


def table_sections(df: pd.DataFrame, baseline: str | None,
                   expected: dict | None = None, accuracy: pd.DataFrame | None = None,
                   max_drop: float = DEFAULT_MAX_DROP) -> list[Section]:
    """Every table of the report, in order (raises ``UserError`` for an unknown baseline)."""
    t = _tables
    advice = advise(df, baseline, accuracy, max_drop)
    long = speedups(df, baseline)
    note = _baseline_note(df, baseline)
    specs = [
        ("advice", "What to use", advice_rows(advice), "no successful speed case",
         "Per model, mode, device, batch and input: the fastest variant whose speed-up over "
         "the baseline is statistically supported (its 95% interval lies above 1), or \"no "
         "clear winner\"; its throughput, its peak memory against the baseline's, and the "
         "variants to avoid, with how much (what is faster at 224x224 can be slower at "
         "64x64). Intervals are 95%: variants timed side by side (one group, rotating "
         "blocks) from their blocks and the shift between builds; otherwise with the noise "
         "model's run-to-run shift. Same as `resnets advise`. " + note, None),
        ("speedups", "Speed-ups", t.speedup_display(long),
         "no baseline case to divide by (name one with --baseline)",
         "Throughput of each variant divided by its baseline's (column baseline) for the "
         "same model, mode, device, batch and input, in the same run; above 1 is faster. "
         "Each cell: speed-up (95% interval); ≈ marks one within noise. " + note,
         long.drop(columns=["row"], errors="ignore")),
        ("accuracy", "Accuracy cost of what users ship", accuracy_table(accuracy),
         "no accuracy table (resnets accuracy; pass it with --accuracy)",
         "The same trained weights evaluated as each form a user ships: fp32 eager, bf16 "
         "autocast, int8 (PT2E post-training quantization, calibrated on training batches, "
         "through Inductor) and the AOTInductor package; test accuracy (median over seeds), "
         "its change from fp32 in percentage points and the top-1 agreement with fp32's "
         f"predictions. \"What to use\" recommends nothing more than {points(max_drop)} "
         "below fp32, nor an int8 variant of a model whose accuracy was not measured.", None),
        ("models", "Models", t.models_table(df, baseline), "no successful speed case",
         "Size and work per sample (forward FLOPs counted by torch, 2 per multiply-add), "
         "per device and mode the best throughput over variants and batch sizes (95% "
         "interval) and the case that got it, and peak memory at the baseline variant.",
         None),
        ("torchvision", "Our models vs torchvision", t.torchvision_table(df),
         "not measured (no torchvision case in these results)",
         "Pairs a case of torchvision's model with ours at the same mode, device, variant, "
         f"batch and input (a model named '{t.TV_PREFIX}<name>' is torchvision's <name>).",
         None),
        ("findings", "Convergence: what the runs show", findings_table(df),
         "no convergence experiment in these results",
         "For each experiment, what the literature expects and whether these runs show it, "
         "computed from them: effect sizes with their spread over seeds.", None),
        ("convergence", "Convergence", t.convergence_table(df), "no convergence results",
         "Per configuration over its seeds: iterations and training seconds (evaluation "
         "excluded) to the target test accuracy, median and range; a seed that never "
         "reached it counts as never (not reached), so such a configuration ranks last but "
         "stays. The protocols are in the Protocols table below.", None),
        ("scaling", "Data-parallel scaling: efficiency", t.scaling_table(df),
         "no data-parallel case (resnets run --world-sizes 1,2 --strategies ddp,fsdp)",
         "Per data-parallel case (torchrun, one process per device): samples/s over all "
         "devices and per device; efficiency = per-device throughput / that at world size 1 "
         "of the same variant and strategy (1 is linear scaling), with its 95% interval; "
         "the strategy's collectives timed alone on a buffer of the gradients' size, and "
         "their bus bandwidth as nccl-tests define it; the share of that communication "
         "hidden behind backward (DDP: 1 - (step - step under no_sync) / communication); "
         "peak memory of the largest rank. `resnets scale` projects larger world sizes.",
         None),
        ("pipeline", "Input pipeline: loader or model?", t.pipeline_table(df),
         "no real-input case (resnets run --input real --loader-workers 0,2)",
         "Cases fed by a DataLoader over generated JPEG files (decode and augmentation in "
         "torchvision transforms v2): samples/s of loader and model together (the timed "
         "step), of the loader alone and of the model alone on a fixed batch. The "
         "bottleneck is the slower alone; 'both / slower alone' below 100% means they "
         "also slow each other (workers and the model share CPU cores).", None),
        ("sweep", "Batch-size sweeps", t.sweep_table(df),
         "no batch sweep (resnets run --batch-sizes auto)",
         "Throughput at each batch of a doubling sweep, and the knee: the smallest batch "
         "within 95% of the best, past which a larger batch buys little but memory and "
         "latency.", None),
        ("cases", "Every case: throughput, memory, utilization", t.cases_table(df),
         "no successful speed case",
         "Achieved FLOP/s = FLOPs per step x steps per second (median step). Attainable: the "
         "best matmul rate measured on the same machine at the case's precision. "
         + t.PROFILE_HINT, None),
        ("protocols", "Protocols", t.protocol_table(df), "no convergence results",
         "Optimizer, schedule and budget of each convergence configuration.", None),
        ("layers", f"Per-layer profile (top {t.TOP_LAYERS} by time)", t.layer_table(df),
         "no case was profiled (resnets run --profile-ops)",
         "Slowest leaf layers of each profiled case, from separate, untimed profiling steps "
         "(the profiler slows them down): time per step (forward and, when training, "
         "backward), forward FLOPs and the FLOP/s they achieve, and share of the step.", None),
        ("missing", "Cases without a measurement", t.missing_table(df, expected),
         "every selected case has a measurement",
         "Each case the runs selected that has no measurement, and why: skipped (cannot run "
         "on this machine), failed (its error), crashed (the process died while measuring "
         "it) or no result (the run stopped short).", None),
        ("method", "How the numbers were made", t.method_table(df), "no timing information",
         "Speed cases: warm-up steps, then one timed step per sample with the clock below, "
         "until the 95% confidence interval of the median is within the target or the "
         "time budget or round limit is hit (stop reason). Throughput = batch size / median "
         "step time. Convergence runs: the clock runs over training steps only, and time to "
         "target is read at test evaluations. 'results': how many results have the value.",
         None),
        ("environment", "Environment", t.environment_table(df), "no environment recorded",
         "Machine and software of each run, as recorded with its results.", None),
    ]
    return [Section(name, title, caption, table, missing=None if not table.empty else missing,
                    data=data)
            for name, title, table, missing, caption, data in specs]


def plot_sections(df: pd.DataFrame, baseline: str | None) -> list[Section]:
    """Every plot of the report, in order; one without data says why."""
    sections = []
    for name, title, caption, fn in _plots.PLOTS:
        try:
            png = _plots.render(fn, df, baseline)
            sections.append(Section(name, title, caption, png=png, anchor=f"{name}-plot"))
        except _plots.Skip as why:
            sections.append(Section(name, title, caption, missing=str(why),
                                    anchor=f"{name}-plot"))
    return sections


def _values(df: pd.DataFrame, col: str) -> str:
    """Distinct values of a column; whole floats (an int column with gaps) print as ints."""
    values = df[col].dropna()
    return " / ".join(dict.fromkeys(
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values))


def device_name(df: pd.DataFrame) -> str:
    """The machine in a few words, the GPU first."""
    gpus = _values(df, "env_gpu_name")
    cpus = _values(df, "env_cpu_model")
    isa = _values(df, "env_cpu_capability")
    cpus = f"{cpus} ({isa})" if cpus and isa else cpus
    return f"{gpus} (host CPU {cpus})" if gpus else (f"CPU {cpus}" if cpus else "unknown machine")


def intro(df: pd.DataFrame, paths, missing: int = 0) -> list[str]:
    """What was loaded and on what, in a few lines a reader sees first."""
    speed_rows = df[KIND] == Kind.SPEED
    runs = list(dict.fromkeys(df.sort_values("run_time", na_position="first")["run"]))
    when = pd.to_datetime(df["run_time"], utc=True, errors="coerce").dropna()
    commits = sorted({str(c)[:12] for c in df["commit_id"].dropna()
                      if str(c) not in ("", "unknown")}) or ["not recorded"]
    lines = [
        f"{device_name(df)}; {when.min():%Y-%m-%d}" if len(when) else device_name(df),
        f"Run{'s' if len(runs) > 1 else ''} {', '.join(runs)}, commit {', '.join(commits)}: "
        f"{int((speed_rows & (df[STATUS] == Status.OK)).sum())} speed cases measured, "
        f"{int((df[KIND] == Kind.CONVERGENCE).sum())} convergence runs, {missing} "
        f"case{'' if missing == 1 else 's'} without a measurement"
        + (" (listed below)." if missing else "."),
        "Software: torch " + (_values(df, "env_torch") or "?") + ", CUDA build "
        + (_values(df, "env_cuda") or "none") + ", Python " + (_values(df, "env_python") or "?")
        + f"; {_values(df, 'env_cpu_count') or '?'} cores, torch threads "
        + (_values(df, "env_threads") or "?")
        + (f"; CPU ISA flags {_values(df, 'env_cpu_flags')}" if _values(df, "env_cpu_flags")
           else "") + ".",
    ]
    corrupt = df.attrs.get("corrupt") or []
    if corrupt:
        names = ", ".join(Path(p).name for p, _ in corrupt[:5])
        lines.append(f"{len(corrupt)} result file{'s' if len(corrupt) > 1 else ''} could not "
                     f"be read and {'were' if len(corrupt) > 1 else 'was'} left out: {names}"
                     + (" and more" if len(corrupt) > 5 else "") + ".")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Generated {now} by resnets {__version__} from {', '.join(map(str, paths))}.")
    return lines


def expected_cases(df: pd.DataFrame) -> dict[str, set[str]]:
    """Per run, the names of every case its plan selected (``plan.PLAN_FILE``, written
    before anything was measured), so a case with no file at all is listed as missing.
    The shards of a run are one run: each shard's plan names the whole selection. A run
    without a plan (older, or a single file) adds nothing; a damaged plan is skipped
    with a warning, not silently."""
    from ..plan import PLAN_FILE, Plan

    out: dict[str, set[str]] = {}
    for run, sources in df.groupby("run")["source"]:
        for folder in {run_folder(Path(p)) for p in sources} - {None}:
            if not (folder / PLAN_FILE).exists():
                continue
            try:
                out.setdefault(run, set()).update(Plan.load(folder / PLAN_FILE).selected)
            except UserError as exc:
                print(f"resnets: warning: {exc}", file=sys.stderr)
    return out


def _table_file(s: Section, ext: str) -> str:
    if ext == "csv":
        return csv_frame(s.data if s.data is not None else s.table).to_csv(index=False)
    return markdown_table(s.table) + "\n" if ext == "md" else html_page(s.title, [], [s])


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


def write_report(paths, out_dir, baseline: str | None = None, strict: bool = False,
                 accuracy=(), max_drop: float = DEFAULT_MAX_DROP) -> Path:
    """Load ``paths`` (files, folders, globs; see ``resnets.results``), write the report
    into ``out_dir`` and return ``out_dir``. ``accuracy``: accuracy tables beside those
    in the results' run folders (``report.accuracy``). Bad input raises a one-line
    ``UserError`` before anything is written."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    df = with_levels(load(paths, strict=strict))
    if df.empty:
        raise ResultsError(f"{', '.join(map(str, paths))}: no resnets results in it "
                           "(an empty 'benchmarks' list)")
    out = Path(out_dir)
    tables = {s.name: s for s in table_sections(df, baseline, expected_cases(df),
                                                beside(df, accuracy), max_drop)}
    figures = plot_sections(df, baseline)
    _write_parts(out, df, tables.values(), figures)
    head = intro(df, paths, len(tables["missing"].table))
    runs = ", ".join(dict.fromkeys(df["run"]))
    title = f"resnets: {device_name(df)}, {runs}"
    drawn = [s.title for s in figures if not s.missing]
    footer = ("The full report, with the speed-ups, every case, "
              + (f"{len(drawn)} plots " if drawn else "")
              + "and how each number was made: index.html (beside this file).")
    atomic_write_text(out / "summary.md", markdown_page(
        title, head, [tables[n] for n in IN_SUMMARY], footer))
    first = {s.name: s for s in [*figures, *tables.values()] if s.name in FIRST}
    page = [*(first[n] for n in FIRST if n in first),
            *(tables[n] for n in BEFORE_PLOTS if n not in first),
            *(s for s in figures if s.name not in first),
            *(s for n, s in tables.items() if n not in BEFORE_PLOTS)]
    atomic_write_text(out / "index.html", html_page(title, head, page))
    return out
