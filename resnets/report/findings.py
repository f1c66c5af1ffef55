"""What the convergence runs show, computed from them: for each experiment, each claim of
its ``expect`` list (``resnets.presets.EXPERIMENTS``) is checked against the runs, with
the effect size and its spread over seeds. The report states the outcome, never the claim.

* ``faster``: iterations to target of the slow model over the fast one's, per seed
  (seeds paired by number), from the interpolated iterations, with the bracket
  [last evaluation below the target, first at or above] giving the range; a slow run
  that never reached the target gives "at least" its budget over the fast one's.
* ``worse`` / ``not_worse``: the final training error (eval mode on a fixed training
  subset; the running train-mode error for older results), per seed. ``worse`` holds
  when every seed's deeper net ends higher; ``not_worse`` when the median is no more
  than one percentage point above.
* ``seed``: test accuracy at the given iteration and at the end, against the seed
  notebook's figures, and whether BatchNorm leads at both, as there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..presets import EXPERIMENTS
from ..schema import STATUS, Status
from .frame import convergence

NOT_WORSE_TOLERANCE = 0.01  # training error, absolute
SMALL_DATASETS = {"digits": "digits-augmented"}  # too easy to show depth: a harder task


@dataclass
class Finding:
    experiment: str
    data: str          # dataset and input size
    claim: str
    observed: str      # "yes" | "no" | "mixed" | "not measured"
    evidence: str


def _expectations(name: str) -> tuple:
    return next((spec["expect"] for spec in EXPERIMENTS.get(name, {}).values()
                 if spec.get("expect")), ())


def findings(df: pd.DataFrame) -> list[Finding]:
    conv = convergence(df)
    if conv.empty:
        return []
    out = []
    # Seeds pair within one device and variant: a run of several precisions (or a CPU and
    # a CUDA run in one report) holds each model and seed once per variant.
    for (name, dataset, shape), experiment in conv.groupby(
            ["experiment", "dataset", "input_shape"], sort=False):
        variants = experiment.groupby(["device", "variant"], sort=False, dropna=False)
        for (device, variant), runs in variants:
            data = f"{dataset} {shape}" + (f", {device} {variant}" if variants.ngroups > 1
                                           else "")
            out += _judged(name, dataset, shape, data, runs)
    return out


def _judged(name, dataset, shape, data, runs) -> list[Finding]:
    """Each claim of experiment ``name``, judged on ``runs`` (one device and variant)."""
    out = []
    for expect in _expectations(name):
        judge = {"faster": _faster, "worse": _worse, "not_worse": _not_worse,
                 "seed": _seed}[expect["check"]]
        observed, evidence = judge(runs, expect)
        if observed == "no" and dataset in SMALL_DATASETS:
            evidence += (f". {dataset} ({len_train(runs)} training images at {shape}) may "
                         f"be too easy for this: run --experiments {name}-augmented")
        out.append(Finding(name, data, expect["claim"], observed, evidence))
    return out


def len_train(runs) -> str:
    info = runs["dataset_info"].dropna()
    n = info.iloc[0].get("n_train") if len(info) and isinstance(info.iloc[0], dict) else None
    return f"{n:,}" if n else "its"


def _by_seed(runs, model: str) -> pd.DataFrame:
    return runs[runs["model"] == model].set_index("seed").sort_index()


def _faster(runs, e) -> tuple[str, str]:
    fast, slow = _by_seed(runs, e["fast"]), _by_seed(runs, e["slow"])
    seeds = sorted(set(fast.index) & set(slow.index))
    if not seeds:
        return "not measured", f"no seed has both {e['fast']} and {e['slow']}"
    ratios, lows, highs, floor = [], [], [], False
    for s in seeds:
        f, w = fast.loc[s], slow.loc[s]
        if f[STATUS] != Status.REACHED:
            return "no", f"{e['fast']} did not reach the target (seed {s})"
        f_mid, f_lo, f_hi = _iters(f)
        if w[STATUS] == Status.REACHED:
            w_mid, w_lo, w_hi = _iters(w)
            ratios.append(w_mid / f_mid)
            lows.append(max(w_lo, 1) / f_hi)
            highs.append(w_hi / max(f_lo, 1))
        else:
            floor = True
            ratios.append(w["iters_run"] / f_mid)
            lows.append(w["iters_run"] / f_hi)
            highs.append(math.inf)
    target = f"{runs['target_acc'].iloc[0]:.0%}"
    fast_iters = [_iters(fast.loc[s])[0] for s in seeds]
    text = (f"{e['fast']} reached {target} in {_range(fast_iters, ',.0f')} iterations; ")
    if floor:
        never = slow[slow[STATUS] != Status.REACHED]
        epochs = never["epochs_run"].dropna()
        text += (f"{e['slow']} did not reach it in {never['iters_run'].max():,.0f} iterations"
                 + (f" ({epochs.max():.0f} epochs)" if len(epochs) else "")
                 + f" on {len(never)} of {len(seeds)} seeds: at least "
                 f"{min(lows):.1f}x fewer iterations with {e['fast']}")
    else:
        text += (f"{np.median(ratios):.1f}x fewer than {e['slow']} (seeds: "
                 f"{_range(ratios, '.1f')}x; evaluation brackets allow {min(lows):.1f}-"
                 f"{max(highs):.1f}x)")
    observed = ("yes" if all(lo > 1 for lo in lows) else
                "mixed" if any(r > 1 for r in ratios) else "no")
    return observed, text


def _iters(row) -> tuple[float, float, float]:
    """(interpolated, bracket low, bracket high) iterations to target; older results
    have only the first evaluation at or above it."""
    hi = float(row["iters_to_target"])
    lo = row.get("iters_to_target_low")
    mid = row.get("iters_to_target_interp")
    lo = hi if lo is None or pd.isna(lo) else float(lo)
    mid = hi if mid is None or pd.isna(mid) else float(mid)
    return max(mid, 1e-9), lo, hi


def _final_error(row) -> float | None:
    curve = row["curve"] if isinstance(row["curve"], dict) else {}
    for key in ("train_eval_acc", "train_acc"):
        if curve.get(key):
            return 1.0 - float(curve[key][-1])
    return None


def _errors(runs, model: str) -> dict:
    rows = _by_seed(runs, model)
    return {s: e for s, e in ((s, _final_error(rows.loc[s])) for s in rows.index)
            if e is not None}


def _range(values, digits: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, digits) if lo == hi else f"{format(lo, digits)}-{format(hi, digits)}"


def _pct(values) -> str:
    return f"{np.median(values):.1%} (seeds {_range([100 * v for v in values], '.1f')}%)"


def _error_kind(runs) -> str:
    curves = [c for c in runs["curve"] if isinstance(c, dict)]
    return ("eval-mode, fixed training subset" if curves and curves[0].get("train_eval_acc")
            else "running, train mode")


def _worse(runs, e) -> tuple[str, str]:
    worse, better = _errors(runs, e["worse"]), _errors(runs, e["better"])
    seeds = sorted(set(worse) & set(better))
    if not seeds:
        return "not measured", f"no seed has both {e['worse']} and {e['better']}"
    text = (f"final training error ({_error_kind(runs)}): {e['worse']} "
            f"{_pct([worse[s] for s in seeds])} vs {e['better']} "
            f"{_pct([better[s] for s in seeds])}")
    higher = [worse[s] > better[s] for s in seeds]
    return ("yes" if all(higher) else "mixed" if any(higher) else "no"), text


def _not_worse(runs, e) -> tuple[str, str]:
    model, than = _errors(runs, e["model"]), _errors(runs, e["than"])
    seeds = sorted(set(model) & set(than))
    if not seeds:
        return "not measured", f"no seed has both {e['model']} and {e['than']}"
    a, b = [model[s] for s in seeds], [than[s] for s in seeds]
    text = (f"final training error ({_error_kind(runs)}): {e['model']} {_pct(a)} vs "
            f"{e['than']} {_pct(b)}")
    return ("yes" if np.median(a) <= np.median(b) + NOT_WORSE_TOLERANCE else "no"), text


def _accuracy_at(row, iteration: int | None) -> float | None:
    curve = row["curve"] if isinstance(row["curve"], dict) else {}
    iters, acc = curve.get("iters") or [], curve.get("test_acc") or []
    if not acc:
        return None
    if iteration is None:
        return float(acc[-1])
    return next((float(a) for i, a in zip(iters, acc) if i == iteration), None)


def _seed(runs, e) -> tuple[str, str]:
    parts, leads = [], []
    for label, at in ((f"at iteration {e['at']}", e["at"]), ("at the end", None)):
        ours = {}
        for model in e["figures"]:
            values = [v for v in (_accuracy_at(r, at) for _, r in _by_seed(runs, model).iterrows())
                      if v is not None]
            if values:
                ours[model] = float(np.median(values))
        if len(ours) < len(e["figures"]):
            return "not measured", f"no test accuracy {label} for every model"
        index = 0 if at is not None else 1
        parts.append(f"{label}: " + ", ".join(
            f"{m} {ours[m]:.1%} (seed notebook {fig[index]:.1%})"
            for m, fig in e["figures"].items()))
        models = list(e["figures"])
        seed_order = e["figures"][models[1]][index] > e["figures"][models[0]][index]
        leads.append((ours[models[1]] > ours[models[0]]) == seed_order)
    return ("yes" if all(leads) else "no"), "; ".join(parts)


def findings_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = [{"experiment": f.experiment, "data": f.data, "expected": f.claim,
             "observed": f.observed, "evidence": f.evidence} for f in findings(df)]
    return pd.DataFrame(rows, columns=["experiment", "data", "expected", "observed", "evidence"])
