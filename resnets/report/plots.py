"""The report's plots, as matplotlib Figures rendered to PNG bytes.

Built on ``matplotlib.figure.Figure`` directly, never pyplot: no global figure state, no
GUI backend, nothing to close, and the Agg renderer is used whatever ``MPLBACKEND`` says.
Each plot function takes the loaded frame and the baseline variant (a name, never None)
and returns a Figure, or raises ``Skip`` saying which data is missing, so the report can
say why it's absent. Text is drawn with mathtext off, so a model name from a result file
is plain text, and log axes get plain tick labels (10k, not 10^4) to match.
"""
from __future__ import annotations

import io
import warnings

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .frame import convergence, model_order, sort_rows, speed, variant_order, varying_label
from .tables import CONVERGENCE_GROUP, MIB, speedup_matrix

STYLE = {"text.parse_math": False, "font.size": 10, "axes.grid": True, "grid.alpha": 0.3,
         "axes.axisbelow": True, "legend.fontsize": 8, "legend.framealpha": 0.9}
# Above this many cases the step-time plot shows only the baseline variant's.
MAX_BOXES = 48


class Skip(Exception):
    """The plot's data is absent; the message says what is missing."""


def png(fig: Figure) -> bytes:
    """PNG bytes, without matplotlib's 'Software' metadata (it holds a URL)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _si(value: float) -> str:
    """10000 -> '10k': tick labels a reader takes in at a glance (and no mathtext)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:g}"


def _log(ax, axis: str = "y", base: int = 10) -> None:
    """Log scale with plain tick labels. Minor ticks are labelled on a short axis, so it
    still shows numbers: all of them within a decade, 2x and 5x within two."""
    getattr(ax, f"set_{axis}scale")("log", base=base)
    which = getattr(ax, f"{axis}axis")

    def minor(value, _pos):
        lo, hi = sorted(which.get_view_interval())
        mantissa = round(value / 10 ** np.floor(np.log10(value)))
        return _si(value) if hi < 10 * lo or (hi < 100 * lo and mantissa in (2, 5)) else ""

    if base == 10:
        which.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
        which.set_minor_formatter(FuncFormatter(minor))
    else:
        which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _panels(df, keys=("device", "mode")):
    """(title, rows) per combination of ``keys``, in sorted order."""
    return [(" ".join(map(str, k)), p) for k, p in df.groupby(list(keys), sort=True)]


def _colors(labels) -> dict:
    cmap = mpl.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _speed_with(df, subset, what: str):
    ok = speed(df).dropna(subset=subset)
    if ok.empty:
        raise Skip(f"no successful speed case has {what}")
    return ok


def throughput(df, baseline):
    ok = _speed_with(df, ["samples_per_s"], "a throughput")
    variants = variant_order(ok["variant"], baseline)
    colors = _colors(variants)
    panels = _panels(ok)
    n_models = ok["model"].nunique()
    fig = Figure(figsize=(max(7, 0.3 * n_models * len(variants) + 3), 3.4 * len(panels)),
                 layout="constrained")
    for ax, (title, p) in zip(fig.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        models = model_order(p)
        best = p.pivot_table(index="model", columns="variant", values="samples_per_s",
                             aggfunc="max").reindex(models)
        width = 0.8 / len(variants)
        x = np.arange(len(models))
        for i, v in enumerate(variants):
            if v in best:
                ax.bar(x + (i - (len(variants) - 1) / 2) * width, best[v], width, label=v,
                       color=colors[v])
        _log(ax)
        ax.set_xticks(x, models)
        ax.set_ylabel("throughput (samples/s, log)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="variant")
    return fig


def speedup_heatmap(df, baseline):
    if baseline not in set(speed(df)["variant"]):
        raise Skip(f"no {baseline} case to divide by")
    m = speedup_matrix(df, baseline)
    keys = ["model", "mode", "device", "batch", "input"]
    m = m.dropna(subset=[c for c in m.columns if c not in keys], how="all")
    values = m.drop(columns=keys).to_numpy(dtype=float)
    logs = np.log2(values)
    lim = max(0.5, float(np.nanmax(np.abs(logs))))
    fig = Figure(figsize=(1.4 * values.shape[1] + 3.5, 0.45 * values.shape[0] + 2),
                 layout="constrained")
    ax = fig.subplots()
    ax.grid(False)
    cmap = mpl.colormaps["RdBu"].with_extremes(bad="0.9")
    im = ax.imshow(np.ma.masked_invalid(logs), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}x", ha="center", va="center", fontsize=8,
                    color="white" if abs(logs[r, c]) > 0.6 * lim else "black")
    columns = [c for c in m.columns if c not in keys]
    ax.set_xticks(range(len(columns)), columns, rotation=25, ha="right")
    ax.set_yticks(range(len(m)), varying_label(m.rename(columns={"batch": "batch_size"}),
                                               ["model", "mode", "device", "batch_size", "input"]))
    ax.set_xlabel("variant")
    ax.set_title(f"throughput / throughput at {baseline}")
    fig.colorbar(im, ax=ax, label="speed-up (log scale; 1x = baseline)",
                 format=FuncFormatter(lambda x, _: f"{2 ** x:.3g}x"))
    return fig


def step_times(df, baseline):
    ok = speed(df)
    ok = sort_rows(ok[ok["samples"].map(len) > 0], baseline)
    if ok.empty:
        raise Skip("no successful speed case has raw per-step samples")
    title = "per-step time distributions"
    if len(ok) > MAX_BOXES:
        ok = ok[ok["variant"] == baseline]
        title += f" ({baseline} only: too many cases for one plot)"
        if ok.empty:
            raise Skip(f"more than {MAX_BOXES} cases and none at the baseline variant")
    panels = _panels(ok)
    sizes = [len(p) for _, p in panels]
    fig = Figure(figsize=(9, 0.3 * sum(sizes) + 1.2 * len(panels) + 0.5), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=sizes)[:, 0]
    for ax, (name, p) in zip(axes, panels):
        p = p.iloc[::-1]  # first case at the top
        ax.boxplot([1e3 * np.asarray(s, dtype=float) for s in p["samples"]],
                   orientation="horizontal", widths=0.6,
                   tick_labels=varying_label(p, ["model", "variant", "batch_size"]),
                   flierprops={"markersize": 2, "alpha": 0.5})
        _log(ax, "x")
        ax.set_xlabel("time per step (ms, log)")
        ax.set_title(name)
    fig.suptitle(title)
    return fig


def memory_vs_batch(df, baseline):
    ok = _speed_with(df, ["peak_memory_bytes"], "a peak memory")
    ok = ok[ok["variant"] == baseline]
    if ok.empty:
        raise Skip(f"no peak memory measured at the {baseline} variant")
    panels = _panels(ok)
    colors = _colors(model_order(ok))
    fig = Figure(figsize=(4.5 * len(panels) + 2, 4), layout="constrained")
    for ax, (title, p) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for model in model_order(p):
            m = p[p["model"] == model].sort_values("batch_size")
            ax.plot(m["batch_size"], m["peak_memory_bytes"] / MIB, marker="o", label=model,
                    color=colors[model])
        _log(ax, "x", base=2)
        _log(ax)
        ax.set_xlabel("batch size (samples, log2)")
        ax.set_ylabel("peak memory (MiB, log)")
        ax.set_title(f"{title}, {baseline}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="model")
    return fig


def throughput_vs_flops(df, baseline):
    ok = _speed_with(df, ["samples_per_s", "flops_step"], "both a throughput and a FLOP count")
    work = ok["flops_step"] / ok["batch_size"]
    util = 100 * ok["utilization"].astype(float)
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.6")
    vmax = max(1.0, float(np.nanmax(util))) if util.notna().any() else 100.0
    for mode, marker in zip(sorted(ok["mode"].unique()), "o^sD"):
        sel = ok["mode"] == mode
        sc = ax.scatter(work[sel], ok.loc[sel, "samples_per_s"], c=util[sel], cmap=cmap,
                        vmin=0, vmax=vmax, marker=marker, s=40, edgecolors="k", linewidths=0.4,
                        plotnonfinite=True, label=mode)
    fig.colorbar(sc, ax=ax, label="utilization (% of attainable peak; grey: unknown)")
    xs = np.geomspace(work.min() / 2, work.max() * 2, 50)
    for device, peak in ok.groupby("device")["attainable_flops_per_s"].max().dropna().items():
        for frac, style in ((1, "-"), (0.1, "--"), (0.01, ":")):
            ax.plot(xs, frac * peak / xs, color="0.4", linestyle=style, linewidth=0.8,
                    label=f"{frac:.0%} of {device} attainable ({peak / 1e9:,.0f} GFLOP/s)")
    for model, p in ok.groupby("model"):
        top = p["samples_per_s"].idxmax()
        ax.annotate(model, (work[top], ok.loc[top, "samples_per_s"]), fontsize=8,
                    xytext=(5, 3), textcoords="offset points")
    _log(ax, "x")
    _log(ax)
    ax.set_ylim(ok["samples_per_s"].min() / 3, ok["samples_per_s"].max() * 3)
    ax.set_xlabel("work per sample (FLOPs per step / batch size, log)")
    ax.set_ylabel("throughput (samples/s, log)")
    ax.set_title("throughput vs work; diagonals: constant FLOP/s")
    ax.legend(title="mode; constant FLOP/s", loc="lower left")
    return fig


def _train_error(curve: dict):
    return 1 - np.asarray(curve["train_acc"], dtype=float) if "train_acc" in curve else None


def _seed_band(curves, x_key, y_of):
    """Median and min-max over seeds on the union of their x values (a seed counts only
    within the x range it covers)."""
    pairs = [(np.asarray(c[x_key], dtype=float), np.asarray(y_of(c), dtype=float))
             for c in curves if x_key in c and y_of(c) is not None]
    if not pairs:
        return None
    grid = np.unique(np.concatenate([x for x, _ in pairs]))
    at = np.vstack([np.interp(grid, x, y, left=np.nan, right=np.nan) for x, y in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a grid point where every seed is NaN
        return grid, np.nanmedian(at, 0), np.nanmin(at, 0), np.nanmax(at, 0), len(pairs)


def _test_acc(curve: dict):
    return curve.get("test_acc")


def _curve_figure(df, columns, title: str, targets: bool = False) -> Figure:
    """A row of panels per dataset and input size (an experiment), one column per (x key,
    y function, x label, y label): the median over seeds of each configuration with a
    min-max band; plain nets dashed; dotted lines at the target accuracies if ``targets``."""
    conv = convergence(df)
    conv = conv[conv["curve"].map(lambda c: isinstance(c, dict) and bool(c))]
    if conv.empty:
        raise Skip("no convergence result has a curve")
    panels = _panels(conv, ("dataset", "input_shape"))
    fig = Figure(figsize=(6 * len(columns) + 2, 4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), len(columns), squeeze=False)
    drawn = False
    for row, (panel, d) in zip(axes, panels):
        d = sort_rows(d).assign(label=varying_label(d, [g for g in CONVERGENCE_GROUP
                                                        if g not in ("dataset", "input_shape")]))
        colors = _colors(list(dict.fromkeys(d["label"])))
        for ax, (x_key, y_of, xlabel, ylabel) in zip(row, columns):
            for label, g in d.groupby("label", sort=False):
                band = _seed_band(list(g["curve"]), x_key, y_of)
                if band is None:
                    continue
                x, med, lo, hi, n = band
                style = "--" if str(g["model"].iloc[0]).startswith("plain") else "-"
                ax.plot(x, med, style, marker="o", markersize=3, color=colors[label],
                        label=f"{label} ({n} seeds)")
                ax.fill_between(x, lo, hi, color=colors[label], alpha=0.2, linewidth=0)
                drawn = True
            for target in d["target_acc"].dropna().unique() if targets else ():
                ax.axhline(target, color="0.3", linestyle=":", linewidth=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(panel)
        row[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    if not drawn:
        raise Skip("the convergence curves have no " + " or ".join(c[0] for c in columns) +
                   " series with its y values")
    fig.suptitle(title)
    return fig


def convergence_accuracy(df, baseline):
    return _curve_figure(df, [("iters", _test_acc, "iterations (optimizer steps)", "test accuracy"),
                              ("train_s", _test_acc, "training time (s)", "test accuracy")],
                         "test accuracy: median over seeds, band = min-max; dotted: target",
                         targets=True)


def train_error(df, baseline):
    return _curve_figure(df, [("iters", _train_error, "iterations (optimizer steps)",
                               "training error (1 - train accuracy)")],
                         "training error: median over seeds, band = min-max; dashed: plain "
                         "(no shortcuts)")


def trend(df, baseline):
    ok = speed(df, latest=False).dropna(subset=["samples_per_s"])
    runs = ok.sort_values("run_index").drop_duplicates("run")["run"].tolist()
    if len(runs) < 2:
        raise Skip("one run loaded; a trend needs several")
    ok = ok[ok["variant"] == baseline]
    if ok.empty:
        raise Skip(f"no case at the {baseline} variant")
    ok = ok.assign(label=varying_label(ok, ["model", "batch_size", "input_shape"]))
    colors = _colors(sorted(ok["label"].unique()))
    panels = _panels(ok)
    fig = Figure(figsize=(max(7, 0.6 * len(runs) + 4) * len(panels), 4.5), layout="constrained")
    for ax, (title, p) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for label, g in p.groupby("label"):
            g = g.sort_values("run_index")
            ax.plot(g["run_index"], g["samples_per_s"], marker="o", label=label,
                    color=colors[label])
        ax.set_xticks(range(len(runs)), runs, rotation=30, ha="right", fontsize=7)
        _log(ax)
        ax.set_xlabel("run (oldest first)")
        ax.set_ylabel("throughput (samples/s, log)")
        ax.set_title(f"{title}, {baseline}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


# (file stem, title, caption, function) in report order.
PLOTS = [
    ("throughput", "Throughput by model and variant",
     "Best samples per second over batch sizes, per device and mode; log scale.", throughput),
    ("speedup_heatmap", "Speed-up heatmap",
     "Each variant's throughput divided by the baseline variant's, same model, mode, "
     "device, batch and input; blue is faster, red slower.", speedup_heatmap),
    ("step_times", "Step-time distributions",
     "Raw per-step times: box = quartiles, line = median, whiskers = 1.5 IQR, dots = "
     "outliers. Each step processes one batch.", step_times),
    ("memory_vs_batch", "Peak memory vs batch size",
     "Peak memory of one step at the baseline variant, per device and mode.", memory_vs_batch),
    ("throughput_vs_flops", "Throughput vs FLOPs",
     "Work per sample against samples per second, coloured by utilization of the "
     "attainable peak; along a diagonal the FLOP/s are constant.", throughput_vs_flops),
    ("convergence_accuracy", "Convergence: test accuracy",
     "Test accuracy against optimizer steps and against training seconds.", convergence_accuracy),
    ("train_error", "Convergence: training error (degradation)",
     "Training error against optimizer steps: a deeper plain net training worse than a "
     "shallower one is the degradation problem residual shortcuts fix.", train_error),
    ("trend", "Throughput over runs",
     "Samples per second of each baseline-variant case in every loaded run.", trend),
]


def render(fn, df, baseline) -> bytes:
    """One plot's PNG bytes (``Skip`` propagates), with the report's style."""
    with mpl.rc_context(STYLE):
        return png(fn(df, baseline))
