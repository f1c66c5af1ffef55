"""A history as trend plots, Markdown (step summary) and terminal lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..store import atomic_write, atomic_write_text, safe_name
from ..text import change, duration, markdown_table, md
from .analysis import Options, Series, Shift


def trend_figure(series: Series):
    """Run medians with their IQR, each segment's level and the shifts: what the rule saw."""
    from matplotlib.figure import Figure

    p = series.points
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(p))
    ax.errorbar(x, p["median"] * 1e3, yerr=[(p["median"] - p["q1"]) * 1e3,
                                            (p["q3"] - p["median"]) * 1e3],
                fmt="o-", ms=4, lw=1, capsize=2, label="run median (IQR)")
    bounds = [0, *(s.start for s in series.shifts), len(p)]
    levels = [s.before for s in series.shifts[:1]] + [s.after for s in series.shifts]
    for a, b, level in zip(bounds, bounds[1:], levels):
        ax.hlines(level * 1e3, a - 0.4, b - 0.6, color="gray", lw=1.2, ls=":")
    for s in series.shifts:
        color = "tab:red" if s.kind == "regression" else "tab:green"
        ax.axvline(s.start - 0.5, color=color, ls="--", lw=1)
        ax.annotate(f"{change(s.ratio)} ({interval(s)})", (s.start, s.after * 1e3),
                    color=color, textcoords="offset points", xytext=(4, 6), fontsize=7)
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


def method(opts: Options) -> str:
    """The rule in one sentence, with this run's settings."""
    return (f"Change points by E-divisive means with a t-test: a shift is beyond "
            f"{opts.threshold:.0%} with p < {opts.alpha:g} (adjusted for where it could "
            f"have been), against the series' own run-to-run noise, with at least "
            f"{opts.persist} run(s) on each side.")


def interval(shift: Shift) -> str:
    return f"{change(shift.low)} to {change(shift.high)}"


def short_commit(commit) -> str:
    return commit[:10] if isinstance(commit, str) and commit else "-"


def markdown(series: list[Series], opts: Options, plots: dict[int, Path]) -> str:
    envs = sorted({s.env for s in series})
    flagged = [s for s in series if s.shifts]
    lines = [f"### Benchmark history: {'FAIL' if any(s.failing for s in series) else 'OK'}", "",
             f"{len(series)} series in {len(envs)} environment(s). {method(opts)}", ""]
    if flagged:
        rows = []
        for s in flagged:
            for sh in s.shifts:
                run = s.points.iloc[sh.start]
                plot = plots.get(id(s))
                rows.append([s.case_id, s.env, f"{sh.kind} {change(sh.ratio)}",
                             interval(sh), f"{sh.p:.2g}",
                             f"{run['run']} ({_date(run['time'])})", short_commit(run["commit"]),
                             duration(sh.before), duration(sh.after), len(s.points) - sh.start,
                             plot.name if plot else ""])
        lines.append(markdown_table(["case", "environment", "shift", "95% interval", "p",
                                     "at run", "commit", "before", "after", "runs since",
                                     "plot file"], rows))
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
            lines.append(f"{sh.kind:<11} {change(sh.ratio):>7} ({interval(sh)}, p={sh.p:.2g})"
                         f"  {s.case_id}  from run {s.points['run'].iloc[sh.start]}"
                         f"{'' if sh.recent else ' (older)'}  [{s.env}]")
        if s.unconfirmed:
            lines.append(f"{'unconfirmed':<11} {'':>7}  {s.case_id}  newest run only  [{s.env}]")
    failing = sum(len(s.failing) for s in series)
    lines.append(f"{len(series)} series; " + (f"FAIL: {failing} recent slowdown shift(s)"
                                               if failing else "OK: no recent slowdown shift"))
    return "\n".join(lines)


def _date(value) -> str:
    stamp = pd.Timestamp(value)
    return "no date" if pd.isna(stamp) else f"{stamp:%Y-%m-%d %H:%M}"


def write(series: list[Series], out: Path, opts: Options) -> Path:
    plots = write_plots(series, out)
    path = out / "history.md"
    atomic_write_text(path, markdown(series, opts, plots))
    return path
