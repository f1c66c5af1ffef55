"""Data-parallel scaling: measured efficiency, and a projection to larger world sizes.

Efficiency (weak scaling: the per-device batch is fixed) of a case at world size n is
its per-device throughput over that of world size 1 of the same model, mode, device,
variant, per-device batch and strategy (or, without one, the same case run as a single
process): 1 is perfect, 0.5 means half of every device's time goes to waiting. Its 95%
interval comes from both cases' level uncertainty, as for a speed-up
(``report.advice``).

The projection, from a world-size-1 case and a link bandwidth (README, "Beyond one GPU"):

    step(n) = compute + (1 - hidden) * comm(n)
    comm(n) = k(n) * G / busbw + 2 (n - 1) * latency
    k(n)    = 2 (n - 1) / n                    DDP: one ring all-reduce of the gradients
              3 (n - 1) / n                    FSDP full shard: all-gather of the weights
                                               in forward and backward, reduce-scatter of
                                               the gradients
    efficiency(n) = compute / step(n),   samples/s(n) = n * batch / step(n)

with G the gradient bytes, compute the world-size-1 step (its time without gradient
sync where measured), busbw the bus bandwidth (as nccl-tests define it, so that it does
not depend on n: measured by the largest measured world size's collective, or given),
hidden the share of communication that overlaps backward (measured, or given; 0 when
neither, the pessimistic end), and latency the per-hop start-up cost of a ring (given;
0 by default, which is fair while G / busbw dominates). It ignores stragglers and
bandwidth that changes with the topology; where measured cases exist, the predicted and
measured step sit side by side with the error.

Needs no torch.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..case import ROW_KEYS
from ..errors import UserError
from ..stats import log_interval
from .frame import speed

# Collective bytes moved per gradient byte, as a multiple of (n - 1) / n.
COMM_FACTOR = {"ddp": 2.0, "fsdp": 3.0, "none": 2.0}
# What makes two cases the same but for the world size (and strategy).
SCALING_KEYS = [*(k for k in ROW_KEYS if k not in ("world_size", "strategy")), "variant"]


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _reference(group: pd.DataFrame, strategy: str):
    """The world-size-1 row a group's ``strategy`` rows scale from."""
    for pick in (strategy, "none"):
        one = group[(group["world_size"] == 1) & (group["strategy"] == pick)]
        if not one.empty:
            return one.iloc[0]
    return None


def efficiency(df: pd.DataFrame) -> pd.DataFrame:
    """One row per data-parallel case (and its world-size-1 reference): global and
    per-device samples/s with intervals, efficiency with its interval, communication time,
    bus bandwidth and the hidden share."""
    ok = speed(df)
    if ok.empty or (ok["strategy"] == "none").all():
        return pd.DataFrame()
    ok = ok.assign(bucket_mb=ok["bucket_mb"].astype(object).where(ok["bucket_mb"].notna(), None))
    rows = []
    for _, group in ok.groupby(SCALING_KEYS, sort=True, dropna=False):
        for strategy in sorted(set(group["strategy"]) - {"none"}):
            ref = _reference(group, strategy)
            for _, r in group[group["strategy"] == strategy].sort_values("world_size").iterrows():
                per_device = _num(r["samples_per_s"]) / r["world_size"]
                row = {k: r[k] for k in ("model", "mode", "device", "variant", "batch_size",
                                         "input_shape", "strategy", "world_size", "bucket_mb")}
                row.update(samples_per_s=r["samples_per_s"], sps_low=r["sps_low"],
                           sps_high=r["sps_high"], per_device=per_device,
                           step_s=r["latency_s"], comm_s=_num(r.get("comm_s")),
                           busbw=_num(r.get("busbw")), comm_hidden=_num(r.get("comm_hidden")),
                           peak_memory_bytes=_num(r.get("peak_memory_bytes")),
                           efficiency=None, eff_low=None, eff_high=None,
                           reference=None if ref is None else ref["case_id"])
                if ref is not None:
                    d = math.log(per_device / (_num(ref["samples_per_s"]) / ref["world_size"]))
                    se = 0.0 if ref["case_id"] == r["case_id"] else math.hypot(
                        r["level_se"], ref["level_se"])
                    row.update(zip(("efficiency", "eff_low", "eff_high"), log_interval(d, se)))
                rows.append(row)
    return pd.DataFrame(rows)


def step_time(compute_s: float, grad_bytes: float, n: int, strategy: str, busbw: float,
              hidden: float = 0.0, latency_s: float = 0.0) -> tuple[float, float]:
    """(predicted step seconds, communication seconds) at world size ``n``."""
    comm = 0.0
    if n > 1:
        comm = COMM_FACTOR[strategy] * (n - 1) / n * grad_bytes / busbw + 2 * (n - 1) * latency_s
    return compute_s + (1.0 - hidden) * comm, comm


def project(df: pd.DataFrame, world_sizes, busbw: float | None = None,
            hidden: float | None = None, latency_s: float = 0.0) -> pd.DataFrame:
    """Predicted step, samples/s and efficiency at each of ``world_sizes`` (and at every
    measured world size), beside the measured ones, for every training group with a
    world-size-1 case. ``busbw``/``hidden`` override the measured values."""
    ok = speed(df)
    train = ok[(ok["mode"] == "train")] if not ok.empty else ok
    rows = []
    for _, group in train.groupby(SCALING_KEYS, sort=True, dropna=False):
        for strategy in sorted(set(group["strategy"]) - {"none"}) or ["ddp"]:
            ref = _reference(group, strategy)
            if ref is None:
                continue
            grad = _num(ref.get("grad_bytes")) or 4.0 * (_num(ref.get("params")) or 0)
            if not grad:
                continue
            measured = group[(group["strategy"] == strategy) & (group["world_size"] > 1)]
            link, link_from = busbw, "given"
            if link is None:
                bw = measured.dropna(subset=["busbw"]).sort_values("world_size")
                if bw.empty:
                    continue
                last = bw.iloc[-1]
                link, link_from = float(last["busbw"]), f"measured at {last['world_size']}"
            share, share_from = hidden, "given"
            if share is None:
                h = measured.dropna(subset=["comm_hidden"]).sort_values("world_size")
                share, share_from = ((float(h["comm_hidden"].iloc[-1]), "measured")
                                     if not h.empty else (0.0, "none assumed"))
            compute = _num(ref.get("compute_s")) or _num(ref["latency_s"])
            by_n = {int(r["world_size"]): r for _, r in measured.iterrows()}
            for n in sorted(set(int(w) for w in world_sizes) | set(by_n)):
                step, comm = step_time(compute, grad, n, strategy, link, share, latency_s)
                m = by_n.get(n)
                measured_step = _num(m["latency_s"]) if m is not None else None
                rows.append({
                    "model": ref["model"], "device": ref["device"], "variant": ref["variant"],
                    "batch_size": ref["batch_size"], "strategy": strategy, "world_size": n,
                    "compute_s": compute, "grad_bytes": grad, "busbw": link,
                    "busbw_from": link_from, "hidden": share, "hidden_from": share_from,
                    "comm_s": comm, "step_s": step,
                    "samples_per_s": n * ref["batch_size"] / step,
                    "efficiency": compute / step,
                    "measured_step_s": measured_step,
                    "error": (step / measured_step - 1) if measured_step else None})
    return pd.DataFrame(rows)


def parse_bandwidth(text: str) -> float:
    """``200GB/s``, ``25 GiB/s``, ``1.5e9`` (bytes/s) -> bytes per second."""
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    s = str(text).strip().lower().replace(" ", "")
    s = s[:-2] if s.endswith("/s") else s
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    try:
        value = float(num) * units[unit]
    except (ValueError, KeyError):
        raise UserError(f"bandwidth {text!r}: expected a number of bytes/s such as 200GB/s "
                        "or 25GiB/s") from None
    if not (value > 0 and np.isfinite(value)):
        raise UserError(f"bandwidth {text!r}: must be a positive number")
    return value
