"""pytest plugin behind ``pytest bench --benchmark-only`` and ``resnets run``.

Adds the ``--bench-*`` options (declared in ``resnets.options``, the same declaration
``resnets run`` uses), parametrizes ``speed_case`` and ``convergence_trial`` with the
selected cases (test id = case id), and gives tests a ``bench_session`` that measures a
case, feeds its per-step samples to pytest-benchmark, and writes the case's result file
the moment it finishes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .. import options, presets, store
from ..errors import UserError
from ..schema import ConvergenceResult, Env, Result, SpeedResult, Status

PREFIX = "--bench-"


def pytest_addoption(parser):
    group = parser.getgroup("resnets", "resnets benchmark suite")
    options.add_options(group.addoption, PREFIX, options.SUITE)


def suite_options(config) -> dict:
    """``{option name: value}`` of every suite option, as parsed and checked."""
    return options.values(config.option, PREFIX, options.SUITE)


def pytest_configure(config):
    opts = suite_options(config)
    try:
        selection = presets.Selection.from_options(opts)
        trials = (presets.trials(opts["preset"], opts["experiments"], selection,
                                 opts["dataset"]) if opts["convergence"] else [])
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    config._resnets_selection = selection
    config._resnets_trials = trials


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

        opts = suite_options(config)
        budget = opts["time_budget"]
        if budget is None:
            budget = 2.0 if opts["preset"] == "quick" else 10.0
        self.disabled = bool(config.getoption("benchmark_disable", default=False))
        policy = TimingPolicy(rel_ci=opts["rel_ci"], budget_s=budget,
                              min_rounds=opts["min_rounds"])
        if self.disabled:  # --benchmark-disable: run each case once, as a smoke test
            policy = TimingPolicy(budget_s=0.0, min_rounds=1, warmup_rounds=1, warmup_s=0.0)
        self.settings = Settings(policy=policy, threads=opts["threads"],
                                 flush_denormal=not opts["no_flush_denormal"])
        # Also in this process when cases run isolated: profiles and max-batch sweeps run here.
        self.settings.apply()
        self.opts = opts
        self.run_dir = Path(opts["out"] or store.REPORTS_DIR / store.run_id())
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

    def _measure(self, case) -> tuple[str, SpeedResult | str]:
        """("ok", record), ("skipped", reason) or ("failed", reason), in or out of process
        (the worker protocol, ``resnets.measure.worker``)."""
        from ..measure import worker

        if self.opts["isolate"]:
            request = json.dumps({"case": case.key(), "settings": self.settings.to_dict()})
            proc = subprocess.run([sys.executable, "-m", "resnets.measure.worker"],
                                  input=request, capture_output=True, text=True, check=False)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                return "failed", f"worker exited {proc.returncode}: {tail}"
            return worker.read_reply(lines[-1])
        return worker.measure_case(case, self.settings)

    def run_speed(self, benchmark, case) -> None:
        if case.id in self.done:
            self.counts["resumed"] += 1
            pytest.skip(f"already measured in {self.run_dir}")
        outcome, record = self._measure(case)
        if outcome == "skipped":
            self.counts["skipped"] += 1
            pytest.skip(record)
        if outcome == "failed":
            self.fail(benchmark, SpeedResult(case=case, status=Status.FAILED, error=record))
        # Extras never cost the measurement: their own failure is recorded beside it.
        if self.opts["max_batch"]:
            from ..measure.maxbatch import max_batch_size

            found = _attempt(max_batch_size, case)
            if isinstance(found, str):
                record.max_batch_error = found
            else:
                record.max_batch_size, record.max_batch_note = found
        if self.opts["profile_ops"]:
            from ..profiling.measure import profile_case

            profiled = _attempt(lambda c: profile_case(c).tables(), case)
            if isinstance(profiled, str):
                record.profile_error = profiled
            else:
                record.profile = profiled
        self.counts["ok"] += 1
        self.record(benchmark, record)

    def fail(self, benchmark, record: Result, group: str | None = None):
        """Record a failed case (no stats, the reason) and fail its test; the run goes on."""
        from ..measure.env import environment

        self.counts["failed"] += 1
        record.env = Env(**environment())
        self.record(benchmark, record, group)
        pytest.fail(f"{record.name}: {record.error}", pytrace=False)

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
        group = f"convergence {trial.dataset}"
        try:
            result = convergence.run_trial(trial, data_root=self.opts["data_root"],
                                           download=self.opts["download"],
                                           threads=self.settings.threads)
        except UserError as exc:  # e.g. the dataset folder is missing: say so, go on
            self.counts["skipped"] += 1
            pytest.skip(str(exc))
        except Exception as exc:
            self.fail(benchmark, ConvergenceResult(
                case=trial.case, status=Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                dataset=trial.dataset, target_acc=trial.target_acc, seed=trial.seed), group)
        self.counts["ok"] += 1
        self.record(benchmark, result, group)

    def record(self, benchmark, record: Result, group: str | None = None) -> None:
        """Hand the record's samples to pytest-benchmark (its stats = our per-step times)
        and persist the result. pytest-benchmark has no public API for externally timed
        samples, so this uses its ``_make_stats``/``Metadata.update`` (pinned <6)."""
        import pytest_benchmark

        case = record.case
        benchmark.group = group or f"{case.model} {case.mode} {case.device}"
        benchmark.extra_info.update(record.to_dict())
        if benchmark.enabled and record.samples:
            stats = benchmark._make_stats(1)
            for s in record.samples:
                stats.update(s)
        benchmark._mode = "resnets (externally timed samples)"
        machine, commit = self.infos()
        entry = store.benchmark_entry(record, benchmark.name, group=benchmark.group,
                                      fullname=benchmark.fullname,
                                      params={"case": record.name})
        store.write_case(self.run_dir, entry, machine, commit, pytest_benchmark.__version__)


def _attempt(fn, case):
    """``fn(case)``, or the error as text (an extra never costs the timing)."""
    try:
        return fn(case)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


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
