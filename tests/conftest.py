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
    """With ``--dist loadgroup`` (the README's test command) tests spread over the workers
    one by one, so no file's long tail holds a worker to the end; a test that uses a
    module- or session-scoped fixture of its own file stays with that file's other users
    of it (an xdist group per file), so the expensive run behind the fixture is made once.
    A test that uses a fixture marked ``helpers.slow_setup`` is ``slow``."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs is None:
            continue
        used = [d for name in item.fixturenames for d in defs.name2fixturedefs.get(name, ())]
        if any(d.scope in ("module", "session") and d.baseid
               and d.baseid.split("::")[0] == item.nodeid.split("::")[0] for d in used):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        if any(getattr(d.func, "slow_setup", False) for d in used):
            item.add_marker(pytest.mark.slow)
