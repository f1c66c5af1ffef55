"""A run folder's life: one writer at a time, signals stop every child and keep what was
done, a case that kills its process is recorded as crashed (not retried forever), and
the peak probe runs once per run even with isolated workers."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, LEAN, once, pytest_run, slow_setup, suite_in_process, wait_until_gone

import resnets.models  # noqa: F401 - before any in-process pytest run: pytester restores
from resnets import journal, runlock, store  # sys.modules after each; torch loads once
from resnets.schema import Status

RUN = [sys.executable, "-m", "resnets", "run", "--devices", "cpu", "--no-convergence",
       "--no-report"]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with runlock.hold(run):
        (run / "run-options.json").write_text("{}")  # what a live run has written
        for extra in (["-o", str(run)], ["--resume", str(run)]):
            r = subprocess.run([*RUN[:4], *extra], capture_output=True, text=True, timeout=120)
            assert r.returncode == 2, r.stderr
            assert f"another run (PID {os.getpid()}) is writing this folder" in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from resnets import runlock\n"
        f"with runlock.hold({str(run)!r}):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with runlock.hold(run):  # the kernel dropped the dead process's lock
        assert (run / runlock.OWNER).read_text() == str(os.getpid())


# A fresh run stopped by SIGTERM, its resume stopped by SIGINT, that one's resume killed
# outright, and a last resume that finishes: one run folder for the three ways a run is
# stopped, each stop coming while a case is measured (after a new case file, while the
# journal notes the next one), each resume measuring what the stop left. Four groups of one
# variant: one for each stop to leave written, one for the last resume. (Three separate
# runs and resumes took six launches of `resnets run`, each importing torch twice, and the
# run-state test a suite of its own; this takes four.)
CHAIN = ["--models", "lenet,lenet_bn", "--modes", "infer,train", "--memory-formats",
         "contiguous", "--precisions", "fp32", "--time-budget", "0.2", "--min-rounds", "3"]
STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]
pytestmark = pytest.mark.usefixtures("lean_suites")


def _cases(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "cases").glob("*.json"))


def _notes(run: Path) -> list[str]:
    """The journal's notes: the cases being measured (``journal.Journal.attempt``)."""
    return sorted(p.name for p in (run / journal.ATTEMPTS_DIR).glob("*.json"))


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _state(run: Path) -> dict | None:
    state = run / "run-state.json"
    return json.loads(state.read_text()) if state.is_file() else None


def _stop_and_resume(folder: Path) -> None:
    """The chain above, its facts in ``folder/chain.json`` (never raises: a stage that
    goes wrong is recorded, and the tests that read it fail, not the fixture)."""
    run = folder / "run"
    env = {**os.environ, "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} {LEAN}"}
    stages = []
    for i, signum in enumerate(STOPS):
        argv = [*RUN, *CHAIN, "-o", str(run)] if i == 0 else [
            sys.executable, "-m", "resnets", "run", "--resume", str(run), "--no-report"]
        had = set(_cases(run))
        with open(folder / f"{i}.err", "w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        stage = {"signal": int(signum), "started": time.time()}
        stages.append(stage)
        deadline = time.time() + 240
        while not set(_cases(run)) - had and time.time() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        # ...and then for the journal's note of the case measured next: the stop comes in
        # the middle of a measurement, not between two cases.
        while not set(_notes(run)) - set(_cases(run)) and time.time() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        stage["before"] = _cases(run)
        stage["measured"] = sorted(set(stage["before"]) - had)
        stage["measuring"] = (proc.poll() is None and bool(stage["measured"])
                              and bool(set(_notes(run)) - set(stage["before"])))
        stage["suite"] = _children(proc.pid)
        proc.send_signal(signum)
        try:
            stage["code"] = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stage["code"] = proc.wait()
        stage["err"] = (folder / f"{i}.err").read_text()
        stage["kept"] = _cases(run)
        deadline = time.time() + 60
        while any(map(_alive, stage["suite"])) and time.time() < deadline:
            time.sleep(0.1)
        stage["suite_alive"] = [p for p in stage["suite"] if _alive(p)]
        stage["gone"] = wait_until_gone(str(run))  # the pytest child and its workers
        stage["after"] = _cases(run)
        stage["tmp"] = [str(p) for p in run.rglob(".*.tmp")]
        stage["attempts"] = _notes(run)
        stage["state"] = _state(run)
        stage["ended"] = time.time()
        if not stage["measuring"]:
            break
    else:
        r = subprocess.run([sys.executable, "-m", "resnets", "run", "--resume", str(run),
                            "--no-report"], capture_output=True, text=True, timeout=300,
                           env=env)
        after = _cases(run)
        stages.append({"code": r.returncode, "err": r.stderr[-2000:], "after": after,
                       "measured": sorted(set(after) - set(stages[-1]["after"])),
                       "finished": sorted(store.finished_case_ids(run)),
                       "state": _state(run)})
    (folder / "chain.json").write_text(json.dumps(stages))


@pytest.fixture(scope="session")
@slow_setup
def stopped_runs(request) -> list[dict]:
    return json.loads((once(request, "test_runs-stopped", _stop_and_resume) / "chain.json")
                      .read_text())


def _resumed_after(stages: list[dict], i: int) -> None:
    """Stage ``i``'s stop is finished by the stages after it: the next one (a resume)
    measured a case the stop had left missing, and the last one finished the run."""
    assert len(stages) == len(STOPS) + 1, "a stage went wrong: " + stages[-1]["err"][-2000:]
    assert stages[i + 1]["measured"]  # its cases are those stage i left missing
    last = stages[-1]
    assert last["code"] == 0, last["err"]
    assert len(last["finished"]) == 4  # 2 models x 2 modes


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_suite_keeps_results_and_says_how_to_resume(stopped_runs, signum,
                                                                      code):
    i = STOPS.index(signum)
    stage = stopped_runs[i]
    assert stage["measuring"], "no case finished in time: " + stage["err"][-2000:]
    assert stage["code"] == code, stage["err"][-2000:]
    assert "finish with: resnets run --resume" in stage["err"]
    assert "Traceback" not in stage["err"]
    assert stage["gone"]  # the pytest child and its workers are gone...
    assert stage["after"] == stage["kept"]  # ...and wrote nothing more
    assert not stage["tmp"]
    # The suite stopped at once (pytest takes an exception other than KeyboardInterrupt
    # for one test's failure and goes on), and the case it was measuring is not left
    # "crashed"; at most the one finishing as the signal came was written after it.
    assert len(stage["kept"]) <= len(stage["before"]) + 1, (stage["before"], stage["kept"])
    assert not stage["attempts"]
    _resumed_after(stopped_runs, i)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_run_killed_outright_stops_its_suite_and_resumes(stopped_runs):
    i = STOPS.index(signal.SIGKILL)
    stage = stopped_runs[i]
    assert stage["measuring"], "no case finished in time: " + stage["err"][-2000:]
    assert stage["suite"], "resnets run has no child"
    assert stage["code"] == -signal.SIGKILL
    assert not stage["suite_alive"], "the suite outlived its killed parent"
    assert len(stage["kept"]) <= len(stage["before"]) + 1
    _resumed_after(stopped_runs, i)


def _parent_of_a_child_ignoring(tmp_path, signals: str) -> subprocess.Popen:
    """A process running ``children.run`` (1 s grace) on a bash that ignores ``signals``,
    returned once bash has set its trap; it prints the exit code and the signal."""
    trapped = tmp_path / "trapped"
    child = f"trap '' {signals}; touch {trapped}; sleep 120"
    parent = subprocess.Popen([sys.executable, "-c", (
        "from resnets import children\n"
        f"code, sig = children.run(['bash', '-c', {child!r}], grace_s=1)\n"
        "print(code, sig, flush=True)")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.time() + 60
    while not trapped.exists() and time.time() < deadline:
        time.sleep(0.1)
    return parent


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    """The signal used to arrive while the parent sat in a blocking wait, which resumed
    after the handler: the grace period never started and the child ran on."""
    parent = _parent_of_a_child_ignoring(tmp_path, "TERM")
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=60)  # far below the child's 120 s
    assert out.split() == [str(-signal.SIGKILL), str(int(signal.SIGTERM))]


def test_two_signals_at_once_still_end_in_the_exit_code_and_kill_the_group(tmp_path):
    """Ctrl-C then SIGTERM back to back: an exception raised by the first handler let the
    second one's escape from the clean-up as a traceback."""
    parent = _parent_of_a_child_ignoring(tmp_path, "TERM INT")
    os.kill(parent.pid, signal.SIGINT)
    os.kill(parent.pid, signal.SIGTERM)
    out, err = parent.communicate(timeout=60)
    assert "Traceback" not in err, err
    code, sig = out.split()
    assert code == str(-signal.SIGKILL) and int(sig) in (signal.SIGINT, signal.SIGTERM)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_child_stops_when_its_parent_is_killed_outright(tmp_path):
    """SIGKILL runs no handler of the parent: the kernel's parent-death signal stops it."""
    pidfile = tmp_path / "child.pid"
    child = (f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
             "time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys; from resnets import children\n"
        f"children.run([sys.executable, '-c', {child!r}])")])
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    assert _alive(pid)
    parent.kill()
    parent.wait()
    deadline = time.time() + 30
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the child outlived its killed parent"


CRASH = ("from resnets.suite.plugin import *  # noqa\n"
         "import os, signal\n"
         "import resnets.measure.runner as runner\n"
         "_measure = runner.run_case\n"
         "def run_case(case, settings):\n"
         "    if case.model == 'lenet_bn' and os.environ.get('CRASH'):\n"
         "        os.kill(os.getpid(), signal.SIGKILL)\n"
         "    return _measure(case, settings)\n"
         "runner.run_case = run_case\n")


def suite_in(tmp_path, *args, crash: bool):
    (tmp_path / "conftest.py").write_text(CRASH)
    (tmp_path / "test_s.py").write_text("from resnets.suite.speed import test_speed  # noqa\n")
    env = {k: v for k, v in os.environ.items() if k != "CRASH"}
    if crash:
        env["CRASH"] = "1"
    cmd = [sys.executable, "-m", "pytest", "test_s.py", "-p", "no:cacheprovider", "-c",
           os.devnull, "--rootdir", str(tmp_path), "--benchmark-only", "-q", *FAST,
           "--bench-modes", "infer", "--bench-models", "lenet,lenet_bn", "--bench-out", "run",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)


@pytest.mark.slow
def test_a_case_that_kills_its_process_is_recorded_as_crashed_and_not_retried(
        tmp_path, pytester, monkeypatch):
    r = suite_in(tmp_path, crash=True)
    assert r.returncode != 0  # the process died mid-run
    assert len(list((tmp_path / "run" / journal.ATTEMPTS_DIR).glob("*.json"))) == 1
    # The resume: lenet_bn is not attempted again (it would be measured here, and say so).
    code, out = suite_in_process(pytester, monkeypatch, *FAST, "--bench-modes", "infer",
                                 "--bench-models", "lenet,lenet_bn",
                                 "--bench-out", str(tmp_path / "run"))
    assert code == 0, out[-2000:]
    assert "1 crashed (--retry-crashed measures them again)" in out  # was "0 failed"
    assert "0 measured" in out
    crashed = store.case_ids(tmp_path / "run", {Status.CRASHED})
    assert crashed == {"lenet_bn-infer-cpu-contiguous-fp32-eager-bs64-1x28x28"}
    doc = json.loads(store.case_path(tmp_path / "run", next(iter(crashed))).read_text())
    assert "died while measuring it" in doc["benchmarks"][0]["extra_info"]["error"]
    assert store.finished_case_ids(tmp_path / "run") == {
        "lenet-infer-cpu-contiguous-fp32-eager-bs64-1x28x28"}
    r = suite_in(tmp_path, "--bench-retry-crashed", crash=False)
    assert r.returncode == 0 and "1 measured" in r.stdout, r.stdout[-2000:]
    assert len(store.finished_case_ids(tmp_path / "run")) == 2


INTERRUPT_EXTRAS = ("from resnets.suite.plugin import *  # noqa\n"
                    "import os, signal\n"
                    "import resnets.measure.maxbatch as maxbatch\n"
                    "def max_batch_size(case):\n"
                    "    os.kill(os.getpid(), signal.SIGTERM)\n"
                    "    raise AssertionError('SIGTERM did not interrupt')\n"
                    "maxbatch.max_batch_size = max_batch_size\n")


@pytest.mark.slow
def test_a_signal_during_a_cases_extras_does_not_leave_it_crashed(tmp_path):
    """The measurement is done, the max-batch search (minutes on a GPU) is interrupted:
    the case is not recorded, and on resume it is measured again, not "crashed"."""
    (tmp_path / "conftest.py").write_text(INTERRUPT_EXTRAS)
    (tmp_path / "test_s.py").write_text("from resnets.suite.speed import test_speed  # noqa\n")
    cmd = [sys.executable, "-m", "pytest", "test_s.py", "-p", "no:cacheprovider", "-c",
           os.devnull, "--rootdir", str(tmp_path), "--benchmark-only", "-q", *FAST,
           "--bench-modes", "infer", "--bench-models", "lenet", "--bench-out", "run",
           "--bench-max-batch"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode != 0 and "did not interrupt" not in r.stdout, r.stdout[-2000:]
    assert not list((tmp_path / "run" / journal.ATTEMPTS_DIR).glob("*.json"))
    assert not store.case_ids(tmp_path / "run", {Status.CRASHED})


@pytest.mark.slow
def test_isolated_cases_run_in_workers_and_reuse_the_runs_peak_probe(tmp_path):
    r = pytest_run(tmp_path, *FAST, "--bench-models", "lenet,lenet_bn", "--bench-modes", "infer",
                   "--bench-isolate", "--bench-out", str(tmp_path / "run"))
    assert r.returncode == 0 and "2 measured" in r.stdout, r.stdout[-2000:]
    peaks = json.loads((tmp_path / "run" / "peaks.json").read_text())
    assert list(peaks) == ["cpu/fp32"]
    values = {json.loads(p.read_text())["benchmarks"][0]["extra_info"]["attainable_flops_per_s"]
              for p in (tmp_path / "run" / "cases").glob("*.json")}
    assert values == {peaks["cpu/fp32"]["attainable_flops_per_s"]}


def test_run_state_says_whether_every_planned_case_was_attempted(stopped_runs):
    """A run stopped part-way says it is incomplete; its last resume, that every planned
    case was attempted (three were done before it, one measured by it)."""
    first, last = stopped_runs[0]["state"], stopped_runs[-1]["state"]
    assert first is not None and first["complete"] is False, first
    assert last["complete"] is True and last["planned"] == last["attempted"] == 4, last
