"""One series per case and environment, and the level shifts in it (the analysis).

Runs are grouped by environment (GPU, driver, torch, CUDA, CPU model, threads: numbers
from different machines never share a series) and ordered by commit time (run time when
a run has no commit). A run's point is its median step time.

Step detection, and why. Medians of unchanged code wander between runs (5-10% on a
shared CPU), so one run beyond a threshold says little; a real change moves every run
after it. A run is *out* when its median differs from the reference level (the median
of the 2 to ``window`` earlier runs since the last shift) by more than the threshold and
more than z(alpha) times the spread of that difference: the series' run-to-run noise
(the largest of the compare noise model's floor and IQR term, and 1.4826 x the median
absolute difference of consecutive runs / sqrt(2), robust to the step itself) widened
for the reference's own error. A **level shift** is flagged where ``persist``
(default 2) consecutive runs are out on the same side; the reference then restarts
there, so a revert is a shift too. A single out run at the end
is reported as *unconfirmed*, never flagged. Exit 1 when a slowdown shift starts within
the last ``window`` runs of its series (so a nightly fails for the regression, not for
ever after).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compare.noise import device_noise
from ..errors import UserError
from ..results import load
from ..schema import COMPARABLE_ENV, KIND, SAMPLES, STATUS, Kind, Status
from ..stats import normal_quantile

MIN_RUNS_FOR_NOISE = 4
# Runs in a reference level before runs are judged against it (also after a shift).
MIN_REFERENCE = 2


@dataclass(frozen=True)
class Options:
    threshold: float = 0.05
    alpha: float = 0.01
    persist: int = 2
    window: int = 5

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
    before: float         # reference level (s) before it
    after: float          # median of the confirming runs
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
    points: pd.DataFrame          # run, commit, time (commit or run), q1, median, q3; oldest first
    sigma: float = 0.0
    shifts: list[Shift] = field(default_factory=list)
    unconfirmed: bool = False     # the newest run alone is out

    @property
    def failing(self) -> list[Shift]:
        return [s for s in self.shifts if s.recent and s.kind == "regression"]


def env_label(row: pd.Series) -> str:
    parts = [f"{name}={row.get(f'env_{name}')}" for name in COMPARABLE_ENV
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
                               "q1": q[:, 0], "median": q[:, 1], "q3": q[:, 2]})
        out.append(Series(env, case_id, str(rows["device"].iloc[0]), points))
    return out


def run_noise(points: pd.DataFrame, device: str) -> float:
    """Run-to-run noise (sd of log median) of a series: the largest of the device's
    floor, its kappa x the runs' median relative IQR (the compare noise model) and, with
    enough runs, the spread of consecutive medians (robust to a step in the series)."""
    model = device_noise(device)
    rel_iqr = float(np.median((points["q3"] - points["q1"]) / points["median"]))
    sigma = max(model.floor, model.kappa * rel_iqr)
    if len(points) < MIN_RUNS_FOR_NOISE:
        return sigma
    diffs = np.abs(np.diff(np.log(points["median"].to_numpy())))
    return max(sigma, 1.4826 * float(np.median(diffs)) / math.sqrt(2))


def detect(series: Series, opts: Options) -> Series:
    """Fill ``series.shifts`` (and ``unconfirmed``) by the rule in the module doc."""
    levels = series.points["median"].to_numpy()
    series.sigma = run_noise(series.points, series.device)
    z = normal_quantile(1 - opts.alpha)
    n, segment = len(levels), 0
    i = MIN_REFERENCE
    series.shifts, series.unconfirmed = [], False
    while i < n:
        reference = levels[max(segment, i - opts.window):i]
        ref = float(np.median(reference))
        # A run minus the median of m runs: sd sigma * sqrt(1 + pi / (2 m)).
        band = max(math.log1p(opts.threshold),
                   z * series.sigma * math.sqrt(1 + math.pi / (2 * len(reference))))
        run = _out_run(levels, i, ref, band, opts.persist)
        if run >= opts.persist:
            after = float(np.median(levels[i:i + run]))
            series.shifts.append(Shift(i, ref, after, recent=i >= n - opts.window))
            segment, i = i, i + MIN_REFERENCE
        else:
            series.unconfirmed = run > 0 and i + run == n
            i += 1
    return series


def _out_run(levels: np.ndarray, i: int, ref: float, band: float, limit: int) -> int:
    """How many runs from ``i`` on (up to ``limit``) are out on the same side of ``ref``."""
    signs = np.sign(np.log(levels[i:i + limit] / ref))
    out = np.abs(np.log(levels[i:i + limit] / ref)) > band
    count = 0
    while count < len(out) and out[count] and signs[count] == signs[0]:
        count += 1
    return count


def history(paths, opts: Options = Options()) -> list[Series]:
    """The series in ``paths``; runs that stopped short (their run-state says not every
    planned case was attempted) are left out: their cases may come from a broken run."""
    opts.check()
    df = load(paths)
    df = df[df["run_complete"].ne(False)] if not df.empty else df
    found = build_series(df)
    if not found:
        raise UserError(f"{' '.join(map(str, paths))}: no successful speed results to follow")
    return [detect(s, opts) for s in found]
