"""The pytest-benchmark suite end to end, in subprocesses, as users run it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAST, LEAN, SPEED, cli, once, pytest_run, slow_setup, suite_in_process

import resnets.models  # noqa: F401 - before any in-process pytest run: pytester restores
from resnets import store  # sys.modules after each, and torch's ops cannot load twice

FIELDS = {"schema_version", "samples_per_s", "peak_memory_bytes", "params", "flops_fwd",
          "flops_step", "macs_fvcore", "achieved_flops_per_s", "attainable_flops_per_s",
          "utilization", "timing", "env", "case_id", "model", "mode", "device", "memory_format",
          "precision", "compile", "batch_size", "input_shape", "memory_method", "time"}


pytestmark = pytest.mark.usefixtures("lean_suites")


def _small_run(folder: Path) -> None:
    (folder / "files").mkdir()  # what the tests read (and may add to), apart from the logs
    tmp, addopts = folder / "files", os.environ.get("PYTEST_ADDOPTS")
    os.environ["PYTEST_ADDOPTS"] = f"{addopts or ''} {LEAN}"
    try:
        r = pytest_run(tmp, *FAST, "--bench-models", "lenet,resnet20", "--bench-out",
                       str(tmp / "run"), "--benchmark-json", str(tmp / "out.json"))
    finally:
        if addopts is None:
            del os.environ["PYTEST_ADDOPTS"]
        else:
            os.environ["PYTEST_ADDOPTS"] = addopts
    (folder / "code").write_text(str(r.returncode))
    (folder / "stdout").write_text(r.stdout)
    (folder / "stderr").write_text(r.stderr)


@pytest.fixture(scope="session")
@slow_setup
def small_run(request):
    """One run of the suite for the whole session (all workers): lenet and resnet20, both
    modes. Tests that change its folder copy it first."""
    folder = once(request, "test_suite-small-run", _small_run)
    r = subprocess.CompletedProcess("pytest", int((folder / "code").read_text()),
                                    (folder / "stdout").read_text(),
                                    (folder / "stderr").read_text())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return folder / "files", r


@pytest.mark.slow
def test_small_suite_writes_complete_json(small_run):
    tmp, r = small_run
    doc = json.loads((tmp / "out.json").read_text())
    assert len(doc["benchmarks"]) == 4  # two models x two modes
    assert "resnets_env" in doc["machine_info"]
    for b in doc["benchmarks"]:
        extra = b["extra_info"]
        assert FIELDS <= set(extra), FIELDS - set(extra)
        assert {"method", "clock", "rounds", "stop_reason", "warmup_rounds", "threads",
                "budget_s"} <= set(extra["timing"])
        # pytest-benchmark's statistics are exactly our per-step samples
        assert b["stats"]["rounds"] == extra["timing"]["rounds"] == len(b["stats"]["data"])
        assert b["stats"]["median"] == pytest.approx(extra["time"]["median"])
        assert extra["samples_per_s"] == pytest.approx(extra["batch_size"] / b["stats"]["median"])
    assert "4 measured, 0 skipped, 0 failed" in r.stdout


def test_a_case_file_and_benchmark_json_give_one_answer_for_one_set_of_samples(small_run):
    """pytest-benchmark's own fields, in our per-case file, its record's statistics and
    --benchmark-json: the same numbers (they are computed by pytest-benchmark's Stats)."""
    tmp, _ = small_run
    theirs = {b["param"]: b["stats"] for b in json.loads((tmp / "out.json").read_text())[
        "benchmarks"]}
    for name, stats in theirs.items():
        ours = json.loads(store.case_path(tmp / "run", name).read_text())["benchmarks"][0]
        assert ours["stats"]["data"] == stats["data"]
        for field in ("q1", "q3", "iqr", "ld15iqr", "hd15iqr", "median", "mean", "stddev",
                      "iqr_outliers", "stddev_outliers", "ops"):
            assert ours["stats"][field] == stats[field], field
        for field in ("q1", "q3", "iqr", "median"):
            assert ours["extra_info"]["time"][field] == stats[field], field


@pytest.mark.slow
def test_each_case_is_persisted_in_its_own_file(small_run):
    tmp, _ = small_run
    files = sorted((tmp / "run" / "cases").glob("*.json"))
    assert len(files) == 4
    ids = store.finished_case_ids(tmp / "run")
    assert {f.stem for f in files} == ids
    assert not list((tmp / "run" / "cases").glob(".*.tmp"))


def test_impossible_cases_are_skipped_with_reasons(pytester, monkeypatch, tmp_path):
    code, out = suite_in_process(
        pytester, monkeypatch, "--bench-models", "lenet", "--bench-modes", "infer",
        "--bench-memory-formats", "contiguous", "--bench-precisions", "tf32,fp16",
        "--bench-devices", "cpu", "--bench-out", str(tmp_path / "run"), "-rs")
    assert code == 0, out[-2000:]
    assert "tf32 is a CUDA tensor-core math mode" in out
    assert "fp16 autocast is not benchmarked on CPU" in out
    assert "0 measured, 2 skipped" in out


@pytest.mark.slow
def test_resume_runs_only_what_is_missing(small_run, tmp_path):
    tmp, _ = small_run
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tmp / "run", run)
    (run / "cases" / "lenet-infer-cpu-contiguous-fp32-eager-bs64-1x28x28.json").unlink()
    r = pytest_run(tmp_path, *FAST, "--bench-models", "lenet,resnet20", "--bench-out", str(run))
    assert "1 measured, 0 skipped, 0 failed, 3 already done" in r.stdout, r.stdout[-2000:]
    assert len(store.finished_case_ids(run)) == 4


@pytest.mark.slow
def test_a_failing_case_is_recorded_and_the_run_goes_on(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "from resnets.suite.plugin import *  # noqa\n"
        "import resnets.measure.runner as runner\n"
        "_build = runner.build\n"
        "def build(case, seed=0, wrap=None):\n"
        "    if case.model == 'lenet_bn':\n"
        "        raise RuntimeError('injected failure')\n"
        "    return _build(case, seed, wrap)\n"
        "runner.build = build\n")
    (tmp_path / "test_s.py").write_text("from resnets.suite.speed import test_speed  # noqa\n")
    cmd = [sys.executable, "-m", "pytest", "test_s.py", "-p", "no:cacheprovider", "-c", "/dev/null",
           "--rootdir", str(tmp_path), "--benchmark-only", "-q", *FAST, "--bench-modes", "infer",
           "--bench-models", "lenet_bn,lenet", "--bench-out", "run"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 1
    assert "1 measured, 0 skipped, 1 failed" in r.stdout
    failed = json.loads(next((tmp_path / "run" / "cases").glob("lenet_bn-*.json")).read_text())
    extra = failed["benchmarks"][0]["extra_info"]
    assert extra["status"] == "failed" and "injected failure" in extra["error"]
    assert failed["benchmarks"][0]["stats"] is None
    assert store.finished_case_ids(tmp_path / "run") == {
        "lenet-infer-cpu-contiguous-fp32-eager-bs64-1x28x28"}


@pytest.mark.parametrize("args, message", [
    (["--bench-memory-formats", "nchw"], "valid: contiguous, channels_last"),
    (["--bench-precisions", "fp8"], "valid: fp32, default, tf32, bf16, fp16"),
    (["--bench-models", "resnet5"], "unknown model 'resnet5'"),
    (["--bench-preset", "huge"], "valid: quick, full"),
    (["--bench-batch-sizes", "0"], "must be >= 1"),
    (["--bench-time-budget", "-1"], "--bench-time-budget: must be > 0"),
    (["--bench-time-budget", "nan"], "must be a finite number"),
    (["--bench-rel-ci", "inf"], "must be a finite number"),
])
def test_bad_option_values_are_usage_errors(pytester, args, message):
    # In-process: usage errors come before any case runs, so no fresh interpreter is needed.
    r = pytester.runpytest_inprocess(SPEED, "-p", "resnets.suite.plugin", "--benchmark-only", *args)
    assert r.ret == 4  # pytest's usage-error exit code
    err = "\n".join(r.errlines)
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["run", "--memory-formats", "nchw"], "valid: contiguous, channels_last"),
    (["run", "--models", "resnet5O"], "unknown model 'resnet5O'"),
    (["run", "--time-budget", "0"], "--time-budget: must be > 0"),
    (["run", "--time-budget", "inf"], "must be a finite number"),
    (["run", "--resume", "gone/run"], "not a run folder"),
])
def test_run_cli_rejects_bad_input_in_one_line(args, message, tmp_path):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # no folder made (a wrong --resume once left one)


@pytest.mark.slow
def test_run_cli_measures_and_resumes(tmp_path, capfd):
    """`resnets run` in this process (its suite is its own process, as ever: no second
    torch import for the parent); the suite's output is read from the file descriptors."""
    out = tmp_path / "myrun"
    r = cli("run", "--models", "lenet", "--modes", "infer", "--memory-formats", "contiguous",
            "--precisions", "fp32", "--devices", "cpu", "--time-budget", "0.2", "--min-rounds",
            "3", "--out", str(out), "--no-report", "--no-convergence", cwd=tmp_path)
    suite = capfd.readouterr()
    assert r.returncode == 0, r.stderr[-2000:] + suite.out[-2000:] + suite.err[-2000:]
    assert len(store.finished_case_ids(out)) == 1
    # No installed plugin but pytest-benchmark and ours: pytest lists none it autoloaded.
    assert "\nplugins:" not in suite.out and "benchmark: " in suite.out, suite.out[:2000]
    r = cli("run", "--resume", str(out), "--no-report", cwd=tmp_path)
    suite = capfd.readouterr()
    assert r.returncode == 0, r.stderr[-2000:] + suite.out[-2000:]
    assert "0 measured, 0 skipped, 0 failed, 1 already done" in suite.out, suite.out[-2000:]
    r = cli("run", "--resume", str(out), "--models", "lenet", cwd=tmp_path)
    assert r.returncode == 2 and "--resume reuses" in r.stderr


@pytest.mark.slow
def test_convergence_runs_are_benchmarks_with_curves(tmp_path):
    from resnets.suite import convergence

    # One thread: on a loaded 2-core machine two OpenMP threads made LeNet steps 10-50x
    # slower, and threads do not change the curves.
    r = pytest_run(tmp_path, "--bench-experiments", "bn", "--bench-models", "lenet_bn",
                   "--bench-threads", "1", "--bench-out", str(tmp_path / "run"),
                   "--benchmark-json", str(tmp_path / "c.json"),
                   suite=convergence.__file__)
    assert r.returncode == 0, r.stdout[-2000:]
    benches = json.loads((tmp_path / "c.json").read_text())["benchmarks"]
    assert [b["extra_info"]["seed"] for b in benches] == [0, 1, 2]
    for b in benches:
        extra = b["extra_info"]
        assert extra["kind"] == "convergence" and extra["status"] == "reached"
        assert b["stats"]["rounds"] == 1 and b["stats"]["data"] == [extra["train_s_to_target"]]
        assert extra["curve"]["test_acc"][-1] >= 0.9
        # chosen as for a speed group (measure.load.choose_threads), and said why
        assert extra["timing"]["threads"] == 1
        assert extra["timing"]["threads_reason"].startswith("requested")
    assert len(store.finished_case_ids(tmp_path / "run")) == 3


def test_missing_dataset_folder_skips_with_what_to_put_where(pytester, monkeypatch, tmp_path):
    from resnets.suite import convergence

    code, out = suite_in_process(
        pytester, monkeypatch, "--bench-experiments", "degradation", "--bench-models",
        "resnet20", "--bench-dataset", "cifar10", "--bench-data-root", str(tmp_path / "nodata"),
        "--bench-out", str(tmp_path / "run"), "-rs", suite=convergence.__file__)
    assert code == 0 and "3 skipped" in out, out[-2000:]
    assert "cifar-10-batches-py" in out


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="CUDA is not available")
def test_cuda_cases_run_through_the_suite(tmp_path):
    r = pytest_run(tmp_path, "--bench-models", "resnet20", "--bench-devices", "cuda",
                   "--bench-precisions", "fp32,tf32,bf16,fp16",
                   "--bench-memory-formats", "channels_last",
                   "--bench-time-budget", "0.3", "--bench-out", str(tmp_path / "run"),
                   "--benchmark-json", str(tmp_path / "out.json"))
    assert r.returncode == 0 and "8 measured, 0 skipped" in r.stdout, r.stdout[-2000:]
    for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]:
        extra = b["extra_info"]
        assert extra["timing"]["clock"].startswith("cuda.Event")
        assert extra["peak_memory_reserved_bytes"] >= extra["peak_memory_bytes"] > 0
        assert extra["env"]["gpu_name"] and extra["attainable_flops_per_s"] > 1e12


def test_run_cli_refuses_to_mix_a_new_run_into_an_old_folder(small_run, tmp_path):
    tmp, _ = small_run
    r = cli("run", "--models", "lenet", "--out", str(tmp / "run"), cwd=tmp_path)
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--resume" in r.stderr


def test_a_glob_over_reports_skips_what_holds_no_results(small_run, tmp_path):
    import shutil

    from resnets.results import ResultsError, load

    tmp = tmp_path / "reports"  # a copy: the run is shared
    shutil.copytree(small_run[0], tmp)
    (tmp / "README.md").write_text("not a result")
    (tmp / "report-only").mkdir(exist_ok=True)
    df = load(str(tmp / "*"))  # run/ (cases), out.json; README.md and report-only/ skipped
    assert set(df["run"]) == {"run", "out"}
    with pytest.raises(ResultsError, match="no result files"):
        load(str(tmp / "*.md"))


def test_old_option_spellings_still_work_with_a_notice(pytester):
    """--bench-formats / --formats became --bench-memory-formats / --memory-formats."""
    from resnets import cli, options

    r = pytester.runpytest_inprocess(SPEED, "-p", "resnets.suite.plugin", "--benchmark-only",
                                     "--collect-only", "-q", "--bench-models", "lenet",
                                     "--bench-modes", "infer", "--bench-devices", "cpu",
                                     "--bench-precisions", "fp32",
                                     "--bench-formats", "channels_last")
    assert r.ret == 0
    assert "--bench-formats is deprecated" in "\n".join(r.errlines)
    assert any("channels_last-fp32" in line for line in r.outlines)
    args = cli.build_parser().parse_args(["run", "--formats", "contiguous"])
    assert options.values(args, "--", options.SUITE)["memory_formats"] == ("contiguous",)


def test_run_and_pytest_share_one_declaration_of_every_option():
    """Each suite option exists as --bench-X in pytest and --X in `resnets run`, and a
    value given to `run` reaches pytest unchanged."""
    from resnets import cli, options
    from resnets.commands import run

    args = cli.build_parser().parse_args(["run", "--models", "lenet,resnet20",
                                          "--image-sizes", "32", "--threads", "1",
                                          "--no-convergence", "--isolate"])
    opts = run._given(args)
    cmd = run.pytest_command(Path("x"), opts, [])
    for flag, value in (("--bench-models", "lenet,resnet20"), ("--bench-image-sizes", "32"),
                        ("--bench-threads", "1")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--no-bench-convergence" in cmd and "--bench-isolate" in cmd
    assert len({o.name for o in options.SUITE}) == len(options.SUITE)
