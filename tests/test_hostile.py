"""Hostile input never wins: random, binary, truncated and oversized files give one line
and exit 2 (never a traceback), and text from result files is inert in every output
(Markdown, HTML, CSV) whatever it holds."""
import json
import re

import pytest
import records
from helpers import PAYLOADS, assert_inert_csv, assert_inert_markdown
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnets import cli, results
from resnets.case import Case
from resnets.schema import Env, SpeedResult, Status

COMMANDS = {"report": lambda f, tmp: ["report", f, "-o", str(tmp / "out")],
            "compare": lambda f, tmp: ["compare", f, f],
            "history": lambda f, tmp: ["history", f, "-o", str(tmp / "out")]}


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


documents = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=500).map(str.encode),
    st.recursive(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True),
                           st.integers(), st.text(max_size=20)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=12), inner,
                                                         max_size=5)),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.builds(lambda extra: json.dumps({"benchmarks": [{"extra_info": extra,
                                                        "stats": {"data": [0.1]}}]}).encode(),
              st.dictionaries(st.sampled_from(["schema_version", "kind", "status", "model",
                                               "mode", "batch_size", "input_shape", "time",
                                               "timing", "env", "samples_per_s"]),
                              st.one_of(st.integers(), st.text(max_size=8), st.none(),
                                        st.lists(st.integers(), max_size=3),
                                        st.dictionaries(st.text(max_size=5), st.integers(),
                                                        max_size=2)),
                              max_size=11)),
)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=documents)
def test_any_file_is_a_result_or_one_line_and_exit_2(command, content, tmp_path, capsys):
    path = tmp_path / "in.json"
    path.write_bytes(content)
    code, err = run_cli(COMMANDS[command](path, tmp_path), capsys)
    assert code in (0, 1, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_truncated_and_oversized_files(tmp_path, capsys, monkeypatch):
    good = records.write(tmp_path / "run", records.speed(
        Case("lenet", input_shape=(1, 28, 28)), records.steady(0.01)))
    text = next((good / "cases").glob("*.json")).read_text()
    for cut in (1, len(text) // 3, len(text) - 2):
        (tmp_path / "cut.json").write_text(text[:cut])
        code, err = run_cli(["report", tmp_path / "cut.json", "-o", tmp_path / "o"], capsys)
        assert code == 2 and "not valid JSON" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(results, "MAX_FILE_BYTES", 100)
    code, err = run_cli(["compare", next((good / "cases").glob("*.json")), good], capsys)
    assert code == 2 and "larger than" in err


def test_a_corrupt_case_in_a_run_folder_is_skipped_and_counted(tmp_path, capsys):
    run = records.write(tmp_path / "run", *(records.speed(
        Case(m, input_shape=(1, 28, 28)), records.steady(0.01)) for m in ("lenet", "lenet_bn")))
    (run / "cases" / "broken.json").write_bytes(b"\x00\xff\x00 not json")
    code, err = run_cli(["report", run, "-o", tmp_path / "out"], capsys)
    assert code == 0 and "skipped" in err and "broken.json" in err
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "1 result file could not be read" in summary
    code, err = run_cli(["report", run, "-o", tmp_path / "o2", "--strict"], capsys)
    assert code == 2 and "broken.json" in err


# --- text from result files is inert in every output --------------------------------

def hostile_runs(tmp_path):
    """Two runs whose model names, errors and CPU model carry the payloads."""
    out = []
    for k, level in enumerate((1.0, 1.5)):
        recs = []
        for i, payload in enumerate(PAYLOADS):
            case = Case(f"m{i}{payload}", input_shape=(1, 8, 8))
            r = records.speed(case, records.steady(0.01 * level, seed=i + k),
                              {"cpu_model": payload})
            recs.append(r)
        recs.append(SpeedResult(case=Case(f"f{PAYLOADS[0]}", input_shape=(1, 8, 8)),
                                status=Status.FAILED, error="; ".join(PAYLOADS),
                                env=Env(cpu_model=PAYLOADS[2])))
        out.append(records.write(tmp_path / f"run{k}", *recs,
                                 commit={"id": f"{k}" * 40, "time": f"2026-01-0{k + 1}T00:00:00"}))
    return out


def test_payloads_are_inert_in_report_compare_and_history(tmp_path, capsys):
    base, cand = hostile_runs(tmp_path)
    assert run_cli(["report", base, cand, "-o", tmp_path / "report"], capsys)[0] == 0
    report = tmp_path / "report"
    assert_inert_markdown((report / "summary.md").read_text(), "summary.md")
    for md in (report / "tables").glob("*.md"):
        assert_inert_markdown(md.read_text(), md.name)
    for page in [report / "index.html", *(report / "tables").glob("*.html")]:
        html = page.read_text()
        assert "<script" not in html and "<img src=x" not in html, page.name
        # a payload is text, never a link, an image or anything the browser fetches
        assert not re.search(r"""(href|src)\s*=\s*["']?\s*(javascript|http)""", html,
                             re.I), page.name
    for path in [report / "results.csv", *(report / "tables").glob("*.csv")]:
        assert_inert_csv(path.read_text(), path.name)
    code, _ = run_cli(["compare", base, cand, "--markdown", tmp_path / "c.md",
                       "--allow-env-mismatch"], capsys)
    assert code in (0, 1)
    assert_inert_markdown((tmp_path / "c.md").read_text(), "compare.md")
    code, _ = run_cli(["history", base, cand, "-o", tmp_path / "hist"], capsys)
    assert code in (0, 1)
    assert_inert_markdown((tmp_path / "hist" / "history.md").read_text(), "history.md")
