"""Train a model to a target test accuracy and time it (convergence speed), one run per seed.

Each run is written as a case file (like `resnets run`) under -o DIR (default
reports/train-<UTC time>/) as soon as it ends; a table of the runs, and their median and
range over the seeds, goes to stdout; progress goes to stderr. The protocol (optimizer,
schedule, evaluation interval) is resnets.convergence's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import checks, options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=options.model_name, help="a model name (see `resnets models`)")
    p.add_argument("--dataset", default="digits", type=options.one_of(options.DATASETS),
                   help="digits (bundled, default), fashion-mnist, cifar10 or synthetic")
    p.add_argument("--target-acc", type=options.accuracy, default=0.9, metavar="F",
                   help="test accuracy to reach, in (0, 1] (default 0.9)")
    p.add_argument("--seeds", type=options.non_negative_ints, default=(0,), metavar="A,B",
                   help="comma-separated seeds, one run each (default 0)")
    p.add_argument("--max-iters", type=options.positive_int, default=1000, metavar="N",
                   help="iteration budget per run (default 1000)")
    p.add_argument("--eval-every", type=options.positive_int, metavar="N",
                   help="iterations between test evaluations (default: the protocol's, "
                        "50 for LeNets, 25 otherwise)")
    opts = [o for o in options.case_options(None, "default: 100 for LeNets, 128 otherwise")
            if o.name != "mode"]
    options.add_options(p.add_argument, "--", opts)
    p.add_argument("--data-root", metavar="DIR", help="folder holding the datasets "
                   "(default: $RESNETS_DATA, else ./data)")
    p.add_argument("--download", action="store_true",
                   help="download fashion-mnist/cifar10 into --data-root if missing")
    p.add_argument("-o", "--out", type=checks.path, metavar="DIR",
                   help="result folder (default reports/train-<UTC timestamp>/)")


def main(args: argparse.Namespace) -> int:
    from .. import convergence, runlock, store
    from ..measure.env import environment
    from .profile import case_from_args

    args.batch_size = args.batch_size or convergence.default_hyperparams(args.model).batch_size
    case = case_from_args(args, mode="train")
    out = args.out or store.default_out("train")
    store.writable(out)  # before the first seed trains, not after
    results = []
    with runlock.hold(out):  # a run writing that folder is not joined
        for seed in args.seeds:
            result = convergence.run(case, args.dataset, args.target_acc, seed, args.max_iters,
                                     args.eval_every, data_root=args.data_root,
                                     download=args.download, threads=args.threads,
                                     progress=_progress(seed, args.max_iters))
            _end_progress(result)
            _write(out, result, environment())
            results.append(result)
    print(_table(results))
    print(f"\nresults: {out}/")
    return 0


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


def _end_progress(result) -> None:
    erase = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{erase}seed {result.seed}: {result.status} after {result.iters_run} "
          f"iterations, best test acc {result.best_acc or 0:.3f}, "
          f"{result.train_s:.1f} s training", file=sys.stderr, flush=True)


def _write(out: Path, result, env: dict) -> Path:
    import platform

    from .. import store

    entry = store.benchmark_entry(result, name=f"train[{result.name}]",
                                  group=f"convergence-{result.dataset}",
                                  params={"model": result.case.model,
                                          "dataset": result.dataset, "seed": result.seed})
    machine = {"node": platform.node(), "machine": platform.machine(),
               "processor": env["cpu_model"], "system": platform.system(),
               "python_version": platform.python_version(), "resnets_env": env}
    commit = {"id": env["git_commit"], "dirty": env["git_dirty"], "project": "resnets"}
    return store.write_case(out, entry, machine, commit)


def _table(results) -> str:
    """The runs, then per configuration the report's convergence summary over seeds."""
    from ..report.render import fmt
    from ..report.tables import convergence_table
    from ..results import rows_frame
    from ..schema import STATUS
    from ..text import text_table

    headers = ("model", "seed", STATUS, "iters", "samples", "train_s", "total_s",
               "best_acc", "final_acc")
    rows = [(r.case.model, r.seed, r.status, r.iters_to_target, r.samples_to_target,
             r.train_s_to_target, r.total_s_to_target, r.best_acc, r.final_acc)
            for r in results]
    lines = [text_table(headers, [[fmt(v) for v in row] for row in rows],
                        [False] * 3 + [True] * 6)]
    summary = convergence_table(rows_frame([r.row() for r in results]))
    if len(results) > 1 and not summary.empty:
        shown = summary[["model", "reached", "iters to target (median)", "iters (min)",
                         "iters (max)", "train s to target (median)", "train s (min)",
                         "train s (max)"]]
        lines += ["", "over the seeds (not reached counts as never):",
                  text_table(shown.columns, [[fmt(v) for v in r]
                                             for r in shown.itertuples(index=False)],
                             [False, False] + [True] * 6)]
    return "\n".join(lines)
