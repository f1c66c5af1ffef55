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
    from ..options import NODES, add_options

    p.add_argument("run", type=Path, metavar="RUN", help="the run folder the first node writes")
    add_options(p.add_argument, "--", NODES)


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
    # Only the launch settings: the ranks read the rest from the first node's request.
    settings = Settings(nnodes=opts["nnodes"], rdzv_endpoint=opts["rdzv_endpoint"])
    folder = args.run / distributed.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return distributed.follow(folder, settings, args.run / RUN_STATE, since=time.time())
