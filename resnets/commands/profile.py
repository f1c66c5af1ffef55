"""Profile one case: where a step's time goes, per operator and per layer.

Warms the case up as a timed run would, profiles a few more steps with torch.profiler and
writes to -o DIR (default reports/profile-<case id>/): layers.csv and ops.csv, profile.md
(the method, a summary and both tables), layers.png (time and FLOPs per layer), on CUDA
memory-timeline.html, and with --trace a Chrome/Perfetto trace. Prints the slowest layers.
Times come from a profiled run and are inflated by it: use `resnets run` for speed.
"""
from __future__ import annotations

import argparse
import csv
import io
from dataclasses import fields
from pathlib import Path

from ..measure.case import CHOICES, Case

MEMORY_TIMELINE = "memory-timeline.html"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _input_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("x", ",").split(",")  # 3,64,64 or 3x64x64
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three integers), not {text!r}")
    return tuple(_positive_int(part) for part in parts)


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """The options that pick a case once its model is named (``case_from_args`` reads
    them); defaults are ``Case``'s own, so a command cannot drift from it."""
    defaults = {f.name: f.default for f in fields(Case)}
    group = p.add_argument_group("case")
    for name, choices in CHOICES.items():
        group.add_argument(f"--{name.replace('_', '-')}", choices=choices, default=defaults[name],
                           help="(default: %(default)s)")
    group.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                       metavar="N", help="(default: %(default)s)")
    group.add_argument("--input-shape", type=_input_shape, metavar="C,H,W",
                       help="(default: the model's own, see `resnets models`)")


def case_from_args(model: str, args: argparse.Namespace) -> Case:
    """The ``Case`` named by ``model`` and ``add_case_arguments``' options; imports torch."""
    from .. import models
    from ..errors import UserError

    try:
        spec = models.spec(model)
    except models.UnknownModelError as exc:
        raise UserError(str(exc)) from None
    return Case(model, **{name: getattr(args, name) for name in CHOICES},
                batch_size=args.batch_size, input_shape=args.input_shape or spec.input_shape)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model name (see `resnets models`)")
    add_case_arguments(p)
    p.add_argument("--steps", type=_positive_int, default=3, metavar="N",
                   help="profiled steps, after warm-up (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads (default: all cores)")
    p.add_argument("--trace", type=Path, metavar="FILE",
                   help="also write a Chrome/Perfetto trace (.json, or .json.gz)")
    p.add_argument("-o", "--out", type=Path, metavar="DIR",
                   help="folder for the tables and the plot (default: reports/profile-<case id>)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="N",
                   help="layers shown on the terminal (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    from ..measure.runner import Settings
    from ..profiling import profile_case
    from ..store import safe_name

    case = case_from_args(args.model, args)
    out = args.out or Path("reports") / f"profile-{safe_name(case.id)}"
    _check_paths(out, args.trace)
    Settings(threads=args.threads).apply()
    result = profile_case(case, steps=args.steps, trace=args.trace,
                          memory_timeline=out / MEMORY_TIMELINE if case.device == "cuda" else None)
    written = write_report(result, out)
    print(_terminal_summary(result, args.top))
    print("wrote: " + ", ".join(map(str, written + ([args.trace] if args.trace else []))))
    return 0


def _check_paths(out: Path, trace: Path | None) -> None:
    """Fail before the (long) profile, not after it, on paths that cannot be written."""
    from ..errors import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a folder")
    if trace is not None and trace.is_dir():
        raise UserError(f"--trace {trace}: is a folder; give a file name such as trace.json")


# --- the report: files, plot and terminal table -------------------------------------

def _ms(v: float) -> str:
    return f"{v:.3f}"


def _share(v: float) -> str:
    return f"{v:.1%}"


def _si(v: float, unit: str = "") -> str:
    """3 significant digits with an SI prefix: LeNet's kFLOPs and ResNet's GFLOPs both read."""
    prefix, scale = next(((p, s) for p, s in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))
                          if abs(v) >= s), ("", 1.0))
    return f"{v / scale:.3g} {prefix}{unit}".rstrip()


def _count(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _bytes(v: int) -> str:
    if v >= 2**20:
        return f"{v / 2**20:.2f} MiB"
    return f"{v / 2**10:.1f} KiB" if v else "0"


# (key, header, formatter); str for text. Columns that are None in every row are dropped.
LAYER_COLUMNS = [
    ("module", "layer", str), ("type", "type", str), ("depth", "depth", _count),
    ("calls", "calls", _count), ("time_ms", "time ms", _ms), ("fwd_ms", "fwd ms", _ms),
    ("bwd_ms", "bwd ms", _ms), ("share", "share", _share), ("flops_fwd", "fwd FLOP", _si),
    ("flops_per_s", "fwd FLOP/s", _si),
    ("params", "params", _count), ("output_shape", "output", str),
    ("activation_bytes", "new activations", _bytes),
]
OP_COLUMNS = [
    ("op", "op", str), ("calls", "calls", _count), ("self_cpu_ms", "self CPU ms", _ms),
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


def _markdown(rows: list[dict], columns: list[tuple]) -> str:
    headers, body, numeric = _cells(rows, columns)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _text_table(rows: list[dict], columns: list[tuple]) -> str:
    headers, body, numeric = _cells(rows, columns)
    widths = [max(map(len, col)) for col in zip(headers, *body)]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric))
             .rstrip() for row in [headers, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _headline(result) -> str:
    s, case = result.summary, result.case
    parts = [f"profiled steps: {s['profiled_steps']}", f"step {s['step_wall_ms']:.2f} ms wall"]
    if case.device == "cuda":
        parts.append(f"{s['step_ms']:.2f} ms of CUDA kernels")
    if s["forward_ms"] is not None:
        parts.append(f"forward {s['forward_ms']:.2f} ms")
    if s["backward_ms"] is not None:
        parts.append(f"backward {s['backward_ms']:.2f} ms "
                     f"({s['backward_in_layers_ms'] or 0:.2f} in layers)")
    parts.append(f"{_si(s['flops_step'], 'FLOP')}/step at "
                 f"{_si(s['achieved_flops_per_s'], 'FLOP/s')}")
    return f"{case.id}: " + ", ".join(parts)


def _markdown_report(result) -> str:
    return "\n".join([
        f"# Profile of {result.case.id}", "", _headline(result), "",
        f"Method: {result.method}.", "",
        "## Layers", "",
        "Model order; a row's time, FLOPs and parameters include its children (depth "
        "gives the tree). New activations: bytes of the outputs a module creates per step "
        "(in-place outputs count 0).", "",
        _markdown(result.layers, _layer_columns(result)),
        "## Operators", "",
        "By self time on the case's device; share is of the step.", "",
        _markdown(result.ops, OP_COLUMNS),
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
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_report(result, out: Path) -> list[Path]:
    """Write the tables, the Markdown report and the plot atomically; return their paths."""
    from ..store import atomic_write
    from ..store import atomic_write_text

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


def _terminal_summary(result, top: int) -> str:
    leaves = [r for r in result.layers if r["leaf"]]
    columns = [c for key in TOP_COLUMNS for c in _layer_columns(result) if c[0] == key]
    if result.summary["layer_times"] is None:
        table = "no layer times: torch.compile fuses across layers (see ops.csv)"
    else:
        slowest = sorted(leaves, key=lambda r: r["time_ms"], reverse=True)[:top]
        table = (f"slowest {len(slowest)} of {len(leaves)} leaf layers:\n"
                 + _text_table(slowest, columns))
    return f"{_headline(result)}\n\n{table}\n\nmethod: {result.method}"
