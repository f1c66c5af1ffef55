"""What else the machine did while a case was timed (Linux: /proc/stat; None elsewhere).

A timing taken while other processes used the cores, or while the hypervisor gave our
virtual CPUs to someone else (steal time), is not a measurement of the code alone. The
counters below let a result say so: ``other_cores`` is the average number of cores busy
with work that was not ours while the case ran; the gate calls such a case noisy rather
than a regression (``resnets.compare``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_line() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            first = f.readline().split()
    except OSError:
        return None
    return [int(v) for v in first[1:]] if first and first[0] == "cpu" else None


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy_s: float | None     # all cores: user+nice+system+irq+softirq (not idle, iowait, steal)
    steal_s: float | None

    @classmethod
    def now(cls) -> Snapshot:
        v = _cpu_line()
        if v is None:
            return cls(time.perf_counter(), None, None)
        busy = v[0] + v[1] + v[2] + v[5] + v[6]
        steal = v[7] if len(v) > 7 else 0
        return cls(time.perf_counter(), busy / _TICK, steal / _TICK)


def other_cores(start: Snapshot, end: Snapshot,
                own_cpu_s: float) -> tuple[float | None, float | None]:
    """(cores busy with work that was not ours, cores stolen by the hypervisor), averaged
    over the interval; None where the counters are missing. The kernel counts in ticks
    (10 ms), so a short interval is coarse."""
    wall = end.wall - start.wall
    if start.busy_s is None or end.busy_s is None or wall <= 0:
        return None, None
    other = max(0.0, (end.busy_s - start.busy_s - own_cpu_s) / wall)
    return other, max(0.0, (end.steal_s - start.steal_s) / wall)


def busy_now(seconds: float = 0.2) -> float | None:
    """Cores other work keeps busy right now, over ``seconds`` (None where unknown)."""
    cpu0, start = time.process_time(), Snapshot.now()
    time.sleep(seconds)
    return other_cores(start, Snapshot.now(), time.process_time() - cpu0)[0]


def choose_threads(requested: int | None, cores: int, busy: float | None) -> tuple[int, str]:
    """(threads, why) for a case about to be timed while other work keeps ``busy`` cores
    busy. OpenMP threads that outnumber the free cores wait on each other through time
    slices (a 2-thread step beside one busy process ran 67x slower on 2 cores), so by
    default the threads follow the free cores; a requested count is kept, and said."""
    if requested:
        why = "requested" + (f"; other work kept {busy:.1f} of {cores} cores busy"
                             if busy is not None and busy > 0.5 else "")
        return requested, why
    if busy is None or busy <= 0.5:
        return cores, f"all {cores} cores" + ("" if busy is not None else " (load unknown)")
    free = max(1, round(cores - busy))
    return free, f"{free} of {cores} cores: other work kept {busy:.1f} busy when it started"
