"""The report: tables, plots, HTML/Markdown, CLI errors, from a real (small) suite run.

The speed results come from running the suite on LeNet for real, once per module. The
convergence results are synthetic test fixtures written through ``store.write_case``:
made-up curves with known medians, not measurements.
"""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import records
from helpers import once, slow_setup

from resnets import store
from resnets.case import Case
from resnets.report import (
    cases_table,
    convergence_table,
    layer_table,
    load,
    models_table,
    speedup_matrix,
    torchvision_table,
    write_report,
)
from resnets.schema import Status
from resnets.suite import speed as speed_suite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(1)</script>"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "resnets", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
@slow_setup
def run_dir(request) -> Path:
    """A real run: the suite on LeNet, CPU, 8 cases, as small a budget as it takes (made
    once per session; tests that change it copy it)."""
    def make(tmp):
        cmd = [sys.executable, "-m", "pytest", speed_suite.__file__, "-p",
               "resnets.suite.plugin", "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir",
               str(tmp), "--benchmark-only", "--bench-models", "lenet", "--bench-devices", "cpu",
               "--bench-time-budget", "0.2", "--bench-min-rounds", "3", "--bench-out",
               str(tmp / "run"), "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    return once(request, "test_report-lenet-run", make) / "run"


@pytest.fixture(scope="module")
def df(run_dir):
    return load(run_dir)


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory) -> Path:
    return write_report([run_dir], tmp_path_factory.mktemp("report") / "out")


def copy_run(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest)
    return dest


def rewrite(path: Path, change) -> None:
    """Edit a result file's document in place: ``change(doc)`` mutates it."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def case_files(run: Path) -> list[Path]:
    return sorted((run / store.CASES_DIR).glob("*.json"))


# --- loading -------------------------------------------------------------------------

@pytest.mark.slow
def test_one_row_per_case_with_config_metrics_and_environment(df):
    assert len(df) == 8  # 2 modes x 2 formats x 2 precisions
    assert set(df["status"]) == {"ok"} and set(df["kind"]) == {"speed"}
    for col in ("model", "mode", "device", "memory_format", "precision", "compile", "batch_size",
                "input_shape", "variant", "case_id", "samples_per_s", "time_median",
                "peak_memory_bytes", "flops_fwd", "utilization", "timing_method", "timing_clock",
                "env_torch", "env_cpu_model", "samples", "run", "run_time"):
        assert col in df, col
    assert df["samples"].map(len).ge(3).all()
    assert (df["input_shape"] == "1x28x28").all()


# --- tables --------------------------------------------------------------------------

def _paired_speedup(variant, base) -> float:
    """The speed-up of two cases timed side by side, recomputed here: the median over
    rounds of the ratio of the baseline's block median to the variant's."""
    def medians(row):
        edges = np.cumsum([0, *row["blocks"]])
        return [np.median(row["samples"][a:b]) for a, b in zip(edges[:-1], edges[1:])]
    return float(np.exp(np.median(np.log(np.array(medians(base)) / np.array(medians(variant))))))


def test_speedups_are_ratios_of_the_underlying_throughputs(df):
    """Each variant of a group was timed side by side with its baseline: its speed-up is
    the ratio of their block medians round by round, not of two overall medians."""
    m = speedup_matrix(df)
    assert len(m) == 2 and set(m["mode"]) == {"infer", "train"}
    variants = [c for c in m.columns if c not in ("model", "mode", "device", "batch",
                                                  "input size")]
    assert variants[0] == "contiguous-fp32-eager" and len(variants) == 4
    rows = df.set_index(["mode", "variant"])
    assert rows["pair"].nunique() == 2  # one group per mode
    for _, row in m.iterrows():
        base = rows.loc[(row["mode"], variants[0])]
        for v in variants[1:]:
            assert row[v] == pytest.approx(_paired_speedup(rows.loc[(row["mode"], v)], base))


def test_speedup_tables_have_a_row_per_measured_group_only(tmp_path):
    """Two models at their own input size and batch: two rows, not the 2x2x2 product of
    the keys' values (the committed reference once showed lenet at 3x224x224, all dashes)."""
    from records import speed, steady, write

    from resnets.report.tables import speedup_display, speedups

    recs = []
    for model, batch, shape, t in (("lenet", 64, (1, 28, 28), 0.01),
                                   ("resnet20", 16, (3, 32, 32), 0.05)):
        for fmt, f in (("contiguous", 1.0), ("channels_last", 0.8)):
            case = Case(model, "infer", "cpu", memory_format=fmt, batch_size=batch,
                        input_shape=shape)
            recs.append(speed(case, steady(t * f, seed=len(recs))))
    frame = load(write(tmp_path / "run", *recs))
    for table in (speedup_matrix(frame), speedup_display(speedups(frame))):
        assert len(table) == 2, table
        assert list(table["model"]) == ["lenet", "resnet20"]
    assert speedup_matrix(frame)["channels_last-fp32-eager"].tolist() == pytest.approx(
        [1.25, 1.25], rel=0.02)


@pytest.mark.slow
def test_other_baseline_divides_by_that_variant(df):
    m = speedup_matrix(df, "channels_last-fp32-eager")
    assert list(m.columns)[5] == "channels_last-fp32-eager"
    assert (m["channels_last-fp32-eager"] == 1.0).all()


def test_models_table_has_size_cost_best_throughput_and_memory_at_the_baseline(df):
    from resnets.text import nbytes

    t = models_table(df).set_index("mode")
    assert list(t.index) == ["infer", "train"] and (t["params"] == "61,706").all()
    assert (t["forward FLOPs/sample"] == "833 kFLOP").all()
    best_infer = df[df["mode"] == "infer"]["samples_per_s"].max()
    assert t.loc["infer", "best samples/s (95%)"].startswith(f"{best_infer:,.0f} (")
    row = df[(df["mode"] == "infer") & (df["variant"] == "contiguous-fp32-eager")].iloc[0]
    assert t.loc["infer", "peak memory (baseline variant)"] == (
        f"{nbytes(row['peak_memory_bytes'])} at contiguous-fp32-eager, bs64")


def test_torchvision_pairs_tv_cases_with_ours(run_dir, tmp_path):
    assert torchvision_table(load(run_dir)).empty
    run = copy_run(run_dir, tmp_path / "run")
    src = next(p for p in case_files(run) if "contiguous-fp32" in p.name and "infer" in p.name)
    tv = src.with_name("tv_" + src.name)
    shutil.copy(src, tv)

    def as_torchvision(doc):
        info = doc["benchmarks"][0]["extra_info"]
        info.update(model="tv_lenet", case_id="tv_" + info["case_id"],
                    samples_per_s=info["samples_per_s"] / 2)
    rewrite(tv, as_torchvision)
    t = torchvision_table(load(run))
    assert len(t) == 1 and t.loc[0, "model"] == "lenet" and t.loc[0, "torchvision"] == "tv_lenet"
    assert t.loc[0, "ours / torchvision (95%)"].startswith("2×")
    assert t.loc[0, "verdict"] in ("ours faster", "within noise")


def test_layer_table_keeps_the_slowest_leaf_layers(run_dir, tmp_path):
    """Rows shaped as resnets.profiling writes them (made-up times)."""
    run = copy_run(run_dir, tmp_path / "run")
    layers = [{"module": "features", "type": "Sequential", "leaf": False, "time_ms": 9.0,
               "fwd_ms": 9.0, "flops_fwd": 8e6, "flops_per_s": 8e6 / 9e-3, "share": 0.9}]
    layers += [{"module": f"features.{i}", "type": "Conv2d", "leaf": True,
                "time_ms": 0.1 * (i + 1), "fwd_ms": 0.1 * (i + 1), "flops_fwd": 1e6 * (i + 1),
                "flops_per_s": 1e10, "share": 0.01 * (i + 1)} for i in range(12)]
    rewrite(case_files(run)[0], lambda doc: doc["benchmarks"][0]["extra_info"].update(
        profile={"layers": layers, "ops": [], "profile_method": "made-up profile"}))
    df = load(run)
    t = layer_table(df, top=5)
    assert list(t["layer"]) == [f"features.{i}" for i in (11, 10, 9, 8, 7)]
    assert t.loc[0, "time ms"] == pytest.approx(1.2)
    assert t.loc[0, "forward MFLOPs"] == pytest.approx(12)
    assert t.loc[0, "% of step"] == pytest.approx(12)
    assert t.loc[0, "forward GFLOP/s"] == pytest.approx(10)
    out = write_report(run, tmp_path / "out")
    page = (out / "index.html").read_text()
    assert "features.11" in page and "made-up profile" in page


# --- convergence (synthetic fixtures) ------------------------------------------------

def write_convergence(run: Path, model: str, seed: int, status: str, iters_to_target,
                      tau: float, target: float = 0.9) -> None:
    """A synthetic convergence result shaped as ``resnets train`` writes it: accuracy
    1 - exp(-iters / tau) at 10 evaluations."""
    iters = list(range(0, 1000, 100))
    acc = [1 - math.exp(-i / tau) for i in iters]
    reached = status == "reached"
    case = Case(model, "train", batch_size=32, input_shape=(3, 32, 32))
    records.write(run, records.convergence(
        case, seed, Status(status), target=target,
        iters_to_target=iters_to_target if reached else None,
        samples_to_target=32 * iters_to_target if reached else None,
        train_s_to_target=iters_to_target / 100 if reached else None,
        total_s_to_target=iters_to_target / 80 if reached else None,
        best_acc=max(acc), final_acc=acc[-1], iters_run=iters[-1], train_s=iters[-1] / 100,
        hyperparams={"optimizer": "SGD", "lr": 0.1, "momentum": 0.9},
        curve={"iters": iters, "test_acc": acc, "train_acc": acc,
               "train_loss": [-math.log(max(a, 1e-3)) for a in acc],
               "train_s": [i / 100 for i in iters], "total_s": [i / 80 for i in iters]}))


@pytest.fixture
def convergence_run(tmp_path) -> Path:
    run = tmp_path / "conv"
    for seed, it in enumerate((300, 400, 500)):
        write_convergence(run, "resnet20", seed, "reached", it, tau=150)
    write_convergence(run, "plain20", 0, "reached", 600, tau=300)
    write_convergence(run, "plain20", 1, "not_reached", None, tau=400)
    write_convergence(run, "plain20", 2, "diverged", None, tau=900)
    write_convergence(run, "plain56", 0, "not_reached", None, tau=2000)
    return run


def test_convergence_table_medians_spread_and_ranks(convergence_run):
    t = convergence_table(load(convergence_run)).set_index("model")
    assert list(t.index) == ["resnet20", "plain20", "plain56"]  # never reached: last, kept
    assert list(t["rank"]) == [1, 2, 3]
    r = t.loc["resnet20"]
    assert r["reached"] == "3/3"
    assert r["iterations to target (median, range)"] == "400 (300–500)"
    assert r["train s to target (median, range)"] == "4 (3–5)"
    p = t.loc["plain20"]
    assert p["reached"] == "1/3, 1 diverged"
    assert p["iterations to target (median, range)"] == "not reached (600–not reached)"
    assert t.loc["plain56", "train s to target (median, range)"] == "not reached"


def test_seeds_sharing_a_case_id_stay_separate(tmp_path):
    for seed in range(3):
        write_convergence(tmp_path / "conv", "resnet20", seed, "reached", 300 + 100 * seed,
                          tau=150)
    assert convergence_table(load(tmp_path / "conv")).loc[0, "reached"] == "3/3"


def test_convergence_report_has_curves_and_not_reached(convergence_run, tmp_path):
    out = write_report(convergence_run, tmp_path / "out")
    for name in ("convergence_accuracy", "train_error"):
        assert (out / "plots" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    assert "not reached" in (out / "tables" / "convergence.md").read_text()
    assert "### Convergence" in (out / "summary.md").read_text()


# --- the written report --------------------------------------------------------------

def test_report_writes_every_output(report, df):
    for name in ("index.html", "summary.md", "results.csv"):
        assert (report / name).stat().st_size > 0
    csv_header = (report / "results.csv").read_text().splitlines()[0].split(",")
    assert "samples" not in csv_header and "curve" not in csv_header
    assert "env_torch" in csv_header and "samples_per_s" in csv_header
    assert len((report / "results.csv").read_text().strip().splitlines()) == 1 + len(df)
    for table in ("advice", "models", "speedups", "cases", "method", "environment"):
        for ext in ("csv", "md", "html"):
            assert (report / "tables" / f"{table}.{ext}").is_file(), (table, ext)
    assert not (report / "tables" / "torchvision.csv").exists()
    plots = sorted((report / "plots").glob("*.png"))
    assert {p.stem for p in plots} >= {"throughput", "speedup_heatmap", "step_times",
                                        "throughput_vs_flops"}
    # one batch per case here: a memory-against-batch plot would have nothing to show
    assert not (report / "plots" / "memory_vs_batch.png").exists()
    assert "Not in this report" in (report / "index.html").read_text()
    for p in plots:
        assert p.read_bytes().startswith(PNG_MAGIC), p
    assert not list(report.rglob(".*.tmp"))


def test_report_says_what_it_left_out_and_how_numbers_were_made(report):
    page = (report / "index.html").read_text()
    not_shown = page.split('<section id="not-shown">')[1]
    assert "<b>Our models vs torchvision</b>: not measured (no torchvision case" in not_shown
    assert "<b>Throughput over runs</b>: one run loaded; a trend needs several" in not_shown
    assert "<b>Convergence: test accuracy</b>: no convergence result has a curve" in not_shown
    for words in ("time.perf_counter", "stop reason", "timed rounds", "torch threads", "CPU "):
        assert words in page, words
    assert page.count("data:image/png;base64,") == len(list((report / "plots").glob("*.png")))
    summary = (report / "summary.md").read_text()
    assert "### What to use" in summary and "### Headline" not in summary  # merged
    assert "index.html" in summary and len(summary) < 10000


def test_the_index_links_each_shown_section_once_and_names_the_rest(report):
    """Every id is unique, every index link has a section with a table or a plot, and a
    topic without data is only in the closing list, not an empty section of its own."""
    import re
    page = (report / "index.html").read_text()
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert len(ids) == len(set(ids))
    links = re.findall(r'<li><a href="#([^"]+)">', page)
    assert links == ids
    for body in page.split("<section id=")[1:-1]:
        assert "<table>" in body or "data:image/png" in body, body[:200]
    assert ids[-1] == "not-shown" and "<table>" not in page.split('id="not-shown"')[1]


def test_html_is_self_contained_and_escapes_input(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    rewrite(case_files(run)[0], lambda doc: doc["benchmarks"][0]["extra_info"].update(model=XSS))
    out = write_report(run, tmp_path / "out")
    pages = [out / "index.html", *(out / "tables").glob("*.html")]
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page
        assert "<script" not in text.lower(), page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "index.html").read_text()
    assert "<script" not in (out / "summary.md").read_text()


def test_trend_appears_with_two_runs_and_tables_use_the_newest(run_dir, tmp_path):
    old = copy_run(run_dir, tmp_path / "old")
    new = copy_run(run_dir, tmp_path / "new")

    def later_and_faster(doc):
        doc["datetime"] = "2099-01-01T00:00:00.000001+00:00"  # as the suite writes it
        b = doc["benchmarks"][0]
        if b["extra_info"]["variant"] == "channels_last-bf16-eager":  # 10x faster steps
            b["extra_info"]["samples_per_s"] *= 10
            b["stats"]["data"] = [t / 10 for t in b["stats"]["data"]]
    for path in case_files(new):
        rewrite(path, later_and_faster)
    before = speedup_matrix(load([old])).set_index("mode")["channels_last-bf16-eager"]
    m = speedup_matrix(load([old, new]))
    for _, row in m.iterrows():
        assert row["channels_last-bf16-eager"] == pytest.approx(10 * before[row["mode"]])
    out = write_report([old, new], tmp_path / "out")
    assert (out / "plots" / "trend.png").read_bytes().startswith(PNG_MAGIC)


def test_a_failed_case_is_listed_with_its_reason(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")

    def failed(doc):  # as the suite records a case that raised
        b = doc["benchmarks"][0]
        info = b["extra_info"]
        b["extra_info"] = {"schema_version": info["schema_version"], "kind": "speed",
                           "status": "failed", "error": "RuntimeError: out of <memory>",
                           "case_id": info["case_id"], "variant": info["variant"],
                           **{k: info[k] for k in ("model", "mode", "device", "memory_format",
                                                   "precision", "compile", "batch_size",
                                                   "input_shape")}}
        b["stats"] = None
    rewrite(case_files(run)[0], failed)
    out = write_report(run, tmp_path / "out")
    assert "RuntimeError: out of &lt;memory&gt;" in (out / "index.html").read_text()
    assert "### Cases without a measurement" in (out / "summary.md").read_text()
    assert len(speedup_matrix(load(run))) == 2


def test_runs_with_differently_formatted_times_keep_their_time(run_dir, tmp_path):
    bench_json = copy_run(run_dir, tmp_path / "b")
    for path in case_files(bench_json):  # pytest-benchmark's own form: no fraction, no zone
        rewrite(path, lambda doc: doc.update(datetime="2099-01-01T00:00:00"))
    df = load([run_dir, bench_json])
    assert df["run_time"].notna().all()


def test_a_plot_without_data_this_time_loses_its_old_file(run_dir, tmp_path):
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "trend.png").write_bytes(PNG_MAGIC)
    write_report(run_dir, out)
    assert not (out / "plots" / "trend.png").exists()


# --- the CLI -------------------------------------------------------------------------

def test_cli_writes_the_report_with_a_baseline(run_dir, tmp_path):
    r = cli("report", run_dir, "-o", tmp_path / "out", "--baseline", "channels_last-fp32-eager")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "out" / "index.html")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Every speed-up divides by channels_last-fp32-eager (--baseline)" in summary


@pytest.mark.slow
def test_cli_default_output_folder(run_dir, tmp_path):
    r = cli("report", run_dir, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [out] = (tmp_path / "reports").glob("report-*")
    assert (out / "index.html").is_file()
    assert Path(r.stdout.strip()) == Path("reports") / out.name / "index.html"


def _unknown_schema(run_dir: Path) -> str:
    doc = json.loads(case_files(run_dir)[0].read_text())
    doc["benchmarks"][0]["extra_info"]["schema_version"] = 99
    return json.dumps(doc)


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ('{"benchmarks": [{"name": "x", "extra', "not valid JSON"),
    ("<html>not json</html>", "not valid JSON"),
    ('{"machine_info": {}}', "not pytest-benchmark output"),
    ('{"benchmarks": []}', "no resnets results"),
    (None, "unknown schema_version 99"),
], ids=["empty", "truncated", "not-json", "no-benchmarks", "empty-benchmarks", "unknown-schema"])
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(_unknown_schema(run_dir) if content is None else content)
    r = cli("report", bad, "-o", tmp_path / "out")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and message in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_baseline_is_one_line_and_exit_2(run_dir, tmp_path):
    r = cli("report", run_dir, "-o", tmp_path / "out", "--baseline", "nchw-fp64-eager")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "nchw-fp64-eager" in r.stderr and "contiguous-fp32-eager" in r.stderr


def test_report_imports_no_torch():
    code = ("import sys, resnets.report, resnets.commands.report; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_seed_band_median_and_range():
    from resnets.report.plots import _seed_band

    curves = [{"iters": [0, 10, 20], "test_acc": [0.1, 0.5, 0.9]},
              {"iters": [0, 10, 20], "test_acc": [0.3, 0.7, 0.8]},
              {"iters": [0, 10], "test_acc": [0.2, 0.6]}]
    x, med, lo, hi, n = _seed_band(curves, "iters", lambda c: c["test_acc"])
    assert n == 3 and list(x) == [0, 10, 20]
    np.testing.assert_allclose(med, [0.2, 0.6, 0.85])
    np.testing.assert_allclose(lo, [0.1, 0.5, 0.8])
    np.testing.assert_allclose(hi, [0.3, 0.7, 0.9])


def test_the_cases_table_shows_every_metric_the_schema_marks_show(df):
    from resnets.report.tables import shown_metric
    from resnets.schema import SpeedResult, metrics

    table = cases_table(df)
    assert len(table) == len(df)
    for column, meta in metrics(SpeedResult, show=True).items():
        header, factor = shown_metric(column, meta)
        measured = pd.to_numeric(df[column], errors="coerce").notna().any()
        assert (header in table.columns) == measured, column  # CPU: no GPU-busy share
    row = df.sort_values("case_id").iloc[0]
    shown = table.set_index(["mode", "variant"]).loc[(row["mode"], row["variant"])]
    assert shown["peak memory MiB"] == round(row["peak_memory_bytes"] / 2 ** 20, 1)


def test_the_profile_hint_names_options_the_profile_command_has():
    """From a slow row of the report to its per-layer table: the one template line."""
    import argparse
    import re

    from resnets.commands import profile
    from resnets.report.tables import PROFILE_HINT

    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    used = set(re.findall(r"--[a-z-]+", PROFILE_HINT))
    assert used and used <= set(parser._option_string_actions)
