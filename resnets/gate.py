"""The pull-request gate: merge-base against head, measured paired, judged once.

``run_gate`` does what the GPU workflow's PR job does, so that a test can do it too:

1. sources: two folders holding each version's code (git worktrees of the merge-base and
   the head, made by ``worktrees``, or any two checkouts);
2. paired timing (``resnets.paired``): every selected case timed on both sides in
   alternating blocks, each side's records written into ``OUT/base/r<k>/`` and
   ``OUT/head/r<k>/`` as ``resnets run`` writes them;
3. repeats from the measured noise (``repeats="auto"``, at most ``MAX_REPEATS``): after
   each pass, the cases whose noise would hide a slowdown of twice the threshold, and
   those beyond the threshold that only one pair has seen, are timed again in a new
   pair (fresh builds), until neither holds or the repeats run out (``again``);
4. ``resnets.compare`` over all passes (pairs compared block by block, Holm's correction
   over all cases), written as ``compare.md`` (the PR comment body), ``compare.json``
   and the terminal table; the exit code is the comparison's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import store
from .errors import UserError
from .git import add_worktree, commit_of, git
from .paired import (
    DEFAULT_BLOCKS,
    TWO_PROCESSES,
    Pairer,
    SideDied,
    run_pairs,
)

MAX_REPEATS = 3
SIDES = ("base", "head")


def worktrees(repo: Path, base_ref: str, head_ref: str, into: Path,
              made: list[Path]) -> dict[str, tuple[Path, str]]:
    """Check out the merge-base of ``base_ref`` and ``head_ref``, and ``head_ref``, as
    detached worktrees under ``into``: ``{side: (folder, commit)}``. Each folder is added
    to ``made`` as soon as it exists, so a failure on the second still removes the first.
    The refs come from the user: checked not to be options, then given after
    ``--end-of-options`` (see ``resnets.git``)."""
    head = commit_of(repo, head_ref, "--head")
    base = git(repo, "merge-base", "--end-of-options", commit_of(repo, base_ref, "--base"),
               head).stdout.strip()
    out = {}
    for side, sha in (("base", base), ("head", head)):
        folder = into / side
        if folder.exists():
            git(repo, "worktree", "remove", "--force", "--", str(folder.resolve()))
        out[side] = (add_worktree(repo, sha, folder, made), sha)
    return out


def remove_worktrees(repo: Path, folders) -> None:
    for folder in folders:
        git(repo, "worktree", "remove", "--force", "--", str(folder), check=False)


@dataclass
class GateResult:
    comparison: object
    repeats: dict[str, int]      # case id -> pairs measured
    seconds: float
    counts: dict[str, int]


def run_gate(cases, settings, sources: dict[str, Path | None], out: Path, opts,
             pythons: dict[str, str] | None = None, repeats: str | int = "auto",
             blocks: int = DEFAULT_BLOCKS, progress=None,
             commits: dict[str, str] | None = None, two_processes: bool = False,
             case_timeout: float | None = None) -> GateResult:
    """Measure ``cases`` paired on both sides into ``out`` and compare them (see the
    module docstring). ``opts`` are ``resnets.compare.Options``."""
    from .compare import compare
    from .compare.render import markdown, table, to_json

    t0 = time.perf_counter()
    stamp = store.utc_stamp()
    out.mkdir(parents=True, exist_ok=True)
    for name in SIDES:
        if sources.get(name) and not (Path(sources[name]) / "resnets" / "__init__.py").is_file():
            raise UserError(f"the {name} side, {sources[name]}: no resnets package in it")
    pairer = Pairer(sources, pythons or {"base": None, "head": None}, logs=out,
                    two_processes=two_processes)
    try:
        where = pairer.start()
    except SideDied as exc:  # e.g. a merge-base from before the pair worker existed
        pairer.close()
        raise UserError(f"could not start: {exc}") from None
    for name in SIDES:  # a side that imported the other's code measures nothing new
        if sources.get(name) and not Path(where[name]).resolve().is_relative_to(
                Path(sources[name]).resolve()):
            pairer.close()
            raise UserError(f"the {name} side imported resnets from {where[name]}, "
                            f"not from {sources[name]}")
    limit = MAX_REPEATS if repeats == "auto" else int(repeats)
    todo, done, counts = list(cases), {c.id: 0 for c in cases}, {}
    try:
        for k in range(1, limit + 1):
            def write(side: str, record, k=k) -> None:
                entry = store.benchmark_entry(record, group=f"gate {side}")
                store.write_case(out / side / f"r{k}", entry, {}, {})

            if progress:
                progress(f"pass {k}: {len(todo)} case(s) on both sides")
            part = run_pairs(todo, settings, pairer, f"{stamp}-r{k}", write, blocks, progress,
                             case_timeout)
            counts = {key: counts.get(key, 0) + v for key, v in part.items()}
            for c in todo:
                done[c.id] += 1
            if k == limit or not any((out / s / f"r{k}").exists() for s in SIDES):
                break
            if repeats != "auto":
                continue
            result = compare(_side_runs(out, "base"), _side_runs(out, "head"), opts)
            todo = [c for c in cases if c.id in again(result, done, opts.threshold)]
            if not todo:
                break
    finally:
        pairer.close()
    result = compare(_side_runs(out, "base"), _side_runs(out, "head"), opts)
    seconds = time.perf_counter() - t0
    passes = max(done.values(), default=0)
    where_timed = "both in one process" if pairer.same_process else TWO_PROCESSES
    intro = [f"Merge-base {(commits or {}).get('base', sources.get('base'))} against head "
             f"{(commits or {}).get('head', sources.get('head'))}, timed paired (alternating "
             f"blocks, {where_timed}); {len(cases)} case(s), {passes} pass(es), "
             f"{seconds / 60:.1f} min."]
    store.atomic_write_text(out / "compare.md", markdown(result, intro=intro))
    store.atomic_write_text(out / "compare.json", to_json(result))
    store.atomic_write_text(out / "gate.json", store.dumps({
        "sources": {k: str(v) for k, v in sources.items()}, "commits": commits or {},
        "imported": where, "repeats": done, "counts": counts, "seconds": seconds}))
    if progress:
        progress(table(result))
    return GateResult(result, done, seconds, counts)


def again(result, done: dict[str, int], threshold: float) -> set[str]:
    """The cases to time in another, fresh pair: those whose noise would hide a slowdown
    of twice the threshold, and those beyond the threshold either way that only one pair
    has seen. Two builds of the same code in one process can differ by several percent
    (ResNet-18 bf16 training on the 2-core CPU: pairs of one build each spread by 5%,
    where a pair's own blocks claimed 1%), so a change counts only once a second pair,
    with builds of its own, agrees: the pairs' spread then enters the noise."""
    out = set()
    for c in result.cases:
        if c.timing is None:
            continue
        beyond = not (1 / (1 + threshold) <= c.timing.ratio <= 1 + threshold)
        if c.timing.detectable > 2 * threshold or (beyond and done.get(c.key, 0) < 2):
            out.add(c.key)
    return out


def _side_runs(out: Path, side: str) -> list[str]:
    return [str(p) for p in sorted((out / side).glob("r*")) if (p / store.CASES_DIR).is_dir()]


def check_empty(out: Path) -> None:
    """An output folder that holds an earlier gate is refused, not mixed."""
    if any((out / s).exists() for s in SIDES):
        raise UserError(f"{out}: already holds a gate run; pick a new folder")
