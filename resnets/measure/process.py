"""Where a case runs: in this process, in a fresh worker process, or under torchrun.

Each is the same engine (``runner.CaseRun``) in another wrapper and ends in an
``Outcome``: a data-parallel case always runs under torchrun, one process per device
(``distributed.launch``); with ``isolate`` a case runs in a fresh interpreter
(``python -m resnets.measure.worker``: a clean CUDA context, allocator and global
flags); otherwise here (``runner.run_case``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .. import children
from ..case import Case
from ..outcome import Outcome
from ..schema import SchemaError


def run(case: Case, settings, isolate: bool = False, shared: Path | None = None,
        rank_settings=None) -> Outcome:
    """Measure ``case``. ``shared``: the folder a multi-node case's requests go in;
    ``rank_settings``: a data-parallel case's (``distributed.rank_settings``)."""
    if case.strategy != "none":
        from . import distributed

        return distributed.launch(case, rank_settings or settings, shared)
    if isolate:
        return isolated(case, settings)
    from . import runner

    return runner.run_case(case, settings)


def isolated(case: Case, settings) -> Outcome:
    request = json.dumps({"case": case.key(), "settings": settings.to_dict()})
    proc = subprocess.run([sys.executable, "-m", "resnets.measure.worker"], input=request,
                          capture_output=True, text=True, check=False,
                          preexec_fn=children.dies_with_us())
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome.failed(f"worker exited {proc.returncode}: {tail}")
    try:
        return Outcome.from_json(lines[-1])
    except SchemaError as exc:
        return Outcome.failed(f"the worker answered something else: {exc}")
