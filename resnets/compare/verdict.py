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
from ..paired import TWO_PROCESSES
from ..results import load, warn
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
from ..stats import normal_quantile
from .noise import BUSY_CORES, paired_sigma, prior_sigma, repeat_sigma
from .significance import holm, median_se, paired_blocks, split_blocks, z_test

# Deterministic per-case metrics (the schema's gate): any change counts / a change beyond
# the threshold counts.
EXACT_METRICS = tuple(metrics(SpeedResult, gate="exact"))
THRESHOLD_METRICS = tuple(metrics(SpeedResult, gate="threshold"))
# Display order, worst first.
VERDICTS = ("failed", "regression", "noisy", "improvement", "new", "missing", "unchanged")
# How a timing verdict and metric verdicts combine: the first one present wins.
_PRECEDENCE = ("regression", "noisy", "improvement", "unchanged")


POWER = 0.8  # the detection probability behind "would have flagged >= X%"


@dataclass(frozen=True)
class Options:
    alpha: float = 0.01                # family-wise: the chance of any false alarm
    threshold: float = 0.05
    noise: float | None = None         # per-run level-shift floor; None: the device's
    allow_env_mismatch: bool = False
    fail_on_missing: bool = False      # both sides ran the same selection: absent = broken
    strict: bool = False               # refuse a damaged result file instead of skipping it

    def check(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise UserError(f"--alpha must be between 0 and 0.5, not {self.alpha}")
        if not 0 < self.threshold < 1:
            raise UserError(f"--threshold must be a fraction in (0, 1) (0.05 = 5%), "
                            f"not {self.threshold}")
        if self.noise is not None and not 0 <= self.noise < 1:
            raise UserError(f"--noise must be a fraction in [0, 1) (0.02 = 2%), not {self.noise}")


@dataclass
class TimingChange:
    base_median: float       # seconds per step (geometric mean of run medians if repeats)
    cand_median: float
    ratio: float             # candidate / baseline: 1.10 = 10% slower
    se: float                # standard error of log(ratio), run-to-run shift included
    p_value: float           # two-sided, this case alone
    sigma: float             # per-run (or per-pair) level shift assumed, relative
    base_rounds: int
    cand_rounds: int
    base_runs: int           # runs (or process pairs, when paired) on each side
    cand_runs: int
    paired: bool             # timed in alternating blocks beside the other side
    busy: float | None       # most cores busy with other work while either side ran
    p_adjusted: float = 1.0  # Holm-adjusted over every timed case of the comparison
    ci_low: float = 0.0      # 1 - alpha interval of the ratio (this case alone)
    ci_high: float = 0.0
    detectable: float = 0.0  # slowdown found with 80% probability at this noise

    def finish(self, alpha: float, threshold: float, cases: int) -> None:
        """Interval and detectable change, once the number of cases is known."""
        z = normal_quantile(1 - alpha / 2)
        d = math.log(self.ratio)
        self.ci_low, self.ci_high = _exp(d - z * self.se), _exp(d + z * self.se)
        strictest = normal_quantile(1 - alpha / (2 * max(1, cases)))
        self.detectable = max(threshold, _exp((strictest + normal_quantile(POWER)) * self.se) - 1)


def _exp(x: float) -> float:
    """exp that says inf where the float overflows: samples a billion-fold apart (a
    damaged file the schema cannot call impossible) give a log-scale spread that large."""
    return math.exp(x) if x < 709 else math.inf


@dataclass
class CaseResult:
    key: str
    kind: str
    verdict: str
    gates: bool = False      # counts toward exit code 1 (when environments match)
    timing: TimingChange | None = None
    notes: list[str] = field(default_factory=list)
    metric_verdicts: list[str] = field(default_factory=list)  # from params, FLOPs, memory


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

    def detectable(self) -> tuple[float, float] | None:
        """(median, largest) change the timed cases could have flagged, or None."""
        found = sorted(c.timing.detectable for c in self.cases if c.timing)
        return (found[len(found) // 2], found[-1]) if found else None

    def counts(self) -> dict[str, int]:
        return {v: n for v in VERDICTS if (n := sum(c.verdict == v for c in self.cases))}

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "candidate": self.candidate,
                "options": asdict(self.options), "gating": self.gating,
                "env_diff": {k: {"baseline": b, "candidate": c}
                             for k, (b, c) in self.env_diff.items()},
                "counts": self.counts(), "exit_code": self.exit_code,
                "cases": [asdict(c) for c in self.cases]}


def load_side(paths, label: str, strict: bool = False) -> pd.DataFrame:
    df = load(paths, strict=strict)
    where = f"{label} {' '.join(map(str, paths))}"
    df = df[df[STATUS] != Status.SKIPPED] if not df.empty else df  # a skip is no result
    if df.empty:
        raise UserError(f"{where}: no benchmark results in it")
    blind = df[(df[KIND] == Kind.SPEED) & (df[STATUS] == Status.OK)
               & (df[SAMPLES].map(len) == 0)]
    if not blind.empty:
        why = (f"{label}: {blind['source'].iloc[0]} has no per-step samples "
               "(pytest-benchmark keeps them only with --benchmark-save-data)")
        if len(blind) == len(df[df[KIND] == Kind.SPEED]):
            raise UserError(why)
        warn(f"{why}: not compared ({len(blind)} result(s) without samples)")
        df = df.drop(blind.index)
    return df.assign(key=[_key(r) for r in df.itertuples()])


def _key(row) -> str:
    """Speed cases match by case id; convergence cases also by dataset and target."""
    if getattr(row, KIND) != Kind.CONVERGENCE:
        return getattr(row, CASE_ID)
    return f"{getattr(row, CASE_ID)} {row.dataset}@{row.target_acc}"


def environment_diff(base: pd.DataFrame, cand: pd.DataFrame) -> dict[str, tuple[list, list]]:
    """``{field: (baseline values, candidate values)}`` for each ENV_FIELD that differs,
    over the measured results (a failed one may record no environment at all); a field
    one side did not record (an older version) is not a difference."""
    diff = {}
    measured = [df[df[STATUS] == Status.OK] for df in (base, cand)]
    if any(df.empty for df in measured):
        return diff
    for name in COMPARABLE_ENV:
        col = f"env_{name}"
        values = [sorted({str(v) for v in df[col].dropna()}) if col in df else []
                  for df in measured]
        if values[0] and values[1] and values[0] != values[1]:  # unknown is not different
            diff[name] = (values[0], values[1])
    return diff


def compare(base_paths, cand_paths, options: Options = Options()) -> Comparison:
    options.check()
    base = load_side(base_paths, "baseline", options.strict)
    cand = load_side(cand_paths, "candidate", options.strict)
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
            cases.append(_speed(key, b, c, options))
    _judge_timings(cases, options)
    cases.sort(key=lambda r: (VERDICTS.index(r.verdict), r.key))
    return Comparison(sorted(base["run"].unique()), sorted(cand["run"].unique()), options,
                      cases, environment_diff(base, cand))


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows[STATUS] == Status.OK) & (rows[SAMPLES].map(len) > 0)].sort_values(
        "run_time")


def _speed(key: str, b: pd.DataFrame, c: pd.DataFrame, opts: Options) -> CaseResult:
    base_ok, cand_ok = _ok(b), _ok(c)
    if cand_ok.empty:
        error = next((e for e in c["error"].dropna()), "no samples")
        return CaseResult(key, Kind.SPEED, "failed", gates=not base_ok.empty,
                          notes=[f"candidate failed: {error}"])
    if base_ok.empty:
        return CaseResult(key, Kind.SPEED, "new", notes=["failed in the baseline"])
    timing = timing_change(base_ok, cand_ok, opts, str(c["device"].iloc[0]))
    notes, verdicts = [], []
    for metric in (*EXACT_METRICS, *THRESHOLD_METRICS):
        old, new = _latest(b, metric), _latest(c, metric)
        if old is None or new is None or old == new:
            continue
        tolerance = opts.threshold if metric in THRESHOLD_METRICS else 0.0
        change = new / old - 1 if old else math.inf
        if abs(change) > tolerance:
            verdicts.append("regression" if change > 0 else "improvement")
            notes.append(f"{metric} {old:,.0f} -> {new:,.0f} ({change:+.1%})")
    return CaseResult(key, Kind.SPEED, "unchanged", timing=timing, notes=notes,
                      metric_verdicts=verdicts)


def _latest(rows: pd.DataFrame, metric: str) -> float | None:
    if metric not in rows:
        return None
    values = pd.to_numeric(rows.sort_values("run_time")[metric], errors="coerce").dropna()
    return float(values.iloc[-1]) if len(values) else None


def _busy(rows: pd.DataFrame) -> float | None:
    values = pd.to_numeric(rows["timing_other_cores"], errors="coerce").dropna()
    return float(values.max()) if len(values) else None


def timing_change(base: pd.DataFrame, cand: pd.DataFrame, opts: Options,
                  device: str) -> TimingChange:
    """The change of a case's level (log median step time) from baseline to candidate,
    with its standard error. Paired runs (both sides share ``pair`` ids) are compared
    block by block within each pair; other runs as independent runs, each shifted by
    the noise model's run-to-run sigma (``noise``)."""
    pairs = sorted(set(base["pair"].dropna()) & set(cand["pair"].dropna()))
    busy = max([v for v in (_busy(base), _busy(cand)) if v is not None], default=None)
    levels = [float(np.mean([np.log(np.median(s)) for s in rows[SAMPLES]]))
              for rows in (base, cand)]
    rounds = [int(sum(map(len, rows[SAMPLES]))) for rows in (base, cand)]
    if pairs:
        diffs, within, base_levels = [], [], []
        for pair in pairs:
            b = base[base["pair"] == pair].iloc[-1]
            c = cand[cand["pair"] == pair].iloc[-1]
            blocks = b["blocks"] or [len(b[SAMPLES])]
            d, se, _ = paired_blocks(b[SAMPLES], blocks,
                                     c[SAMPLES], c["blocks"] or [len(c[SAMPLES])])
            diffs.append(d)
            within.append(se)
            base_levels.append(math.log(np.median([np.median(x) for x in
                                                   split_blocks(b[SAMPLES], blocks)])))
        two = any(TWO_PROCESSES in str(p) for p in (*base["timing_pairing"],
                                                    *cand["timing_pairing"]))
        prior = paired_sigma(device, math.sqrt(float(np.mean(np.square(within)))), opts.noise,
                             two)
        sigma = repeat_sigma(prior, [], spread=diffs)
        d = float(np.mean(diffs))
        se = math.sqrt((sigma ** 2 + float(np.mean(np.square(within)))) / len(pairs))
        # The medians shown are what the blocks saw (the base's block medians, the head's
        # from the paired change), so they agree with the change even when load
        # stretched some blocks of the run.
        levels = [float(np.mean(base_levels)), float(np.mean(base_levels)) + d]
        runs = (len(pairs), len(pairs))
    else:
        base_runs, cand_runs = list(base[SAMPLES]), list(cand[SAMPLES])
        prior = prior_sigma([*base_runs, *cand_runs], device, opts.noise)
        sigma = repeat_sigma(prior, [base_runs, cand_runs])
        d = levels[1] - levels[0]
        se = math.sqrt(sum((sigma ** 2 + float(np.mean([median_se(r) ** 2 for r in runs])))
                           / len(runs) for runs in (base_runs, cand_runs)))
        runs = (len(base_runs), len(cand_runs))
    return TimingChange(math.exp(levels[0]), math.exp(levels[1]), math.exp(d), se,
                        z_test(d, se), sigma, rounds[0], rounds[1], runs[0], runs[1],
                        bool(pairs), busy)


def timing_verdict(t: TimingChange, opts: Options) -> tuple[str, str | None]:
    """(verdict, why it is not a regression or improvement, if it is "noisy")."""
    slower, faster = t.ratio > 1 + opts.threshold, t.ratio < 1 / (1 + opts.threshold)
    if not (slower or faster):
        return "unchanged", None
    if t.busy is not None and t.busy > BUSY_CORES and not t.paired:
        return "noisy", f"measured while other work kept {t.busy:.1f} cores busy"
    if t.p_adjusted >= opts.alpha:
        why = (f"p {t.p_value:.2g}, {t.p_adjusted:.2g} after Holm's correction for every "
               f"case; the noise allows {t.detectable:.0%}")
        return "noisy", why
    return ("regression" if slower else "improvement"), None


def _judge_timings(cases: list, opts: Options) -> None:
    """Holm over every timed case, then each case's verdict from its timing and its
    deterministic metrics (a metric change stands whatever the timing says)."""
    timed = [c for c in cases if c.timing is not None]
    for c, p in zip(timed, holm([c.timing.p_value for c in timed])):
        c.timing.p_adjusted = p
        c.timing.finish(opts.alpha, opts.threshold, len(timed))
        verdict, why = timing_verdict(c.timing, opts)
        if why:
            c.notes.insert(0, why)
        ranked = [verdict, *c.metric_verdicts]
        c.verdict = next(v for v in _PRECEDENCE if v in ranked)
        c.gates = c.verdict == "regression"


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
