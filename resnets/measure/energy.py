"""Energy per sample: a hardware energy counter read around a stretch of steps.

Two counters. On CUDA, NVML's total-energy counter of the GPU (``nvidia-ml-py``, NVIDIA's
own binding: millijoules since the driver loaded, 64 bits, so it does not wrap); it
counts the whole board, GPU and memory. On CPU, RAPL through Linux powercap: the
``energy_uj`` of each CPU package (microjoules; it wraps at ``max_energy_range_uj``), which
counts the whole package, every other process on it included. Their subzones (cores,
uncore) are already in the package and are not added again; DRAM and the platform
(``psys``) zones are left out, so the RAPL figure is the packages' alone.

Both counters advance in steps (NVML every 20-100 ms, RAPL about every millisecond), so a
window of a few updates would be mostly rounding: a window lasts at least
``MIN_WINDOW_S``, and it starts and ends on an update of the counter. A counter that
cannot be read (no binding, no driver, no powercap in a VM, a root-only file) is
``Unavailable`` with the reason, found before any step runs: a machine without one
pays nothing. An idle baseline (the same counter over a stretch with nothing running,
once per run) gives the net figure: what the work cost above an idle machine.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from .. import store

MIN_WINDOW_S = 2.0    # >= 20 updates of NVML's slowest (100 ms) counter
IDLE_WINDOW_S = 2.0   # the idle baseline's window
TICK_WAIT_S = 0.25    # longest wait for an update at a window's ends (> NVML's 100 ms)
IDLE_STEP_S = 0.05    # the idle window's "step": a sleep this long
POWERCAP = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"intel-rapl:(\d+)")   # not intel-rapl:0:0 (a subzone), not -mmio

# The record's energy fields, all None when no counter could be read (then energy_error
# says why): joules per sample, gross and net of the idle baseline; samples per joule
# (samples/s per watt); the window's mean power, the idle power, the window's length.
FIELDS = ("energy_j_per_sample", "energy_net_j_per_sample", "samples_per_s_per_watt",
          "energy_power_w", "energy_idle_w", "energy_window_s", "energy_method",
          "energy_error")


class Unavailable(Exception):
    """No energy counter can be read here; the message says why."""


class Counter(Protocol):
    """An energy counter: ``read`` gives raw readings (one per domain), ``joules`` the
    energy between two of them, ``method`` names it in the record."""

    method: str

    def read(self) -> tuple[int, ...]: ...

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float: ...

    def close(self) -> None: ...


class NvmlCounter:
    """A GPU's total-energy counter, through NVML. ``read`` gives ``(millijoules,)``."""

    def __init__(self, device: str = "cuda"):
        try:
            import pynvml
        except ImportError:
            raise Unavailable("NVML: nvidia-ml-py is not installed (pip install "
                              "nvidia-ml-py)") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError) as exc:
            raise Unavailable(f"NVML: cannot initialise: {exc}") from None
        uuid = cuda_uuid(device)
        where = uuid or f"NVML index {_index(device)} (no CUDA UUID from torch)"
        try:
            self._handle = (pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid
                            else pynvml.nvmlDeviceGetHandleByIndex(_index(device)))
            # GPUs before Volta answer "Not Supported" here.
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except pynvml.NVMLError as exc:
            pynvml.nvmlShutdown()
            raise Unavailable(f"NVML total energy of {where}: {exc}") from None
        self.method = f"NVML total energy of {where} (the whole board)"

    def read(self) -> tuple[int, ...]:
        try:
            return (int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)),)
        except self._nvml.NVMLError as exc:
            raise Unavailable(f"NVML: {exc}") from None

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        return (after[0] - before[0]) / 1e3

    def close(self) -> None:
        self._nvml.nvmlShutdown()


class RaplCounter:
    """The CPU packages' RAPL counters in powercap sysfs under ``root``. ``read`` gives
    each package's microjoules; ``joules`` sums their increments, each allowing one
    wrap-around (a reading below the one before)."""

    def __init__(self, root: Path = POWERCAP):
        root = Path(root)
        if not root.is_dir():
            raise Unavailable(f"RAPL: no {root} (no powercap here: a VM, or not Linux)")
        zones = sorted((p for p in root.iterdir() if _PACKAGE_ZONE.fullmatch(p.name)),
                       key=lambda p: int(_PACKAGE_ZONE.fullmatch(p.name).group(1)))
        self._zones = [z for z in zones if _read(z / "name").startswith("package")]
        if not self._zones:
            raise Unavailable(f"RAPL: no package zone (intel-rapl:N named package-N) "
                              f"in {root}")
        self._ranges = [int(_read(z / "max_energy_range_uj")) for z in self._zones]
        self.read()
        names = ", ".join(_read(z / "name") for z in self._zones)
        self.method = f"RAPL powercap energy_uj of {names} (whole packages, DRAM excluded)"

    def read(self) -> tuple[int, ...]:
        return tuple(int(_read(z / "energy_uj")) for z in self._zones)

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        return sum(a - b + (top if a < b else 0)
                   for b, a, top in zip(before, after, self._ranges)) / 1e6

    def close(self) -> None:
        return None


def _read(path: Path) -> str:
    """One sysfs value; a file that cannot be read, or a counter file that holds no
    count, makes the counter unavailable, with the reason."""
    try:
        text = path.read_text().strip()
    except PermissionError:
        raise Unavailable(f"RAPL: cannot read {path}: permission denied (energy_uj is "
                          "root-only since Linux 5.10: run as root or make it readable)"
                          ) from None
    except OSError as exc:
        raise Unavailable(f"RAPL: cannot read {path}: {exc.strerror or exc}") from None
    if path.name.endswith("_uj") and not text.isdigit():
        raise Unavailable(f"RAPL: {path} holds {text[:40]!r}, not a count of microjoules")
    return text


def _index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index else 0


def cuda_uuid(device: str) -> str | None:
    """NVML's name (``GPU-<uuid>``) of torch's CUDA ``device``, or None when torch cannot
    tell. NVML numbers GPUs as the driver does and CUDA as CUDA_VISIBLE_DEVICES orders
    them, so only the UUID surely names the same GPU in both."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return f"GPU-{torch.cuda.get_device_properties(device).uuid}"
    except (ImportError, AttributeError, AssertionError, RuntimeError, ValueError):
        return None


def open_counter(device: str, powercap: Path | None = None) -> Counter:
    """The energy counter of ``device`` ("cpu", "cuda", "cuda:N"; RAPL under ``powercap``,
    default ``POWERCAP``); raises ``Unavailable`` with the reason when none can be read."""
    if device.startswith("cuda"):
        return NvmlCounter(device)
    if device == "cpu":
        return RaplCounter(powercap or POWERCAP)
    raise Unavailable(f"no energy counter for device {device!r}")


@dataclass(frozen=True)
class Window:
    joules: float
    seconds: float
    steps: int


def _tick(counter: Counter) -> tuple[tuple[int, ...], float]:
    """The counter's next update and when it came (or the reading after ``TICK_WAIT_S``
    if none came). A window read between updates would miss up to an update period's
    energy at each end (5% of a 2 s window at NVML's 100 ms). Read on updates, it
    misses none; waiting for the last update adds up to a period of idle machine after
    the last step, to the joules and the seconds alike, which the net figure (idle watts
    times the seconds subtracted) takes out again."""
    first = counter.read()
    end = time.perf_counter() + TICK_WAIT_S
    while True:
        reading, now = counter.read(), time.perf_counter()
        if reading != first or now >= end:
            return reading, now


def run_window(counter: Counter, step: Callable[[], None], sync: Callable[[], None],
               min_window_s: float = MIN_WINDOW_S) -> Window:
    """Run ``step`` until ``min_window_s`` have passed, with the counter read on an update
    before the first step and after the last has finished (``sync`` waits for the
    device: without it, CUDA's clock would stop at the last launch, not its end)."""
    sync()
    before, t0 = _tick(counter)
    steps = 0
    while time.perf_counter() - t0 < min_window_s:
        step()
        steps += 1
    sync()
    after, t1 = _tick(counter)
    return Window(counter.joules(before, after), t1 - t0, steps)


def energy_fields(joules: float, seconds: float, samples: int, idle_w: float | None,
                  method: str = "") -> dict:
    """The record's ``FIELDS`` from a window: ``joules`` over ``seconds`` in which
    ``samples`` were processed, and the idle baseline (None: no net figure). The net
    figure subtracts what the machine would have used idle in the window; it is not
    clipped at 0, so noise in the baseline shows rather than hides."""
    if joules <= 0:
        return unavailable(_stalled(seconds, method))
    net = None if idle_w is None else (joules - idle_w * seconds) / samples
    return {"energy_j_per_sample": joules / samples, "energy_net_j_per_sample": net,
            "samples_per_s_per_watt": samples / joules, "energy_power_w": joules / seconds,
            "energy_idle_w": idle_w, "energy_window_s": seconds, "energy_method": method,
            "energy_error": None}


def _stalled(seconds: float, method: str) -> str:
    return f"the counter did not advance in {seconds:.2f} s ({method})"


def unavailable(reason: str) -> dict:
    """The record's ``FIELDS`` when no energy could be measured: all None but the reason."""
    return {**dict.fromkeys(FIELDS), "energy_error": reason}


def measure_energy(step: Callable[[], None], sync: Callable[[], None], device: str,
                   samples_per_step: int, idle_w: float | None,
                   min_window_s: float = MIN_WINDOW_S, counter: Counter | None = None) -> dict:
    """Energy per sample of a warmed-up ``step`` (``samples_per_step`` samples each) on
    ``device``: the record's ``FIELDS``. Runs ``step`` for at least ``min_window_s``
    between two counter readings, or not at all when ``device`` has no readable counter.
    ``counter`` (default: ``open_counter(device)``) is for a caller that holds one."""
    own = counter is None
    try:
        counter = open_counter(device) if own else counter
    except Unavailable as exc:
        return unavailable(str(exc))
    try:
        window = run_window(counter, step, sync, min_window_s)
    except Unavailable as exc:
        return unavailable(str(exc))
    finally:
        if own:
            counter.close()
    method = (f"{counter.method}: {window.seconds:.2f} s window of {window.steps} steps, "
              "read on counter updates")
    return energy_fields(window.joules, window.seconds, window.steps * samples_per_step,
                         idle_w, method)


@dataclass(frozen=True)
class Idle:
    """The idle baseline: ``watts`` over ``seconds`` by ``method``, or ``error``."""

    watts: float | None
    seconds: float | None = None
    method: str | None = None
    error: str | None = None


_IDLE: dict[str, Idle] = {}   # this process's baselines, by counter


def idle_baseline(device: str, cache: Path | None = None, seconds: float = IDLE_WINDOW_S,
                  counter: Counter | None = None) -> Idle:
    """The idle power of ``device``'s counter: measured once (``seconds`` of sleep between
    two counter updates) and kept for this process and, when ``cache`` is given, in that
    JSON file (for the run's other processes), by counter. Call it with nothing running:
    at the start of a run."""
    own = counter is None
    try:
        counter = open_counter(device) if own else counter
    except Unavailable as exc:
        return Idle(None, error=str(exc))
    try:
        if counter.method not in _IDLE and counter.method in (saved := _cached(cache)):
            _IDLE[counter.method] = Idle(**saved[counter.method])
        if counter.method in _IDLE:
            return _IDLE[counter.method]
        window = run_window(counter, lambda: time.sleep(IDLE_STEP_S), lambda: None, seconds)
    except Unavailable as exc:
        return Idle(None, error=str(exc))
    finally:
        if own:
            counter.close()
    if window.joules <= 0:
        return Idle(None, error=_stalled(window.seconds, counter.method))
    idle = _IDLE[counter.method] = Idle(window.joules / window.seconds, window.seconds,
                                        counter.method)
    if cache is not None:
        store.atomic_write_text(Path(cache), store.dumps(
            {**_cached(cache), counter.method: asdict(idle)}))
    return idle


def _cached(cache: Path | None) -> dict:
    """The baselines in ``cache`` by counter; {} when there is no such file yet, or only
    an unreadable one (then it is measured again and rewritten)."""
    try:
        return json.loads(Path(cache).read_text()) if cache else {}
    except (OSError, ValueError):
        return {}
