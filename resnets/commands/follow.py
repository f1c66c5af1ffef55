"""Join a multi-node run from another machine: run its data-parallel cases' ranks here.

The first node runs `resnets run ... --nnodes N --rdzv-endpoint HOST:PORT -o RUN` with
RUN on a file system every node sees; every other node runs `resnets follow RUN --nnodes
N --rdzv-endpoint HOST:PORT`. For each case the first node asks for (a request under
RUN/distributed/), this node starts its own torchrun, which meets the first node's in
the case's rendezvous; global rank 0 writes the result, so RUN holds one run. It stops
when the run has finished (RUN/run-state.json is written).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .. import options
    from ..options import NODES, add_options

    p.add_argument("run", type=Path, metavar="RUN", help="the run folder the first node writes")
    add_options(p.add_argument, "--", NODES)
    p.add_argument("--wait", type=options.non_negative_float, default=0.0, metavar="S",
                   help="wait up to this many seconds for the first node's run to begin "
                        "(nodes started together, as srun does; default 0: refuse at once)")
    p.add_argument("--idle-timeout", type=options.positive_float, default=3600.0, metavar="S",
                   help="stop with an error after this many seconds without a new case "
                        "(default 3600)")


def main(args: argparse.Namespace) -> int:
    import time

    from ..errors import UserError
    from ..measure import distributed
    from ..measure.runner import Settings
    from ..options import NODES, values
    from ..publish import RUN_STATE

    opts = values(args, "--", NODES)
    if opts["nnodes"] < 2 or not opts["rdzv_endpoint"]:
        raise UserError("follow needs --nnodes above 1 and the first node's --rdzv-endpoint")
    deadline = time.monotonic() + args.wait
    while True:  # nodes started together (srun) may find the run not begun yet
        try:
            _check_live(args.run)
            break
        except UserError:
            if time.monotonic() >= deadline or (args.run / RUN_STATE).exists():
                raise
            time.sleep(0.5)
    # Only the launch settings: the ranks read the rest from the first node's request.
    settings = Settings(nnodes=opts["nnodes"], rdzv_endpoint=opts["rdzv_endpoint"])
    return distributed.follow(args.run / distributed.FOLDER, settings, args.run / RUN_STATE,
                              since=time.time(), idle_timeout_s=args.idle_timeout)


def _check_live(run: Path) -> None:
    """A run to follow exists and is being written now (its lock is held): a missing or
    finished one is refused at once, not waited on for an hour."""
    from .. import runlock
    from ..errors import UserError
    from ..publish import RUN_STATE

    if not run.is_dir():
        raise UserError(f"{run}: no such run folder (start `resnets run ... -o {run}` on the "
                        "first node; this node follows it)")
    if (run / RUN_STATE).exists():
        raise UserError(f"{run}: that run has finished ({RUN_STATE} is written); nothing to "
                        "follow")
    if not runlock.held(run):
        raise UserError(f"{run}: no run is writing this folder now (start it on the first "
                        "node first)")
