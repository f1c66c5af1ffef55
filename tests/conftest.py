import os
import sys

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config):
    """Under pytest-xdist, a worker's environment names it (PYTEST_XDIST_WORKER); the
    suites these tests start as subprocesses would inherit that, and pytest-benchmark
    then disables benchmarking. The subprocesses are separate runs: hide it from them."""
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


@pytest.fixture(autouse=True)
def _denormals_restored():
    """Measuring flushes denormal floats to zero for the whole process (Settings.apply);
    put it back after each test, so a later test (hypothesis' float strategies refuse to
    run under flush-to-zero) finds the process as the interpreter started it."""
    yield
    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


def pytest_collection_modifyitems(items):
    """A test that uses a fixture marked ``helpers.slow_setup`` is ``slow``. The expensive
    runs behind such fixtures are session fixtures made once through ``helpers.once``,
    whichever xdist worker asks first, while another worker that needs one waits. So the
    order is: the first user of each such fixture, then the other slow tests, then the
    rest: both workers start by making different runs (not one making, one waiting), the
    long tests go early and the short ones fill both workers' ends. (``--dist loadgroup``
    would keep a file's users of a fixture on one worker, but pytest 9.2 ignores the group
    suffix pytest-xdist 3.8 writes into node ids: pytest-xdist#1386.)"""
    makers, seen = set(), set()
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs is None:
            continue
        used = [d for name in item.fixturenames for d in defs.name2fixturedefs.get(name, ())]
        slow = [d for d in used if getattr(d.func, "slow_setup", False)]
        if slow:
            item.add_marker(pytest.mark.slow)
        if any(d not in seen for d in slow):
            makers.add(item)
            seen.update(slow)
    items.sort(key=lambda it: 0 if it in makers else 1 if it.get_closest_marker("slow") else 2)
