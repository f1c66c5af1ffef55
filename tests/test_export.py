"""``resnets export``: each format validates against its published shape (small JSON
Schemas written from github-action-benchmark's, Bencher's and Otava's documentation),
carries the run's real numbers in the stated units and directions, and refuses what the
format cannot hold with one line and exit 2."""
import csv
import datetime as dt
import io
import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
from helpers import PAYLOADS
from records import CASE, OTHER, steady, write_run

from resnets import cli, export
from resnets.report.frame import speed
from resnets.results import load

# github-action-benchmark, README "Examples" / src/extract.ts: a JSON array of
# {name, unit, value, range?, extra?}; value a number, range and extra strings.
GAB = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["name", "unit", "value"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "unit": {"type": "string"},
                   "value": {"type": "number"}, "range": {"type": "string"},
                   "extra": {"type": "string"}}}}
# Bencher Metric Format: {benchmark: {measure: {value, lower_value?, upper_value?}}}.
METRIC = {"type": "object", "required": ["value"], "additionalProperties": False,
          "properties": {k: {"type": "number"} for k in ("value", "lower_value", "upper_value")},
          "dependentRequired": {"lower_value": ["upper_value"], "upper_value": ["lower_value"]}}
BMF = {"type": "object", "minProperties": 1, "additionalProperties": {
    "type": "object", "minProperties": 1, "additionalProperties": METRIC}}
# Otava's CSV test (otava/test_config.py create_csv_test_config, config.py test_groups).
OTAVA_TEST = {"type": "object", "required": ["type", "file", "time_column", "metrics"],
              "properties": {"type": {"const": "csv"}, "file": {"type": "string"},
                             "time_column": {"type": "string"},
                             "attributes": {"type": "array", "items": {"type": "string"}},
                             "metrics": {"type": "object", "minProperties": 1,
                                         "additionalProperties": {
                                             "type": "object", "required": ["direction"],
                                             "properties": {"direction": {"enum": [1, -1]}}}}}}
OTAVA = {"type": "object", "required": ["tests", "test_groups"],
         "properties": {"tests": {"type": "object", "additionalProperties": OTAVA_TEST},
                        "test_groups": {"type": "object", "additionalProperties": {
                            "type": "array", "items": {"type": "string"}}}}}

START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def one_run(root, name="run", k=0, extra=None, branch="main", **levels):
    """A run of CASE and OTHER (medians in seconds), committed k days after START."""
    commit = {"id": f"{k:02d}{'a' * 38}", "branch": branch,
              "time": (START + k * dt.timedelta(days=1)).isoformat()}
    medians = {CASE: levels.get("case", 0.030), OTHER: levels.get("other", 0.002)}
    return write_run(root / name, {c: steady(m, n=30, seed=k) for c, m in medians.items()},
                     commit=commit, extra=extra)


def test_gab_files_have_the_published_shape_directions_and_the_runs_numbers(tmp_path):
    run = one_run(tmp_path, extra={"utilization": 0.42})
    assert cli.main(["export", str(run), "--format", "gab", "-o", str(tmp_path / "o")]) == 0
    bigger = json.loads((tmp_path / "o" / "customBiggerIsBetter.json").read_text())
    smaller = json.loads((tmp_path / "o" / "customSmallerIsBetter.json").read_text())
    for doc in (bigger, smaller):
        jsonschema.validate(doc, GAB)
    by_name = {e["name"]: e for e in bigger + smaller}
    samples = load([run]).set_index("case_id")["samples"][CASE.id]
    step = by_name[f"{CASE.id}: step time (median)"]
    assert step in smaller and step["unit"] == "ms"
    assert step["value"] == pytest.approx(np.median(samples) * 1e3)
    tput = by_name[f"{CASE.id}: throughput"]
    assert tput in bigger and tput["unit"] == "samples/s"
    assert tput["value"] == pytest.approx(CASE.batch_size / np.median(samples))
    assert by_name[f"{CASE.id}: utilization of attainable"]["value"] == pytest.approx(42.0)
    assert by_name[f"{CASE.id}: peak memory"] in smaller
    assert "run run" in step["extra"] and "00aaaaaaaaaa" in step["extra"]


def test_bmf_has_the_published_shape_and_the_reports_95_percent_intervals(tmp_path, capsys):
    run = one_run(tmp_path)
    assert cli.main(["export", str(run), "--format", "bmf"]) == 0  # standard output
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, BMF)
    assert set(doc) == {CASE.id, OTHER.id}
    row = speed(load([run])).set_index("case_id").loc[CASE.id]
    tput, latency = doc[CASE.id]["throughput"], doc[CASE.id]["latency"]
    assert (tput["lower_value"], tput["upper_value"]) == pytest.approx(
        (row["sps_low"], row["sps_high"]))
    assert tput["lower_value"] < tput["value"] < tput["upper_value"]
    # Bencher's latency measure is in nanoseconds; the bounds are the median's own CI.
    assert latency["value"] == pytest.approx(row["time_median"] * 1e9)
    assert latency["lower_value"] == pytest.approx(row["time_median_ci95_low"] * 1e9)
    assert latency["lower_value"] <= latency["value"] <= latency["upper_value"]
    assert cli.main(["export", str(run), "--format", "bmf", "-o", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text()) == doc


def test_energy_in_joules_is_exported_smaller_is_better_when_a_case_has_it(tmp_path,
                                                                          monkeypatch):
    """Any speed metric declared in joules is energy: it joins the smaller-is-better
    file and Bencher's measures, for the cases that measured it."""
    real = export.metrics
    monkeypatch.setattr(export, "metrics", lambda record: {  # as the schema declares it
        **real(record), "energy_j_per_sample": {"unit": "J", "label": "energy per sample"},
        "energy_power_w": {"unit": "W", "label": "mean power"}})
    df = export.speed_rows([one_run(tmp_path)], one_run=True)
    df = df.assign(energy_j_per_sample=[0.5 if c == CASE.id else None for c in df["case_id"]],
                   energy_power_w=100.0)
    smaller = export.gab(df)[False]
    energy = [e for e in smaller if e["unit"] == "J/sample"]
    assert [(e["name"], e["value"]) for e in energy] == [(f"{CASE.id}: energy per sample", 0.5)]
    assert not any("power" in e["name"] for e in smaller + export.gab(df)[True])
    bmf = export.bmf(df)
    assert bmf[CASE.id]["energy-j-per-sample"] == {"value": 0.5}
    assert "energy-j-per-sample" not in bmf[OTHER.id]


def test_otava_writes_a_test_per_case_ordered_by_time_that_its_config_declares(tmp_path):
    yaml = pytest.importorskip("yaml")
    runs = tmp_path / "runs"
    # Names sort against time; the last run lacks utilization for every case.
    one_run(runs, "c", k=0, extra={"utilization": 0.5}, case=0.030)
    one_run(runs, "b", k=1, extra={"utilization": 0.5}, case=0.031)
    one_run(runs, "a", k=2, case=0.040, branch="=HYPERLINK(\"x\")")
    out = tmp_path / "otava"
    assert cli.main(["export", str(runs / "*"), "--format", "otava", "-o", str(out)]) == 0
    config = yaml.safe_load((out / "otava.yaml").read_text())
    jsonschema.validate(config, OTAVA)
    assert sorted(config["tests"]) == sorted([CASE.id, OTHER.id])
    assert config["test_groups"] == {"resnets": list(config["tests"])}
    test = config["tests"][CASE.id]
    assert test["metrics"] == {"throughput": {"direction": 1}, "step_time_ms": {"direction": -1},
                               "peak_memory_mib": {"direction": -1}}  # utilization dropped
    rows = list(csv.DictReader(io.StringIO((out / test["file"]).read_text())))
    assert list(rows[0]) == ["time", *test["attributes"], *test["metrics"]]
    assert [r["run"] for r in rows] == ["c", "b", "a"]
    times = [dt.datetime.strptime(r["time"], export.OTAVA_TIME) for r in rows]
    assert times == [START + k * dt.timedelta(days=1) for k in range(3)]
    steps = [float(r["step_time_ms"]) for r in rows]
    assert steps == pytest.approx([30.0, 31.0, 40.0], rel=0.02)
    assert rows[2]["branch"] == "'=HYPERLINK(\"x\")"  # a spreadsheet formula is made text
    assert rows[0]["commit"] == "00" + "a" * 38


def test_a_case_in_two_environments_is_two_otava_tests(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "x", {CASE: steady(0.03)}, env={"threads": 1},
              commit={"time": START.isoformat()})
    write_run(runs / "y", {CASE: steady(0.02)}, env={"threads": 2},
              commit={"time": START.isoformat()})
    tests = export.otava(export.speed_rows([runs / "*"], one_run=False))
    assert sorted(tests) == [f"{CASE.id}@env0", f"{CASE.id}@env1"]
    assert all(text.count("\n") == 2 for text, _ in tests.values())  # header + one run


@pytest.mark.parametrize("args,message", [
    (["{tmp}/runs/*", "--format", "gab"], "gab and bmf export one run"),
    (["{tmp}/runs/*", "--format", "bmf"], "2 runs given"),
    (["{tmp}/failed", "--format", "bmf"], "no successful speed results"),
    (["{tmp}/nothing", "--format", "otava"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    one_run(tmp_path / "runs", "a", k=0)
    one_run(tmp_path / "runs", "b", k=1)
    write_run(tmp_path / "failed", {OTHER: None})
    code = cli.main(["export", *[a.format(tmp=tmp_path) for a in args],
                     "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()  # nothing written


def test_export_imports_no_torch():
    code = ("import sys, resnets.export, resnets.commands.export; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_hostile_case_names_survive_otavas_config_and_stay_out_of_file_names(tmp_path):
    yaml = pytest.importorskip("yaml")

    from resnets.case import Case

    cases = [Case(f"m{p}", input_shape=(1, 8, 8)) for p in PAYLOADS]
    write_run(tmp_path / "run", {c: steady(0.01, seed=i) for i, c in enumerate(cases)},
              commit={"time": START.isoformat()})
    out = tmp_path / "otava"
    assert cli.main(["export", str(tmp_path / "run"), "--format", "otava", "-o", str(out)]) == 0
    config = yaml.safe_load((out / "otava.yaml").read_text())
    assert sorted(config["tests"]) == sorted(c.id for c in cases)
    files = [test["file"] for test in config["tests"].values()]
    assert len(set(files)) == len(files)
    assert all((out / f).parent == out and (out / f).is_file() for f in files)
    # Names that make one file name (a case "x" in two environments is "x@env0", which a
    # case "x_env0" would meet) get one file each.
    assert export.csv_names(["a|b", "a_b", "a b"]) == {"a|b": "a_b.csv", "a_b": "a_b-1.csv",
                                                       "a b": "a_b-2.csv"}
