"""A comparison as a terminal table, as Markdown (PR comment, step summary) and as JSON.

Every output leads with what decides the exit code: the counts per verdict and, when the
environments differ, that the comparison gates nothing and why. The Markdown lists only
the cases that need a reader (regressions, failures, noisy, improvements, new, missing)
with their intervals; unchanged cases are a count. It stays under ``MAX_COMMENT``
characters whatever the number of cases (GitHub refuses comments over 65,536).
"""
from __future__ import annotations

from ..store import dumps
from ..text import change, duration, markdown_table, md, printable, text_table
from .verdict import CaseResult, Comparison

_COLUMNS = ("verdict", "case", "baseline", "candidate", "change", "interval", "p (Holm)",
            "notes")
MAX_COMMENT = 60_000
# Marks the gate's PR comment, so the workflow edits its own comment and no other.
MARKER = "<!-- resnets-gate -->"


def _row(c: CaseResult) -> tuple[str, ...]:
    t = c.timing
    if t is None:
        return (c.verdict, c.key, "", "", "", "", "", "; ".join(c.notes))
    return (c.verdict, c.key, duration(t.base_median), duration(t.cand_median), change(t.ratio),
            f"{change(t.ci_low)} .. {change(t.ci_high)}", f"{t.p_adjusted:.2g}",
            "; ".join(c.notes))


def headline(cmp: Comparison) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in cmp.counts().items()) or "no cases"
    o = cmp.options
    rule = (f"threshold {o.threshold:.0%}, alpha {o.alpha:g} for the whole comparison "
            f"(Holm), {1 - o.alpha:.0%} intervals include run-to-run shift")
    return f"{counts} ({rule})"


def sensitivity(cmp: Comparison) -> str | None:
    """What the comparison could have seen, from its own noise."""
    found = cmp.detectable()
    if found is None:
        return None
    median, worst = found
    return (f"At this noise it would have flagged a slowdown of {median:.0%} or more in "
            f"half of the timed cases, and of {worst:.0%} in every one (80% power).")


def env_banner(cmp: Comparison) -> str | None:
    if not cmp.env_diff:
        return None
    what = "; ".join(f"{k}: {', '.join(b) or '-'} vs {', '.join(c) or '-'}"
                     for k, (b, c) in cmp.env_diff.items())
    if cmp.gating:
        return f"environments differ ({what}); gating anyway (--allow-env-mismatch)"
    return (f"environments differ ({what}): informational only, nothing gates "
            "(--allow-env-mismatch to gate anyway)")


def outcome(cmp: Comparison) -> str:
    if cmp.gated:
        return f"FAIL: {len(cmp.gated)} case(s) regressed or newly failed"
    return "OK: no regression" + ("" if cmp.gating else " gated (informational comparison)")


def table(cmp: Comparison) -> str:
    banner, sens = env_banner(cmp), sensitivity(cmp)
    return "\n".join([headline(cmp), *([printable(banner)] if banner else []),
                      *([sens] if sens else []),
                      "", text_table(_COLUMNS, [_row(c) for c in cmp.cases]), "",
                      outcome(cmp)])


def markdown(cmp: Comparison, limit: int = MAX_COMMENT, intro=()) -> str:
    """The PR comment: the outcome, what was compared (``intro`` lines first), and the
    cases that need a reader."""
    shown = [c for c in cmp.cases if c.verdict != "unchanged"]
    same = len(cmp.cases) - len(shown)
    head = [MARKER, f"### Benchmark comparison: {outcome(cmp)}", "",
            *(f"{md(line)}\n" for line in intro),
            f"Baseline {md(', '.join(cmp.baseline))} vs candidate "
            f"{md(', '.join(cmp.candidate))}: {md(headline(cmp))}.", ""]
    banner, sens = env_banner(cmp), sensitivity(cmp)
    if banner:
        head += [f"> **Warning:** {md(banner)}", ""]
    if sens:
        head += [md(sens), ""]
    tail = [f"{same} case(s) unchanged." if same else "",
            "", "_change: candidate vs baseline median step time (+ = slower); a regression "
            "needs the change beyond the threshold and p (Holm) below alpha._", ""]
    body = markdown_table(_COLUMNS, [_row(c) for c in shown]) if shown else ""
    if len("\n".join(head + [body, ""] + tail)) > limit:  # as returned below
        rows, budget = [], limit - len("\n".join(head + tail)) - 400
        for c in shown:
            line = markdown_table(_COLUMNS, [_row(c)]).splitlines()[-1]
            if sum(len(r) + 1 for r in rows) + len(line) > budget:
                break
            rows.append(line)
        body = "\n".join(markdown_table(_COLUMNS, []).splitlines() + rows)
        body += (f"\n\n_{len(shown) - len(rows)} more case(s) not listed here for length: "
                 "see compare.json in the run's artifact._")
    return "\n".join(head + ([body, ""] if body else []) + tail)


def to_json(cmp: Comparison) -> str:
    return dumps(cmp.to_dict()) + "\n"
