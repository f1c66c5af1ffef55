"""``resnets history``: change points are found where the level moves (several per series,
each with its run, size, interval and p-value; with a plot), lone outliers and real
run-to-run noise are not shifts, environments never share a series, bad input exits 2."""
import html
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import PAYLOADS, assert_inert_markdown
from records import (
    CASE,
    DAY,
    OTHER,
    RESNET18,
    START,
    noise_series,
    steady,
    write_cases,
    write_run,
)
from scipy import stats as scipy_stats

from resnets import cli
from resnets.case import Case
from resnets.history import Options, history
from resnets.history.analysis import detect
from resnets.stats import t_quantile, t_two_sided_p


def write_history(root, levels, env=None, case=CASE, names=None):
    """One run per level (relative to 30 ms), committed a day apart."""
    for k, level in enumerate(levels):
        commit = {"id": f"{k:02d}{'c' * 38}", "time": (START + k * DAY).isoformat()}
        name = names[k] if names else f"run{k:02d}"
        write_run(root / name, {case: steady(0.030 * level, n=30, spread=0.02, seed=k)},
                  env=env, commit=commit)
    return root


def test_a_persistent_slowdown_is_flagged_with_a_plot(tmp_path, capsys):
    write_history(tmp_path / "runs", [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.25, 1.26, 1.24])
    out = tmp_path / "out"
    assert cli.main(["history", str(tmp_path / "runs" / "*"), "-o", str(out)]) == 1
    text = capsys.readouterr().out
    assert "regression" in text and "from run run06" in text and "FAIL" in text
    md = (out / "history.md").read_text()
    assert md.startswith("### Benchmark history: FAIL") and CASE.id in md
    png = list(out.glob("*.png"))
    assert len(png) == 1 and png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[0].name in md


def test_slowdowns_of_10_and_25_percent_on_some_models_are_found_where_they_start(tmp_path):
    """16 runs, 2% between runs: resnet20 slows 25% and lenet 10% from run 11 on,
    resnet18 not at all. Each shift is at run 11, its interval holds the true change,
    and the command fails (a recent slowdown)."""
    step = [1.0] * 11 + [1.0] * 5
    write_cases(tmp_path / "runs", {CASE: [1.0] * 11 + [1.25] * 5, OTHER: [1.0] * 11 + [1.1] * 5,
                                    RESNET18: step}, noise=0.02, seed=3)
    found = {s.case_id: s for s in history([tmp_path / "runs" / "*"])}
    assert found[RESNET18.id].shifts == []
    for case, true in ((CASE, 1.25), (OTHER, 1.10)):
        [shift] = found[case.id].shifts
        assert shift.start == 11 and shift.kind == "regression" and shift.recent
        assert shift.low < true < shift.high and shift.low < shift.ratio < shift.high
        assert shift.p < 0.01
    assert cli.main(["history", str(tmp_path / "runs" / "*"), "-o", str(tmp_path / "o")]) == 1


def test_unchanged_runs_show_no_shift(tmp_path):
    """Three cases, 14 runs of unchanged code with 5% between runs (a quiet CPU)."""
    write_cases(tmp_path, {c: [1.0] * 14 for c in (CASE, OTHER, RESNET18)}, noise=0.05,
                seed=4)
    assert all(s.shifts == [] for s in history([tmp_path / "*"]))


@pytest.mark.parametrize("levels,starts,kinds", [
    ([1.0] * 6 + [1.15] * 3 + [1.35] * 5, [6, 9], ["regression", "regression"]),
    ([1.0] * 6 + [1.3] * 3 + [1.0] * 5, [6, 9], ["regression", "improvement"]),
])
def test_two_shifts_three_runs_apart_are_two_shifts(tmp_path, levels, starts, kinds):
    """A staircase and a bump: each step is its own change point, with its own size."""
    write_cases(tmp_path, {CASE: levels}, noise=0.01, seed=5)
    [series] = history([tmp_path / "*"])
    assert [s.start for s in series.shifts] == starts
    assert [s.kind for s in series.shifts] == kinds
    for s in series.shifts:
        true = levels[s.start] / levels[s.start - 1]
        assert s.low < true < s.high


def test_persist_is_the_fewest_runs_at_a_new_level(tmp_path):
    write_cases(tmp_path, {CASE: [1.0] * 8 + [1.3] * 2}, noise=0.01, seed=6)
    assert [s.start for s in history([tmp_path / "*"])[0].shifts] == [8]
    assert history([tmp_path / "*"], Options(persist=3))[0].shifts == []


def test_the_t_distribution_matches_scipy():
    for df in (1, 2, 3, 4, 7, 12, 31):
        for t in (0.0, 0.4, 1.5, 2.2, 4.0, 12.0):
            assert t_two_sided_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(t, df),
                                                         abs=1e-12)
        assert t_quantile(0.975, df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-9)


def test_a_lone_outlier_is_not_a_shift(tmp_path):
    write_history(tmp_path, [1.0, 1.01, 0.99, 1.4, 1.0, 1.02, 0.98, 1.0, 1.01])
    [series] = history([tmp_path / "*"])
    assert series.shifts == [] and not series.unconfirmed


def test_the_newest_run_alone_out_is_unconfirmed_and_does_not_fail(tmp_path):
    write_history(tmp_path, [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.3])
    [series] = history([tmp_path / "*"])
    assert series.shifts == [] and series.unconfirmed
    assert cli.main(["history", str(tmp_path / "*"), "-o", str(tmp_path / "o")]) == 0


def test_an_old_shift_is_reported_but_does_not_fail(tmp_path):
    write_history(tmp_path, [1.0, 1.0, 1.35, 1.35, 1.34, 1.36, 1.35, 1.35, 1.34, 1.35])
    [series] = history([tmp_path / "*"])
    assert [(s.start, s.kind, s.recent) for s in series.shifts] == [(2, "regression", False)]
    assert series.failing == []


def test_a_revert_is_a_shift_back(tmp_path):
    write_history(tmp_path, [1.0, 1.0, 1.0, 1.3, 1.3, 1.3, 1.0, 1.0])
    [series] = history([tmp_path / "*"])
    assert [s.kind for s in series.shifts] == ["regression", "improvement"]


def test_runs_are_ordered_by_commit_time_not_by_name(tmp_path):
    names = [f"z{9 - k}" for k in range(8)]  # names sort in reverse time order
    write_history(tmp_path, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 1.3], names=names)
    [series] = history([tmp_path / "*"])
    assert list(series.points["run"]) == names
    assert [s.start for s in series.shifts] == [6]


def test_environments_never_share_a_series(tmp_path):
    write_history(tmp_path, [1.0] * 4, env={"threads": 2}, names=[f"a{k}" for k in range(4)])
    write_history(tmp_path, [1.6] * 4, env={"threads": 1}, names=[f"b{k}" for k in range(4)])
    found = history([tmp_path / "*"])
    assert sorted(s.env.split("threads=")[1] for s in found) == ["1", "2"]
    assert all(s.shifts == [] for s in found)


def test_real_run_to_run_noise_raises_no_alarm():
    """200 series of 12 runs drawn from real repeated runs (shared 2-core VM, ~5% between
    runs; H100, 0.1-15% by case): at most 1% may show a level shift."""
    rng = np.random.default_rng(5)
    flagged = sum(bool(detect(s, Options()).shifts)
                  for name in ("noise_cpu.json", "noise_cuda.json")
                  for s in noise_series(name, 100, rng))
    assert flagged <= 2


@pytest.mark.parametrize("name,step", [("noise_cpu.json", 1.4), ("noise_cuda.json", 1.1)])
def test_a_step_in_real_noise_is_found(name, step):
    """Sensitivity where the noise allows it: a 40% step on the shared CPU VM (6% between
    runs), 10% on the H100's compute-bound cases (0.1-0.7%)."""
    rng = np.random.default_rng(6)
    stable = 0.01 if "cuda" in name else 1.0
    found = [detect(s, Options()).shifts
             for s in noise_series(name, 50, rng, step, max_shift=stable)]
    assert sum(any(sh.start == 8 and sh.kind == "regression" for sh in f) for f in found) >= 45


@pytest.mark.parametrize("args,message", [
    (["{tmp}/nothing-here"], "no such file"),
    (["{tmp}/runs/*", "--persist", "0"], "--persist: must be >= 1"),
    (["{tmp}/runs/*", "--threshold", "0"], "--threshold: must be > 0"),
    (["{tmp}/failed/*"], "no successful speed results"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    write_history(tmp_path / "runs", [1.0, 1.0])
    write_run(tmp_path / "failed" / "r", {OTHER: None})
    r = subprocess.run([sys.executable, "-m", "resnets", "history",
                        *[a.format(tmp=tmp_path) for a in args], "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


# --- the page --------------------------------------------------------------------------

def bisect_doc(first_bad, change=1.24, low=1.2, high=1.28):
    return {"first_bad": first_bad, "change": change, "low": low, "high": high}


def test_the_page_shows_every_series_the_shifts_with_commits_and_bisect_results(tmp_path):
    runs = tmp_path / "runs"
    write_cases(runs, {CASE: [1.0] * 8 + [1.25] * 4, OTHER: [1.0] * 12}, noise=0.01, seed=7)
    # One answer in the first slowed run's folder, one from --bisect (which wins).
    (runs / "run08" / "bisect.json").write_text(json.dumps(
        {CASE.id: bisect_doc("08" + "c" * 38), OTHER.id: bisect_doc("ffffffffffff")}))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({OTHER.id: bisect_doc("0123456789abcdef", 1.01, 0.99, 1.03)}))
    out = tmp_path / "out"
    assert cli.main(["history", str(runs / "*"), "-o", str(out), "--bisect", str(extra)]) == 1
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    text = re.sub(r'src="[^"]*"', 'src=""', page)  # the page without its images' bytes
    assert "<script" not in text and "http" not in text  # nothing runs, nothing is fetched
    assert len(re.findall(r'class="spark"', page)) == 2  # a sparkline per series
    assert len(sources) == 3  # and the trend plot of the series with a shift
    shifts = page[page.index('id="shifts"'):page.index('id="series"')]
    assert CASE.id in shifts and OTHER.id not in shifts
    assert "08cccccccc" in shifts  # the commit of the first run at the new level
    assert "+24.0% (+20.0% to +28.0%)" in shifts  # the bisection's culprit and its change
    table = page[page.index('id="series"'):]
    assert "0123456789" in table and "ffffffffff" not in page  # --bisect won for OTHER
    assert "08cccccccc +24.0%" in (out / "history.md").read_text()


def test_hostile_names_are_text_in_the_page(tmp_path):

    runs = tmp_path / "runs"
    cases = {Case(f"m{i}{p}", input_shape=(1, 8, 8)): [1.0] * 6 + [1.3] * 3
             for i, p in enumerate(PAYLOADS[:2])}
    write_cases(runs, cases, noise=0.01, seed=8)
    (runs / "run06" / "bisect.json").write_text(json.dumps(
        {c.id: bisect_doc(PAYLOADS[1]) for c in cases}))
    out = tmp_path / "out"
    assert cli.main(["history", str(runs / "*"), "-o", str(out)]) == 1
    page = (out / "index.html").read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*(javascript|http)""", page, re.I)
    for case in cases:
        assert html.escape(case.id) in page
    assert_inert_markdown((out / "history.md").read_text(), "history.md")


@pytest.mark.parametrize("content,message", [
    ("not json", "not JSON"),
    ('["a"]', "an object of case ids"),
    ('{"c": {"first_bad": "abc", "change": "fast", "low": 1, "high": 2}}', "positive ratios"),
    ('{"c": {"change": 1.1, "low": 1, "high": 1.2}}', "needs first_bad"),
])
def test_a_bad_bisect_file_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    write_history(tmp_path / "runs", [1.0, 1.0])
    (tmp_path / "b.json").write_text(content)
    code = cli.main(["history", str(tmp_path / "runs" / "*"), "-o", str(tmp_path / "o"),
                     "--bisect", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
