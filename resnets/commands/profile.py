"""Profile one case: where a step's time goes, per operator and per layer.

Warms the case up as a timed run would, profiles a few more steps with torch.profiler and
writes to -o DIR (default reports/profile-<case id>/): layers.csv and ops.csv, profile.md
(the method, a summary and both tables), layers.png (time and FLOPs per layer), on CUDA
memory-timeline.html, and with --trace a Chrome/Perfetto trace. Prints the slowest layers.
Times come from a profiled run and are inflated by it: use `resnets run` for speed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import checks, options
from ..case import Case


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=options.model_name, help="a model name (see `resnets models`)")
    options.add_options(p.add_argument, "--", options.case_options(1, "batch size (default 1)"))
    p.add_argument("--steps", type=options.positive_int, default=3, metavar="N",
                   help="profiled steps, after warm-up (default: %(default)s)")
    p.add_argument("--trace", type=Path, metavar="FILE",
                   help="also write a Chrome/Perfetto trace (.json, or .json.gz)")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="folder for the tables and the plot (default: reports/profile-<case id>)")
    p.add_argument("--top", type=options.positive_int, default=10, metavar="N",
                   help="layers shown on the terminal (default: %(default)s)")


def case_from_args(args: argparse.Namespace, mode: str | None = None) -> Case:
    """The ``Case`` that ``args.model`` and ``options.case_options`` name; imports torch."""
    from .. import models

    return Case(args.model, mode or args.mode, args.device, args.memory_format,
                args.precision, args.compile, args.batch_size,
                args.input_shape or models.spec(args.model).input_shape)


def main(args: argparse.Namespace) -> int:
    from .. import runlock, store
    from ..measure.runner import Settings
    from ..profiling.measure import profile_case
    from ..profiling.render import MEMORY_TIMELINE, terminal_summary, write_profile

    case = case_from_args(args)
    out = args.out or store.default_out("profile", store.safe_name(case.id))
    _check_paths(out, args.trace)
    Settings(threads=args.threads).apply()
    with runlock.if_run(out):  # a run writing that folder is not joined (nor timed beside)
        result = profile_case(case, steps=args.steps, trace=args.trace,
                              memory_timeline=(out / MEMORY_TIMELINE if case.device == "cuda"
                                               else None))
        written = write_profile(result, out)
    print(terminal_summary(result, args.top))
    print("wrote: " + ", ".join(map(str, written + ([args.trace] if args.trace else []))))
    return 0


def _check_paths(out: Path, trace: Path | None) -> None:
    """Fail before the (long) profile, not after it, on paths that cannot be written."""
    from .. import store
    from ..errors import UserError

    store.writable(out)
    if trace is not None and trace.is_dir():
        raise UserError(f"--trace {trace}: is a folder; give a file name such as trace.json")
