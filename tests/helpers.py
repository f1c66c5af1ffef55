"""Helpers shared by the test modules: running the CLI (in process, or as a user would in a
subprocess), the benchmark suite in a pytest subprocess, git, and the payloads and checks
of the hostile-input tests. (Result records and runs: ``records``.)"""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

from resnets import cli as _cli
from resnets.suite import speed

SPEED = speed.__file__
FAST = ["--bench-time-budget", "0.2", "--bench-min-rounds", "3", "--bench-devices", "cpu",
        "--bench-memory-formats", "contiguous", "--bench-precisions", "fp32"]


def slow_setup(fixture):
    """Put under ``@pytest.fixture`` of a fixture whose set-up takes seconds (a real run):
    every test that uses it is then marked ``slow`` (conftest), out of the fast subset."""
    fixture.slow_setup = True
    return fixture


def once(request, name: str, make) -> Path:
    """A folder that ``make(folder)`` fills once per test session, however many xdist
    workers ask for it: the first makes it under a file lock in the session's shared
    temporary root, the others wait and reuse it. For the expensive runs behind session
    fixtures: a module fixture is made again by every worker that runs one of its users,
    and ``--dist loadgroup`` no longer keeps them together (pytest 9.2 ignores the group
    suffix pytest-xdist 3.8 writes into node ids: pytest-xdist#1386). Tests that only read
    the folder share it; a test that changes it copies it first."""
    from filelock import FileLock

    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    if hasattr(request.config, "workerinput"):  # a worker's own folder is under the session's
        base = base.parent
    folder, made = base / name, base / name / ".made"
    with FileLock(str(base / f"{name}.lock")):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


# The suites tests start need neither hypothesis' plugin nor xdist's (seconds of imports);
# ``lean_suites`` (conftest) puts this in PYTEST_ADDOPTS for the suites a test starts.
LEAN = "-p no:hypothesispytest -p no:xdist -p no:xdist.looponfail"


def suite_in_process(pytester, monkeypatch, *args, suite=SPEED) -> tuple[int, str]:
    """(exit code, output) of the suite in this process, for a run or resume that
    measures nothing (every case skipped or already done): no interpreter and torch import
    of its own. What the plugin sets for the process (the SIGTERM handler, the peak and
    energy files' variables, torch's threads) is put back after it."""
    import signal

    import torch

    for name in ("RESNETS_PEAK_FILE", "RESNETS_ENERGY_IDLE_FILE"):
        monkeypatch.setenv(name, "")  # so that the plugin's values are undone
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        r = pytester.runpytest_inprocess(suite, "-p", "resnets.suite.plugin", "-p",
                                         "no:cacheprovider", "--benchmark-only", "-q", *args)
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)
    return r.ret, "\n".join(r.outlines)


def pytest_run(tmp, *args, suite=SPEED):
    cmd = [sys.executable, "-m", "pytest", str(suite), "-p", "resnets.suite.plugin",
           "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp),
           "--benchmark-only", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=600)


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``resnets argv`` in this process: a usage error's
    SystemExit is its exit code, and no output may hold a traceback."""
    try:
        code = _cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """``resnets ARGS`` in this process, answered as a finished process is (exit code,
    stdout, stderr): for the tests of what a command says and returns, which need no
    interpreter of their own (argument errors, bad files, tables)."""
    import contextlib
    import os

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = _cli.main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(here)
    assert "Traceback" not in err.getvalue()
    return subprocess.CompletedProcess(["resnets", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


def resnets(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -m resnets ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "resnets", *map(str, args)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def wait_until_gone(marker: str, timeout: float = 60) -> bool:
    """Wait until no process's command line holds ``marker`` (a run folder): polling
    /proc, not sleeping a guess. True when none is left."""
    import os
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = False
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    alive = alive or marker.encode() in f.read()
            except OSError:
                continue
        if not alive:
            return True
        time.sleep(0.1)
    return False


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


# --- hostile input -----------------------------------------------------------------------

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
            "a\n# heading\n| x |", "[x](javascript:alert(1))", "![i](http://e.example/x.png)",
            "=cmd|' /C calc'!A0", "+1+1", "-2-2", "@SUM(A1)", "`code`*bold*", "a|b"]
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def assert_inert_markdown(text: str, source: str):
    assert "<script" not in text and "<img" not in text, source
    assert not re.search(r"(?<!\\)\[[^\]\n]*(?<!\\)\]\(", text), source  # no live links
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.startswith(("## resnets", "### ")), (source, line)
        if line.startswith("|"):  # a table row is never cut by a payload
            assert line.rstrip().endswith("|"), (source, line)


def assert_inert_csv(text: str, source: str):
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            try:
                float(cell)
                continue
            except ValueError:
                assert not cell.startswith(CSV_TRIGGERS), (source, cell)
