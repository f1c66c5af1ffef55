"""Issue 27, second hardening pass, the items on the run folder and the commands: special
files and symlink loops, options beyond what this machine can do, the run lock for every
command that writes into a run, `follow` on a run that is not going, and a run started
inside another checkout. (Git, publish, datasets and escaping: test_hardening_git.py,
test_hardening_data.py, test_escaping.py; hostile fields in result files:
test_fuzz_schema.py; the gate's hung and raising heads: test_gate.py.)"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import records
from helpers import resnets, run_cli

from resnets import runlock
from resnets.case import Case

ROOT = Path(__file__).resolve().parents[1]
CASE = Case("resnet20", "train", batch_size=16, input_shape=(3, 32, 32))


@pytest.fixture
def run(tmp_path):
    return records.write(tmp_path / "run", records.speed(CASE, records.steady(0.02)))


# --- 6: special files and symlink loops ---------------------------------------------------

@pytest.mark.parametrize("command", [["report", "{run}", "-o", "{tmp}/out"],
                                     ["compare", "{run}", "{run}"], ["advise", "{run}"]])
@pytest.mark.slow
def test_a_fifo_or_dev_zero_in_cases_is_skipped_not_read_forever(run, tmp_path, command):
    """A FIFO named cases/pipe.json blocked every reader; a symlink to /dev/zero passed
    the size check (size 0) and was read until MemoryError."""
    os.mkfifo(run / "cases" / "pipe.json")
    (run / "cases" / "zero.json").symlink_to("/dev/zero")
    argv = [a.format(run=run, tmp=tmp_path) for a in command]
    r = resnets(*argv, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "symlink" in r.stderr
    named = resnets("advise", run / "cases" / "pipe.json", timeout=30)
    assert named.returncode == 2 and "not a regular file" in named.stderr
    assert len(named.stderr.strip().splitlines()) == 1


def test_a_glob_over_a_symlink_loop_finishes(run, capsys):
    (run / "cases" / "up").symlink_to("..")
    code, out, err = run_cli(["advise", f"{run}/**"], capsys)
    assert code == 0 and "resnet20" in out


def test_a_symlink_out_of_the_run_folder_is_not_read(run, tmp_path, capsys):
    secret = tmp_path / "secret.json"
    shutil.copy(next((run / "cases").glob("*.json")), secret)
    (run / "cases" / "zz.json").symlink_to(secret)
    from resnets.results import load

    df = load([run])
    assert list(df["source"]) == [str(next(p for p in (run / "cases").glob("*.json")
                                           if not p.is_symlink()))]


# --- 8: options beyond this machine, checked before anything runs ----------------------

@pytest.mark.parametrize("args, message", [
    (["--models", "lenet", "--image-sizes", "8"], "lenet cannot take a 1x8x8 input"),
    (["--world-sizes", "1000000"], "must be <= 65,536"),
    (["--world-sizes", "64", "--models", "lenet"], "64 ranks per node on a machine with"),
    (["--threads", "100000"], "--threads 100000: this machine has"),
    (["--batch-sizes", "99999999999999999999"], "must be <= 1,048,576"),
    (["--image-sizes", "100000"], "must be <= 16,384"),
    (["-o", ""], "an empty path"),
])
def test_run_refuses_what_this_machine_cannot_do_in_one_line(args, message, capsys):
    code, _, err = run_cli(["run", "--dry-run", *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_oversubscribe_allows_more_threads_than_cores(capsys):
    code, out, err = run_cli(["run", "--dry-run", "--models", "lenet", "--threads",
                              str((os.cpu_count() or 1) + 1), "--oversubscribe",
                              "--no-convergence"], capsys)
    assert code == 0, err


def test_train_seeds_beyond_any_seed_are_a_usage_error(capsys):
    code, _, err = run_cli(["train", "lenet", "--seeds", "99999999999999999999999"], capsys)
    assert code == 2 and "must be <=" in err


def test_an_unwritable_out_is_refused_before_any_work(capsys):
    for command in (["train", "lenet"], ["profile", "lenet"], ["run", "--models", "lenet"]):
        code, _, err = run_cli([*command, "-o", "/proc/resnets-x"], capsys)
        assert code == 2 and "cannot write there" in err, (command, err)
    assert not Path("/proc/resnets-x").exists()


# --- 9: the run lock for every command that writes into a run ----------------------------

@pytest.mark.parametrize("command", [["train", "lenet", "--max-iters", "1", "-o", "{run}"],
                                     ["report", "{run}", "-o", "{run}"],
                                     ["profile", "lenet", "-o", "{run}"]])
def test_a_run_being_written_is_not_joined_by_another_command(run, command, capsys):
    with runlock.hold(run):
        argv = [a.format(run=run) for a in command]
        code, _, err = run_cli(argv, capsys)
    assert code == 2 and f"another run (PID {os.getpid()}) is writing this folder" in err


# --- 12: follow, and a run started inside another checkout -------------------------------

def test_follow_refuses_a_missing_finished_or_idle_run_at_once(tmp_path, run, capsys):
    nodes = ["--nnodes", "2", "--rdzv-endpoint", "127.0.0.1:29555"]
    code, _, err = run_cli(["follow", tmp_path / "nothing", *nodes], capsys)
    assert code == 2 and "no such run folder" in err
    code, _, err = run_cli(["follow", run, *nodes], capsys)
    assert code == 2 and "no run is writing this folder now" in err
    assert not (run / "distributed").exists()
    (run / "run-state.json").write_text("{}")
    code, _, err = run_cli(["follow", run, *nodes], capsys)
    assert code == 2 and "that run has finished" in err


def test_follow_skips_a_malformed_request_and_times_out_with_a_message(tmp_path, capsys):
    from resnets.errors import UserError
    from resnets.measure import distributed
    from resnets.measure.runner import Settings

    folder = tmp_path / "run" / distributed.FOLDER / "case"
    folder.mkdir(parents=True)
    (folder / distributed.REQUEST).write_text('{"not": "a case"}')
    with pytest.raises(UserError, match="no new case .* for 1 s; stopped following"):
        distributed.follow(folder.parent, Settings(nnodes=2), tmp_path / "run" / "state",
                           since=0, poll_s=0.05, idle_timeout_s=1)
    assert "not a case request, skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_started_inside_another_checkout_runs_this_resnets(tmp_path):
    """pytest put the working folder first on the path, so from inside another checkout
    the suite imported that checkout's resnets ("import file mismatch"). The mismatch is
    at collection, so a case that is skipped here (CUDA) tests it without measuring."""
    other = tmp_path / "checkout"
    shutil.copytree(ROOT / "resnets", other / "resnets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = Path(sys.executable).parent / "resnets"
    for i, start in enumerate(([str(script)], [sys.executable, "-m", "resnets"])):
        r = subprocess.run([*start, "run", "--models", "lenet", "--modes", "infer", "--devices",
                            "cuda", "--memory-formats", "contiguous", "--precisions", "fp32",
                            "--no-convergence", "--time-budget", "0.1", "--min-rounds", "3",
                            "--no-report", "-o", str(tmp_path / f"run{i}")], cwd=other,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "0 failed" in r.stdout
        assert len(list((tmp_path / f"run{i}" / "cases").glob("*.json"))) == 1
