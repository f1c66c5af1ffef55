"""pytest plugin behind ``pytest bench --benchmark-only`` and ``resnets run``.

Adds the ``--bench-*`` options, parametrizes ``speed_case`` with the selected cases
(test id = case id), and gives tests a ``bench_session`` that measures a case, feeds
its per-step samples to pytest-benchmark, and writes the case's result file the moment
it finishes.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

from .. import store
from ..errors import UserError
from ..measure.presets import PRESETS, Selection, split

_OPTIONS = [
    # (flag, kwargs)
    ("--bench-preset", dict(default="quick", help=f"case matrix preset: {', '.join(PRESETS)} (default quick)")),
    ("--bench-models", dict(help="comma-separated models (default: the preset's)")),
    ("--bench-modes", dict(help="comma-separated: infer,train")),
    ("--bench-devices", dict(help="comma-separated: cpu,cuda")),
    ("--bench-formats", dict(help="comma-separated: contiguous,channels_last")),
    ("--bench-precisions", dict(help="comma-separated: fp32,tf32,bf16,fp16")),
    ("--bench-compile", dict(help="comma-separated: eager,compile")),
    ("--bench-batch-sizes", dict(help="comma-separated batch sizes (default: per model in the preset)")),
    ("--bench-time-budget", dict(type=float, default=None, help="seconds of timed rounds per case (default 2 for quick, 10 for full)")),
    ("--bench-rel-ci", dict(type=float, default=0.02, help="stop when the 95%% CI of the median is within +-this fraction (default 0.02)")),
    ("--bench-min-rounds", dict(type=int, default=10, help="minimum timed rounds per case (default 10)")),
    ("--bench-threads", dict(type=int, default=None, help="CPU threads (default: all cores)")),
    ("--bench-no-flush-denormal", dict(action="store_true", help="keep denormal floats (slow on CPU)")),
    ("--bench-isolate", dict(action="store_true", help="measure each case in a fresh subprocess")),
    ("--bench-max-batch", dict(action="store_true", help="also find the largest batch that fits on CUDA per case")),
    ("--bench-profile-ops", dict(action="store_true", help="attach operator and layer profiles (separate, untimed steps)")),
    ("--bench-out", dict(default=None, help="run folder for per-case results (default reports/<run-id>)")),
    ("--bench-convergence", dict(action="store_true", default=True, dest="bench_convergence",
                                 help="run the convergence (time-to-accuracy) benchmarks (default)")),
    ("--no-bench-convergence", dict(action="store_false", dest="bench_convergence",
                                    help="skip the convergence benchmarks")),
    ("--bench-experiments", dict(help="comma-separated convergence experiments (default: all)")),
    ("--bench-dataset", dict(help="dataset for every convergence run (default: each experiment's)")),
    ("--bench-data-root", dict(help="folder holding fashion-mnist/cifar10 (default $RESNETS_DATA or ./data)")),
    ("--bench-download", dict(action="store_true", help="download missing datasets into --bench-data-root")),
]


def pytest_addoption(parser):
    group = parser.getgroup("resnets", "resnets benchmark suite")
    for flag, kwargs in _OPTIONS:
        group.addoption(flag, **kwargs)


def _selection(config) -> Selection:
    from .. import models  # the model names are the only thing that needs torch here

    opt = config.getoption
    try:
        return Selection.parse(opt("--bench-preset"), opt("--bench-models"), opt("--bench-modes"),
                               opt("--bench-devices"), opt("--bench-formats"),
                               opt("--bench-precisions"), opt("--bench-compile"),
                               opt("--bench-batch-sizes"), known_models=models.names())
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config):
    for flag in ("--bench-time-budget", "--bench-rel-ci", "--bench-min-rounds", "--bench-threads"):
        value = config.getoption(flag)
        if value is not None and value <= 0:
            raise pytest.UsageError(f"{flag} must be > 0, not {value}")
    config._resnets_selection = _selection(config)
    config._resnets_trials = _trials(config) if config.getoption("bench_convergence") else []


def _trials(config) -> list:
    """The preset's convergence runs, narrowed or widened by the same filters as speed
    cases: models filter; devices, formats and precisions (when given) multiply."""
    from dataclasses import replace

    from .. import convergence, data

    sel = config._resnets_selection
    try:
        experiments = split(config.getoption("--bench-experiments"), "--bench-experiments",
                            tuple(convergence.EXPERIMENTS)) or (None,)
        dataset = config.getoption("--bench-dataset")
        if dataset is not None and dataset not in data.NAMES:
            raise UserError(f"--bench-dataset: invalid value {dataset!r} (valid: {', '.join(data.NAMES)})")
        planned = [t for e in experiments for t in convergence.trials(sel.preset, e)]
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    out = []
    for t in planned:
        if sel.models and t.case.model not in sel.models:
            continue
        for dev, fmt, prec in product(sel.devices or (t.case.device,), sel.formats or (t.case.memory_format,),
                                      sel.precisions or (t.case.precision,)):
            case = replace(t.case, device=dev, memory_format=fmt, precision=prec)
            out.append(t._replace(case=case, dataset=dataset or t.dataset))
    return out


def _default_input(model: str):
    from .. import models

    return models.spec(model).input_shape, 1


def pytest_generate_tests(metafunc):
    if "speed_case" in metafunc.fixturenames:
        cases = metafunc.config._resnets_selection.cases(_default_input)
        metafunc.parametrize("speed_case", cases, ids=[c.id for c in cases])
    if "convergence_trial" in metafunc.fixturenames:
        trials = metafunc.config._resnets_trials
        metafunc.parametrize("convergence_trial", trials, ids=[t.id for t in trials])


class BenchSession:
    """Per-session state: settings, the run folder, machine info, and the tallies."""

    def __init__(self, config):
        from ..measure.runner import Settings
        from ..measure.timer import TimingPolicy

        opt = config.getoption
        preset = config._resnets_selection.preset
        budget = opt("--bench-time-budget")
        if budget is None:
            budget = 2.0 if preset == "quick" else 10.0
        self.disabled = bool(opt("benchmark_disable", default=False))
        policy = TimingPolicy(rel_ci=opt("--bench-rel-ci"), budget_s=budget,
                              min_rounds=opt("--bench-min-rounds"))
        if self.disabled:  # --benchmark-disable: run each case once, as a smoke test
            policy = TimingPolicy(budget_s=0.0, min_rounds=1, warmup_rounds=1, warmup_s=0.0)
        self.settings = Settings(policy=policy, threads=opt("--bench-threads"),
                                 flush_denormal=not opt("--bench-no-flush-denormal"))
        # Also in this process when cases run isolated: profiles and max-batch sweeps run here.
        self.settings.apply()
        self.isolate = opt("--bench-isolate")
        self.max_batch = opt("--bench-max-batch")
        self.profile_ops = opt("--bench-profile-ops")
        self.preset = preset
        self.data_root = opt("--bench-data-root")
        self.download = opt("--bench-download")
        self.run_dir = Path(opt("--bench-out") or Path("reports") / run_id())
        self.done = store.finished_case_ids(self.run_dir)
        self.config = config
        # Raw samples are the point of a result: keep them in --benchmark-autosave files too
        # (pytest-benchmark drops them unless --benchmark-save-data), so `resnets compare`
        # can read autosaves.
        if hasattr(config, "_benchmarksession"):
            config._benchmarksession.save_data = True
        self._infos = None
        self.counts = {"ok": 0, "skipped": 0, "failed": 0, "resumed": 0}

    def infos(self) -> tuple[dict, dict]:
        if self._infos is None:
            hook = self.config.hook
            machine = hook.pytest_benchmark_generate_machine_info(config=self.config)
            hook.pytest_benchmark_update_machine_info(config=self.config, machine_info=machine)
            commit = hook.pytest_benchmark_generate_commit_info(config=self.config)
            self._infos = (machine, commit)
        return self._infos

    def _measure(self, case) -> dict:
        """``{"status": ..., ...}`` as the worker protocol, in or out of process."""
        if self.isolate:
            request = json.dumps({"case": case.key(), "settings": self.settings.to_dict()})
            proc = subprocess.run([sys.executable, "-m", "resnets.measure.worker"], input=request,
                                  capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                return {"status": "failed", "reason": f"worker exited {proc.returncode}: {tail}"}
            return json.loads(lines[-1])
        from ..measure.runner import Skipped, measure

        try:
            result = measure(case, self.settings)
        except Skipped as exc:
            return {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded as a failed case, the run goes on
            from ..measure.runner import release_memory

            release_memory()
            return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok", "extra_info": result.extra_info,
                "samples": list(result.measurement.samples)}

    def run_speed(self, benchmark, case) -> None:
        if case.id in self.done:
            self.counts["resumed"] += 1
            pytest.skip(f"already measured in {self.run_dir}")
        reply = self._measure(case)
        if reply["status"] == "skipped":
            self.counts["skipped"] += 1
            pytest.skip(reply["reason"])
        if reply["status"] == "failed":
            self.fail(benchmark, case, "speed", reply["reason"])
        extra = reply["extra_info"]
        # Extras never cost the measurement: their own failure is recorded beside it.
        if self.max_batch:
            from ..measure.maxbatch import max_batch_size

            extra.update(_attempt("max_batch", max_batch_size, case))
        if self.profile_ops:
            from ..profiling import profile_tables

            profiled = _attempt("profile", profile_tables, case)
            extra.update(profiled if "profile_error" in profiled else {"profile": profiled})
        self.counts["ok"] += 1
        self.record(benchmark, case, extra, reply["samples"])

    def fail(self, benchmark, case, kind: str, reason: str, param: str | None = None, **extra):
        """Record a failed case (no stats, the reason) and fail its test; the run goes on."""
        self.counts["failed"] += 1
        self.write(benchmark, param or case.id,
                   {"schema_version": store.SCHEMA_VERSION, "kind": kind, "status": "failed",
                    "error": reason, "case_id": case.id, **case.key(), "variant": case.variant,
                    **extra}, None)
        pytest.fail(f"{param or case.id}: {reason}", pytrace=False)

    def run_convergence(self, benchmark, trial) -> None:
        """One seed's time-to-accuracy: one timed round (training seconds to the target,
        or of the whole budget when it is not reached, which ranks it slowest)."""
        from .. import convergence
        from ..measure.workload import runtime_skip_reason

        if trial.id in self.done:
            self.counts["resumed"] += 1
            pytest.skip(f"already measured in {self.run_dir}")
        reason = runtime_skip_reason(trial.case)
        if reason:
            self.counts["skipped"] += 1
            pytest.skip(reason)
        try:
            result = convergence.run_trial(trial, data_root=self.data_root, download=self.download,
                                           threads=self.settings.threads)
        except UserError as exc:  # e.g. the dataset folder is missing: say so, go on
            self.counts["skipped"] += 1
            pytest.skip(str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded as a failed run, the suite goes on
            self.fail(benchmark, trial.case, "convergence", f"{type(exc).__name__}: {exc}",
                      param=trial.id, dataset=trial.dataset, seed=trial.seed)
        self.counts["ok"] += 1
        self.record(benchmark, trial.case, result, [convergence.benchmark_seconds(result)],
                    param=trial.id, group=f"convergence {trial.dataset}")

    def record(self, benchmark, case, extra: dict, samples: list[float], param: str | None = None,
               group: str | None = None) -> None:
        """Hand our samples to pytest-benchmark (its stats = our per-step times) and
        persist the case. pytest-benchmark has no public API for externally timed
        samples, so this uses its ``_make_stats``/``Metadata.update`` (pinned <6)."""
        from ..stats import Measurement

        benchmark.group = group or f"{case.model} {case.mode} {case.device}"
        benchmark.extra_info.update(extra)
        if benchmark.enabled:
            stats = benchmark._make_stats(1)
            for s in samples:
                stats.update(s)
        benchmark._mode = "resnets (externally timed samples)"
        self.write(benchmark, param or case.id, extra,
                   Measurement(tuple(samples)).pytest_benchmark_stats())

    def write(self, benchmark, param: str, extra: dict, stats: dict | None) -> None:
        import pytest_benchmark

        machine, commit = self.infos()
        entry = store.benchmark_entry(benchmark.name, param, extra, stats,
                                      group=benchmark.group, fullname=benchmark.fullname,
                                      params={"case": param})
        store.write_case(self.run_dir, entry, machine, commit, pytest_benchmark.__version__)


def _attempt(name: str, fn, case) -> dict:
    try:
        return fn(case)
    except Exception as exc:  # noqa: BLE001 - kept beside the timing, which stands
        return {f"{name}_error": f"{type(exc).__name__}: {exc}"}


def run_id() -> str:
    """UTC time plus short commit: sorts by time, says which code ran."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{stamp}-{sha}" if sha else stamp


@pytest.fixture(scope="session")
def bench_session(request) -> BenchSession:
    config = request.config
    if not hasattr(config, "_resnets_session"):
        config._resnets_session = BenchSession(config)
    return config._resnets_session


def pytest_benchmark_update_machine_info(config, machine_info):
    # Only what is fixed for the run: pytest-benchmark compares machine_info between runs,
    # and per-case switches (TF32, threads) would make every run look like another machine.
    from ..measure.env import static_environment

    machine_info["resnets_env"] = static_environment()


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_resnets_session", None)
    if session is None:
        return
    c = session.counts
    terminalreporter.write_line(
        f"resnets: {c['ok']} measured, {c['skipped']} skipped, {c['failed']} failed, "
        f"{c['resumed']} already done; results in {session.run_dir}{os.sep}{store.CASES_DIR}")
