"""Bisection of a slowdown: the first commit on a first-parent range whose cases are slower.

Why. The gate answers "does this pull request regress?"; a nightly history flags a shift
between two runs with dozens of commits between them. Separate runs of unchanged code
move by 5-20% on a shared CPU, so a bisection that timed each commit on its own, against
a level measured an hour earlier, would chase the machine. Here every probe is timed
*paired* against an end of the range (``resnets.gate.run_gate``: both versions in one
process, alternating blocks), so the drift lands on both and cancels, and each probe is
judged by the gate's own rule (``resnets.compare``).

How (``bisect``, pure logic over a ``measure`` function, so it is tested without timing):

1. The ends. The bad end is timed paired against the good end, every selected case.
   A case whose change is a regression by the gate's rule is bisected; one that is
   unchanged (or faster) has nothing to find; one the noise leaves unclear is timed once
   more (the two timings pooled) and, if still unclear, reported so.
2. A probe: the commit timed paired against the good end. A regression makes it bad;
   unchanged (or faster) makes it good. Beyond the threshold but unproven ("noisy"), it
   is close to both ends, so it is timed paired against the bad end too: unchanged (or
   slower still) there makes it bad, faster makes it good. Still unclear: both timings
   once more, pooled with the first; then a "noisy" probe, skipped as ``git bisect
   skip`` would. A commit that cannot be timed (it does not build or start, the gate
   raises, or the case fails there) is skipped and listed.
3. Which commit: the untried, unskipped one nearest the middle of the case's open
   interval (after its last good commit, before its first bad one), so skipped commits
   push a probe aside, as in ``git bisect``. Cases bisected together share probes: each
   probe times every case whose interval holds that commit.
4. The answer: the first bad commit with its step-time ratio to the good end and that
   ratio's 95% interval (from its timing against the good end). When only skipped
   commits lie between the last good and the first bad one, the culprit is one of them:
   they are listed, no commit is named.

Without skips or unclear probes, a range of n commits takes at most ``max_probes(n)`` =
1 + ceil(log2 n) probes: the bad end, then halving the n possible answers.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError
from .text import change, markdown_table, md, printable

GOOD, BAD, NOISY, SKIPPED = "good", "bad", "noisy", "skipped"
ENDS = (GOOD, BAD)
# What the gate's verdict for a probe against each end says about the probe; a verdict
# not listed ("noisy") does not tell. Against the bad end, "unchanged" means at the bad
# level and "regression" slower still: bad either way.
UNTIMED = ("failed", "missing", "new")  # verdicts of a case not timed on both sides
AGAINST = {GOOD: {"regression": BAD, "unchanged": GOOD, "improvement": GOOD},
           BAD: {"regression": BAD, "unchanged": BAD, "improvement": GOOD}}
ATTEMPTS = 2  # an unclear probe is timed once more, then left unclear
CONFIDENCE = 0.95  # of the interval reported with a change

# Answers for a case.
FOUND = "found"
AMONG_SKIPPED = "among skipped"       # only skipped commits between last good and first bad
NO_REGRESSION = "no regression"       # the bad end is not slower than the good end
UNCLEAR = "unclear"                   # the ends' timings could not tell
NOT_MEASURED = "not measured"         # the case failed or is missing at an end


@dataclass(frozen=True)
class Reading:
    """One paired timing's verdict for one case: a commit against one end."""

    against: str                 # GOOD or BAD: the end it was timed beside
    attempt: int                 # 2: pooled with the first timing
    verdict: str                 # the gate's: regression, unchanged, noisy, failed, ...
    change: float | None = None  # the commit's step time / the end's (1.3 = 30% slower)
    low: float | None = None     # 95% interval of ``change``
    high: float | None = None
    folder: str = ""             # where the timing is
    note: str = ""               # the comparison's first note (e.g. why the case failed)


class ProbeFailed(Exception):
    """The commit could not be timed at all: the message says why."""


# measure(commit, against, case ids, attempt) -> {case id: Reading}; a case left out was
# not measured. Raises ProbeFailed for a commit that cannot be timed.
Measure = Callable[[str, str, list[str], int], dict[str, Reading]]


@dataclass
class Probe:
    commit: str
    position: int                         # 1-based place in the range (the bad end: n)
    states: dict[str, str]                # case id -> GOOD, BAD, NOISY or SKIPPED
    readings: dict[str, list[Reading]]
    timings: int                          # paired timings this probe took
    error: str | None = None              # why it could not be timed


@dataclass
class Answer:
    case_id: str
    status: str
    last_good: str                        # the good end or the last good commit
    first_bad: str | None = None          # FOUND: the culprit; else the first known bad
    candidates: list[str] = field(default_factory=list)  # AMONG_SKIPPED: one of these
    reading: Reading | None = None        # the first bad commit against the good end


@dataclass
class Outcome:
    good: str
    bad: str
    commits: list[str]                    # the range, oldest first; the bad end last
    answers: dict[str, Answer]
    probes: list[Probe]

    @property
    def regressed(self) -> list[Answer]:
        return [a for a in self.answers.values() if a.status in (FOUND, AMONG_SKIPPED)]

    @property
    def exit_code(self) -> int:
        """0 when every case that regressed between the ends has its first bad commit."""
        found = self.regressed
        return 0 if found and all(a.status == FOUND for a in found) else 1

    @property
    def timings(self) -> int:
        return sum(p.timings for p in self.probes)

    @property
    def skipped(self) -> dict[str, str]:
        """``{commit: why}`` for every commit some case could not use."""
        out = {}
        for p in self.probes:
            why = [f"{c}: {s}" + (f" ({p.readings[c][-1].note})" if p.readings[c]
                                  and p.readings[c][-1].note else "")
                   for c, s in p.states.items() if s in (SKIPPED, NOISY)]
            if why:
                out[p.commit] = p.error or "; ".join(why)
        return out

    def bisect_doc(self) -> dict:
        """``bisect.json`` as ``resnets history`` reads it: ``{case_id: {first_bad,
        change, low, high}}`` per found case (plus the ends and the probe count)."""
        return {a.case_id: {"first_bad": a.first_bad, "change": a.reading.change,
                            "low": a.reading.low, "high": a.reading.high,
                            "good": self.good, "bad": self.bad, "probes": len(self.probes)}
                for a in self.answers.values() if a.status == FOUND and _numbers(a.reading)}

    def to_dict(self) -> dict:
        """The whole bisection: the range, each case's answer and every probe."""
        return {"good": self.good, "bad": self.bad, "range": self.commits,
                "probes_used": len(self.probes), "timings": self.timings,
                "bound": max_probes(len(self.commits)), "exit_code": self.exit_code,
                "answers": {k: asdict(a) for k, a in self.answers.items()},
                "skipped": self.skipped,
                "probes": [asdict(p) for p in self.probes]}


def _numbers(r: Reading | None) -> bool:
    return r is not None and all(isinstance(x, float) and math.isfinite(x) and x > 0
                                 for x in (r.change, r.low, r.high))


def max_probes(n: int) -> int:
    """Probes a range of ``n`` commits takes at most without skips: the bad end, then
    halving the ``n`` places the first bad commit can be."""
    return 1 + math.ceil(math.log2(n)) if n > 0 else 0


def judge(measure: Measure, commit: str, case_ids: list[str], ends=ENDS
          ) -> tuple[dict[str, str], dict[str, list[Reading]], int, str | None]:
    """Each case's state at ``commit`` by the rule in the module doc (step 2; the bad
    end itself is judged against the good end only): (states, readings, timings taken,
    why it could not be timed)."""
    states: dict[str, str] = {}
    readings: dict[str, list[Reading]] = {c: [] for c in case_ids}
    timings = 0
    for attempt in range(1, ATTEMPTS + 1):
        for against in ends:
            todo = [c for c in case_ids if c not in states]
            if not todo:
                break
            timings += 1
            try:
                got = measure(commit, against, todo, attempt)
            except ProbeFailed as exc:
                for c in todo:
                    states[c] = SKIPPED
                return states, readings, timings, str(exc)
            for c in todo:
                r = got.get(c)
                if r is None:
                    states[c] = SKIPPED
                    continue
                readings[c].append(r)
                if r.verdict in AGAINST[against]:
                    states[c] = AGAINST[against][r.verdict]
                elif r.verdict in UNTIMED:
                    states[c] = SKIPPED
    for c in case_ids:
        states.setdefault(c, NOISY)
    return states, readings, timings, None


@dataclass
class _Track:
    """One case's open interval: indexes into the range (-1: the good end)."""

    last_good: int
    first_bad: int
    skipped: set[int] = field(default_factory=set)

    def open(self) -> list[int]:
        return [i for i in range(self.last_good + 1, self.first_bad) if i not in self.skipped]

    def next(self) -> int | None:
        """The open commit nearest the middle of the interval (the earlier on a tie)."""
        mid = (self.last_good + self.first_bad) / 2
        return min(self.open(), key=lambda i: (abs(i - mid), i), default=None)


def bisect(good: str, commits: list[str], case_ids: list[str], measure: Measure,
           progress: Callable[[str], None] | None = None) -> Outcome:
    """Bisect ``case_ids`` over ``commits`` (after ``good``, oldest first, the bad end
    last) by the rule in the module doc."""
    if not commits:
        raise UserError("the range holds no commit: the good and bad ends are the same")
    say = progress or (lambda line: None)
    n, bad = len(commits), commits[-1]
    states, readings, timings, error = judge(measure, bad, case_ids, (GOOD,))
    probes = [Probe(bad, n, states, readings, timings, error)]
    if error is not None:
        raise UserError(f"the bad end {bad[:12]} could not be timed against the good end "
                        f"{good[:12]}: {error}")
    say(_line(probes[-1]))
    answers = {c: Answer(c, {BAD: FOUND, GOOD: NO_REGRESSION, NOISY: UNCLEAR}.get(
        states[c], NOT_MEASURED), good) for c in case_ids}
    tracks = {c: _Track(-1, n - 1) for c in case_ids if states[c] == BAD}
    while True:
        active = [c for c, t in tracks.items() if t.next() is not None]
        if not active:
            break
        i = tracks[active[0]].next()
        cases = [c for c in active if i in tracks[c].open()]
        states, readings, timings, error = judge(measure, commits[i], cases)
        probes.append(Probe(commits[i], i + 1, states, readings, timings, error))
        say(_line(probes[-1]))
        for c in cases:
            t = tracks[c]
            if states[c] == BAD:
                t.first_bad = i
            elif states[c] == GOOD:
                t.last_good = i
            else:
                t.skipped.add(i)
    for c, t in tracks.items():
        a = answers[c]
        a.last_good = good if t.last_good < 0 else commits[t.last_good]
        a.first_bad = commits[t.first_bad]
        between = sorted(i for i in t.skipped if t.last_good < i < t.first_bad)
        if between:
            a.status = AMONG_SKIPPED
            a.candidates = [commits[i] for i in [*between, t.first_bad]]
        probe = next(p for p in reversed(probes) if p.commit == a.first_bad
                     and c in p.readings)
        a.reading = next((r for r in reversed(probe.readings[c]) if r.against == GOOD), None)
    return Outcome(good, bad, commits, answers, probes)


def _line(p: Probe) -> str:
    """A probe in one line, for progress."""
    parts = []
    for c, state in p.states.items():
        r = next((r for r in reversed(p.readings[c]) if r.against == GOOD), None)
        seen = f" {change(r.change)}" if r is not None and r.change is not None else ""
        parts.append(f"{c} {state}{seen}")
    why = f" ({p.error})" if p.error else ""
    return printable(f"probe {p.commit[:12]} (position {p.position}): {', '.join(parts)}{why}")


# --- output ------------------------------------------------------------------------------

def interval(r: Reading | None) -> str:
    if not _numbers(r):
        return "-"
    return f"{change(r.change)} ({change(r.low)} to {change(r.high)})"


def summary(o: Outcome) -> list[str]:
    """One line per case and one for the probes: the terminal's and the Markdown's."""
    n = len(o.commits)
    lines = []
    for a in o.answers.values():
        if a.status == FOUND:
            where = o.commits.index(a.first_bad) + 1
            lines.append(f"{a.case_id}: first bad commit {a.first_bad[:12]} (position {where} "
                         f"of {n}), {interval(a.reading)} against the good end; last good "
                         f"{a.last_good[:12]}")
        elif a.status == AMONG_SKIPPED:
            lines.append(f"{a.case_id}: the first bad commit is one of "
                         f"{', '.join(c[:12] for c in a.candidates)} (the others were "
                         "skipped)")
        else:
            lines.append(f"{a.case_id}: {a.status} between the ends")
    lines.append(f"{len(o.probes)} probe(s), {o.timings} paired timing(s), over {n} "
                 f"commit(s) (at most {max_probes(n)} probes without skips)")
    return lines


def markdown(o: Outcome) -> str:
    head = ("first bad commit found" if o.exit_code == 0
            else "no first bad commit named")
    lines = [f"### Bisect: {head}", "",
             f"Good end `{o.good}`, bad end `{o.bad}`: {len(o.commits)} commit(s) on the "
             "first-parent range, each probe timed paired against the good end (and "
             "against the bad end when it was close to both), judged by the gate's rule.",
             "", *(f"- {md(line)}" for line in summary(o)), ""]
    if o.skipped:
        lines += ["Skipped commits:", "",
                  markdown_table(["commit", "why"], [(c[:12], why)
                                                     for c, why in o.skipped.items()]), ""]
    rows = []
    for k, p in enumerate(o.probes, 1):
        for c, state in p.states.items():
            seen = {end: next((r for r in reversed(p.readings[c]) if r.against == end), None)
                    for end in ENDS}
            rows.append((k, p.commit[:12], p.position, c,
                         *(f"{r.verdict} {interval(r)}" if r else "-" for r in seen.values()),
                         state))
    lines += ["Probes:", "", markdown_table(
        ["#", "commit", "position", "case", "against good", "against bad", "state"], rows,
        [True, False, True, False, False, False, False])]
    return "\n".join(lines) + "\n"


# --- timing: worktrees and the gate ------------------------------------------------------

class GateMeasure:
    """The ``measure`` of a real bisection: each commit checked out once as a worktree
    under ``out/src``, each timing a ``run_gate`` into ``out/probes/<commit>-vs-<end>-<k>``
    (the k-th attempt judged over every attempt so far). ``close`` removes the
    worktrees."""

    def __init__(self, repo: Path, out: Path, ends: dict[str, str], cases, settings, opts,
                 repeats="auto", blocks: int | None = None, progress=None):
        self.repo, self.out, self.ends = repo, out, ends
        self.cases = {c.id: c for c in cases}
        self.settings, self.opts, self.repeats, self.blocks = settings, opts, repeats, blocks
        self.progress = progress
        self.made: list[Path] = []
        self.folders: dict[str, Path] = {}

    def folder(self, commit: str) -> Path:
        from .git import add_worktree

        if commit not in self.folders:
            self.folders[commit] = add_worktree(self.repo, commit,
                                                self.out / "src" / commit[:12], self.made)
        return self.folders[commit]

    def __call__(self, commit: str, against: str, case_ids: list[str],
                 attempt: int) -> dict[str, Reading]:
        from . import gate
        from .compare import compare
        from .paired import DEFAULT_BLOCKS

        end = self.ends[against]
        outs = [self.out / "probes" / f"{commit[:12]}-vs-{against}-{k}"
                for k in range(1, attempt + 1)]
        try:
            result = gate.run_gate(
                [self.cases[c] for c in case_ids], self.settings,
                {"base": self.folder(end), "head": self.folder(commit)}, outs[-1], self.opts,
                repeats=self.repeats, blocks=self.blocks or DEFAULT_BLOCKS,
                commits={"base": end, "head": commit}, progress=self.progress)
            comparison = result.comparison if attempt == 1 else compare(
                *([r for o in outs for r in gate._side_runs(o, side)] for side in gate.SIDES),
                self.opts)
        except UserError as exc:  # e.g. it does not start, or no case ran on either side
            errors = failures(outs[-1])
            raise ProbeFailed("; ".join(f"{c}: {e}" for c, e in errors.items()) or str(exc)
                              ) from None
        errors = failures(outs[-1]) if any(c.verdict in UNTIMED for c in comparison.cases
                                           ) else {}
        return {c.key: reading(c, against, attempt, outs[-1], errors.get(c.key))
                for c in comparison.cases if c.key in case_ids}

    def close(self) -> None:
        from .gate import remove_worktrees

        remove_worktrees(self.repo, self.made)
        self.made.clear()
        with contextlib.suppress(OSError):  # the folder of the worktrees, once empty
            (self.out / "src").rmdir()


def failures(out: Path) -> dict[str, str]:
    """``{case id: error}`` of the cases that failed on the probe's side of the timing in
    ``out``: why a case is skipped there (a case that fails while warming up leaves the
    other side nothing to pair with, so the comparison itself only says it is missing)."""
    from .results import load

    try:
        df = load([out / "head"])
    except (UserError, OSError):
        return {}
    df = df[df["error"].notna()] if not df.empty else df
    return {str(c): str(e) for c, e in zip(df["case_id"], df["error"])}


def reading(case, against: str, attempt: int, folder: Path, error: str | None = None
            ) -> Reading:
    """A compared case (``compare.verdict.CaseResult``) as a Reading, with the 95%
    interval of its ratio (the gate's own interval is at its alpha) and, for a case that
    failed, ``error``."""
    from .stats import normal_quantile

    t, note = case.timing, error or (case.notes[0] if case.notes else "")
    if t is None:
        return Reading(against, attempt, case.verdict, folder=str(folder), note=note)
    z = normal_quantile(0.5 + CONFIDENCE / 2)
    d = math.log(t.ratio)
    return Reading(against, attempt, case.verdict, float(t.ratio), math.exp(d - z * t.se),
                   math.exp(d + z * t.se), str(folder), note)


def run(repo: Path, good: str, bad: str, cases, out: Path, settings, opts, repeats="auto",
        blocks: int | None = None, progress=None) -> Outcome:
    """Bisect ``cases`` between the commits ``good`` and ``bad`` of ``repo`` into ``out``
    (see the module doc): bisect.json (the first bad commit per found case, as
    ``resnets history`` reads it), probes.json (everything) and bisect.md."""
    from .git import first_parents
    from .store import atomic_write_text, dumps

    if (out / "probes").exists():
        raise UserError(f"{out}: already holds a bisection; pick a new folder")
    commits = first_parents(repo, good, bad)
    measure = GateMeasure(repo, out, {GOOD: good, BAD: bad}, cases, settings, opts, repeats,
                          blocks, progress)
    try:
        outcome = bisect(good, commits, [c.id for c in cases], measure, progress)
    finally:
        measure.close()
    atomic_write_text(out / "bisect.json", dumps(outcome.bisect_doc()))
    atomic_write_text(out / "probes.json", dumps(outcome.to_dict()))
    atomic_write_text(out / "bisect.md", markdown(outcome))
    return outcome


# --- from a history ----------------------------------------------------------------------

@dataclass
class Job:
    """One shift of a history to bisect: the commits of the runs on either side of it,
    the cases that shifted there, and the run folder of the first run at the new level
    (where ``resnets history`` looks for its bisect.json)."""

    good: str
    bad: str
    cases: list = field(default_factory=list)
    folder: Path | None = None


def history_jobs(paths, opts) -> tuple[list[Job], list[str]]:
    """The new slowdown shifts ``resnets history`` finds in ``paths`` (``Series.failing``)
    as jobs, one per pair of commits (the cases that shifted between the same two runs'
    commits are bisected together), and a note for each shift that cannot be bisected."""
    from .history import history
    from .results import load, run_folder

    jobs: dict[tuple[str, str], Job] = {}
    notes = []
    df = None
    for s in history(paths, opts):
        for shift in s.failing:
            before, after = s.points.iloc[shift.start - 1], s.points.iloc[shift.start]
            good, bad = before["commit"], after["commit"]
            where = f"{s.case_id} at run {after['run']}"
            if not (isinstance(good, str) and good and isinstance(bad, str) and bad):
                notes.append(f"{where}: the runs hold no commit id")
                continue
            if good == bad:
                notes.append(f"{where}: both runs are of commit {bad[:12]} (the change is "
                             "not in the code)")
                continue
            if df is None:
                df = load(paths)
            rows = df[(df["case_id"] == s.case_id) & (df["run"] == after["run"])]
            job = jobs.setdefault((good, bad), Job(good, bad,
                                                   folder=run_folder(rows["source"].iloc[0])))
            case = case_of(rows.iloc[0])
            if case not in job.cases:
                job.cases.append(case)
    return list(jobs.values()), notes


def case_of(row) -> object:
    """The ``Case`` behind a result row (its config columns, as ``Result.row`` wrote
    them: the input shape as ``CxHxW``, numbers perhaps read back as floats)."""
    import pandas as pd

    from .case import FIELDS, Case

    key = {}
    for name in FIELDS:
        value = row.get(name)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        if hasattr(value, "item"):  # a numpy scalar
            value = value.item()
        if name == "input_shape":
            value = tuple(int(x) for x in str(value).split("x"))
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        key[name] = value
    try:
        case = Case.from_key(key)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{row.get('case_id')}: not a case this version can run ({exc})"
                        ) from None
    if case.id != row.get("case_id"):
        raise UserError(f"{row.get('case_id')}: its result rebuilds as {case.id}, another "
                        "case")
    return case


def run_history(repo: Path, paths, out: Path, settings, opts, history_opts, repeats="auto",
                blocks: int | None = None, progress=None
                ) -> tuple[list[tuple[Job, Outcome]], list[str]]:
    """Bisect each new slowdown shift of the history in ``paths`` (``history_jobs``), each
    into ``out/shift-<k>-<good>-<bad>``; every found case also goes into ``out/bisect.json``
    and into the bisect.json of the first run at the new level (merged with what is
    there), where ``resnets history`` shows it. Returns (job, outcome) pairs and notes."""
    from .git import commit_of
    from .history import bisect_results
    from .history.analysis import BISECT_FILE
    from .store import atomic_write_text, dumps

    jobs, notes = history_jobs(paths, history_opts)
    for job in jobs:  # every commit checked before anything is timed
        job.good = commit_of(repo, job.good, "the history's commit")
        job.bad = commit_of(repo, job.bad, "the history's commit")
    done, found = [], {}
    for k, job in enumerate(jobs, 1):
        outcome = run(repo, job.good, job.bad, job.cases,
                      out / f"shift-{k}-{job.good[:7]}-{job.bad[:7]}", settings, opts,
                      repeats, blocks, progress)
        done.append((job, outcome))
        doc = outcome.bisect_doc()
        found.update(doc)
        if job.folder is not None and doc:
            path = job.folder / BISECT_FILE
            try:
                old = {c: asdict(b) for c, b in bisect_results([], [path]).items()
                       } if path.is_file() else {}
                atomic_write_text(path, dumps({**old, **doc}))
            except (OSError, UserError) as exc:
                notes.append(f"{path}: not updated ({exc})")
    atomic_write_text(out / "bisect.json", dumps(found))
    atomic_write_text(out / "bisect.md", "\n".join(markdown(o) for _, o in done)
                      or "### Bisect: no new slowdown shift in the history\n")
    return done, notes
