"""The variants of one case timed side by side: built and warmed up in one process, then
timed in rotating blocks, so the machine's drift lands on all of them.

Why. Timed minutes apart, each variant of a case draws its own level of a shared
machine (5-20% between runs on the 2-core CPU), so every speed-up interval must allow for
that shift (the report's noise model: 7.5% a case on CPU) and most say "within noise".
The gate solved the same problem for two versions of the code (``resnets.paired``):
alternating blocks in one process. A group is every variant of one row of a report table
(``case.ROW_KEYS``: model, mode, device, batch, input, world size): each is built and
warmed up (a compiled variant compiles now, before any block), then each round times one
block of every variant, the order rotating from round to round and reversing every other
round, so neither a trend nor the order favours any. A speed-up is then a ratio of block
medians taken seconds apart (``report.advice``), its interval from the blocks' spread plus
the small shift between builds (``compare.noise.PAIRED``). Each record keeps its own
throughput, memory and FLOPs, shares the group's ``pair`` id and says how it was paired.

Groups that are not paired say why (``unpaired_reason``): one variant only, data-parallel
(one torchrun launch a case), real inputs (each variant's loader workers would share the
cores), batch sweeps, isolated cases; and a group that does not fit in memory at once is
measured a case at a time (``measure_group`` returns None).
"""
from __future__ import annotations

import contextlib
import time

from ..case import ROW_KEYS, Case
from ..outcome import Outcome
from .load import Snapshot, other_cores
from .runner import CaseRun, Settings, Skipped

DEFAULT_BLOCKS = 10
# Rounds after which a group may stop early: when every variant's median is known within
# the run's target (``TimingPolicy.rel_ci``), as a case timed alone stops on its CI.
MIN_ROUNDS = 6


def group_key(case: Case) -> tuple:
    return tuple(getattr(case, k) for k in ROW_KEYS)


def unpaired_reason(cases: list[Case], isolate: bool = False) -> str | None:
    """Why the variants ``cases`` (one group) are not timed side by side, or None."""
    first = cases[0]
    if len(cases) < 2:
        return "one variant only"
    if first.strategy != "none":
        return "data-parallel cases run one torchrun launch each"
    if first.input == "real":
        return "real inputs: each variant's DataLoader workers would share the cores"
    if first.sweep:
        return "a batch sweep times its points one by one"
    if isolate:
        return "--isolate: each case in a fresh process"
    return None


def measure_group(cases: list[Case], settings: Settings, group_id: str,
                  blocks: int = DEFAULT_BLOCKS) -> dict[Case, Outcome] | None:
    """Every case's outcome, timed side by side; None when the group does not fit in
    memory at once (measure its cases one at a time then)."""
    import torch

    out: dict[Case, Outcome] = {}
    with contextlib.ExitStack() as stack:
        runs: list[CaseRun] = []
        for case in cases:
            try:
                run = stack.enter_context(CaseRun(case, settings))
                run.warm_up()
                runs.append(run)
            except Skipped as exc:
                out[case] = Outcome.skipped(str(exc))
            except torch.OutOfMemoryError:
                return None
            except Exception as exc:
                out[case] = Outcome.of_error(exc)
        if len(runs) < 2:  # nothing left to pair with: the usual adaptive rounds
            for run in runs:
                out[run.case] = _alone(run)
            return out
        block_s = max(0.02, settings.policy.budget_s / blocks)
        cpu0, snap0 = time.process_time(), Snapshot.now()
        rounds = 0
        for i in range(blocks):
            order = runs[i % len(runs):] + runs[:i % len(runs)]
            for run in (order if i % 2 == 0 else order[::-1]):
                if run.case in out:
                    continue  # failed in an earlier block
                try:
                    run.block(block_s)
                except Exception as exc:
                    out[run.case] = Outcome.of_error(exc)
            rounds = i + 1
            if rounds >= MIN_ROUNDS and _known(runs, out, settings.policy.rel_ci):
                break
        others, steal = other_cores(snap0, Snapshot.now(), time.process_time() - cpu0)
        timed = [r for r in runs if r.case not in out]
        pairing = (f"side by side with {len(timed) - 1} other variant(s) of the group, in "
                   f"one process: {rounds} rounds of {block_s:.3g} s blocks, the order "
                   "rotating each round and reversed every other"
                   + (" (every median known within the target)" if rounds < blocks else ""))
        for run in timed:
            try:
                record = run.finish(pairing=pairing, other_cores=others, steal_cores=steal)
                record.pair = group_id
                out[run.case] = Outcome.ok(record)
            except Exception as exc:
                out[run.case] = Outcome.of_error(exc)
    return out


def _known(runs: list[CaseRun], out: dict, rel_ci: float) -> bool:
    """Whether every variant still timed has its median's 95% CI within ``rel_ci``."""
    from ..stats import Measurement

    return rel_ci > 0 and all(Measurement(tuple(r.samples)).median_ci_rel() <= rel_ci
                              for r in runs if r.case not in out)


def _alone(run: CaseRun) -> Outcome:
    try:
        run.time_adaptive()
        return Outcome.ok(run.finish(pairing="unpaired: the other variants could not run"))
    except Exception as exc:
        return Outcome.of_error(exc)
