"""Train a model to a target test accuracy and time it (convergence speed), one run per seed.

Each run is written as a case file (like `resnets run`) under --out; a table of the runs,
and their median and range over the seeds, goes to stdout; progress goes to stderr.
The protocol (optimizer, schedule, eval interval) is resnets.convergence's.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from ..measure.case import CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model name (see `resnets models`)")
    p.add_argument("--dataset", default="digits",
                   help="digits (bundled, default), fashion-mnist, cifar10 or synthetic")
    p.add_argument("--target-acc", type=float, default=0.9,
                   help="test accuracy to reach, in (0, 1] (default 0.9)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, one run each (default 0)")
    p.add_argument("--max-iters", type=int, default=1000,
                   help="iteration budget per run (default 1000)")
    p.add_argument("--eval-every", type=int, help="iterations between test evaluations "
                   "(default: the protocol's, 50 for LeNets, 25 otherwise)")
    p.add_argument("--batch-size", type=int, help="default: 100 for LeNets, 128 otherwise")
    p.add_argument("--input-shape", help="CxHxW the images are resized to "
                   "(default: the model's, e.g. 3x32x32)")
    p.add_argument("--device", choices=CHOICES["device"], default="cpu")
    p.add_argument("--precision", choices=CHOICES["precision"], default="fp32")
    p.add_argument("--memory-format", choices=CHOICES["memory_format"], default="contiguous")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--data-root", help="folder holding the datasets "
                   "(default: $RESNETS_DATA, else ./data)")
    p.add_argument("--download", action="store_true",
                   help="download fashion-mnist/cifar10 into --data-root if missing")
    p.add_argument("--out", help="result folder (default reports/train-<UTC timestamp>/)")


def main(args: argparse.Namespace) -> int:
    from .. import convergence, models
    from ..errors import UserError
    from ..measure.case import Case
    from ..measure.presets import split

    try:
        spec = models.spec(args.model)
    except models.UnknownModelError as exc:
        raise UserError(str(exc)) from None
    seeds = list(dict.fromkeys(_ints(split(args.seeds, "--seeds"), "--seeds")))
    shape = _shape(args.input_shape) if args.input_shape else spec.input_shape
    batch = args.batch_size or convergence.default_hyperparams(args.model).batch_size
    try:
        case = Case(args.model, "train", args.device, args.memory_format, args.precision,
                    batch_size=batch, input_shape=shape)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, not {args.threads}")
    out = Path(args.out or f"reports/train-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}")

    results = []
    for seed in seeds:
        result = convergence.run(case, args.dataset, args.target_acc, seed, args.max_iters,
                                 args.eval_every, data_root=args.data_root,
                                 download=args.download, threads=args.threads,
                                 progress=_progress(seed, args.max_iters))
        _end_progress(result)
        _write(out, result)
        results.append(result)
    _print_table(results, convergence.summarize(results))
    print(f"\nresults: {out}/")
    return 0


def _ints(items, option: str) -> list[int]:
    from ..errors import UserError

    try:
        values = [int(v) for v in items]
    except ValueError:
        raise UserError(f"{option}: expected integers like 0,1,2, got {','.join(items)!r}") from None
    if min(values) < 0:
        raise UserError(f"{option}: seeds must be >= 0")
    return values


def _shape(text: str) -> tuple[int, int, int]:
    from ..errors import UserError

    try:
        shape = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"--input-shape must look like 3x32x32, not {text!r}")
    return shape


def _progress(seed: int, max_iters: int):
    """One updating stderr line on a terminal (after every evaluation); in a log file or
    pipe, only the line ``_end_progress`` writes when a run ends."""
    if not sys.stderr.isatty():
        return None

    def show(point: dict) -> None:
        print(f"\rseed {seed}: iter {point['iters']}/{max_iters}  "
              f"test acc {point['test_acc']:.3f}  train loss {point['train_loss']:.3f}  "
              f"{point['train_s']:.1f} s", end="", file=sys.stderr, flush=True)

    return show


def _end_progress(result: dict) -> None:
    erase = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{erase}seed {result['seed']}: {result['status']} after {result['iters_run']} "
          f"iterations, best test acc {result['best_acc'] or 0:.3f}, "
          f"{result['train_s']:.1f} s training", file=sys.stderr, flush=True)


def _write(out: Path, result: dict) -> Path:
    import platform

    from .. import store
    from ..convergence import benchmark_seconds
    from ..measure.env import environment
    from ..stats import Measurement

    env = environment()
    entry = store.benchmark_entry(
        name=f"train[{result['run_id']}]", case_id=result["run_id"], extra_info=result,
        stats=Measurement((benchmark_seconds(result),)).pytest_benchmark_stats(),
        group=f"convergence-{result['dataset']}",
        params={"model": result["model"], "dataset": result["dataset"], "seed": result["seed"]})
    machine = {"node": platform.node(), "machine": platform.machine(),
               "processor": env["cpu_model"], "system": platform.system(),
               "python_version": platform.python_version(), "resnets_env": env}
    commit = {"id": env["git_commit"], "dirty": env["git_dirty"], "project": "resnets"}
    return store.write_case(out, entry, machine, commit)


def _print_table(results: list[dict], summary: list[dict]) -> None:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    header = ("model", "seed", "status", "iters", "samples", "train_s", "total_s", "best_acc",
              "final_acc")
    rows = [(r["model"], str(r["seed"]), r["status"], num(r["iters_to_target"], "d"),
             num(r["samples_to_target"], "d"), num(r["train_s_to_target"], ".2f"),
             num(r["total_s_to_target"], ".2f"), num(r["best_acc"], ".3f"),
             num(r["final_acc"], ".3f")) for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(c.rjust(w) if j >= 3 else c.ljust(w)
                        for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for s in summary:
        if s["n_runs"] > 1:
            print(f"\n{s['model']} on {s['dataset']} to {s['target_acc']:.0%}: "
                  f"{s['n_reached']}/{s['n_runs']} reached; iterations median "
                  f"{num(s['iters_to_target_median'], 'g')} [{num(s['iters_to_target_min'], 'g')}"
                  f"..{num(s['iters_to_target_max'], 'g')}], train seconds median "
                  f"{num(s['train_s_to_target_median'], '.2f')} "
                  f"[{num(s['train_s_to_target_min'], '.2f')}..{num(s['train_s_to_target_max'], '.2f')}]"
                  " (- = not reached)")
