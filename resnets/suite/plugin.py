"""pytest plugin behind ``pytest bench --benchmark-only`` and ``resnets run``: glue only.

Adds the ``--bench-*`` options (declared in ``resnets.options``, the same declaration
``resnets run`` uses), parametrizes ``speed_case`` and ``convergence_trial`` with the
planned cases (test id = case id; the plan is made once: by ``resnets run`` in the parent,
read here from ``--bench-plan``, or here when pytest is the parent), and gives tests a
``bench_session`` that runs each case through the engine where it must run
(``measure.process``), hands its samples to pytest-benchmark, and writes its result file
the moment it finishes. The crash journal is ``resnets.journal``; batch sweeps are
``measure.sweep``.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from .. import children, options, plan, presets, runlock, store
from ..errors import UserError
from ..journal import Journal
from ..outcome import Outcome
from ..schema import ConvergenceResult, Env, Result, SpeedResult, Status

PREFIX = "--bench-"


def pytest_addoption(parser):
    group = parser.getgroup("resnets", "resnets benchmark suite")
    options.add_options(group.addoption, PREFIX,
                        [*options.SUITE, options.RETRY_CRASHED, options.PLAN_FILE])


def pytest_configure(config):
    # SIGTERM (a cancelled CI job; `resnets run` passes it on) unwinds like Ctrl-C, so the
    # case being measured is known to be interrupted, not crashed (``Journal.attempt``).
    children.raise_on_sigterm()
    opts = options.values(config.option, PREFIX, options.SUITE)
    try:
        given = config.getoption("bench_plan")
        planned = plan.Plan.load(given) if given else plan.select(opts)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    config._resnets = (opts, planned)


def pytest_generate_tests(metafunc):
    _, planned = metafunc.config._resnets
    collected = metafunc.config.__dict__.setdefault("_resnets_collected", {})
    if "speed_case" in metafunc.fixturenames:
        metafunc.parametrize("speed_case", planned.cases, ids=[c.id for c in planned.cases])
        collected["cases"] = len(planned.cases)
    if "convergence_trial" in metafunc.fixturenames:
        metafunc.parametrize("convergence_trial", planned.trials,
                             ids=[t.id for t in planned.trials])
        collected["trials"] = len(planned.trials)


def run_settings(opts: dict, disabled: bool = False):
    """The run's ``measure.runner.Settings`` from its options (``--benchmark-disable``:
    each case once, as a smoke test)."""
    from ..measure.runner import Settings
    from ..measure.timer import TimingPolicy

    budget = opts["time_budget"] or presets.PRESETS[opts["preset"]]["budget_s"]
    policy = TimingPolicy(rel_ci=opts["rel_ci"], budget_s=budget, min_rounds=opts["min_rounds"])
    if disabled:
        policy = TimingPolicy(budget_s=0.0, min_rounds=1, warmup_rounds=1, warmup_s=0.0)
    return Settings(policy=policy, threads=opts["threads"],
                    flush_denormal=not opts["no_flush_denormal"], nnodes=opts["nnodes"],
                    rdzv_endpoint=opts["rdzv_endpoint"], measure_energy=not opts["no_energy"])


class BenchSession:
    """Per-session state: settings, the run folder (locked), its journal, the tallies."""

    def __init__(self, config):
        from ..measure.distributed import rank_settings
        from ..measure.peak import PEAK_FILE_ENV
        from ..measure.runner import ENERGY_FILE_ENV

        self.opts, self.planned = config._resnets
        self.disabled = bool(config.getoption("benchmark_disable", default=False))
        self.settings = run_settings(self.opts, self.disabled)
        self.rank_settings = rank_settings(self.settings, self.planned.cases)
        # Also in this process when cases run isolated: profiles and max-batch sweeps run here.
        self.settings.apply()
        self.run_dir = Path(self.opts["out"] or store.REPORTS_DIR / store.run_id())
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(runlock.hold(self.run_dir))
        # One peak probe per run and device/precision, shared with isolated workers.
        os.environ[PEAK_FILE_ENV] = str(self.run_dir / "peaks.json")
        os.environ[ENERGY_FILE_ENV] = str(self.run_dir / "energy-idle.json")
        self.config = config
        self.journal = Journal(self.run_dir)
        self.crashed = self.journal.recover()
        retry = config.getoption("bench_retry_crashed")
        self.done = store.finished_case_ids(self.run_dir) | (set() if retry else self.crashed)
        # Raw samples are the point of a result: keep them in --benchmark-autosave files too
        # (pytest-benchmark drops them unless --benchmark-save-data), so `resnets compare`
        # can read autosaves.
        if hasattr(config, "_benchmarksession"):
            config._benchmarksession.save_data = True
        self._infos = None
        self._pending: dict = {}  # outcomes of a group's other variants, timed with it
        self._grouped: set = set()
        self.counts = {"ok": 0, "skipped": 0, "failed": 0, "crashed": 0, "resumed": 0}
        self.started = store.utc_now_iso()

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

    def _measure(self, case, settings=None) -> Outcome:
        from ..measure import distributed, process

        shared = (self.run_dir / distributed.FOLDER / store.safe_name(case.id)
                  if self.settings.nnodes > 1 else None)
        with self.journal.attempt(SpeedResult(case=case, status=Status.CRASHED)):
            return process.run(case, settings or self.settings, self.opts["isolate"], shared,
                               self.rank_settings)

    def _outcome(self, case) -> Outcome:
        """The case's outcome: timed with the other variants of its group (the first of
        them to come up times them all; ``measure.group``) unless that group is not
        paired, in which case alone, saying why."""
        from ..measure.group import group_key, measure_group, unpaired_reason

        if case in self._pending:
            return self._pending.pop(case)
        if case.sweep:
            return self._sweep(case)
        key = group_key(case)
        group = [c for c in self.planned.cases if group_key(c) == key
                 and c.id not in self.done and c not in self._grouped]
        settings = self._settings_now()
        why = ("--unpaired" if self.opts["unpaired"] else
               unpaired_reason(group, self.opts["isolate"]))
        if why is None:
            with contextlib.ExitStack() as stack:
                for c in group:
                    stack.enter_context(self.journal.attempt(
                        SpeedResult(case=c, status=Status.CRASHED)))
                outcomes = measure_group(group, settings,
                                         f"{self.started}-g{len(self._grouped)}")
            if outcomes is not None:
                self._grouped |= set(group)
                self._pending.update({c: o for c, o in outcomes.items() if c != case})
                for c, o in self._pending.items():  # kept now: an interrupt loses nothing
                    if c in outcomes:
                        self._write(o.result(c))
                return outcomes[case]
            why = "the group did not fit in memory at once"
        outcome = self._measure(case, settings)
        if outcome.is_ok and not outcome.record.timing.pairing:
            outcome.record.timing.pairing = f"unpaired: {why}"
        return outcome

    def _write(self, record: Result) -> None:
        """A result file before its test reports it (``record`` rewrites it then)."""
        machine, commit = self.infos()
        store.write_case(self.run_dir, store.benchmark_entry(
            record, group=f"{record.case.model} {record.case.mode} {record.case.device}"),
            machine, commit)
        self.journal.clear(record.name)

    def _settings_now(self):
        """The run's settings with the threads chosen from the cores free right now
        (``measure.load.choose_threads``)."""
        from ..measure.load import busy_now, choose_threads

        threads, why = choose_threads(self.opts["threads"], os.cpu_count() or 1, busy_now())
        return replace(self.settings, threads=threads, threads_reason=why)

    def _resumed(self, name: str) -> None:
        """A case a resume does not measure again: done, or crashed (said as such)."""
        if name in self.done:
            crashed = name in self.crashed
            self.counts["crashed" if crashed else "resumed"] += 1
            pytest.skip(f"already {'crashed' if crashed else 'measured'} in {self.run_dir}")

    def run_speed(self, benchmark, case) -> None:
        self._resumed(case.id)
        outcome = self._outcome(case)
        if outcome.status == "skipped":
            self.skip(benchmark, outcome.result(case))
        if not outcome.is_ok:
            self.fail(benchmark, outcome.result(case))
        record = outcome.record
        try:
            self._extras(case, record)
        except KeyboardInterrupt:  # and SIGTERM: a max-batch search can take minutes; the
            self.journal.clear(record.name)  # case is interrupted, not crashed
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

    def _sweep(self, case) -> Outcome:
        """A case whose batch is swept (``measure.sweep``): every other point is recorded
        as a case of its own; returns the case's own outcome."""
        from ..measure import sweep

        own = Outcome.failed(f"the batch sweep ended before batch {case.batch_size}")
        for point, outcome in sweep.run(case, self._measure):
            if point == case:
                own = outcome
                continue
            self.counts["ok" if outcome.is_ok else outcome.status] += 1
            self._write(outcome.result(point))
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

        self._resumed(trial.id)
        group = f"convergence {trial.dataset}"
        skeleton = ConvergenceResult(case=trial.case, status=Status.SKIPPED, dataset=trial.dataset,
                                     target_acc=trial.target_acc, seed=trial.seed,
                                     experiment=trial.experiment)
        reason = runtime_skip_reason(trial.case)
        if reason:
            skeleton.error = reason
            self.skip(benchmark, skeleton, group)
        try:
            # Threads from the cores free now, as for a speed group: two threads beside
            # one busy process on two cores took minutes per LeNet trial instead of seconds.
            settings = self._settings_now()
            with self.journal.attempt(replace(skeleton, status=Status.CRASHED)):
                result = convergence.run_trial(trial, data_root=self.opts["data_root"],
                                               download=self.opts["download"],
                                               threads=settings.threads,
                                               threads_reason=settings.threads_reason)
        except UserError as exc:  # e.g. the dataset folder is missing: say so, go on
            skeleton.error = str(exc)
            self.skip(benchmark, skeleton, group)
        except Exception as exc:
            self.fail(benchmark, replace(skeleton, status=Status.FAILED,
                                         error=f"{type(exc).__name__}: {exc}"), group)
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
        self.journal.clear(record.name)


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

    # Against the whole plan of the benchmark functions collected, not the tests pytest
    # selected: a run narrowed with -k (the GPU proof's phases) is complete only once a
    # resume has done the rest.
    planned = sum(getattr(session.config, "_resnets_collected", {}).values())
    c = bench.counts
    attempted = c["ok"] + c["skipped"] + c["failed"] + c["crashed"] + c["resumed"]
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
        + (f"{c['crashed']} crashed (--retry-crashed measures them again), " if c["crashed"]
           else "")
        + f"{c['resumed']} already done; results in {session.run_dir}{os.sep}{store.CASES_DIR}")
