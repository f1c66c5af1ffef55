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
