"""A history as trend plots, Markdown (step summary) and terminal lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..store import atomic_write, atomic_write_text, safe_name
from ..text import change, duration, markdown_table, md, printable
from .analysis import Options, Series


def trend_figure(series: Series):
    """Run medians with their IQR, the levels and the shifts: what the rule saw."""
    from matplotlib.figure import Figure

    p = series.points
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(p))
    ax.errorbar(x, p["median"] * 1e3, yerr=[(p["median"] - p["q1"]) * 1e3,
                                            (p["q3"] - p["median"]) * 1e3],
                fmt="o-", ms=4, lw=1, capsize=2, label="run median (IQR)")
    for s in series.shifts:
        color = "tab:red" if s.kind == "regression" else "tab:green"
        ax.axvline(s.start - 0.5, color=color, ls="--", lw=1)
        ax.axhline(s.before * 1e3, color="gray", lw=0.8, ls=":")
        ax.annotate(f"{change(s.ratio)}", (s.start, s.after * 1e3), color=color,
                    textcoords="offset points", xytext=(4, 6))
    labels = [str(c)[:7] if isinstance(c, str) and c else str(r)[:12]
              for c, r in zip(p["commit"], p["run"])]
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("step time (ms)")
    ax.set_title(f"{series.case_id}\n{series.env}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def write_plots(series: list[Series], out: Path) -> dict[int, Path]:
    """A PNG per series with a flagged shift, named by case and environment number;
    ``{id(series): path}``."""
    import matplotlib as mpl

    envs = sorted({s.env for s in series})
    paths = {}
    with mpl.rc_context({"text.parse_math": False}):
        for s in series:
            if s.shifts:
                path = out / f"{safe_name(s.case_id)}-env{envs.index(s.env)}.png"
                figure = trend_figure(s)
                atomic_write(path, lambda tmp, f=figure: f.savefig(
                    tmp, format="png", dpi=150, bbox_inches="tight",
                    metadata={"Software": None}))
                paths[id(s)] = path
    return paths


def markdown(series: list[Series], opts: Options, plots: dict[int, Path]) -> str:
    envs = sorted({s.env for s in series})
    flagged = [s for s in series if s.shifts]
    lines = [f"### Benchmark history: {'FAIL' if any(s.failing for s in series) else 'OK'}", "",
             f"{len(series)} series in {len(envs)} environment(s); a level shift needs "
             f"{opts.persist} consecutive runs beyond {opts.threshold:.0%} and the series' "
             f"own noise (alpha {opts.alpha:g}).", ""]
    if flagged:
        rows = []
        for s in flagged:
            for sh in s.shifts:
                run = s.points.iloc[sh.start]
                plot = plots.get(id(s))
                rows.append([s.case_id, s.env, f"{sh.kind} {change(sh.ratio)}",
                             f"{run['run']} ({_date(run['time'])})", duration(sh.before),
                             duration(sh.after), len(s.points) - sh.start,
                             plot.name if plot else ""])
        lines.append(markdown_table(["case", "environment", "shift", "at run", "before",
                                     "after", "runs since", "plot file"], rows))
    else:
        lines.append("No level shift.")
    pending = [s.case_id for s in series if s.unconfirmed]
    if pending:
        lines += ["", f"Unconfirmed (only the newest run is out): {md(', '.join(pending))}"]
    return "\n".join(lines) + "\n"


def terminal(series: list[Series]) -> str:
    """One line per flagged shift (and unconfirmed case), then the outcome."""
    lines = []
    for s in series:
        for sh in s.shifts:
            lines.append(f"{sh.kind:<11} {change(sh.ratio):>7}  {s.case_id}  from run "
                         f"{s.points['run'].iloc[sh.start]}"
                         f"{'' if sh.recent else ' (older)'}  [{s.env}]")
        if s.unconfirmed:
            lines.append(f"{'unconfirmed':<11} {'':>7}  {s.case_id}  newest run only  [{s.env}]")
    failing = sum(len(s.failing) for s in series)
    lines.append(f"{len(series)} series; " + (f"FAIL: {failing} recent slowdown shift(s)"
                                               if failing else "OK: no recent slowdown shift"))
    return "\n".join(map(printable, lines))  # case ids, runs and envs are data


def _date(value) -> str:
    stamp = pd.Timestamp(value)
    return "no date" if pd.isna(stamp) else f"{stamp:%Y-%m-%d %H:%M}"


def write(series: list[Series], out: Path, opts: Options) -> Path:
    plots = write_plots(series, out)
    path = out / "history.md"
    atomic_write_text(path, markdown(series, opts, plots))
    return path
