"""Measure one case, in this process or a fresh one (``--bench-isolate``).

A fresh process gives each case a clean CUDA context, an empty caching allocator and
default global flags, at the price of start-up time. As a program it reads
``{"case": ..., "settings": ...}`` as JSON on stdin and writes one JSON line on stdout:
``{"outcome": "ok", "record": ..., "samples": [...]}``, or ``{"outcome": "skipped" |
"failed", "reason": ...}``. ``measure_case`` gives the same answer in process.
"""
from __future__ import annotations

import json
import sys

from ..schema import SpeedResult, from_dict


def measure_case(case, settings) -> tuple[str, SpeedResult | str]:
    """("ok", record), ("skipped", reason) or ("failed", reason)."""
    from .runner import Skipped, measure, release_memory

    try:
        return "ok", measure(case, settings)
    except Skipped as exc:
        return "skipped", str(exc)
    except Exception as exc:
        release_memory()
        return "failed", f"{type(exc).__name__}: {exc}"


def reply(outcome: str, result) -> str:
    if outcome == "ok":
        return json.dumps({"outcome": outcome, "record": result.to_dict(),
                           "samples": result.samples}, allow_nan=False)
    return json.dumps({"outcome": outcome, "reason": result})


def read_reply(line: str) -> tuple[str, SpeedResult | str]:
    d = json.loads(line)
    if d["outcome"] == "ok":
        return "ok", from_dict(d["record"], d["samples"])
    return d["outcome"], d["reason"]


def main() -> int:
    from ..case import Case
    from .runner import Settings

    request = json.loads(sys.stdin.read())
    outcome, result = measure_case(Case.from_key(request["case"]),
                                   Settings.from_dict(request["settings"]))
    sys.stdout.write(reply(outcome, result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
