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
    # pytest-xdist's `--dist load` first hands each worker a contiguous quarter of its share
    # (77 tests here): the first worker got every slow test at the front of the order below
    # and ran 150 s after the other had finished. Two at a time (and ``FromBothEnds``)
    # keeps both busy to the end.
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: absent under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` with the second worker taking tests from the far end of the order
    (``pytest_collection_modifyitems``): one works through the slow runs while the other
    runs the short tests, and they meet in the middle. Two slow runs side by side on two
    cores each run their OpenMP threads against the other's: the tests took 963 s in all
    when both workers took them from the front, 878 s like this (7:34 wall, not 8:28)."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScheduling

    class FromBothEnds(LoadScheduling):
        def _send_tests(self, node, num):
            back = self.nodes.index(node) % 2 == 1
            tests = [self.pending.pop(-1 if back else 0)
                     for _ in range(min(num, len(self.pending)))]
            if tests:
                self.node2pending[node].extend(tests)
                node.send_runtest_some(tests)

    return FromBothEnds(config, log)


@pytest.fixture
def lean_suites(monkeypatch):
    """Suites a test starts inherit its environment: no plugins they do not use."""
    from helpers import LEAN

    monkeypatch.setenv("PYTEST_ADDOPTS", f"{os.environ.get('PYTEST_ADDOPTS', '')} {LEAN}")


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
