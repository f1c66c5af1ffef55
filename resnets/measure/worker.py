"""Measure a case in a fresh process: the isolated worker and the gate's side worker.

A fresh process gives each case a clean CUDA context, an empty caching allocator and
default global flags. Both forms run the one engine (``runner.CaseRun``) and answer with
an ``Outcome``'s JSON (``resnets.outcome``):

* ``python -m resnets.measure.worker`` (``--bench-isolate``) reads ``{"case": ...,
  "settings": ...}`` on stdin and writes one JSON line, the outcome.
* ``python -m resnets.measure.worker --serve`` (paired timing, ``resnets.paired``) reads
  one JSON command per line and answers each with one line: ``{"op": "start", "case",
  "settings"}`` builds and warms up a case (``{"outcome": "ready"}``, or a skipped or
  failed outcome); ``{"op": "block", "seconds", "min_steps"}`` times a block of steps
  (``{"samples", "cpu_s"}``); ``{"op": "finish", "timing"}`` measures memory and FLOPs and
  returns the outcome; ``{"op": "drop"}`` abandons the case; ``{"op": "hello"}`` says
  which ``resnets`` it imported; end of input ends the worker. Kept small and stable:
  the gate runs the merge-base's worker beside the head's.
"""
from __future__ import annotations

import json
import sys
import time

from ..outcome import Outcome


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
                return Outcome.ok(record).to_dict()
            return Outcome.failed(f"unknown command {op!r}").to_dict()
        except Skipped as exc:
            self.run = None
            return Outcome.skipped(str(exc)).to_dict()
        except Exception as exc:
            self._close()
            return Outcome.of_error(exc).to_dict()


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
    from .runner import Settings, run_case

    if argv[:1] == ["--serve"]:
        serve(sys.stdin, write_line)
        return 0
    request = json.loads(sys.stdin.read())
    outcome = run_case(Case.from_key(request["case"]), Settings.from_dict(request["settings"]))
    sys.stdout.write(outcome.to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
