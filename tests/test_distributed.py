"""Data-parallel cases under torchrun on this CPU: world size 2 with gloo (two processes
on two cores), DDP and FSDP, through `pytest bench` (and `resnets run`: the crashing rank,
two "nodes" on one machine, compiled DDP); and the projection. No speed is asserted."""
import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from helpers import cli, once, pytest_run, resnets, run_cli, slow_setup
from records import speed, steady, write

from resnets import store
from resnets.case import Case
from resnets.measure.runner import Settings, measure
from resnets.measure.timer import TimingPolicy
from resnets.report import load
from resnets.report.scaling import efficiency, parse_bandwidth, project, step_time
from resnets.schema import Status, from_dict

FAST = ["--devices", "cpu", "--modes", "train", "--memory-formats", "contiguous",
        "--precisions", "fp32", "--compile", "eager", "--no-convergence",
        "--time-budget", "0.3", "--min-rounds", "3"]


def records(run_dir):
    out = {}
    for path in (run_dir / store.CASES_DIR).glob("*.json"):
        entry = json.loads(path.read_text())["benchmarks"][0]
        r = from_dict(entry["extra_info"], (entry["stats"] or {}).get("data") or [])
        out[r.case.id] = r
    return out


SINGLE_THREAD = Settings(policy=TimingPolicy(budget_s=0.3, min_rounds=3), threads=1)
SINGLE = "resnet20-train-cpu-contiguous-fp32-eager-bs16-3x32x32"


@pytest.fixture(scope="session")
@slow_setup
def scaling_run(request):
    """DDP and FSDP at world size 2 through the suite (two torchrun launches), and the
    same case in one process with one thread (a rank's share of the cores) beside them:
    what efficiency and the projection divide by. Made once per session, whichever
    worker asks first (``once``): its tests only read the run folder, and write what they
    make (reports, tables) into their own ``tmp_path``."""
    def make(folder):
        r = pytest_run(folder, "--bench-models", "resnet20", "--bench-world-sizes", "2",
                       "--bench-strategies", "ddp,fsdp", "--bench-devices", "cpu",
                       "--bench-modes", "train", "--bench-memory-formats", "contiguous",
                       "--bench-precisions", "fp32", "--bench-time-budget", "0.3",
                       "--bench-min-rounds", "3", "--bench-out", str(folder / "run"))
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        single = measure(_case(1).single(), SINGLE_THREAD)
        store.write_case(folder / "run", store.benchmark_entry(single), {}, {})

    return once(request, "test_distributed-scaling", make) / "run"


@pytest.mark.slow
def test_world_size_and_strategy_name_the_case(scaling_run):
    got = records(scaling_run)
    assert set(got) == {SINGLE, *(f"{SINGLE}-ws2-{s}" for s in ("ddp", "fsdp"))}
    assert all(r.status == Status.OK for r in got.values())


def test_data_parallel_records_hold_what_scaling_needs(scaling_run):
    for r in (r for r in records(scaling_run).values() if r.case.strategy != "none"):
        n = r.case.world_size
        assert r.samples_per_s == pytest.approx(n * r.samples_per_s_per_device)
        assert r.grad_bytes == 4 * r.params  # fp32 gradients
        assert r.peak_memory_bytes > 0
        assert r.timing.threads == 1  # two cores over the two ranks of world size 2
        assert "slowest rank" in r.timing.method
        if n == 2:
            assert r.comm_s > 0 and r.busbw > 0
            assert ("all-reduce" if r.case.strategy == "ddp" else "reduce-scatter") in r.comm_method
        if r.case.strategy == "ddp" and n == 2:
            assert 0 <= r.comm_hidden <= 1 and r.compute_s > 0


@pytest.mark.slow
def test_a_data_parallel_record_is_timed_like_a_single_device_one(scaling_run):
    """One engine: a world-size-2 DDP case's record carries the single-device clock, stop
    rule and settings (it had its own loop: synchronized per step, a hard-coded stop
    reason, no GC policy, settings not applied)."""
    got = records(scaling_run)
    single, ddp = got[SINGLE], got[f"{SINGLE}-ws2-ddp"]
    same = ("clock", "gc", "flush_denormal", "rel_ci", "budget_s", "min_rounds", "max_rounds",
            "min_warmup_rounds", "min_warmup_s", "cudnn_benchmark", "seed", "allocator")
    assert {f: getattr(ddp.timing, f) for f in same} == {f: getattr(single.timing, f)
                                                         for f in same}
    assert ddp.timing.method.startswith(single.timing.method)
    assert ddp.timing.stop_reason in ("ci", "budget", "max_rounds")
    assert ddp.timing.warmup_rounds >= 3 and ddp.timing.first_step_s > 0
    assert ddp.env.threads == ddp.timing.threads == 1  # Settings.apply ran on the rank


def test_data_parallel_cases_take_compile_and_real_inputs_where_pytorch_does():
    compiled = dataclasses.replace(_case(2), compile="compile")
    assert compiled.unsupported_reason() is None
    assert dataclasses.replace(_case(2, "fsdp"), compile="compile").unsupported_reason() is None
    assert dataclasses.replace(_case(2), input="real", workers=2).unsupported_reason() is None
    assert "recipe" in dataclasses.replace(_case(2), device="cuda",
                                           compile="cudagraph").unsupported_reason()


@pytest.fixture(scope="session")
@slow_setup
def two_nodes_compiled(request):
    """One launch for two tests (each would start its own torchrun chain, 30-60 s of
    interpreters, imports and gloo set-up on this CPU): a compiled DDP case (lenet) on
    two "nodes" on this machine, one rank each, through a c10d rendezvous; the first node
    runs the suite, the second (``resnets follow``) follows. Inductor writes scalar C++
    (TORCHINDUCTOR_VEC_ISA_OK=0), which compiles several times faster than its
    vectorized kernels: what is tested is the engine around the compiler, not the
    kernels. Both commands' exit codes and output are kept in the folder."""
    def make(folder):
        run = folder / "run"
        nodes = ["--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
        env = {**os.environ, "TORCHINDUCTOR_VEC_ISA_OK": "0"}
        follower = subprocess.Popen([sys.executable, "-m", "resnets", "follow", str(run),
                                     *nodes, "--wait", "120"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            r = resnets("run", "--models", "lenet", "--world-sizes", "2", *FAST[:-4],
                        "--compile", "compile", "--time-budget", "20", "--rel-ci", "0.5",
                        *nodes, "--threads", "1", "-o", run, "--no-report", env=env,
                        timeout=600)
            out, err = follower.communicate(timeout=120)
        finally:
            follower.kill()
            follower.wait()
        (folder / "commands.json").write_text(json.dumps({
            "run": [r.returncode, r.stdout, r.stderr],
            "follow": [follower.returncode, out, err]}))

    folder = once(request, "test_distributed-two-nodes-compiled", make)
    return folder / "run", json.loads((folder / "commands.json").read_text())


@pytest.mark.slow
def test_a_compiled_ddp_case_runs_and_stops_on_its_confidence_interval(two_nodes_compiled):
    """torch.compile around DDP (gloo, 2 ranks) through the engine: the compiler's time is
    recorded, each rank compiles into a fresh cache, and with a loose CI target the ranks
    stop together on "ci"."""
    run, commands = two_nodes_compiled
    code, out, err = commands["run"]
    assert code == 0, out[-2000:] + err[-2000:]
    (rec,) = records(run).values()
    assert rec.status == Status.OK, rec.error
    assert rec.case.compile == "compile" and rec.case.strategy == "ddp"
    assert rec.timing.stop_reason == "ci" and rec.timing.compile_s > 0
    assert rec.timing.compile_cache.startswith("cold")


def test_efficiency_is_computed_against_world_size_one(scaling_run):
    eff = efficiency(load([scaling_run]))
    assert len(eff) == 2 and set(eff["world_size"]) == {2}
    for _, row in eff.iterrows():
        assert row["eff_low"] < row["efficiency"] < row["eff_high"]
        assert row["reference"] == SINGLE  # per-device throughput over the one process's


def test_report_shows_scaling_table_and_plot(scaling_run, capsys, tmp_path):
    report = tmp_path / "report"
    code, _, err = run_cli(["report", scaling_run, "-o", report], capsys)
    assert code == 0, err
    table = pd.read_csv(report / "tables" / "scaling.csv")
    assert set(table["world size"]) == {2} and set(table["strategy"]) == {"ddp", "fsdp"}
    assert (report / "plots" / "scaling.png").stat().st_size > 10_000
    page = (report / "index.html").read_text()
    assert '<section id="scaling"><h2>Data-parallel scaling: efficiency' in page
    assert '<section id="scaling-plot"><h2>Data-parallel scaling: throughput' in page


def test_scale_projects_and_sets_prediction_beside_measurement(scaling_run, capsys,
                                                               tmp_path):
    code, out, err = run_cli(["scale", scaling_run, "--world-sizes", "2,8", "--csv",
                              tmp_path / "scale.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "scale.csv")
    at2 = table[table["world_size"] == 2]
    assert len(at2) == 2 and at2["measured_step_s"].notna().all()
    assert at2["error"].notna().all()
    assert set(table["world_size"]) == {2, 8}
    assert "measured at 2" in out


@pytest.mark.slow
def test_a_crashing_rank_is_a_recorded_one_line_failure(tmp_path):
    """Rank 1 dies at start-up: torchrun stops rank 0 at once (no hang on the process
    group), the case is recorded as failed, and the error says which rank."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import os
        if os.environ.get("RANK") == "1":
            os._exit(7)
    """))
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = resnets("run", "--models", "lenet", "--world-sizes", "2", *FAST,
                "-o", tmp_path / "run", "--no-report", env=env, timeout=300)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    (rec,) = records(tmp_path / "run").values()
    assert rec.status == Status.FAILED
    assert rec.error.startswith("rank 1 exited with code 7") and "\n" not in rec.error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_write_one_run(two_nodes_compiled):
    """Two "nodes" on this machine, one rank each, through a c10d rendezvous: the first
    runs the suite, the second follows; the run folder holds one result per case."""
    run, commands = two_nodes_compiled
    code, out, err = commands["run"]
    assert code == 0, out[-2000:] + err[-2000:]
    code, out, err = commands["follow"]
    assert code == 0, err[-2000:]
    (rec,) = records(run).values()
    assert rec.status == Status.OK and rec.case.world_size == 2
    assert "torchrun exit 0" in out


RANK_STEPS = """
import json, sys, time, torch, torch.distributed as dist
from resnets.measure.distributed import RankZeroDecides
from resnets.measure.timer import TimingPolicy, time_block, time_step
rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
step = lambda: time.sleep(0.001 if rank == 0 else 0.02)  # one rank 20x slower
agree = RankZeroDecides(torch.device("cpu"))
timed = time_step(step, "cpu", TimingPolicy(budget_s=0.3, min_rounds=3, warmup_s=0.1), agree)
block = time_block(step, "cpu", 0.2, 3, agree)
open(out, "w").write(json.dumps([timed.warmup_rounds, timed.measurement.rounds,
                                 timed.stop_reason, len(block)]))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_every_rank_takes_the_same_number_of_timed_steps(tmp_path):
    """On its own clock a fast rank would take many more steps than a slow one, and in a
    real case its extra steps' collectives would wait for partners that never come."""
    procs = [subprocess.Popen([sys.executable, "-c", RANK_STEPS, str(rank),
                               str(tmp_path / "store"), str(tmp_path / f"r{rank}")])
             for rank in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    counts = [json.loads((tmp_path / f"r{rank}").read_text()) for rank in (0, 1)]
    assert counts[0] == counts[1], counts  # warm-up, timed rounds, stop reason, block
    assert counts[0][1] >= 3 and counts[0][3] >= 3


def test_nodes_options_are_checked(tmp_path):
    """One line, exit 2, and no run folder left behind (it was, with a 'resume' hint)."""
    r = cli("run", "--world-sizes", "2", "--nnodes", "2", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "--rdzv-endpoint" in r.stderr
    r = cli("run", "--world-sizes", "3", "--nnodes", "2", "--rdzv-endpoint", "h:1", *FAST,
                cwd=tmp_path)
    assert r.returncode == 2 and "does not split over 2 nodes" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir())
    r = cli("follow", "run", "--nnodes", "2", "--rdzv-endpoint", "nohost")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


def test_fsdp_with_channels_last_is_skipped_with_the_reason():
    """FSDP2 refused channels-last weights at run time (NotImplementedError on rank 0);
    the case is now skipped before any process starts, and says why."""
    case = _case(2, "fsdp")
    assert case.unsupported_reason() is None
    reason = dataclasses.replace(case, memory_format="channels_last").unsupported_reason()
    assert "non-contiguous" in reason
    assert _case(2).unsupported_reason() is None  # DDP takes channels-last


# --- the projection, on made-up records --------------------------------------------------

def _case(n, strategy="ddp"):
    return Case("resnet20", "train", "cpu", batch_size=16, input_shape=(3, 32, 32),
                world_size=n, strategy=strategy)


def test_step_time_is_compute_plus_exposed_ring_cost():
    step, comm = step_time(0.1, 1e9, 4, "ddp", busbw=1e10)
    assert comm == pytest.approx(2 * 3 / 4 * 0.1)
    assert step == pytest.approx(0.1 + comm)
    assert step_time(0.1, 1e9, 4, "ddp", 1e10, hidden=1.0)[0] == pytest.approx(0.1)
    assert step_time(0.1, 1e9, 4, "fsdp", 1e10)[1] == pytest.approx(1.5 * comm)
    assert step_time(0.1, 1e9, 1, "ddp", 1e10) == (0.1, 0.0)


def test_projection_from_world_size_one_and_a_given_bandwidth(tmp_path):
    write(tmp_path, speed(_case(1), steady(0.1), grad_bytes=10**8))
    table = project(load([tmp_path]), [8, 64], busbw=parse_bandwidth("10GB/s"))
    assert list(table["world_size"]) == [8, 64]
    at8 = table.iloc[0]
    assert at8["step_s"] == pytest.approx(0.1 + 2 * 7 / 8 * 0.01, rel=0.02)
    assert at8["efficiency"] == pytest.approx(at8["compute_s"] / at8["step_s"])
    assert pd.isna(at8["measured_step_s"])


def test_projection_uses_measured_bandwidth_and_reports_its_error(tmp_path):
    write(tmp_path, speed(_case(1), steady(0.1), grad_bytes=10**8),
          speed(_case(2), steady(0.16, seed=1), grad_bytes=10**8, busbw=2e9, comm_hidden=0.5))
    table = project(load([tmp_path]), [4])
    at2 = table[table["world_size"] == 2].iloc[0]
    assert at2["busbw_from"] == "measured at 2" and at2["hidden"] == 0.5
    assert at2["step_s"] == pytest.approx(0.1 + 0.5 * 0.05, rel=0.03)
    assert at2["error"] == pytest.approx(at2["step_s"] / at2["measured_step_s"] - 1)


def test_scale_shows_each_rows_basis_when_they_differ(tmp_path):
    """Two models measured at different bandwidths: each row says its own (one line below
    the table described every row with the first model's figures)."""
    other = dataclasses.replace(_case(1), model="resnet56")
    write(tmp_path, speed(_case(1), steady(0.1), grad_bytes=10**8),
          speed(_case(2), steady(0.16, seed=1), grad_bytes=10**8, busbw=2e9, comm_hidden=0.5),
          speed(other, steady(0.2, seed=2), grad_bytes=10**8),
          speed(dataclasses.replace(other, world_size=2, strategy="ddp"), steady(0.3, seed=3),
                grad_bytes=10**8, busbw=5e8, comm_hidden=0.1))
    r = cli("scale", tmp_path, "--world-sizes", "4")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()
            if line.startswith(("resnet20 ", "resnet56 "))}
    assert "2 GB/s (measured at 2)" in rows["resnet20"] and "50%" in rows["resnet20"]
    assert "500 MB/s (measured at 2)" in rows["resnet56"] and "10%" in rows["resnet56"]
    assert r.stdout.strip().splitlines()[-1] == "latency 0 us"
    one = cli("scale", tmp_path, "--world-sizes", "4", "--busbw", "1GB/s", "--hidden", "0")
    assert one.stdout.strip().splitlines()[-1].startswith("busbw 1 GB/s (given), hidden 0%")


@pytest.mark.parametrize("text, value", [("200GB/s", 2e11), ("25 GiB/s", 25 * 2**30),
                                         ("1.5e9", 1.5e9)])
def test_bandwidth_parses(text, value):
    assert parse_bandwidth(text) == pytest.approx(value)


@pytest.mark.parametrize("args, message", [
    (["--busbw", "fast"], "expected a number of bytes/s"),
    (["--busbw=-1GB/s"], "must be a positive number"),
    (["--hidden", "2"], "between 0 and 1"),
    (["--world-sizes", "0"], "must be >= 1"),
])
def test_scale_rejects_bad_input_in_one_line(tmp_path, args, message):
    write(tmp_path, speed(_case(1), steady(0.1), grad_bytes=10**8))
    r = cli("scale", tmp_path, *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_scale_without_a_bandwidth_says_what_is_missing(tmp_path):
    write(tmp_path, speed(_case(1), steady(0.1), grad_bytes=10**8))
    r = cli("scale", tmp_path)
    assert r.returncode == 2 and "bus bandwidth" in r.stderr
