"""Measure one case in a fresh process (``--bench-isolate``).

A fresh process gives each case a clean CUDA context, an empty caching allocator and
default global flags, at the price of start-up time. Reads ``{"case": ..., "settings":
...}`` as JSON on stdin and writes one JSON line on stdout: ``{"status": "ok",
"extra_info": ..., "samples": [...]}``, ``{"status": "skipped", "reason": ...}`` or
``{"status": "failed", "reason": ...}``.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    from .case import Case
    from .runner import Settings, Skipped, measure

    request = json.loads(sys.stdin.read())
    case = Case.from_key(request["case"])
    try:
        result = measure(case, Settings.from_dict(request["settings"]))
    except Skipped as exc:
        reply = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the parent records it as a failed case
        reply = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    else:
        reply = {"status": "ok", "extra_info": result.extra_info,
                 "samples": list(result.measurement.samples)}
    sys.stdout.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
