"""Energy per sample without hardware: RAPL from fake powercap files, NVML from a fake
``pynvml`` module, and time from a fake clock, so the arithmetic (counter deltas,
wrap-around, several domains, the windows' ends on counter updates, the idle baseline)
and every "unavailable" reason are checked exactly on any CPU."""
import json
import math
import sys
import types

import pytest

from resnets.measure import energy

RANGE_UJ = 262_143_328_850   # a real package's max_energy_range_uj


def zone(root, name, label, uj, top=RANGE_UJ):
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(f"{label}\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{top}\n")
    return d


@pytest.fixture
def powercap(tmp_path):
    """A two-package machine as sysfs shows it: each package, its subzones (also linked at
    the top level), a platform (psys) zone and the MMIO copy of package 0, none of
    which may be added to the packages."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type: no energy_uj
    zone(root, "intel-rapl:0", "package-0", 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 400_000)
    zone(root, "intel-rapl:0:1", "dram", 300_000)
    zone(root, "intel-rapl:1", "package-1", 5_000_000)
    zone(root, "intel-rapl:1:0", "core", 900_000)
    zone(root, "intel-rapl:2", "psys", 9_000_000)
    zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000)
    return root


def set_uj(root, name, uj):
    (root / name / "energy_uj").write_text(f"{uj}\n")


def test_rapl_reads_and_sums_the_packages_only(powercap):
    counter = energy.RaplCounter(powercap)
    assert counter.read() == (1_000_000, 5_000_000)
    assert "package-0, package-1" in counter.method and "psys" not in counter.method
    before = counter.read()
    for name, uj in [("intel-rapl:0", 3_500_000), ("intel-rapl:1", 6_000_000),
                     ("intel-rapl:0:0", 2_000_000), ("intel-rapl:2", 99_000_000),
                     ("intel-rapl-mmio:0", 50_000_000)]:
        set_uj(powercap, name, uj)
    assert counter.joules(before, counter.read()) == pytest.approx(2.5 + 1.0)


def test_rapl_wrap_around_adds_the_range_per_package(powercap):
    set_uj(powercap, "intel-rapl:0", RANGE_UJ - 100)
    counter = energy.RaplCounter(powercap)
    before = counter.read()
    set_uj(powercap, "intel-rapl:0", 50)           # wrapped: 100 + 50 uJ
    set_uj(powercap, "intel-rapl:1", 5_000_070)    # did not: 70 uJ
    assert counter.joules(before, counter.read()) == pytest.approx(220e-6, abs=1e-12)


def test_rapl_packages_in_numeric_order(tmp_path):
    for k in (10, 2):
        zone(tmp_path, f"intel-rapl:{k}", f"package-{k}", k)
    assert energy.RaplCounter(tmp_path).read() == (2, 10)


def test_rapl_unavailable_reasons(tmp_path, powercap, monkeypatch):
    def reason(root):
        with pytest.raises(energy.Unavailable) as info:
            energy.RaplCounter(root)
        return str(info.value)

    assert reason(tmp_path / "absent") == f"RAPL: no {tmp_path / 'absent'} (no powercap " \
                                           "here: a VM, or not Linux)"
    only_psys = tmp_path / "psys-only"
    zone(only_psys, "intel-rapl:0", "psys", 1)
    assert "no package zone" in reason(only_psys)
    set_uj(powercap, "intel-rapl:1", "not a number")
    assert "intel-rapl:1/energy_uj holds 'not a number'" in reason(powercap)
    (powercap / "intel-rapl:1" / "energy_uj").unlink()
    (powercap / "intel-rapl:1" / "energy_uj").mkdir()
    assert "intel-rapl:1/energy_uj: Is a directory" in reason(powercap)

    # Since Linux 5.10 energy_uj is root-only (and a root test run can read a chmod 0 file).
    real = energy.Path.read_text

    def denied(path, *args, **kw):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(energy.Path, "read_text", denied)
    assert "permission denied (energy_uj is root-only since Linux 5.10" in reason(powercap)


def test_energy_fields_gross_net_and_efficiency():
    fields = energy.energy_fields(joules=300.0, seconds=2.0, samples=1000, idle_w=50.0,
                                  method="m")
    assert fields == {"energy_j_per_sample": 0.3,
                      "energy_net_j_per_sample": pytest.approx((300 - 50 * 2) / 1000),
                      "samples_per_s_per_watt": pytest.approx((1000 / 2) / (300 / 2)),
                      "energy_power_w": 150.0, "energy_idle_w": 50.0, "energy_window_s": 2.0,
                      "energy_method": "m", "energy_error": None}
    assert set(fields) == set(energy.FIELDS)
    no_idle = energy.energy_fields(300.0, 2.0, 1000, None)
    assert no_idle["energy_net_j_per_sample"] is None and no_idle["energy_j_per_sample"] == 0.3
    # Noise in the baseline shows: a net below zero is kept, not clipped.
    assert energy.energy_fields(100.0, 2.0, 10, 60.0)["energy_net_j_per_sample"] == -2.0


def test_a_counter_that_did_not_advance_is_unavailable():
    fields = energy.energy_fields(0.0, 2.0, 1000, 50.0, method="RAPL x")
    assert fields == {**dict.fromkeys(energy.FIELDS),
                      "energy_error": "the counter did not advance in 2.00 s (RAPL x)"}


class World:
    """Fake time, and a machine drawing ``idle_w`` watts, or ``busy_w`` during a step,
    whose counter reports its energy (``reported``, then ``on_update()``) only at updates
    every ``period`` seconds. Every look at the clock costs 10 us, so waiting loops end."""

    def __init__(self, idle_w=60.0, busy_w=300.0, period=0.1, start=0.037, on_update=None):
        self.idle_w, self.busy_w, self.period = idle_w, busy_w, period
        self.t, self.joules, self.reported = start, 0.0, 0.0
        self.next_update = (math.floor(start / period) + 1) * period
        self.busy_s, self.on_update = 0.0, on_update

    def advance(self, seconds, watts):
        end = self.t + seconds
        while self.next_update <= end:
            self.joules += (self.next_update - self.t) * watts
            self.t, self.reported = self.next_update, self.joules
            self.next_update += self.period
            if self.on_update:
                self.on_update()
        self.joules += (end - self.t) * watts
        self.t = end

    def perf_counter(self):
        self.advance(1e-5, self.idle_w)
        return self.t

    def sleep(self, seconds):
        self.advance(seconds, self.idle_w)

    def step(self, seconds=0.013):
        self.advance(seconds, self.busy_w)
        self.busy_s += seconds


def use_world(monkeypatch, **kw) -> World:
    w = World(**kw)
    monkeypatch.setattr(energy, "time", types.SimpleNamespace(perf_counter=w.perf_counter,
                                                              sleep=w.sleep))
    monkeypatch.setattr(energy, "_IDLE", {})
    return w


@pytest.fixture
def world(monkeypatch):
    return use_world(monkeypatch)


class NVMLError(Exception):
    pass


def fake_pynvml(world, calls, init_error=None, energy_error=None):
    """A ``pynvml`` module with what NvmlCounter uses; the counter in millijoules."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError

    def init():
        if init_error:
            raise NVMLError(init_error)
        calls.append("init")

    def total_energy(handle):
        assert handle in ("by-uuid", "by-index-0")
        if energy_error:
            raise NVMLError(energy_error)
        return round(world.reported * 1e3)

    m.nvmlInit = init
    m.nvmlShutdown = lambda: calls.append("shutdown")
    m.nvmlDeviceGetHandleByUUID = lambda uuid: calls.append(uuid) or "by-uuid"
    m.nvmlDeviceGetHandleByIndex = lambda i: calls.append(i) or f"by-index-{i}"
    m.nvmlDeviceGetTotalEnergyConsumption = total_energy
    return m


@pytest.fixture
def nvml(world, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(world, calls))
    monkeypatch.setattr(energy, "cuda_uuid", lambda device: "GPU-1234")
    return calls


def test_cuda_path_net_energy_per_sample_from_the_nvml_counter(world, nvml):
    """Idle baseline first, then a window of 13 ms steps of 32 samples at 300 W: the net
    figure is the steps' own (300 - 60) W exactly, though the counter moves only every
    100 ms and the window starts between updates; the gross one holds the idle tail."""
    idle = energy.idle_baseline("cuda")
    assert idle.watts == pytest.approx(60.0, rel=1e-4) and idle.seconds >= 2.0
    assert "NVML total energy of GPU-1234" in idle.method
    world.busy_s = 0.0
    syncs = []
    fields = energy.measure_energy(world.step, lambda: syncs.append(world.t), "cuda",
                                   samples_per_step=32, idle_w=idle.watts)
    samples = round(world.busy_s / 0.013) * 32
    assert fields["energy_error"] is None and len(syncs) == 2
    assert fields["energy_net_j_per_sample"] == pytest.approx(
        (300 - 60) * world.busy_s / samples, rel=1e-4)
    assert fields["energy_window_s"] >= 2.0
    gross = fields["energy_j_per_sample"]
    assert 300 * world.busy_s / samples < gross < 300 * world.busy_s / samples * 1.05
    assert fields["samples_per_s_per_watt"] == pytest.approx(1 / gross)
    assert 0.95 * 300 < fields["energy_power_w"] < 300
    assert "GPU-1234" in fields["energy_method"] and "steps" in fields["energy_method"]
    assert nvml.count("init") == nvml.count("shutdown") == 2   # each opened counter closed


def test_windows_read_between_updates_would_be_off(world, nvml, monkeypatch):
    """Why the window's ends wait for an update: read at once, halfway between updates,
    the net energy of the same steps is off by 2-3% (the counter's 100 ms in ~2 s)."""
    def net_error(window):
        return (window.joules - 60 * window.seconds) / (240 * world.busy_s) - 1

    counter = energy.NvmlCounter("cuda")
    world.busy_s = 0.0
    assert abs(net_error(energy.run_window(counter, world.step, lambda: None))) < 1e-4
    monkeypatch.setattr(energy, "_tick", lambda c: (c.read(), energy.time.perf_counter()))
    world.sleep((0.05 - world.t) % world.period)
    world.busy_s = 0.0
    assert net_error(energy.run_window(counter, world.step, lambda: None)) < -0.02


def test_the_window_syncs_before_each_reading(world, nvml):
    events = []
    counter = energy.NvmlCounter("cuda")
    read = counter.read
    counter.read = lambda: events.append("read") or read()
    energy.run_window(counter, lambda: (events.append("step"), world.step()),
                      lambda: events.append("sync"), min_window_s=0.1)
    first, last = events.index("step"), len(events) - events[::-1].index("step") - 1
    assert events[0] == "sync" and "step" not in events[:first] and \
        set(events[1:first]) == {"read"}
    assert events[last + 1] == "sync" and set(events[last + 2:]) == {"read"}


def test_nvml_by_index_when_torch_names_no_uuid(world, nvml, monkeypatch):
    monkeypatch.setattr(energy, "cuda_uuid", lambda device: None)
    counter = energy.NvmlCounter("cuda")
    assert 0 in nvml and "NVML index 0 (no CUDA UUID from torch)" in counter.method


@pytest.mark.parametrize("where,reason", [
    ("init", "NVML: cannot initialise: Driver Not Loaded"),
    ("energy", "NVML total energy of GPU-1234: Not Supported"),
])
def test_nvml_failures_are_unavailable_and_nothing_runs(world, monkeypatch, where, reason):
    calls = []
    errors = {"init_error": "Driver Not Loaded"} if where == "init" else \
        {"energy_error": "Not Supported"}
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(world, calls, **errors))
    monkeypatch.setattr(energy, "cuda_uuid", lambda device: "GPU-1234")
    fields = energy.measure_energy(nothing_may_run, nothing_may_run, "cuda", 32, 60.0)
    assert fields == {**dict.fromkeys(energy.FIELDS), "energy_error": reason}
    assert calls.count("init") == calls.count("shutdown")
    assert energy.idle_baseline("cuda") == energy.Idle(None, error=reason)


def nothing_may_run():
    raise AssertionError("ran without a counter")


def test_without_nvidia_ml_py_nothing_runs(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)   # import pynvml raises ImportError
    fields = energy.measure_energy(nothing_may_run, nothing_may_run, "cuda", 32, None)
    assert fields["energy_error"] == ("NVML: nvidia-ml-py is not installed (pip install "
                                      "nvidia-ml-py)")
    assert all(fields[k] is None for k in energy.FIELDS if k != "energy_error")


def test_cpu_without_powercap_nothing_runs(world, tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "absent")
    fields = energy.measure_energy(nothing_may_run, nothing_may_run, "cpu", 32, None)
    assert fields["energy_error"].startswith(f"RAPL: no {tmp_path / 'absent'}")
    assert energy.idle_baseline("cpu").error == fields["energy_error"]
    assert energy.measure_energy(nothing_may_run, nothing_may_run, "mps", 1, None)[
        "energy_error"] == "no energy counter for device 'mps'"


def test_cpu_path_through_rapl_files(powercap, monkeypatch):
    """The RAPL counter in a window: the fake machine's energy written to the package
    files every millisecond, three quarters to package 0 (which wraps around inside the
    window), a quarter to package 1. The net figure is the steps' own, exactly."""
    def write():
        uj = round(world.reported * 1e6)
        set_uj(powercap, "intel-rapl:0", (RANGE_UJ - 1_000_000 + uj * 3 // 4) % RANGE_UJ)
        set_uj(powercap, "intel-rapl:1", 5_000_000 + uj // 4)

    world = use_world(monkeypatch, period=0.001, on_update=write)
    write()
    monkeypatch.setattr(energy, "POWERCAP", powercap)
    fields = energy.measure_energy(world.step, lambda: None, "cpu", 8, 60.0,
                                   min_window_s=0.5)
    assert fields["energy_error"] is None and "package-0, package-1" in fields["energy_method"]
    samples = round(world.busy_s / 0.013) * 8
    assert fields["energy_net_j_per_sample"] == pytest.approx(240 * world.busy_s / samples,
                                                              rel=1e-3)


def test_a_counter_that_never_moves_is_unavailable(world, powercap, monkeypatch):
    monkeypatch.setattr(energy, "TICK_WAIT_S", 0.01)   # each end waits this long for an update
    counter = energy.RaplCounter(powercap)
    fields = energy.measure_energy(world.step, lambda: None, "cpu", 8, None, counter=counter)
    assert fields["energy_error"].startswith("the counter did not advance in 2.")


def test_idle_baseline_measured_once_then_from_process_and_file(world, nvml, tmp_path,
                                                                monkeypatch):
    cache = tmp_path / "idle.json"
    cache.write_text(json.dumps({"another counter": {"watts": 5.0, "seconds": 2.0,
                                                     "method": "another counter",
                                                     "error": None}}))
    first = energy.idle_baseline("cuda", cache=cache)
    t = world.t
    assert energy.idle_baseline("cuda", cache=cache) == first and world.t - t < 0.01
    monkeypatch.setattr(energy, "_IDLE", {})   # another process of the run
    assert energy.idle_baseline("cuda", cache=cache) == first and world.t - t < 0.01
    saved = json.loads(cache.read_text())
    assert set(saved) == {"another counter", first.method}
    assert saved[first.method]["watts"] == pytest.approx(60.0, rel=1e-4)
    monkeypatch.setattr(energy, "_IDLE", {})
    cache.write_text("{half a file")   # unreadable: measured again and rewritten
    assert energy.idle_baseline("cuda", cache=cache).watts == pytest.approx(60.0, rel=1e-4)
    assert world.t - t >= 2.0 and first.method in json.loads(cache.read_text())
