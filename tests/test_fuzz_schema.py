"""Hostile result files against every reader (issue 27): a valid case file with one field
made hostile (wrong type, out of range, non-finite, huge, deep) is, in a folder, skipped
with a one-line warning while the good file is read; under --strict, and when named,
refused in one line with exit 2. Never a traceback, never a wrong number. Readers:
report, advise, compare, history and scale, each through the CLI's ``main`` in process."""
import json

import pytest
import records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnets import cli
from resnets.case import Case

GOOD = Case("resnet20", "train", batch_size=16, input_shape=(3, 32, 32))
BAD = Case("resnet56", "train", batch_size=16, input_shape=(3, 32, 32))
HUGE = 10 ** 400

hostile = st.one_of(
    st.sampled_from([HUGE, -HUGE, -1, -0.5, 2 ** 64, 1e308, None, True, "", "x" * 300,
                     "\x1b]0;pwned\x07", [], {}, [1, [2, [3]]], {"a": {"b": {}}}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
)
# Where the hostile value goes: a case field, a metric, a nested timing/time field, the
# samples; "deep" nests a blob a thousand levels (RecursionError in readers before).
paths = st.sampled_from([
    ("model",), ("mode",), ("batch_size",), ("input_shape",), ("world_size",),
    ("bucket_mb",), ("workers",), ("precision",), ("params",), ("samples_per_s",),
    ("latency_s",), ("peak_memory_bytes",), ("flops_step",), ("utilization",),
    ("timing", "rounds"), ("timing", "other_cores"), ("time", "median"), ("env", "threads"),
    ("env", "cpu_model"), ("samples",), ("deep",)])


def _document(path, value) -> str:
    entry = records.store.benchmark_entry(records.speed(BAD, records.steady(0.02)))
    extra = entry["extra_info"]
    if path == ("samples",):
        entry["stats"]["data"] = value if isinstance(value, list) else [0.1, value]
    elif path == ("deep",):
        deep = 1
        for _ in range(1000):
            deep = [deep]
        extra["profile"] = {"x": deep}
    else:
        target = extra
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    doc = {"machine_info": {}, "commit_info": {}, "benchmarks": [entry], "datetime": None}
    return json.dumps(doc, allow_nan=True)


def _run(argv, capsys) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Traceback" not in out.out
    return code, out.err


def _readers(folder, out):
    return {"report": ["report", folder, "-o", out / "report"],
            "advise": ["advise", folder],
            "compare": ["compare", folder, folder],
            "history": ["history", folder, "-o", out / "history"],
            "scale": ["scale", folder, "--world-sizes", "4", "--busbw", "1GB/s"]}


def _damaged(path) -> bool:
    """Whether the schema refuses the document (the oracle: ``read_document`` +
    ``from_dict``, the one check every reader goes through)."""
    from resnets.errors import UserError
    from resnets.results import _rows, read_document

    try:
        _rows(path, read_document(path))
        return False
    except UserError:
        return True


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=paths, value=hostile, reader=st.sampled_from(["advise", "compare", "history",
                                                          "scale", "report"]))
@pytest.mark.slow
def test_a_hostile_field_is_skipped_in_a_folder_and_refused_when_named(
        path, value, reader, tmp_path_factory, capsys):
    tmp = tmp_path_factory.mktemp("fuzz")
    run = tmp / "run"
    records.write(run, records.speed(GOOD, records.steady(0.02)))
    bad = run / "cases" / "zz-hostile.json"
    bad.write_text(_document(path, value))
    damaged = _damaged(bad)
    argv = _readers(run, tmp)[reader]
    code, err = _run(argv, capsys)  # in a folder: the good case is read either way
    assert code in (0, 1), err
    assert ("skipped" in err) == damaged, err
    assert all("\x1b" not in line and "\x07" not in line for line in err.splitlines())
    code, err = _run([*argv, "--strict"], capsys)
    assert (code == 2) == damaged and (not damaged or len(err.strip().splitlines()) == 1), err
    if damaged:  # named: refused in one line
        named = ["compare", bad, bad] if reader == "compare" else [argv[0], bad, *argv[2:]]
        code, err = _run(named, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
