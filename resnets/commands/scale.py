"""Project data-parallel training to larger world sizes from measured cases.

From each training case at world size 1 (its step time and gradient bytes) and a link
bandwidth (--busbw, or the bus bandwidth a multi-process case measured), predict step
time, samples/s and scaling efficiency at each --world-sizes: step = compute + (1 -
hidden) x k(n) x gradient bytes / busbw, k(n) = 2(n-1)/n for DDP's ring all-reduce and
3(n-1)/n for FSDP (README, "Beyond one GPU"). Where RESULTS hold measured cases at a
world size, the measured step and the error sit beside the prediction. Needs no torch.
"""
from __future__ import annotations

import argparse

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..options import positive_ints

    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result files, run folders or globs")
    p.add_argument("--world-sizes", type=positive_ints, default=(2, 8, 64), metavar="N,M",
                   help="world sizes to predict (default 2,8,64)")
    p.add_argument("--busbw", metavar="RATE",
                   help="bus bandwidth per device, e.g. 200GB/s (default: the one measured "
                        "at the largest world size)")
    p.add_argument("--hidden", type=float, metavar="F",
                   help="share of communication hidden behind backward, 0 to 1 (default: "
                        "measured, else 0)")
    p.add_argument("--latency-us", type=float, default=0.0, metavar="US",
                   help="per-hop ring latency in microseconds (default 0)")
    options.add_options(p.add_argument, "--", [options.STRICT])
    p.add_argument("--markdown", type=checks.path, metavar="FILE", help="also write the table here")
    p.add_argument("--csv", type=checks.path, metavar="FILE", help="also write the table as CSV")


def main(args: argparse.Namespace) -> int:
    import math

    from ..errors import UserError
    from ..report import load
    from ..report.scaling import parse_bandwidth, project
    from ..store import atomic_write_text
    from ..text import csv_frame, duration, markdown_table, si, text_table

    if args.hidden is not None and not (0 <= args.hidden <= 1):
        raise UserError(f"--hidden must be between 0 and 1, not {args.hidden}")
    if not (math.isfinite(args.latency_us) and args.latency_us >= 0):
        raise UserError(f"--latency-us must be >= 0, not {args.latency_us}")
    busbw = parse_bandwidth(args.busbw) if args.busbw else None
    table = project(load(args.results, strict=args.strict), args.world_sizes, busbw, args.hidden,
                    args.latency_us * 1e-6)
    if table.empty:
        raise UserError("nothing to project: needs a training case at world size 1 (with "
                        "gradient bytes or parameters) and a bus bandwidth (--busbw, or a "
                        "measured multi-process case)")
    def basis(r) -> tuple[str, str]:
        return (f"{si(r.busbw, 'B/s')} ({r.busbw_from})", f"{r.hidden:.0%} ({r.hidden_from})")

    # One basis for every row is said once, below; rows projected from different
    # measurements (two models, two strategies) each show their own.
    each = len({basis(r) for r in table.itertuples()}) > 1
    headers = ("model", "device", "variant", "bs/device", "strategy", "world size",
               "step", "samples/s", "efficiency", "measured step", "error",
               *(("busbw", "hidden") if each else ()))
    rows = [(r.model, r.device, r.variant, str(r.batch_size), r.strategy, str(r.world_size),
             duration(r.step_s), si(r.samples_per_s), f"{r.efficiency:.0%}",
             duration(r.measured_step_s) if r.measured_step_s == r.measured_step_s
             and r.measured_step_s is not None else "-",
             f"{r.error:+.0%}" if r.error == r.error and r.error is not None else "-",
             *(basis(r) if each else ()))
            for r in table.itertuples()]
    numeric = [False] * 5 + [True] * 6 + [False] * (2 * each)
    busbw, hidden = basis(next(table.itertuples()))
    said = (f"latency {args.latency_us:g} us" if each else
            f"busbw {busbw}, hidden {hidden}, latency {args.latency_us:g} us")
    print(text_table(headers, rows, numeric))
    print(said)
    if args.markdown:
        atomic_write_text(args.markdown, markdown_table(headers, rows, numeric)
                          + f"\n\n{said}\n")
    if args.csv:
        atomic_write_text(args.csv, csv_frame(table).to_csv(index=False))
    return 0
