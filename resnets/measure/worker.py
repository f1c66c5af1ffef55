"""Measure cases in this process or in a fresh one, one at a time or paired.

``measure_case`` measures one case here. As a program, the worker measures in a fresh
process, which gives each case a clean CUDA context, an empty caching allocator and
default global flags:

* ``python -m resnets.measure.worker`` (``--bench-isolate``) reads ``{"case": ...,
  "settings": ...}`` on stdin and writes one JSON line: ``{"outcome": "ok", "record":
  ..., "samples": [...]}`` or ``{"outcome": "skipped" | "failed", "reason": ...}``.
* ``python -m resnets.measure.worker --serve`` (paired timing, ``resnets.paired``) reads
  one JSON command per line and answers each with one line: ``{"op": "start", "case",
  "settings"}`` builds and warms up a case (``ready``, ``skipped`` or ``failed``);
  ``{"op": "block", "seconds", "min_steps"}`` times a block of steps (``{"samples",
  "cpu_s"}``); ``{"op": "finish", "timing"}`` measures memory and FLOPs and returns the
  record like the one-shot form; ``{"op": "drop"}`` abandons the case; ``{"op":
  "hello"}`` says which ``resnets`` it imported;
  end of input ends the worker. Kept small and stable:
  the gate runs the merge-base's worker beside the head's.
"""
from __future__ import annotations

import json
import sys
import time

from ..schema import SpeedResult, from_dict


def measure_case(case, settings) -> tuple[str, SpeedResult | str]:
    """("ok", record), ("skipped", reason) or ("failed", reason)."""
    from .runner import Skipped, measure

    try:
        return "ok", measure(case, settings)
    except Skipped as exc:
        return "skipped", str(exc)
    except Exception as exc:
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


class Session:
    """One case at a time, driven by commands (the ``--serve`` protocol in the module
    docstring): the same commands whether they arrive over a pipe or in process."""

    def __init__(self):
        self.run = None

    def _close(self) -> None:
        if self.run is not None:
            self.run.__exit__(None, None, None)
        self.run = None

    def handle(self, cmd: dict) -> dict:
        from ..case import Case
        from .runner import CaseRun, Settings, Skipped

        op = cmd.get("op")
        try:
            if op == "hello":
                from .. import __file__ as where

                return {"resnets": str(where), "python": sys.executable}
            if op == "start":
                self._close()
                self.run = CaseRun(Case.from_key(cmd["case"]), Settings.from_dict(cmd["settings"]))
                self.run.__enter__()
                self.run.warm_up()
                return {"outcome": "ready"}
            if op == "block":
                cpu0 = time.process_time()
                samples = self.run.block(cmd["seconds"], cmd.get("min_steps", 1))
                return {"samples": samples, "cpu_s": time.process_time() - cpu0}
            if op == "drop":  # the other side cannot run this case
                self._close()
                return {"outcome": "dropped"}
            if op == "finish":
                record = self.run.finish(**cmd.get("timing", {}))
                self._close()
                return json.loads(reply("ok", record))
            return {"outcome": "failed", "reason": f"unknown command {op!r}"}
        except Skipped as exc:
            self.run = None
            return {"outcome": "skipped", "reason": str(exc)}
        except Exception as exc:
            self._close()
            return {"outcome": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def serve(lines, write) -> None:
    """The ``--serve`` loop: one command in, one JSON line out."""
    session = Session()
    for line in lines:
        write(json.dumps(session.handle(json.loads(line)), allow_nan=False) + "\n")


def write_line(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    from ..case import Case
    from .runner import Settings

    if argv[:1] == ["--serve"]:
        serve(sys.stdin, write_line)
        return 0
    request = json.loads(sys.stdin.read())
    outcome, result = measure_case(Case.from_key(request["case"]),
                                   Settings.from_dict(request["settings"]))
    sys.stdout.write(reply(outcome, result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
