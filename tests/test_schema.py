"""The result record: round trips, type checks on hostile values, schema 1 files still load
(the committed reference reports), and field names live in the schema only."""
import json
import re
from pathlib import Path

import pytest
import records

from resnets.case import Case
from resnets.compare import compare
from resnets.report import load, write_report
from resnets.schema import (
    SCHEMA_VERSION,
    ConvergenceResult,
    SchemaError,
    SpeedResult,
    Status,
    columns,
    from_dict,
    metrics,
)

ROOT = Path(__file__).resolve().parents[1]
V1 = Path(__file__).parent / "data" / "schema_v1"
H100 = ROOT / "reports" / "reference-h100"
CASE = Case("resnet20", "train", batch_size=16, input_shape=(3, 32, 32))


def raw(path: Path) -> dict:
    return json.loads(path.read_text())["benchmarks"][0]


def test_speed_record_round_trips_through_json():
    r = records.speed(CASE, records.steady(0.01), flops_fwd=123, utilization=0.5)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["schema_version"] == SCHEMA_VERSION and d["kind"] == "speed"
    assert d["case_id"] == CASE.id and d["time"]["median"] == r.time.median
    assert from_dict(d, r.samples) == r


def test_convergence_record_round_trips_and_names_its_trial():
    r = records.convergence(CASE, 3, Status.REACHED, iters_to_target=40, train_s_to_target=1.5,
                            curve={"iters": [20, 40], "test_acc": [0.5, 0.95]})
    again = from_dict(json.loads(json.dumps(r.to_dict())), r.samples)
    assert again == r and again.name == f"{CASE.id}-synthetic-seed3"
    assert again.benchmark_s == 1.5 and again.row()["trial_id"] == again.name


def test_non_finite_numbers_are_written_as_null():
    r = records.speed(CASE, records.steady(0.01), utilization=float("nan"),
                      profile={"x": [float("inf")]})
    d = r.to_dict()
    assert d["utilization"] is None and d["profile"] == {"x": [None]}
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("change, message", [
    ({"samples_per_s": "fast"}, "samples_per_s: expected a number"),
    ({"params": 1.5}, "params: expected a whole number"),
    ({"params": True}, "params: expected a number"),
    ({"memory_method": {"a": 1}}, "memory_method: expected text"),
    ({"timing": [1, 2]}, "timing: expected an object"),
    ({"time": {"median": "x"}}, "median: expected a number"),
    ({"profile": "not an object"}, "profile: expected an object"),
    ({"kind": "latency"}, "unknown kind 'latency'"),
    ({"status": "great"}, "bad case or status"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"schema_version": 99}, "unknown schema_version 99"),
])
def test_a_mistyped_field_is_a_schema_error_naming_it(change, message):
    d = {**records.speed(CASE, records.steady(0.01)).to_dict(), **change}
    with pytest.raises(SchemaError, match=re.escape(message)):
        from_dict(d, [0.01])


def test_samples_must_be_non_negative_finite_seconds():
    d = records.speed(CASE, records.steady(0.01)).to_dict()
    for bad in (["x"], [-1.0], [float("nan")], "1,2", [True]):
        with pytest.raises(SchemaError, match="stats.data"):
            from_dict(d, bad)


def test_every_record_column_is_a_frame_column():
    r = records.speed(CASE, records.steady(0.01))
    assert list(r.row()) == columns(SpeedResult)
    assert set(columns(ConvergenceResult)) <= set(columns())
    assert {"time_median", "timing_rounds", "env_torch", "trial_id"} <= set(columns())


def test_compare_gates_on_the_metrics_the_schema_marks():
    from resnets.compare.verdict import EXACT_METRICS, THRESHOLD_METRICS

    assert set(EXACT_METRICS) == set(metrics(SpeedResult, gate="exact")) >= {"params", "flops_step"}
    assert THRESHOLD_METRICS == ("peak_memory_bytes", "package_bytes")  # deploy size, too


# --- schema 1 (the committed reference reports) --------------------------------------

def test_schema_1_speed_and_convergence_files_load():
    df = load(V1).set_index("case_id")
    speed_file = next(V1.glob("resnet18-*.json"))
    old = raw(speed_file)["extra_info"]
    row = df.loc[old["case_id"]]
    assert row["samples_per_s"] == old["samples_per_s"]
    assert row["time_median"] == old["time_median"]  # flat time_* -> the time record
    assert row["timing_threads"] == old["timing"]["settings"]["threads"]  # settings -> timing
    assert row["timing_min_warmup_rounds"] == old["timing"]["settings"]["warmup_rounds"]
    assert row["timing_first_step_s"] == old["timing"]["first_step_s"]
    assert len(row["samples"]) == len(raw(speed_file)["stats"]["data"])
    conv_file = next(V1.glob("lenet_bn-*.json"))
    old = raw(conv_file)["extra_info"]
    conv = load(conv_file).iloc[0]
    assert conv["status"] == Status.REACHED and conv["iters_to_target"] == old["iters_to_target"]
    # upgraded to today's naming (the experiment in the id), so v1 and v2 runs match
    assert conv["trial_id"] == old["run_id"].replace("-digits-", "-digits-bn-")
    assert old["timing"]["train_s"] in conv["timing_method"]  # the text notes are kept
    assert conv["train_s"] == old["train_s"]


@pytest.mark.slow
def test_the_committed_h100_reference_loads_compares_and_reports(tmp_path):
    df = load(H100)
    files = sorted((H100 / "cases").glob("*.json"))
    assert len(df) == len(files)
    old = raw(next(f for f in files if f.name.startswith("resnet50-train-cuda-channels_last-bf16")))
    row = df.set_index("case_id").loc[old["extra_info"]["case_id"]]
    assert row["samples_per_s"] == old["extra_info"]["samples_per_s"]
    assert row["peak_memory_bytes"] == old["extra_info"]["peak_memory_bytes"]
    assert row["env_gpu_name"] == old["extra_info"]["env"]["gpu_name"]
    result = compare([H100], [H100])
    assert result.exit_code == 0 and set(result.counts()) == {"unchanged"}
    out = write_report([H100], tmp_path / "report")
    assert "NVIDIA H100" in (out / "index.html").read_text()


# --- field names live in the schema --------------------------------------------------

def test_kind_and_status_are_named_only_in_the_schema():
    """Every other module names them through ``schema`` constants, so the record's
    fields have one home."""
    offenders = []
    for path in (ROOT / "resnets").rglob("*.py"):
        if path.name == "schema.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""["'](status|kind)["']""", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
