"""A profile as files (layers.csv, ops.csv, profile.md, layers.png) and a terminal summary."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..store import atomic_write, atomic_write_text
from ..text import count, csv_cell, markdown_table, nbytes, si, text_table

MEMORY_TIMELINE = "memory-timeline.html"


def _ms(v: float) -> str:
    return f"{v:.3f}"


def _share(v: float) -> str:
    return f"{v:.1%}"


# (key, header, formatter); str for text. Columns that are None in every row are dropped.
LAYER_COLUMNS = [
    ("module", "layer", str), ("type", "type", str), ("depth", "depth", count),
    ("calls", "calls", count), ("time_ms", "time ms", _ms), ("fwd_ms", "fwd ms", _ms),
    ("bwd_ms", "bwd ms", _ms), ("share", "share", _share),
    ("flops_fwd", "fwd FLOP", lambda v: si(v, "FLOP")),
    ("flops_per_s", "fwd FLOP/s", lambda v: si(v, "FLOP/s")),
    ("params", "params", count), ("output_shape", "output", str),
    ("activation_bytes", "new activations", nbytes),
]
OP_COLUMNS = [
    ("op", "op", str), ("calls", "calls", count), ("self_cpu_ms", "self CPU ms", _ms),
    ("cpu_total_ms", "CPU total ms", _ms), ("self_cuda_ms", "self CUDA ms", _ms),
    ("cuda_total_ms", "CUDA total ms", _ms), ("share", "share", _share),
]
TOP_COLUMNS = ["module", "type", "time_ms", "fwd_ms", "bwd_ms", "share", "flops_per_s",
               "output_shape"]


def _layer_columns(result) -> list[tuple]:
    """In inference a layer's time is all forward: one time column says it."""
    skip = {"fwd_ms"} if result.case.mode == "infer" else set()
    return [c for c in LAYER_COLUMNS if c[0] not in skip]


def _cells(rows: list[dict], columns: list[tuple]) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, formatted cells and which columns are numeric, for the columns in use."""
    used = [c for c in columns if any(r[c[0]] is not None for r in rows)]
    body = [["-" if r[key] is None else fmt(r[key]) for key, _, fmt in used] for r in rows]
    return [header for _, header, _ in used], body, [fmt is not str for _, _, fmt in used]


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def headline(result) -> str:
    s, case = result.summary, result.case
    parts = [f"profiled steps: {s['profiled_steps']}", f"step {s['step_wall_ms']:.2f} ms wall"]
    if case.device == "cuda":
        parts.append(f"{s['step_ms']:.2f} ms of CUDA kernels")
    if s["forward_ms"] is not None:
        parts.append(f"forward {s['forward_ms']:.2f} ms")
    if s["backward_ms"] is not None:
        parts.append(f"backward {s['backward_ms']:.2f} ms "
                     f"({s['backward_in_layers_ms'] or 0:.2f} in layers)")
    parts.append(f"{si(s['flops_step'], 'FLOP')}/step at "
                 f"{si(s['achieved_flops_per_s'], 'FLOP/s')}")
    return f"{case.id}: " + ", ".join(parts)


def _markdown_report(result) -> str:
    from ..text import md

    return "\n".join([
        f"# Profile of {md(result.case.id)}", "", md(headline(result)), "",
        f"Method: {md(result.method)}.", "",
        "## Layers", "",
        "Model order; a row's time, FLOPs and parameters include its children (depth "
        "gives the tree). New activations: bytes of the outputs a module creates per step "
        "(in-place outputs count 0).", "",
        markdown_table(*_cells(result.layers, _layer_columns(result))), "",
        "## Operators", "",
        "By self time on the case's device; share is of the step.", "",
        markdown_table(*_cells(result.ops, OP_COLUMNS)), "",
    ])


def _plot_png(result) -> bytes:
    """Time (forward, backward stacked on it) and forward FLOPs of the leaf layers, in
    model order, one above the other so a slow layer with few FLOPs stands out."""
    from matplotlib.figure import Figure

    leaves = [r for r in result.layers if r["leaf"]]
    x = range(len(leaves))
    fig = Figure(figsize=(max(8.0, 0.13 * len(leaves)), 7), layout="constrained")
    time_ax, flop_ax = fig.subplots(2, 1, sharex=True)
    fwd = [r["fwd_ms"] or 0 for r in leaves]
    time_ax.bar(x, fwd, label="forward")
    if result.case.mode == "train":
        time_ax.bar(x, [r["bwd_ms"] or 0 for r in leaves], bottom=fwd, label="backward")
    time_ax.legend(loc="upper right")
    time_ax.set_ylabel(f"ms per step ({result.case.device} clock)")
    flop_ax.bar(x, [r["flops_fwd"] / 1e9 for r in leaves])
    flop_ax.set_ylabel("forward GFLOP per step")
    fig.suptitle(f"{result.case.id}: time and FLOPs per leaf layer", fontsize=10)
    if result.summary["layer_times"] is None:
        time_ax.set_title("no layer times: torch.compile fuses across layers", fontsize=9)
    flop_ax.set_xticks(list(x), [r["module"] for r in leaves], rotation=90, fontsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()


def write_profile(result, out: Path) -> list[Path]:
    """Write the tables, the Markdown report and the plot atomically; return their paths."""
    texts = {"layers.csv": _csv(result.layers), "ops.csv": _csv(result.ops),
             "profile.md": _markdown_report(result)}
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    png = _plot_png(result)
    atomic_write(out / "layers.png", lambda tmp: Path(tmp).write_bytes(png))
    written = [out / name for name in [*texts, "layers.png"]]
    if result.case.device == "cuda":
        written.append(out / MEMORY_TIMELINE)
    return written


def terminal_summary(result, top: int) -> str:
    leaves = [r for r in result.layers if r["leaf"]]
    columns = [c for key in TOP_COLUMNS for c in _layer_columns(result) if c[0] == key]
    if result.summary["layer_times"] is None:
        table = "no layer times: torch.compile fuses across layers (see ops.csv)"
    else:
        slowest = sorted(leaves, key=lambda r: r["time_ms"], reverse=True)[:top]
        table = (f"slowest {len(slowest)} of {len(leaves)} leaf layers:\n"
                 + text_table(*_cells(slowest, columns)))
    return f"{headline(result)}\n\n{table}\n\nmethod: {result.method}"
