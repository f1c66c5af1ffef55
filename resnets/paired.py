"""Paired A/B timing: two versions of the code measured side by side, block by block.

Why. On a shared machine a case's median moves between separate runs of unchanged code
far more than its steps scatter within a run: on the 2-core VM, LeNet inference (batch
64, 2 threads) read 1.31-2.08 ms in six runs minutes apart (sd of log medians 0.21) and
ResNet-18 inference 18.1-23.4 ms (0.10); an in-run matmul or conv-net reference cancelled
little of it (LeNet 0.18 after normalising). Two processes timing the same case in
alternating blocks cancel the machine's drift, but each process draws its own level
(fresh processes against one reference process: sd 0.03-0.09 of log ratios; ResNet-20
bf16 ran 32 ms in one and 42 ms in the other, steadily); two builds of the same case in
*one* process, timed in alternating blocks, differed by sd 0.006-0.03. Much of a
process's own level was its heap (``measure.allocator``): with glibc's thresholds fixed,
72 A/A pairs in two processes differed by sd 0.012 (``compare.noise.PAIRED_TWO``).

How. So both versions are timed in one process: a pair worker (``python -m
resnets.paired``, this version's code) imports each side's ``resnets`` package from its
source folder under its own name (``resnets_base``, ``resnets_head``; the package uses
only relative imports, so each copy uses its own models, workloads and timer) and, for
each case, builds and warms up both sides' workloads, then times ``blocks`` blocks of
``block_s`` seconds each, in ABBA order (the first side alternating from case to case),
so drift lands on both. Sides that need different Python environments (a PR that
changes dependencies) run as two processes instead (``Side``), which cancels drift but
not the processes' own levels; the noise model allows for that. Data-parallel cases
cannot share a process: each side runs its own torchrun, one after the other, and the
two are compared unpaired. Either way each side's
record is a normal ``SpeedResult`` (its blocks kept in ``blocks``) with the same ``pair``
id, written into that side's run folder.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import children
from .case import Case
from .errors import UserError
from .measure.allocator import child_env
from .measure.load import Snapshot, other_cores
from .outcome import Outcome
from .schema import Env, SchemaError

DEFAULT_BLOCKS = 10        # per side and case
# How a record paired in two processes says so (its ``timing.pairing``): the verdict
# gives that mode its own noise prior (``compare.noise.PAIRED_TWO``).
TWO_PROCESSES = "one process per side"
SIDES = ("base", "head")


class SideDied(Exception):
    """A worker process ended or answered nonsense; the message says how."""


class SideHung(SideDied):
    """A worker gave no answer in time; ``side`` names the side it was serving (from the
    worker's last log line: the pair worker logs each side's command before it runs)."""

    def __init__(self, message: str, side: str | None):
        super().__init__(message)
        self.side = side


# A case's deadline: generous, so only a hang meets it (a cold torch.compile on a 2-core
# CPU takes ~45 s a side; max-autotune on a GPU minutes).
CASE_TIMEOUT_FLOOR_S = 300.0


def case_timeout(case: Case, settings, given: float | None = None) -> float:
    """Seconds both sides of ``case`` may take, build to record, before it counts as hung:
    ``given``, else the floor or 30x the timing budget, plus 10 minutes per compiled side."""
    if given is not None:
        return given
    compiled = 1200.0 if case.compile.startswith("compile") else 0.0
    return max(CASE_TIMEOUT_FLOOR_S, 30 * settings.policy.budget_s) + compiled


def import_side(src: Path | None, name: str):
    """The ``resnets`` package in ``src`` imported as ``resnets_<name>`` (this process's
    own ``resnets`` when ``src`` is None)."""
    if src is None:
        return importlib.import_module("resnets")
    alias = f"resnets_{name}"
    package = Path(src) / "resnets"
    if not (package / "__init__.py").is_file():
        raise UserError(f"{src}: no resnets package there (no resnets/__init__.py)")
    spec = importlib.util.spec_from_file_location(alias, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


class Local:
    """A side imported into this process: commands go to its own ``Session``."""

    def __init__(self, name: str, src: Path | None):
        self.name = name
        package = import_side(src, name)
        self.session = importlib.import_module(f"{package.__name__}.measure.worker").Session()
        runner = importlib.import_module(f"{package.__name__}.measure.runner")
        self.settings_fields = {f.name for f in dataclasses.fields(runner.Settings)}

    def ask(self, cmd: dict, timeout: float | None = None) -> dict:
        """In process: bounded by whoever waits for this process (the gate). Settings
        this side's version does not know (a merge-base from before they existed) are
        left out: it measures as it always did."""
        if "settings" in cmd:
            cmd = {**cmd, "settings": {k: v for k, v in cmd["settings"].items()
                                       if k in self.settings_fields}}
        return self.session.handle(cmd)


@dataclass
class Side:
    """A side in its own worker process: its source folder (first on the worker's path;
    None for the installed one) and the Python that runs it."""

    name: str
    src: Path | None = None
    python: str = sys.executable
    log: Path | None = None
    module: str = "resnets.measure.worker"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the worker in its source folder: ``python -m`` puts the working folder
        first on the path, so a gate started from a checkout would otherwise give every
        side that checkout's ``resnets`` (the pair worker, with no source of its own,
        starts beside this ``resnets``)."""
        env = child_env()  # the same heap on both sides, whichever version each runs
        if self.src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(self.src).resolve()),
                                                              env.get("PYTHONPATH")]))
        where = Path(self.src) if self.src is not None else Path(__file__).resolve().parents[1]
        err = open(self.log, "a") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([self.python, "-m", self.module, "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, env=env, cwd=where,
                                         preexec_fn=children.dies_with_us())
        except OSError as exc:
            raise UserError(f"{self.name}: cannot start {self.python} ({exc.strerror})") from None
        finally:
            if self.log:
                err.close()

    def ask(self, cmd: dict, timeout: float | None = None) -> dict:
        """Send a command and read its one-line answer; past ``timeout`` seconds the
        worker is stopped and ``SideHung`` raised."""
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            if timeout is not None and not select.select([self.proc.stdout], [], [],
                                                         max(0.0, timeout))[0]:
                last = self._last_logged() if self.log else ""
                self.close(grace_s=0)
                side = last.split(" ", 1)[0] if last.split(" ", 1)[0] in SIDES else self.name
                raise SideHung(f"the {side} side gave no answer within {timeout:.0f} s (hung?"
                               f"{'; its last step: ' + last if last else ''})", side)
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if not line:
            code = None
            with contextlib.suppress(subprocess.TimeoutExpired, AttributeError):
                code = self.proc.wait(timeout=5)  # its output ended: it is exiting
            raise SideDied(f"the {self.name} worker ended (exit {code})"
                           + (f": {self._last_logged()} (log: {self.log})" if self.log else ""))
        try:
            return json.loads(line)
        except ValueError:
            raise SideDied(f"the {self.name} worker answered {line[:80]!r}") from None

    def _last_logged(self) -> str:
        """The last line the worker wrote to its log: a traceback's is the error."""
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "nothing logged"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self, grace_s: float = 1.0) -> None:
        """End of input ends an idle worker at once; one still busy (stuck in a case) is
        killed after ``grace_s``, so a SIGTERM to the gate stops it within seconds."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=grace_s)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def block_plan(settings, blocks: int = DEFAULT_BLOCKS) -> tuple[int, float]:
    """(blocks per side, seconds per block): the run's time budget per case, split."""
    return blocks, max(0.02, settings.policy.budget_s / blocks)


def measure_pair(case: Case, settings, sides, pair: str, blocks: int = DEFAULT_BLOCKS,
                 first: int = 0, deadline: float | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Outcome]:
    """Both sides' outcomes for ``case``, by side name. ``sides`` are two objects with
    ``name`` and ``ask(command, timeout)`` (``Local`` or ``Side``); ``first`` is the side
    that times the first block; ``deadline`` (``time.monotonic``) bounds every answer,
    and ``log`` hears which side each command goes to (the pair worker's log: what a
    hung worker was doing). A side that fails where the other can run (a head whose
    model raises) leaves the other to be timed alone, so its record is kept and the
    failure is a newly failing case, not a missing one."""
    def ask(s, cmd: dict) -> dict:
        if log:
            log(f"{s.name} side: {cmd['op']} {case.id}")
        left = None if deadline is None else deadline - time.monotonic()
        return s.ask(cmd, left)

    start = {"op": "start", "case": case.key(), "settings": settings.to_dict()}
    replies = {s.name: ask(s, start) for s in sides}
    out: dict[str, Outcome] = {s.name: _outcome(replies[s.name]) for s in sides
                               if replies[s.name].get("outcome") != "ready"}
    ready = [s for s in sides if s.name not in out]
    if any(o.status == "skipped" for o in out.values()):  # cannot run here: nothing to pair
        for s in ready:
            ask(s, {"op": "drop"})
            other = next(name for name, o in out.items() if o.status == "skipped")
            out[s.name] = Outcome.skipped(f"the {other} side could not run it: "
                                          f"{out[other].reason}")
        return out
    if not ready:
        return out
    n, block_s = block_plan(settings, blocks)
    order = ready[first % len(ready):] + ready[:first % len(ready)]
    own_cpu, snap0 = 0.0, Snapshot.now()
    for i in range(n):
        for s in (order if i % 2 == 0 else order[::-1]):
            r = ask(s, {"op": "block", "seconds": block_s, "min_steps": 1})
            if "samples" not in r:
                for x in ready:
                    ask(x, {"op": "drop"})
                why = f"{s.name} side: {_outcome(r).reason}"
                return {**{x.name: Outcome.failed(why) for x in ready}, **out}
            own_cpu += r["cpu_s"]
    others, steal = other_cores(snap0, Snapshot.now(), own_cpu)
    where = ("in one process" if all(isinstance(s, Local) for s in sides)
             else TWO_PROCESSES)
    pairing = (f"paired with the other side ({where}): {n} blocks of {block_s:.3g} s each "
               f"in ABBA order, '{order[0].name}' first" if len(ready) == 2 else
               f"alone ({n} blocks of {block_s:.3g} s): the other side could not be timed")
    timing = {"pairing": pairing, "other_cores": others, "steal_cores": steal}
    for s in ready:
        outcome = _outcome(ask(s, {"op": "finish", "timing": timing}))
        if outcome.is_ok and len(ready) == 2:
            outcome.record.pair = pair
        out[s.name] = outcome
    return out


def _outcome(reply: dict) -> Outcome:
    """A worker's reply as an outcome; one that is not is a failure saying so."""
    try:
        return Outcome.from_dict(reply)
    except SchemaError as exc:
        return Outcome.failed(f"the worker answered something else: {exc}")


def serve(lines, write) -> None:
    """The pair worker: ``{"op": "sides", "sources": {side: folder or null}}`` first (it
    answers where each side's ``resnets`` came from), then ``{"op": "case", "case",
    "settings", "pair", "blocks", "first"}`` per case (it answers ``{side: outcome}``)."""
    from .measure.runner import Settings

    sides = None
    for line in lines:
        cmd = json.loads(line)
        if cmd["op"] == "sides":
            sides = [Local(name, Path(src) if src else None)
                     for name, src in cmd["sources"].items()]
            out = {s.name: s.ask({"op": "hello"})["resnets"] for s in sides}
        else:
            only = cmd.get("only") or [s.name for s in sides]
            results = measure_pair(Case.from_key(cmd["case"]),
                                   Settings.from_dict(cmd["settings"]),
                                   [s for s in sides if s.name in only], cmd["pair"],
                                   cmd["blocks"], cmd["first"],
                                   log=lambda text: print(text, file=sys.stderr, flush=True))
            out = {name: outcome.to_dict() for name, outcome in results.items()}
        write(json.dumps(out, allow_nan=False) + "\n")


class Pairer:
    """Measures cases on both sides: in one pair-worker process (``same_process``) or in
    one worker process per side. Workers that die are restarted for the next case."""

    def __init__(self, sources: dict[str, Path | None], pythons: dict[str, str | None],
                 logs: Path | None = None, two_processes: bool = False):
        self.sources = sources
        py = self.pythons = {k: v or sys.executable for k, v in pythons.items()}
        # Two Pythons need two processes; ``two_processes`` asks for them with one Python
        # (to measure that mode's noise, or to prove it).
        self.same_process = py["base"] == py["head"] and not two_processes
        log = (lambda name: logs / f"{name}.log") if logs else (lambda name: None)
        if self.same_process:
            self.workers = [Side("pair", python=py["base"], log=log("pair-worker"),
                                 module="resnets.paired")]
        else:
            self.workers = [Side(name, sources[name], py[name], log(f"{name}-worker"))
                            for name in SIDES]
        self.imported: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        """(Re)start the workers; ``{side: where its resnets came from}``."""
        self.close()
        if self.same_process:
            worker = self.workers[0]
            worker.start()
            self.imported = worker.ask({"op": "sides", "sources": {
                k: str(v) if v else None for k, v in self.sources.items()}})
        else:
            for w in self.workers:
                w.start()
            self.imported = {w.name: w.ask({"op": "hello"})["resnets"] for w in self.workers}
        return self.imported

    def measure(self, case: Case, settings, pair: str, blocks: int, first: int,
                timeout: float | None = None) -> dict[str, Outcome]:
        """Both sides' outcomes. A side that gives no answer within ``timeout`` seconds
        is a failure saying so (its worker is stopped), and the other side is timed
        again alone in fresh workers, so its record is kept."""
        if case.strategy != "none":  # torchrun per side, one after the other: unpaired
            from .measure.distributed import launch

            order = [SIDES[first], SIDES[1 - first]]
            return {name: launch(case, settings, python=self.pythons[name],
                                 src=self.sources[name]) for name in order}
        try:
            return self._measure(case, settings, pair, blocks, first, timeout, SIDES)
        except SideHung as exc:
            self.close()
            hung = exc.side if exc.side in SIDES else None
            out = {name: Outcome.failed(f"timed out: {exc}") for name in SIDES
                   if hung in (None, name)}
            if hung is None:
                return out
            other = next(name for name in SIDES if name != hung)
            try:
                return {**self._measure(case, settings, pair, blocks, first, timeout, [other]),
                        **out}
            except SideHung as again:
                self.close()
                return {**out, other: Outcome.failed(f"timed out: {again}")}

    def _measure(self, case, settings, pair, blocks, first, timeout, only):
        if not all(w.alive() for w in self.workers):
            self.start()
        if not self.same_process:
            deadline = None if timeout is None else time.monotonic() + timeout
            return measure_pair(case, settings, [w for w in self.workers if w.name in only],
                                pair, blocks, first, deadline)
        reply = self.workers[0].ask({"op": "case", "case": case.key(),
                                     "settings": settings.to_dict(), "pair": pair,
                                     "blocks": blocks, "first": first, "only": list(only)},
                                    timeout)
        return {name: _outcome(r) for name, r in reply.items()}

    def close(self) -> None:
        for w in self.workers:
            w.close()


def run_pairs(cases: list[Case], settings, pairer: Pairer, pair: str,
              write: Callable[[str, object], None], blocks: int = DEFAULT_BLOCKS,
              progress: Callable[[str], None] | None = None,
              timeout: float | None = None) -> dict[str, int]:
    """Measure every case on both sides (the first side alternating), handing each
    finished record (or failure) to ``write(side name, record)`` at once. Returns counts
    of ok/skipped/failed cases."""
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    for i, case in enumerate(cases):
        try:
            results = pairer.measure(case, settings, pair, blocks, first=i % 2,
                                     timeout=case_timeout(case, settings, timeout))
        except SideDied as exc:
            results = {name: Outcome.failed(str(exc)) for name in SIDES}
            pairer.close()
        statuses = {o.status for o in results.values()}
        outcome = statuses.pop() if len(statuses) == 1 and "crashed" not in statuses else "failed"
        counts[outcome] += 1
        for name, o in results.items():
            if o.status != "skipped":
                record = o.result(case)
                if not o.is_ok:
                    record.env = Env()
                write(name, record)
        if progress:
            progress(f"{case.id}: {outcome}")
    return counts


if __name__ == "__main__":
    from .measure.worker import write_line

    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: python -m resnets.paired --serve (driven by resnets gate)")
    serve(sys.stdin, write_line)
