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

from .advice import speedups
from .frame import (
    baseline_for,
    convergence,
    model_order,
    sort_rows,
    speed,
    variant_order,
    varying_label,
)
from .scaling import efficiency
from .tables import CONVERGENCE_GROUP, MIB

STYLE = {"text.parse_math": False, "font.size": 10, "axes.grid": True, "grid.alpha": 0.3,
         "axes.axisbelow": True, "legend.fontsize": 8, "legend.framealpha": 0.9}
DPI = 200  # twice the screen's: cell labels stay sharp when a reader zooms
# Okabe-Ito colours (safe for every common colour-vision deficiency): colour = precision,
# marker = memory format; a hollow marker is a torch.compile'd case.
PRECISION_COLORS = {"fp32": "#0072B2", "default": "#56B4E9", "tf32": "#009E73",
                    "bf16": "#E69F00", "fp16": "#D55E00", "int8": "#CC79A7"}
FORMAT_MARKERS = {"contiguous": "o", "channels_last": "s"}
# Above this many cases the step-time plot shows only the baseline variant's.
MAX_BOXES = 48


class Skip(Exception):
    """The plot's data is absent; the message says what is missing."""


def png(fig: Figure) -> bytes:
    """PNG bytes, without matplotlib's 'Software' metadata (it holds a URL)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
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


# Tableau's colour-blind palette, for lines that are not variants (models, runs).
LINE_COLORS = ("#006BA4", "#FF800E", "#595959", "#5F9ED1", "#C85200", "#898989", "#A2C8EC",
               "#FFBC79", "#ABABAB", "#CFCFCF")


def _colors(labels) -> dict:
    return {label: LINE_COLORS[i % len(LINE_COLORS)] for i, label in enumerate(labels)}


def _speed_with(df, subset, what: str):
    ok = speed(df).dropna(subset=subset)
    if ok.empty:
        raise Skip(f"no successful speed case has {what}")
    return ok


def _variant_style(variant: str) -> dict:
    fmt, precision, compiled = variant.split("-", 2)
    color = PRECISION_COLORS.get(precision, "0.4")
    return {"color": color, "marker": FORMAT_MARKERS.get(fmt, "D"),
            "markerfacecolor": "white" if compiled != "eager" else color}


def _style_legend(ax, variants) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", markersize=6, label=v, **_variant_style(v))
               for v in variants]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1),
              title="variant (colour: precision,\nmarker: format, hollow: compile)")


def throughput(df, baseline):
    """Best throughput of each variant per model (and input), with its 95% interval."""
    ok = _speed_with(df, ["samples_per_s"], "a throughput")
    ok = ok.assign(label=ok["model"] + " " + ok["input_shape"].astype(str))
    best = ok.loc[ok.groupby(["label", "device", "mode", "variant"])["samples_per_s"].idxmax()]
    variants = variant_order(best["variant"])
    panels = _panels(best)
    n_labels = best["label"].nunique()
    fig = Figure(figsize=(max(7, 0.55 * n_labels + 4), 3.6 * len(panels)), layout="constrained")
    for ax, (title, p) in zip(fig.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        labels = list(dict.fromkeys(sort_rows(p)["label"]))
        x = {lab: i for i, lab in enumerate(labels)}
        for k, v in enumerate(variants):
            rows = p[p["variant"] == v]
            if rows.empty:
                continue
            xs = [x[lab] + (k - (len(variants) - 1) / 2) * 0.7 / max(1, len(variants))
                  for lab in rows["label"]]
            y = rows["samples_per_s"].to_numpy()
            err = [y - rows["sps_low"].to_numpy(), rows["sps_high"].to_numpy() - y]
            ax.errorbar(xs, y, yerr=err, linestyle="", capsize=2, elinewidth=0.8,
                        markersize=5, **_variant_style(v))
        _log(ax)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("samples/s (log; 95% interval)")
        ax.set_title(title)
        _style_legend(ax, variants)
    return fig


def forest(df, baseline):
    """Per group (model, mode, device, batch, input), each variant's speed-up over the
    baseline with its 95% interval on a log axis, the baseline at 1; a variant within
    noise (interval holds 1) is drawn hollow, a supported one filled."""
    long = speedups(df, baseline)
    long = long[long["variant"] != long["baseline"]] if not long.empty else long
    if long.empty:
        raise Skip("no variant with a baseline to divide by (name one with --baseline)")
    keys = ["model", "mode", "device", "batch_size", "input_shape"]
    long = sort_rows(long).assign(row=varying_label(long, keys))
    groups = list(dict.fromkeys(long["row"]))
    variants = variant_order(long["variant"])
    step = 1.0 / (len(variants) + 1)
    fig = Figure(figsize=(9, 0.22 * len(long) + 0.35 * len(groups) + 1.6), layout="constrained")
    ax = fig.subplots()
    ticks = []
    for g, name in enumerate(groups):
        rows = long[long["row"] == name]
        for r in rows.itertuples():
            y = g + step * (variants.index(r.variant) + 1) - 0.5
            style = _forest_style(r.variant)
            ax.plot([r.speedup_low, r.speedup_high], [y, y], color=style["color"], lw=1.6)
            ax.plot([r.speedup], [y], linestyle="", markersize=6, markeredgecolor=style["color"],
                    markerfacecolor="white" if r.within_noise else style["color"], **style)
        ticks.append(g)
        if g:
            ax.axhline(g - 0.5, color="0.85", lw=0.8)
    ax.axvline(1.0, color="0.3", lw=1, ls="--")
    ax.set_yticks(ticks, groups, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    _log(ax, "x", base=2)
    ax.set_xlabel(f"speed-up over {' or '.join(sorted(set(long['baseline'])))} "
                  "(95% interval; log scale)")
    ax.grid(axis="y", visible=False)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], linestyle="", markersize=6, label=v, **_forest_style(v))
                       for v in variants], loc="upper left", bbox_to_anchor=(1.01, 1),
              title="variant (colour: precision,\nmarker: format; diamond: compiled)")
    ax.set_title("hollow: within noise (the interval holds 1); filled: faster or slower "
                 "beyond the noise", fontsize=9)
    return fig


def _forest_style(variant: str) -> dict:
    """Colour by precision, marker by format, a diamond when compiled (fill is taken:
    hollow means within noise there)."""
    style = _variant_style(variant)
    return {"color": style["color"], "marker": "D" if style["markerfacecolor"] == "white"
            else style["marker"]}


def speedup_heatmap(df, baseline):
    """Speed-ups over each row's baseline; a cell whose interval holds 1 is marked ≈ and
    drawn pale (within noise), a grey cell was not measured."""
    long = speedups(df, baseline)
    if long.empty:
        raise Skip("no baseline case to divide by (name one with --baseline)")
    keys = ["model", "mode", "device", "batch_size", "input_shape"]
    long = long.assign(row=varying_label(long, keys))
    rows = list(dict.fromkeys(long["row"]))
    columns = variant_order(long["variant"])
    values = np.full((len(rows), len(columns)), np.nan)
    noise = np.zeros_like(values, dtype=bool)
    for r in long.itertuples():
        values[rows.index(r.row), columns.index(r.variant)] = r.speedup
        noise[rows.index(r.row), columns.index(r.variant)] = r.within_noise
    logs = np.log2(values)
    lim = max(0.5, float(np.nanmax(np.abs(logs))))
    fig = Figure(figsize=(1.25 * len(columns) + 4, 0.42 * len(rows) + 2.2),
                 layout="constrained")
    ax = fig.subplots()
    ax.grid(False)
    cmap = mpl.colormaps["PuOr"].with_extremes(bad="0.85")  # colour-blind-safe diverging
    shown = np.ma.masked_invalid(np.where(noise, 0.25 * logs, logs))
    im = ax.imshow(shown, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            strong = abs(shown[r, c]) > 0.6 * lim
            ax.text(c, r, f"{'≈' if noise[r, c] else ''}{v:.2f}×", ha="center", va="center",
                    fontsize=8, color="white" if strong else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=25, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("variant")
    bases = sorted(set(long["baseline"]))
    devices = sorted(set(long["device"]))
    ax.set_title(f"throughput / throughput at {' or '.join(bases)} ({', '.join(devices)});\n"
                 "≈ pale: within noise (95% interval holds 1); grey: not measured", fontsize=9)
    fig.colorbar(im, ax=ax, label="speed-up (log scale; 1x = baseline)",
                 format=FuncFormatter(lambda x, _: f"{2 ** x:.3g}x"))
    return fig


def step_times(df, baseline):
    ok = speed(df)
    ok = sort_rows(ok[ok["samples"].map(len) > 0])
    if ok.empty:
        raise Skip("no successful speed case has raw per-step samples")
    title = "per-step time distributions"
    if len(ok) > MAX_BOXES:
        ok = ok[[v == baseline_for(d, ok["variant"], baseline)
                 for v, d in zip(ok["variant"], ok["device"])]]
        title += " (baseline variants only: too many cases for one plot)"
        if ok.empty:
            raise Skip(f"more than {MAX_BOXES} cases and none at a baseline variant")
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
    ok = ok[[v == baseline_for(d, ok["variant"], baseline)
             for v, d in zip(ok["variant"], ok["device"])]]
    sizes = ok.groupby(["model", "device", "mode", "input_shape"])["batch_size"].nunique()
    keep = sizes[sizes >= 2].reset_index()[["model", "device", "mode", "input_shape"]]
    ok = ok.merge(keep, on=list(keep.columns))
    if ok.empty:
        raise Skip("every model was measured at one batch size: its peak memory is in the "
                   "models table (a line needs two batch sizes)")
    baseline = ", ".join(sorted(set(ok["variant"])))
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
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    variants = variant_order(ok["variant"])
    for v in variants:
        sel = ok["variant"] == v
        ax.plot(work[sel], ok.loc[sel, "samples_per_s"], linestyle="", markersize=6,
                markeredgecolor="k", markeredgewidth=0.4, **_variant_style(v))
    xs = np.geomspace(work.min() / 2, work.max() * 2, 50)
    for (device, precision), peak in ok.groupby(["device", "precision"])[
            "attainable_flops_per_s"].max().dropna().items():
        if precision not in ("fp32", "bf16"):
            continue
        ax.plot(xs, peak / xs, color=PRECISION_COLORS[precision], linestyle="--", linewidth=0.8)
        ax.annotate(f"{device} {precision} attainable {peak / 1e9:,.0f} GFLOP/s",
                    (xs[5], peak / xs[5]), fontsize=7, color=PRECISION_COLORS[precision],
                    rotation=-30, rotation_mode="anchor")
    _label_best(ax, ok, work)
    _log(ax, "x")
    _log(ax)
    ax.set_ylim(ok["samples_per_s"].min() / 3, ok["samples_per_s"].max() * 3)
    ax.set_xlabel("work per sample (FLOPs per step / batch size, log)")
    ax.set_ylabel("throughput (samples/s, log)")
    ax.set_title("throughput vs work; dashed: each device's attainable rate (constant FLOP/s)")
    _style_legend(ax, variants)
    return fig


def _label_best(ax, ok, work) -> None:
    """Each model's name at its fastest point, skipping a label that would overprint
    one already placed (the legend and the tables name every point)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    placed = []
    for model, p in ok.groupby("model"):
        top = p["samples_per_s"].idxmax()
        text = ax.annotate(model, (work[top], ok.loc[top, "samples_per_s"]), fontsize=7,
                           xytext=(5, 3), textcoords="offset points")
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in placed):
            text.remove()
        else:
            placed.append(box)


def _running_error(curve: dict):
    """1 - the running accuracy over each interval's training batches, in train mode."""
    return 1 - np.asarray(curve["train_acc"], dtype=float) if curve.get("train_acc") else None


def _eval_error(curve: dict):
    """1 - the eval-mode accuracy on a fixed training subset, at each evaluation."""
    values = curve.get("train_eval_acc")
    return 1 - np.asarray(values, dtype=float) if values else None


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
    columns = [("iters", _running_error, "iterations (optimizer steps)",
                "running training error (train mode)")]
    if any(isinstance(c, dict) and c.get("train_eval_acc") for c in convergence(df)["curve"]):
        columns.append(("iters", _eval_error, "iterations (optimizer steps)",
                        "training error (eval mode, fixed training subset)"))
    return _curve_figure(df, columns, "training error: median over seeds, band = min-max; "
                         "dashed: plain (no shortcuts)")


def trend(df, baseline):
    ok = speed(df, latest=False).dropna(subset=["samples_per_s"])
    runs = ok.sort_values("run_index").drop_duplicates("run")["run"].tolist()
    if len(runs) < 2:
        raise Skip("one run loaded; a trend needs several")
    ok = ok[[v == baseline_for(d, ok["variant"], baseline)
             for v, d in zip(ok["variant"], ok["device"])]]
    if ok.empty:
        raise Skip("no case at a baseline variant")
    baseline = ", ".join(sorted(set(ok["variant"])))
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


def scaling(df, baseline):
    """Global throughput against world size, one line per model, strategy and variant,
    each beside its ideal (world size x the world-size-1 per-device throughput)."""
    eff = efficiency(df)
    if eff.empty:
        raise Skip("no data-parallel case (resnets run --world-sizes 1,2 --strategies ddp)")
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    groups = list(eff.groupby(["model", "mode", "device", "strategy", "variant", "batch_size"],
                              sort=True, dropna=False))
    colors = _colors([k for k, _ in groups])
    for key, g in groups:
        g = g.sort_values("world_size")
        label = f"{key[0]} {key[1]} {key[2]} {key[3]} bs{key[5]}/device"
        if len({k[4] for k, _ in groups}) > 1:
            label += f" {key[4]}"
        ax.errorbar(g["world_size"], g["samples_per_s"],
                    yerr=[g["samples_per_s"] - g["sps_low"], g["sps_high"] - g["samples_per_s"]],
                    marker="o", color=colors[key], label=label, capsize=3)
        one = g[g["efficiency"].notna()]
        if not one.empty:
            base = (one["per_device"] / one["efficiency"]).iloc[0]
            ax.plot(g["world_size"], g["world_size"] * base, linestyle="--",
                    color=colors[key], alpha=0.6)
    _log(ax, "x", base=2)
    _log(ax, "y")
    ax.set_xticks(sorted(set(eff["world_size"])))
    ax.set_xlabel("world size (processes, one per device)")
    ax.set_ylabel("samples/s, all devices")
    ax.plot([], [], linestyle="--", color="0.4", label="ideal (linear from world size 1)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


# (file stem, title, caption, function) in report order.
PLOTS = [
    ("forest", "Speed-ups at a glance",
     "Each variant's speed-up over its baseline, per model, mode, device, batch and input, "
     "with its 95% interval (log scale; dashed: the baseline, 1x). Hollow: within noise; "
     "the table below says which to use.", forest),
    ("throughput", "Throughput by model and variant",
     "Best samples per second over batch sizes of each variant, per model and input size, "
     "device and mode, with 95% intervals; log scale.", throughput),
    ("speedup_heatmap", "Speed-up heatmap",
     "Each variant's throughput divided by its baseline's (same model, mode, device, batch "
     "and input): purple is faster, orange slower; a pale cell marked ≈ is within noise, "
     "a grey one was not measured.", speedup_heatmap),
    ("step_times", "Step-time distributions",
     "Raw per-step times: box = quartiles, line = median, whiskers = 1.5 IQR, dots = "
     "outliers. Each step processes one batch.", step_times),
    ("memory_vs_batch", "Peak memory vs batch size",
     "Peak memory of one step at the baseline variant, per device and mode, for models "
     "measured at two or more batch sizes.", memory_vs_batch),
    ("throughput_vs_flops", "Throughput vs FLOPs",
     "Work per sample against samples per second; colour is precision, marker memory "
     "format (hollow: compiled). Along a dashed diagonal the FLOP/s are constant, at "
     "the attainable rate measured on the machine.", throughput_vs_flops),
    ("convergence_accuracy", "Convergence: test accuracy",
     "Test accuracy against optimizer steps and against training seconds.", convergence_accuracy),
    ("train_error", "Convergence: training error (degradation)",
     "Training error against optimizer steps, two ways: the running error over each "
     "interval's training batches in train mode (BatchNorm on batch statistics, weights "
     "moving), and, where recorded, the error of the model in eval mode on a fixed "
     "1,000-image training subset at each evaluation (closer to He et al.'s Fig. 6). A "
     "deeper plain net training worse than a shallower one is the degradation problem "
     "residual shortcuts fix.", train_error),
    ("scaling", "Data-parallel scaling: throughput against world size",
     "Samples per second over all devices against world size (log-log), with 95% "
     "intervals; dashed: the ideal, world size times the per-device throughput at world "
     "size 1. The gap is communication that backward does not hide, and stragglers.",
     scaling),
    ("trend", "Throughput over runs",
     "Samples per second of each baseline-variant case in every loaded run.", trend),
]


def render(fn, df, baseline) -> bytes:
    """One plot's PNG bytes (``Skip`` propagates), with the report's style."""
    with mpl.rc_context(STYLE):
        return png(fn(df, baseline))
