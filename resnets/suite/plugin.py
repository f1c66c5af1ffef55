"""pytest plugin behind ``pytest bench --benchmark-only`` and ``resnets run``.

Adds the ``--bench-*`` options (declared in ``resnets.options``, the same declaration
``resnets run`` uses), parametrizes ``speed_case`` and ``convergence_trial`` with the
selected cases (test id = case id), and gives tests a ``bench_session`` that measures a
case, feeds its per-step samples to pytest-benchmark, and writes the case's result file
the moment it finishes.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from .. import children, options, plan, presets, runlock, store
from ..errors import UserError
from ..schema import ConvergenceResult, Env, Result, SchemaError, SpeedResult, Status, from_dict

PREFIX = "--bench-"


def pytest_addoption(parser):
    group = parser.getgroup("resnets", "resnets benchmark suite")
    options.add_options(group.addoption, PREFIX, [*options.SUITE, options.RETRY_CRASHED])


def suite_options(config) -> dict:
    """``{option name: value}`` of every suite option, as parsed and checked."""
    return options.values(config.option, PREFIX, options.SUITE)


def pytest_configure(config):
    # SIGTERM (a cancelled CI job; `resnets run` passes it on) unwinds like Ctrl-C, so the
    # case being measured is known to be interrupted, not crashed (``BenchSession.attempt``).
    children.raise_on_sigterm()
    try:
        config._resnets_planned = plan.select(suite_options(config), _default_input)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None


def _default_input(model: str):
    from .. import models

    return models.spec(model).input_shape, 1


def pytest_generate_tests(metafunc):
    cases, trials = metafunc.config._resnets_planned
    if "speed_case" in metafunc.fixturenames:
        metafunc.parametrize("speed_case", cases, ids=[c.id for c in cases])
    if "convergence_trial" in metafunc.fixturenames:
        metafunc.parametrize("convergence_trial", trials, ids=[t.id for t in trials])


class BenchSession:
    """Per-session state: settings, the run folder, machine info, and the tallies."""

    def __init__(self, config):
        from ..measure.runner import Settings
        from ..measure.timer import TimingPolicy

        opts = suite_options(config)
        budget = opts["time_budget"] or presets.PRESETS[opts["preset"]]["budget_s"]
        self.disabled = bool(config.getoption("benchmark_disable", default=False))
        policy = TimingPolicy(rel_ci=opts["rel_ci"], budget_s=budget,
                              min_rounds=opts["min_rounds"])
        if self.disabled:  # --benchmark-disable: run each case once, as a smoke test
            policy = TimingPolicy(budget_s=0.0, min_rounds=1, warmup_rounds=1, warmup_s=0.0)
        self.settings = Settings(policy=policy, threads=opts["threads"],
                                 flush_denormal=not opts["no_flush_denormal"],
                                 nnodes=opts["nnodes"], rdzv_endpoint=opts["rdzv_endpoint"])
        # Also in this process when cases run isolated: profiles and max-batch sweeps run here.
        self.settings.apply()
        self.opts = opts
        self.run_dir = Path(opts["out"] or store.REPORTS_DIR / store.run_id())
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(runlock.hold(self.run_dir))
        # One peak probe per run and device/precision, shared with isolated workers.
        from ..measure.peak import PEAK_FILE_ENV

        os.environ[PEAK_FILE_ENV] = str(self.run_dir / "peaks.json")
        self.config = config
        self.crashed = self._record_crashes()
        retry = config.getoption("bench_retry_crashed")
        self.done = store.finished_case_ids(self.run_dir) | (set() if retry else self.crashed)
        # Raw samples are the point of a result: keep them in --benchmark-autosave files too
        # (pytest-benchmark drops them unless --benchmark-save-data), so `resnets compare`
        # can read autosaves.
        if hasattr(config, "_benchmarksession"):
            config._benchmarksession.save_data = True
        self._infos = None
        self.counts = {"ok": 0, "skipped": 0, "failed": 0, "resumed": 0}
        self.started = store.utc_now_iso()

    @contextlib.contextmanager
    def attempt(self, record: Result):
        """Mark ``record``'s case as being measured while the block runs: if the process
        dies meanwhile, the note stays and the next run records the case as crashed. An
        interruption (Ctrl-C, SIGTERM) removes the note, so a resume measures it again."""
        store.mark_attempt(self.run_dir, record)
        try:
            yield
        except KeyboardInterrupt:  # and SIGTERM (children.Interrupted)
            store.clear_attempt(self.run_dir, record.name)
            raise

    def _record_crashes(self) -> set[str]:
        """Cases whose process died while they ran (an attempt note and no result): each
        is recorded as crashed, once; returns the names of every crashed result here."""
        finished = store.finished_case_ids(self.run_dir)
        for note in store.leftover_attempts(self.run_dir):
            try:
                record = from_dict(note["record"])
            except SchemaError:
                continue
            if record.name not in finished:
                record.status = Status.CRASHED
                record.error = (f"the process (PID {note.get('pid')}) died while measuring it, "
                                f"started {note.get('started')}")
                entry = store.benchmark_entry(record)
                store.write_case(self.run_dir, entry, {}, {})
            store.clear_attempt(self.run_dir, record.name)
        return store.case_ids(self.run_dir, {Status.CRASHED})

    def close(self) -> None:
        self._stack.close()

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

        if case.strategy != "none":  # under torchrun, one process per device
            from ..measure import distributed

            shared = (self.run_dir / distributed.FOLDER / store.safe_name(case.id)
                      if self.settings.nnodes > 1 else None)
            return distributed.launch(case, self._rank_settings(), shared)
        if self.opts["isolate"]:
            request = json.dumps({"case": case.key(), "settings": self.settings.to_dict()})
            proc = subprocess.run([sys.executable, "-m", "resnets.measure.worker"],
                                  input=request, capture_output=True, text=True, check=False,
                                  preexec_fn=children.dies_with_us())
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                return "failed", f"worker exited {proc.returncode}: {tail}"
            return worker.read_reply(lines[-1])
        return worker.measure_case(case, self.settings)

    def _rank_settings(self):
        """Settings for a rank. On CPU every rank of every world size gets the same
        threads (the cores over the largest number of ranks per node in this run), so
        world size n is n times the compute of world size 1, as with GPUs: otherwise
        world size 1 would use every core and efficiency would be measured against it."""
        if self.settings.threads:
            return self.settings
        cases, _ = self.config._resnets_planned
        local = max((c.world_size // self.settings.nnodes for c in cases
                     if c.strategy != "none" and c.device == "cpu"), default=1)
        return replace(self.settings, threads=max(1, (os.cpu_count() or 1) // local))

    def run_speed(self, benchmark, case) -> None:
        if case.id in self.done:
            self.counts["resumed"] += 1
            pytest.skip(f"already {'crashed' if case.id in self.crashed else 'measured'} in "
                        f"{self.run_dir}")
        if self.opts["batch_sizes"] == "auto":
            outcome, record = self._sweep(benchmark, case)
        else:
            with self.attempt(SpeedResult(case=case, status=Status.CRASHED)):
                outcome, record = self._measure(case)
        if outcome == "skipped":
            self.skip(benchmark, SpeedResult(case=case, status=Status.SKIPPED, error=record))
        if outcome == "failed":
            self.fail(benchmark, SpeedResult(case=case, status=Status.FAILED, error=record))
        try:
            self._extras(case, record)
        except KeyboardInterrupt:  # and SIGTERM: a max-batch search can take minutes; the
            store.clear_attempt(self.run_dir, record.name)  # case is interrupted, not crashed
            raise
        self.counts["ok"] += 1
        self.record(benchmark, record)

    def _extras(self, case, record) -> None:
        """Extras never cost the measurement: their own failure is recorded beside it."""
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

    def _sweep(self, benchmark, case) -> tuple[str, SpeedResult | str]:
        """``--batch-sizes auto``: measure the case's batch sweep (``measure.sweep``),
        record every other point as a case of its own, and return the case's own."""
        from ..measure import sweep

        def measure(point):
            with self.attempt(SpeedResult(case=point, status=Status.CRASHED)):
                return self._measure(point)

        own = ("failed", f"the batch sweep ended before batch {case.batch_size}")
        for point, outcome, result in sweep.run(case, measure):
            if point == case:
                own = (outcome, result)
                continue
            if outcome != "ok":
                status = Status.SKIPPED if outcome == "skipped" else Status.FAILED
                result = SpeedResult(case=point, status=status, error=result)
            self.counts["ok" if outcome == "ok" else outcome] += 1
            machine, commit = self.infos()
            store.write_case(self.run_dir, store.benchmark_entry(
                result, group=f"{point.model} {point.mode} {point.device}"), machine, commit)
            store.clear_attempt(self.run_dir, point.id)
        return own

    def skip(self, benchmark, record: Result, group: str | None = None):
        """Record that a case cannot run here (the reason in ``error``), then skip its test,
        so a report can say why the case is missing."""
        self.counts["skipped"] += 1
        self.record(benchmark, record, group)
        pytest.skip(record.error)

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
            pytest.skip(f"already {'crashed' if trial.id in self.crashed else 'measured'} in "
                        f"{self.run_dir}")
        group = f"convergence {trial.dataset}"
        skeleton = ConvergenceResult(case=trial.case, status=Status.SKIPPED, dataset=trial.dataset,
                                     target_acc=trial.target_acc, seed=trial.seed,
                                     experiment=trial.experiment)
        reason = runtime_skip_reason(trial.case)
        if reason:
            skeleton.error = reason
            self.skip(benchmark, skeleton, group)
        try:
            with self.attempt(replace(skeleton, status=Status.CRASHED)):
                result = convergence.run_trial(trial, data_root=self.opts["data_root"],
                                               download=self.opts["download"],
                                               threads=self.settings.threads)
        except UserError as exc:  # e.g. the dataset folder is missing: say so, go on
            skeleton.error = str(exc)
            self.skip(benchmark, skeleton, group)
        except Exception as exc:
            self.fail(benchmark, ConvergenceResult(
                case=trial.case, status=Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                dataset=trial.dataset, target_acc=trial.target_acc, seed=trial.seed,
                experiment=trial.experiment), group)
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
        store.clear_attempt(self.run_dir, record.name)


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


def _measures(item) -> bool:
    """Whether a collected test measures a case or a trial (an empty selection gets a
    placeholder item that does not)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (isinstance(params.get("speed_case"), presets.Case)
            or isinstance(params.get("convergence_trial"), presets.Trial))


def pytest_sessionfinish(session, exitstatus):
    """Record the run as a whole: how many cases were planned and attempted, so that a
    run cut short is never taken for a complete one (``resnets publish``, history)."""
    bench = getattr(session.config, "_resnets_session", None)
    if bench is None:
        return
    if bench.disabled:
        bench.close()
        return
    from ..publish import RUN_STATE

    planned = sum(1 for item in session.items if _measures(item))
    c = bench.counts
    attempted = c["ok"] + c["skipped"] + c["failed"] + c["resumed"]
    state = {"planned": planned, "attempted": attempted, **c,
             "complete": attempted >= planned and int(exitstatus) in (0, 1),
             "pytest_exit": int(exitstatus), "started": bench.started, "ended": store.utc_now_iso(),
             "shard": bench.opts["shard"], "preset": bench.opts["preset"]}
    store.atomic_write_text(bench.run_dir / RUN_STATE, store.dumps(state))
    bench.close()


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_resnets_session", None)
    if session is None:
        return
    c = session.counts
    terminalreporter.write_line(
        f"resnets: {c['ok']} measured, {c['skipped']} skipped, {c['failed']} failed, "
        f"{c['resumed']} already done; results in {session.run_dir}{os.sep}{store.CASES_DIR}")
