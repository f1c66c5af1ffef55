"""Say which variant to use, per model, device and mode, and which to avoid, with intervals.

For each model, device, mode, batch and input in RESULTS: the fastest variant whose
speed-up over the baseline is statistically supported (its 95% interval, which includes
the run-to-run shift, lies above 1), its memory change and, if compiled, when compiling
pays off; the variants measured as slower, with how much; "no clear winner" when no
variant is clearly faster; and for launch-bound GPU cases what helps instead. Never a
variant whose interval holds the baseline. With accuracy tables (``resnets accuracy``;
a run folder's ``accuracy.json`` is read with it), a pick carries its measured accuracy
change, and nothing is recommended whose accuracy falls more than --max-accuracy-drop
points below fp32, nor an int8 variant unmeasured. Needs no torch.
"""
from __future__ import annotations

import argparse

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, run folders or globs")
    p.add_argument("--baseline", metavar="VARIANT",
                   help="variant speed-ups divide by (default: PyTorch's default numerics, "
                        "contiguous-default-eager on CUDA, contiguous-fp32-eager on CPU)")
    options.add_options(p.add_argument, "--", [options.STRICT])
    p.add_argument("--markdown", type=checks.path, metavar="FILE",
                   help="also write the advice here")
    options.add_options(p.add_argument, "--", options.ACCURACY)


def lines(advice) -> list[str]:
    from ..report.advice import interval, package_text

    out = []
    for a in advice:
        head = (f"{a.model} {a.device} {a.mode} bs{a.batch_size} {a.input_shape}"
                + (f" (not paired: {a.unpaired})" if a.unpaired else "") + ": ")
        if a.note:
            out.append(head + a.note)
            continue
        if a.pick is None:
            out.append(head + f"no clear winner over {a.baseline}"
                       + (f" (within noise: {', '.join(a.unclear)})" if a.unclear else ""))
        elif a.pick == a.baseline:
            out.append(head + f"keep {a.baseline} (nothing else measured)")
        else:
            extra = [f"peak memory {a.memory_ratio:.2f}x"] if a.memory_ratio else []
            if a.compile_cost_s is not None and a.breakeven_steps is not None:
                extra.append(f"compile {a.compile_cost_s:.0f} s, pays off after "
                             f"{a.breakeven_steps:,.0f} steps")
            if a.package_s is not None or a.package_bytes is not None:
                extra.append(package_text(a))
            extra += [a.accuracy] if a.accuracy else []
            out.append(head + f"use {a.pick}, {interval(a.speedup, a.speedup_low, a.speedup_high)}"
                       f" over {a.baseline}" + (f"; {'; '.join(extra)}" if extra else ""))
        out += [f"    held back: {v} {interval(s, lo, hi)}: {why}" for v, s, lo, hi, why in a.held]
        out += [f"    slower here: {v} {interval(s, lo, hi)}" for v, s, lo, hi in a.slower]
        if a.why_slow:
            out.append(f"    {a.why_slow}")
        if a.efficient:
            v, best, mine = a.efficient
            out.append(f"    most energy-efficient: {v}, {best:.3g} samples/J against "
                       f"{mine:.3g} for {a.pick or a.baseline}")
        if a.paired_load:
            out.append(f"    {a.paired_load}")
        if a.loaded:
            out.append(f"    not judged (measured while other work kept cores busy; rerun): "
                       f"{', '.join(a.loaded)}")
    return out


def main(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..report import accuracy, load
    from ..report.advice import advice_rows, advise
    from ..report.render import markdown_table
    from ..store import atomic_write_text
    from ..text import printable

    df = load(args.results, strict=args.strict)
    advice = advise(df, args.baseline, accuracy.beside(df, args.accuracy),
                    args.max_accuracy_drop)
    if not advice:
        raise UserError("no speed case with a baseline to compare against "
                        "(name one with --baseline)")
    if args.markdown:
        atomic_write_text(args.markdown, "### What to use\n\n"
                          + markdown_table(advice_rows(advice)) + "\n")
    print("\n".join(printable(line) for line in lines(advice)))  # model names are data
    return 0
