"""One series per case and environment, and the change points in it (the analysis).

Runs are grouped by environment (GPU, driver, torch, CUDA, CPU model, threads: numbers
from different machines never share a series) and ordered by commit time (run time when
a run has no commit). A run's point is its median step time; the analysis works on log
medians, where a slowdown is a difference and noise is multiplicative.

Change points, and why. Medians of unchanged code wander between runs (5-10% on a shared
CPU), so one run beyond a threshold says little; a real change moves every run after it.
The series is cut into segments of constant level the way Hunter / Apache Otava do it:

1. **Where** (E-divisive means, Matteson & James 2014): in each segment, the split tau
   (and the end kappa of the part after it) that maximizes the energy distance between
   the runs before and after; both parts hold at least ``persist`` runs.
2. **Whether** (Student's t-test): the two parts' mean log medians differ by more than
   ``threshold`` and with p < ``alpha`` after a Bonferroni factor for the number of
   places the split could have been (the best of many tries is not one try: on
   histories of 12 runs drawn from real CPU run-to-run noise, 14 of 300 unchanged series
   showed a shift at alpha 0.01 without the factor, 2 with it). The noise
   is the case's own: the device's prior run-to-run shift (``compare.noise``, e.g. 7.5%
   on a CPU) updated with the spread of the series' runs within their segments, as
   repeated runs update it in ``compare`` (the prior counts as 2 degrees of freedom).
3. The best candidate over all segments is tried first; an accepted split makes two
   segments that are searched again, a refused one closes its segment. Finally every
   change point is tested again between its final neighbours, and the weakest one that
   no longer passes is dropped until all pass, so each reported shift has a location,
   a magnitude with its 95% interval and a p-value of its own.

A revert is a change point too (an improvement back). The newest run alone beyond the
band is *unconfirmed*, never a shift. Exit 1 when a slowdown starts within the last
``window`` runs of its series (a nightly fails for the regression, not for ever after).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..compare.noise import PRIOR_DF, prior_sigma, repeat_sigma
from ..errors import UserError
from ..results import expand, load, run_folder
from ..schema import COMPARABLE_ENV, KIND, SAMPLES, STATUS, Kind, Status
from ..stats import t_quantile, t_two_sided_p

CONFIDENCE = 0.95  # of a shift's interval
BISECT_FILE = "bisect.json"


@dataclass(frozen=True)
class Options:
    threshold: float = 0.05
    alpha: float = 0.01
    persist: int = 2     # fewest runs in a segment: on each side of a shift
    window: int = 5
    strict: bool = False  # refuse a damaged result file instead of skipping it

    def check(self) -> None:
        if not 0 < self.threshold < 1:
            raise UserError(f"--threshold must be a fraction in (0, 1) (0.05 = 5%), "
                            f"not {self.threshold}")
        if not 0 < self.alpha < 0.5:
            raise UserError(f"--alpha must be between 0 and 0.5, not {self.alpha}")
        if self.persist < 1 or self.window < 1:
            raise UserError("--persist and --window must be >= 1")


@dataclass
class Shift:
    start: int            # index of the first run at the new level
    before: float         # level (s, geometric mean of run medians) of the segment before
    after: float          # ... of the segment from ``start`` on
    low: float            # 95% interval of after / before
    high: float
    p: float              # the t-test's, Bonferroni-adjusted
    recent: bool          # starts within the last ``window`` runs

    @property
    def ratio(self) -> float:
        return self.after / self.before

    @property
    def kind(self) -> str:
        return "regression" if self.ratio > 1 else "improvement"


@dataclass
class Series:
    env: str
    case_id: str
    device: str
    points: pd.DataFrame  # run, commit, time, q1, median, q3, samples; oldest first
    sigma: float = 0.0    # run-to-run noise (sd of log median) given the segments
    shifts: list[Shift] = field(default_factory=list)
    unconfirmed: bool = False  # the newest run alone is out

    @property
    def failing(self) -> list[Shift]:
        return [s for s in self.shifts if s.recent and s.kind == "regression"]


def env_label(row: pd.Series) -> str:
    def shown(value) -> str:  # a thread count read back as 2.0 is 2
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    parts = [f"{name}={shown(row.get(f'env_{name}'))}" for name in COMPARABLE_ENV
             if pd.notna(row.get(f"env_{name}"))]
    return ", ".join(parts) or "unknown environment"


def build_series(df: pd.DataFrame) -> list[Series]:
    """One series per (environment, speed case) with at least one successful run."""
    ok = df[(df[KIND] == Kind.SPEED) & (df[STATUS] == Status.OK)
            & (df[SAMPLES].map(len) > 0)] if not df.empty else df
    if ok.empty:
        return []
    commit_time = pd.to_datetime(ok["commit_time"], utc=True, errors="coerce")
    ok = ok.assign(env=ok.apply(env_label, axis=1),
                   order_time=commit_time.fillna(ok["run_time"]))
    out = []
    for (env, case_id), rows in ok.groupby(["env", "case_id"], sort=True):
        rows = rows.sort_values(["order_time", "run_time", "run"])
        q = np.array([np.quantile(s, [0.25, 0.5, 0.75]) for s in rows[SAMPLES]])
        points = pd.DataFrame({"run": rows["run"].to_numpy(),
                               "commit": rows["commit_id"].to_numpy(),
                               "time": rows["order_time"].to_numpy(),
                               "q1": q[:, 0], "median": q[:, 1], "q3": q[:, 2],
                               "samples": list(rows[SAMPLES])})
        out.append(Series(env, case_id, str(rows["device"].iloc[0]), points))
    return out


# --- where: E-divisive means -------------------------------------------------------------

def best_split(y: np.ndarray, a: int, b: int, m: int) -> tuple[float, int, int] | None:
    """(q, tau, kappa) maximizing the E-divisive statistic of y[a:tau] against
    y[tau:kappa] over a <= tau - m, tau + m <= kappa <= b; None if no split fits.

    q = n k / (n + k) (2 mean|X - Y| - mean|X - X'| - mean|Y - Y'|), the scaled energy
    distance with exponent 1 (pairs within a part counted once; none in a single run)."""
    if b - a < 2 * m:
        return None
    d = np.abs(y[a:b, None] - y[None, a:b])
    c = np.zeros((b - a + 1, b - a + 1))
    c[1:, 1:] = d.cumsum(0).cumsum(1)

    def block(r0, r1, c0, c1):  # sum of d[r0:r1, c0:c1], vectorized over r1/c1 arrays
        return c[r1, c1] - c[r0, c1] - c[r1, c0] + c[r0, c0]

    best = None
    for tau in range(m, b - a - m + 1):
        kappa = np.arange(tau + m, b - a + 1)
        n, k = tau, kappa - tau
        cross = block(0, tau, tau, kappa) / (n * k)
        within_x = block(0, tau, 0, tau) / (n * (n - 1)) if n > 1 else 0.0
        within_y = np.where(k > 1, block(tau, kappa, tau, kappa) / np.maximum(k * (k - 1), 1),
                            0.0)
        q = n * k / (n + k) * (2 * cross - within_x - within_y)
        i = int(np.argmax(q))
        if best is None or q[i] > best[0]:
            best = (float(q[i]), a + tau, a + int(kappa[i]))
    return best


# --- whether: the t-test -----------------------------------------------------------------

@dataclass(frozen=True)
class Test:
    d: float       # mean log median after - before
    se: float
    df: int
    p: float       # Bonferroni-adjusted


def places(n: int, m: int) -> int:
    """Where a split of ``n`` runs into parts of at least ``m`` could be: the Bonferroni
    factor of a test of the best of them."""
    return max(1, n - 2 * m + 1)


def level_test(y: np.ndarray, runs: list, cuts: list[int], at: int, prior: float,
               tries: int) -> Test:
    """The t-test of the change at ``at`` between its neighbouring segments of the
    segmentation ``cuts`` (which holds ``at``); the noise from every segment's spread
    and the prior; p times ``tries`` (``places``), at most 1."""
    bounds = [0, *cuts, len(y)]
    i = bounds.index(at)
    left, right = y[bounds[i - 1]:at], y[at:bounds[i + 1]]
    sigma = repeat_sigma(prior, [runs[s:e] for s, e in zip(bounds, bounds[1:])])
    df = PRIOR_DF + sum(e - s - 1 for s, e in zip(bounds, bounds[1:]))
    d = float(right.mean() - left.mean())
    se = sigma * math.sqrt(1 / len(left) + 1 / len(right))
    return Test(d, se, df, min(1.0, tries * t_two_sided_p(d / se, df)))


def _passes(t: Test, opts: Options) -> bool:
    return abs(t.d) > math.log1p(opts.threshold) and t.p < opts.alpha


def change_points(y: np.ndarray, runs: list, prior: float, opts: Options) -> list[int]:
    """Indexes where a new level starts, by the rule in the module doc."""
    m, cuts, closed = opts.persist, [], set()
    tries = places(len(y), m)
    while True:
        bounds = [0, *cuts, len(y)]
        found = [(split, (a, b)) for a, b in zip(bounds, bounds[1:]) if (a, b) not in closed
                 and (split := best_split(y, a, b, m)) is not None]
        if not found:
            break
        (_, tau, kappa), segment = max(found)
        # The part after tau ends at kappa for this test (a bump is tested as a bump).
        trial = sorted({*cuts, tau, *([kappa] if kappa < segment[1] else [])})
        if _passes(level_test(y, runs, trial, tau, prior, tries), opts):
            cuts = sorted([*cuts, tau])
        else:
            closed.add(segment)
    while cuts:  # each change point between its final neighbours; drop the weakest failure
        tests = {c: level_test(y, runs, cuts, c, prior, tries) for c in cuts}
        failed = [c for c in cuts if not _passes(tests[c], opts)]
        if not failed:
            break
        cuts.remove(max(failed, key=lambda c: tests[c].p))
    return cuts


def detect(series: Series, opts: Options) -> Series:
    """Fill ``series.shifts``, ``sigma`` and ``unconfirmed`` by the rule in the module doc."""
    p = series.points
    runs = list(p["samples"])
    y = np.log(p["median"].to_numpy(dtype=float))
    prior = prior_sigma(runs, series.device)
    cuts = change_points(y, runs, prior, opts)
    tries = places(len(y), opts.persist)
    bounds = [0, *cuts, len(y)]
    series.sigma = repeat_sigma(prior, [runs[s:e] for s, e in zip(bounds, bounds[1:])])
    series.shifts = []
    for i, c in enumerate(cuts):
        t = level_test(y, runs, cuts, c, prior, tries)
        half = t_quantile(0.5 + CONFIDENCE / 2, t.df) * t.se
        before = math.exp(y[bounds[i]:c].mean())
        series.shifts.append(Shift(c, before, before * math.exp(t.d), math.exp(t.d - half),
                                   math.exp(t.d + half), t.p,
                                   recent=c >= len(y) - opts.window))
    series.unconfirmed = _newest_out(y, runs, bounds, prior, opts)
    return series


def _newest_out(y: np.ndarray, runs: list, bounds: list[int], prior: float,
                opts: Options) -> bool:
    """Whether the newest run is beyond the threshold and the noise (measured without
    it) from the rest of its segment: the start of a shift, or an outlier; one run
    cannot tell which."""
    rest = y[bounds[-2]:-1]
    if not len(rest):
        return False
    segments = [runs[s:e] for s, e in zip(bounds[:-2], bounds[1:-1])] + [runs[bounds[-2]:-1]]
    sigma = repeat_sigma(prior, segments)
    df = PRIOR_DF + sum(len(r) - 1 for r in segments)
    band = t_quantile(1 - opts.alpha / 2, df) * sigma * math.sqrt(1 + 1 / len(rest))
    return abs(y[-1] - rest.mean()) > max(math.log1p(opts.threshold), band)


def history(paths, opts: Options = Options()) -> list[Series]:
    """The series in ``paths``; runs that stopped short (their run-state says not every
    planned case was attempted) are left out: their cases may come from a broken run."""
    opts.check()
    df = load(paths, strict=opts.strict)
    df = df[df["run_complete"].ne(False)] if not df.empty else df
    found = build_series(df)
    if not found:
        raise UserError(f"{' '.join(map(str, paths))}: no successful speed results to follow")
    return [detect(s, opts) for s in found]


# --- bisect results ----------------------------------------------------------------------

@dataclass(frozen=True)
class Bisected:
    """A bisection's answer for one case: the first bad commit, and its step-time ratio
    to the good end with that ratio's 95% interval (1.3 = 30% slower)."""

    first_bad: str
    change: float
    low: float
    high: float


def bisect_results(paths, files=()) -> dict[str, Bisected]:
    """``{case_id: Bisected}`` from ``bisect.json`` in the run folders of ``paths``
    (oldest name first; a bisection of a shift writes it into the folder of the first run
    at the new level, where the result loader never looks), then from each of ``files``
    (``--bisect``); a later file's answer for a case wins. A file is
    ``{case_id: {"first_bad": sha, "change": r, "low": r, "high": r}}``."""
    folders = sorted({f for path, _ in expand(paths) if (f := run_folder(path)) is not None})
    out: dict[str, Bisected] = {}
    for path in [*(f / BISECT_FILE for f in folders if (f / BISECT_FILE).is_file()),
                 *map(Path, files)]:
        out.update(_read_bisect(path))
    return out


def _read_bisect(path: Path) -> dict[str, Bisected]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read bisect results ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: bisect results are not JSON ({str(exc)[:100]})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: bisect results must be an object of case ids")
    out = {}
    for case_id, r in doc.items():
        numbers = [r.get(k) for k in ("change", "low", "high")] if isinstance(r, dict) else []
        if not (isinstance(r, dict) and isinstance(r.get("first_bad"), str) and r["first_bad"]
                and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                        and math.isfinite(x) and x > 0 for x in numbers)):
            raise UserError(f"{path}: {str(case_id)[:80]!r} needs first_bad (a commit) and "
                            "change, low, high (positive ratios)")
        out[str(case_id)] = Bisected(r["first_bad"], *map(float, numbers))
    return out
