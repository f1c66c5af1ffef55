"""Match the cases of two result sets and give each one verdict (the rule: package doc).

A side is everything loaded from one argument: usually one run, possibly several
(repeats or interleaved runs), whose samples then all count and whose spread informs
the noise model. Torch-free: pandas and numpy only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError
from ..results import load
from ..schema import (
    CASE_ID,
    COMPARABLE_ENV,
    KIND,
    SAMPLES,
    STATUS,
    Kind,
    SpeedResult,
    Status,
    metrics,
)
from .noise import prior_sigma, repeat_sigma
from .significance import bootstrap_medians, mann_whitney

# Deterministic per-case metrics (the schema's gate): any change counts / a change beyond
# the threshold counts.
EXACT_METRICS = tuple(metrics(SpeedResult, gate="exact"))
THRESHOLD_METRICS = tuple(metrics(SpeedResult, gate="threshold"))
# Display order, worst first.
VERDICTS = ("failed", "regression", "noisy", "improvement", "new", "missing", "unchanged")
# How a timing verdict and metric verdicts combine: the first one present wins.
_PRECEDENCE = ("regression", "noisy", "improvement", "unchanged")


@dataclass(frozen=True)
class Options:
    alpha: float = 0.01
    threshold: float = 0.05
    noise: float | None = None         # per-run level-shift floor; None: the device's
    resamples: int = 2000
    allow_env_mismatch: bool = False
    fail_on_missing: bool = False      # both sides ran the same selection: absent = broken
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise UserError(f"--alpha must be between 0 and 0.5, not {self.alpha}")
        if not 0 < self.threshold < 1:
            raise UserError(f"--threshold must be a fraction in (0, 1) (0.05 = 5%), "
                            f"not {self.threshold}")
        if self.noise is not None and not 0 <= self.noise < 1:
            raise UserError(f"--noise must be a fraction in [0, 1) (0.02 = 2%), not {self.noise}")
        if self.resamples < 100:
            raise UserError(f"--resamples must be >= 100, not {self.resamples}")


@dataclass
class TimingChange:
    base_median: float       # seconds per step (geometric mean of run medians if repeats)
    cand_median: float
    ratio: float             # candidate / baseline: 1.10 = 10% slower
    ci_low: float            # 1-2*alpha interval of the ratio, run-to-run shift included:
    ci_high: float           # each end is a one-sided alpha bound
    p_value: float           # Mann-Whitney U, two-sided, all steps of each side
    sigma: float             # per-run level shift assumed (relative)
    base_rounds: int
    cand_rounds: int
    base_runs: int
    cand_runs: int


@dataclass
class CaseResult:
    key: str
    kind: str
    verdict: str
    gates: bool = False      # counts toward exit code 1 (when environments match)
    timing: TimingChange | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: list[str]      # run names on each side
    candidate: list[str]
    options: Options
    cases: list[CaseResult]
    env_diff: dict[str, tuple[list, list]]

    @property
    def gating(self) -> bool:
        return not self.env_diff or self.options.allow_env_mismatch

    @property
    def gated(self) -> list[CaseResult]:
        return [c for c in self.cases if c.gates] if self.gating else []

    @property
    def exit_code(self) -> int:
        return 1 if self.gated else 0

    def counts(self) -> dict[str, int]:
        return {v: n for v in VERDICTS if (n := sum(c.verdict == v for c in self.cases))}

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "candidate": self.candidate,
                "options": asdict(self.options), "gating": self.gating,
                "env_diff": {k: {"baseline": b, "candidate": c}
                             for k, (b, c) in self.env_diff.items()},
                "counts": self.counts(), "exit_code": self.exit_code,
                "cases": [asdict(c) for c in self.cases]}


def load_side(paths, label: str) -> pd.DataFrame:
    df = load(paths)
    where = f"{label} {' '.join(map(str, paths))}"
    if df.empty:
        raise UserError(f"{where}: no benchmark results in it")
    blind = df[(df[KIND] == Kind.SPEED) & (df[STATUS] == Status.OK)
               & (df[SAMPLES].map(len) == 0)]
    if not blind.empty:
        raise UserError(f"{label}: {blind['source'].iloc[0]} has no per-step samples "
                        "(pytest-benchmark keeps them only with --benchmark-save-data)")
    return df.assign(key=[_key(r) for r in df.itertuples()])


def _key(row) -> str:
    """Speed cases match by case id; convergence cases also by dataset and target."""
    if getattr(row, KIND) != Kind.CONVERGENCE:
        return getattr(row, CASE_ID)
    return f"{getattr(row, CASE_ID)} {row.dataset}@{row.target_acc}"


def environment_diff(base: pd.DataFrame, cand: pd.DataFrame) -> dict[str, tuple[list, list]]:
    """``{field: (baseline values, candidate values)}`` for each ENV_FIELD that differs."""
    diff = {}
    for name in COMPARABLE_ENV:
        col = f"env_{name}"
        values = [sorted({str(v) for v in df[col].dropna()}) if col in df else []
                  for df in (base, cand)]
        if values[0] != values[1]:
            diff[name] = (values[0], values[1])
    return diff


def compare(base_paths, cand_paths, options: Options = Options()) -> Comparison:
    options.check()
    base, cand = load_side(base_paths, "baseline"), load_side(cand_paths, "candidate")
    rng = np.random.default_rng(options.seed)
    cases = []
    for key in sorted(set(base["key"]) | set(cand["key"])):
        b, c = base[base["key"] == key], cand[cand["key"] == key]
        if b.empty or c.empty:
            present = c if b.empty else b
            verdict = "new" if b.empty else "missing"
            cases.append(CaseResult(key, present[KIND].iloc[0], verdict,
                                    gates=verdict == "missing" and options.fail_on_missing))
        elif (c[KIND] == Kind.CONVERGENCE).all():
            cases.append(_convergence(key, b, c, options))
        else:
            cases.append(_speed(key, b, c, options, rng))
    cases.sort(key=lambda r: (VERDICTS.index(r.verdict), r.key))
    return Comparison(sorted(base["run"].unique()), sorted(cand["run"].unique()), options,
                      cases, environment_diff(base, cand))


def _ok_runs(rows: pd.DataFrame) -> list[np.ndarray]:
    ok = rows[(rows[STATUS] == Status.OK) & (rows[SAMPLES].map(len) > 0)]
    return [np.asarray(s, dtype=float) for s in ok.sort_values("run_time")[SAMPLES]]


def _speed(key: str, b: pd.DataFrame, c: pd.DataFrame, opts: Options, rng) -> CaseResult:
    base_runs, cand_runs = _ok_runs(b), _ok_runs(c)
    if not cand_runs:
        error = next((e for e in c["error"].dropna()), "no samples")
        return CaseResult(key, Kind.SPEED, "failed", gates=bool(base_runs),
                          notes=[f"candidate failed: {error}"])
    if not base_runs:
        return CaseResult(key, Kind.SPEED, "new", notes=["failed in the baseline"])
    timing = timing_change(base_runs, cand_runs, opts, rng, str(c["device"].iloc[0]))
    verdicts = [timing_verdict(timing, opts)]
    notes = []
    for metric in (*EXACT_METRICS, *THRESHOLD_METRICS):
        old, new = _latest(b, metric), _latest(c, metric)
        if old is None or new is None or old == new:
            continue
        tolerance = opts.threshold if metric in THRESHOLD_METRICS else 0.0
        change = new / old - 1 if old else math.inf
        if abs(change) > tolerance:
            verdicts.append("regression" if change > 0 else "improvement")
            notes.append(f"{metric} {old:,.0f} -> {new:,.0f} ({change:+.1%})")
    verdict = next(v for v in _PRECEDENCE if v in verdicts)
    return CaseResult(key, Kind.SPEED, verdict, gates=verdict == "regression", timing=timing,
                      notes=notes)


def _latest(rows: pd.DataFrame, metric: str) -> float | None:
    if metric not in rows:
        return None
    values = pd.to_numeric(rows.sort_values("run_time")[metric], errors="coerce").dropna()
    return float(values.iloc[-1]) if len(values) else None


def timing_change(base_runs: list, cand_runs: list, opts: Options, rng,
                  device: str) -> TimingChange:
    """Ratio of the candidate's level to the baseline's, its interval and the U test.

    A side's level is the geometric mean of its runs' medians. The interval is a
    percentile bootstrap of the ratio where each draw resamples every run's steps and
    shifts every run's level by N(0, sigma^2) on log time (see ``noise``); its ends are
    the alpha and 1-alpha quantiles, so each is a one-sided bound at level alpha."""
    prior = prior_sigma([*base_runs, *cand_runs], device, opts.noise)
    sigma = repeat_sigma(prior, [base_runs, cand_runs])
    levels, draws = [], []
    for runs in (base_runs, cand_runs):
        levels.append(float(np.mean([np.log(np.median(r)) for r in runs])))
        boot = np.mean([np.log(bootstrap_medians(r, opts.resamples, rng)) for r in runs], axis=0)
        draws.append(boot + rng.normal(0.0, sigma / math.sqrt(len(runs)), opts.resamples))
    low, high = np.quantile(draws[1] - draws[0], [opts.alpha, 1 - opts.alpha])
    test = mann_whitney(np.concatenate(base_runs), np.concatenate(cand_runs))
    return TimingChange(math.exp(levels[0]), math.exp(levels[1]), math.exp(levels[1] - levels[0]),
                  math.exp(low), math.exp(high), test.p, sigma, sum(map(len, base_runs)),
                  sum(map(len, cand_runs)), len(base_runs), len(cand_runs))


def timing_verdict(t: TimingChange, opts: Options) -> str:
    slower, faster = t.ratio > 1 + opts.threshold, t.ratio < 1 / (1 + opts.threshold)
    if not (slower or faster):
        return "unchanged"
    significant = t.p_value < opts.alpha and (t.ci_low > 1 if slower else t.ci_high < 1)
    if not significant:
        return "noisy"
    return "regression" if slower else "improvement"


def _convergence(key: str, b: pd.DataFrame, c: pd.DataFrame, opts: Options) -> CaseResult:
    """Iterations to target over the seeds: a change counts when the candidate's median
    leaves the baseline seeds' range and moves beyond the threshold; a run that did not
    reach the target counts as infinitely many iterations."""
    base, cand = _iterations(b), _iterations(c)
    old, new = float(np.median(base)), float(np.median(cand))
    note = f"iterations to target {_fmt_iters(base)} -> {_fmt_iters(cand)}"
    if old == new or (math.isinf(old) and math.isinf(new)):
        verdict = "unchanged"
    elif new > old * (1 + opts.threshold):
        verdict = "regression" if new > base.max() else "noisy"
    elif new < old / (1 + opts.threshold):
        verdict = "improvement" if new < base.min() else "noisy"
    else:
        verdict = "unchanged"
    return CaseResult(key, Kind.CONVERGENCE, verdict, gates=verdict == "regression",
                      notes=[note])


def _iterations(rows: pd.DataFrame) -> np.ndarray:
    iters = pd.to_numeric(rows.get("iters_to_target"), errors="coerce")
    reached = (rows[STATUS] == Status.REACHED) & iters.notna()
    return np.where(reached, iters, np.inf).astype(float)


def _fmt_iters(values: np.ndarray) -> str:
    shown = ["not reached" if math.isinf(v) else f"{v:,.0f}" for v in sorted(values)]
    return shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
