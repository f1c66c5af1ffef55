"""A history as trend plots, a self-contained page (index.html, the report's layout),
Markdown (step summary) and terminal lines."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..report.render import Section, html_page, img
from ..store import atomic_write, atomic_write_text, safe_name
from ..text import change, duration, markdown_table, md, printable
from .analysis import Bisected, Options, Series, Shift

SPARK_SPAN = 1.15  # a sparkline shows at least median / 1.15 to median x 1.15


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


def sparkline_figure(series: Series):
    """A trend small enough for a table row: the run medians, a line at each shift. The
    height spans at least +-15% of the median, so noise of a few percent looks flat and
    a real shift does not."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6, 0.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    y = series.points["median"].to_numpy() * 1e3
    mid = float(np.median(y))
    ax.set_ylim(min(y.min(), mid / SPARK_SPAN) * 0.98, max(y.max(), mid * SPARK_SPAN) * 1.02)
    ax.plot(np.arange(len(y)), y, color="#0072B2", lw=1)
    ax.plot([len(y) - 1], [y[-1]], "o", ms=2.5, color="#0072B2")
    for s in series.shifts:
        ax.axvline(s.start - 0.5, color="#D55E00" if s.kind == "regression" else "#009E73",
                   lw=1)
    return fig


def plots(series: list[Series]) -> dict[int, tuple[str, bytes]]:
    """A trend plot per series with a shift, ``{id(series): (file name, PNG bytes)}``,
    named by case and environment number."""
    import matplotlib as mpl

    from ..report.plots import png

    envs = sorted({s.env for s in series})
    with mpl.rc_context({"text.parse_math": False}):
        return {id(s): (f"{safe_name(s.case_id)}-env{envs.index(s.env)}.png",
                         png(trend_figure(s))) for s in series if s.shifts}


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


def shift_table(series: list[Series], bisect: dict[str, Bisected]) -> pd.DataFrame:
    """One row per shift, newest series order; a case's bisect result is shown on its
    newest shift (a bisection looks for the commit behind the latest change)."""
    rows = []
    for s in series:
        for k, sh in enumerate(s.shifts):
            run = s.points.iloc[sh.start]
            found = bisect.get(s.case_id) if k == len(s.shifts) - 1 else None
            rows.append({"case": s.case_id, "environment": s.env,
                         "shift": f"{sh.kind} {change(sh.ratio)}", "95% interval": interval(sh),
                         "p": f"{sh.p:.2g}", "at run": f"{run['run']} ({_date(run['time'])})",
                         "commit": short_commit(run["commit"]), "before": duration(sh.before),
                         "after": duration(sh.after), "runs since": len(s.points) - sh.start,
                         "first bad commit (bisect)": bisected(found), "_series": id(s)})
    return pd.DataFrame(rows)


def bisected(found: Bisected | None) -> str:
    if found is None:
        return "-"
    return (f"{short_commit(found.first_bad)} {change(found.change)} "
            f"({change(found.low)} to {change(found.high)})")


def markdown(series: list[Series], opts: Options, plot_files: dict[int, tuple[str, bytes]],
             bisect: dict[str, Bisected]) -> str:
    envs = sorted({s.env for s in series})
    lines = [f"### Benchmark history: {'FAIL' if any(s.failing for s in series) else 'OK'}", "",
             f"{len(series)} series in {len(envs)} environment(s). {method(opts)}", ""]
    table = shift_table(series, bisect)
    if not table.empty:
        table["plot file"] = [plot_files[i][0] for i in table.pop("_series")]
        if not bisect:
            table = table.drop(columns="first bad commit (bisect)")
        lines.append(markdown_table(table.columns, table.itertuples(index=False)))
    else:
        lines.append("No level shift.")
    pending = [s.case_id for s in series if s.unconfirmed]
    if pending:
        lines += ["", f"Unconfirmed (only the newest run is out): {md(', '.join(pending))}"]
    return "\n".join(lines) + "\n"


def _case_rows(series: list[Series], bisect: dict[str, Bisected]) -> str:
    """The table of every series, with its sparkline: HTML, each value escaped here."""
    import matplotlib as mpl

    from ..report.plots import png

    order = sorted(series, key=lambda s: (not s.failing, not s.shifts, s.case_id, s.env))
    head = "".join(f"<th>{h}</th>" for h in ("case", "environment", "runs", "newest median",
                                              "shifts", "trend", "first bad commit (bisect)"))
    rows = []
    with mpl.rc_context({"text.parse_math": False}):
        for s in order:
            p = s.points
            shifts = "; ".join(f"{sh.kind} {change(sh.ratio)} at {p['run'].iloc[sh.start]}"
                               for sh in s.shifts) or "none"
            cells = [html.escape(s.case_id), html.escape(s.env), f"{len(p)}",
                     html.escape(duration(float(p["median"].iloc[-1]))), html.escape(shifts),
                     img(png(sparkline_figure(s)), f"trend of {s.case_id}", "spark"),
                     html.escape(bisected(bisect.get(s.case_id)))]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


def page(series: list[Series], opts: Options, plot_files: dict[int, tuple[str, bytes]],
         bisect: dict[str, Bisected]) -> str:
    """index.html: self-contained like the report's page (its CSS and layout, images
    inside, no scripts, no links out)."""
    failing = sum(len(s.failing) for s in series)
    times = pd.to_datetime(pd.concat([s.points["time"] for s in series]), utc=True,
                           errors="coerce").dropna()
    span = (f", runs from {_date(times.min())} to {_date(times.max())}"
            if not times.empty else "")
    intro = [(f"FAIL: {failing} slowdown shift(s) within the last {opts.window} runs of "
              f"their series." if failing else "OK: no recent slowdown shift."),
             f"{len(series)} series in {len({s.env for s in series})} environment(s){span}.",
             method(opts)]
    table = shift_table(series, bisect)
    pending = pd.DataFrame([{"case": s.case_id, "environment": s.env,
                             "newest run": s.points["run"].iloc[-1],
                             "newest median": duration(float(s.points["median"].iloc[-1]))}
                            for s in series if s.unconfirmed])
    sections = [
        Section("shifts", "Shifts", "Each change point: where the level moved, by how much "
                "(after / before, with its 95% interval), the t-test's p-value, and the first "
                "run and commit at the new level; a bisection's culprit where one was run.",
                table=table.drop(columns="_series") if not table.empty else None,
                missing="no series changed level beyond the threshold and its noise"),
        Section("unconfirmed", "Unconfirmed", "Series whose newest run alone is beyond the "
                "threshold and the noise: the start of a shift, or an outlier; the next "
                "runs tell which.", table=pending if not pending.empty else None,
                missing="no series has only its newest run out of its level"),
        Section("series", "Every series", "Run medians oldest to newest, on a scale of at "
                "least +-15% of the median; a red line is a slowdown, a green one a speed-up. "
                "Series with a recent slowdown first.",
                body=_case_rows(series, bisect)),
    ]
    for k, s in enumerate(s for s in series if id(s) in plot_files):
        sections.append(Section(f"trend-{k}", s.case_id, f"{s.env}. Run medians with their "
                                "IQR, each segment's level (dotted) and each shift.",
                                png=plot_files[id(s)][1]))
    return html_page("Benchmark history", intro, sections)


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
    return "\n".join(map(printable, lines))  # case ids, runs and envs are data


def _date(value) -> str:
    stamp = pd.Timestamp(value)
    return "no date" if pd.isna(stamp) else f"{stamp:%Y-%m-%d %H:%M}"


def write(series: list[Series], out: Path, opts: Options,
          bisect: dict[str, Bisected] | None = None) -> Path:
    """history.md, index.html and a trend plot per series with a shift into ``out``;
    returns the path of history.md."""
    bisect = bisect or {}
    plot_files = plots(series)
    for name, data in plot_files.values():
        atomic_write(out / name, lambda tmp, d=data: Path(tmp).write_bytes(d))
    atomic_write_text(out / "index.html", page(series, opts, plot_files, bisect))
    path = out / "history.md"
    atomic_write_text(path, markdown(series, opts, plot_files, bisect))
    return path
