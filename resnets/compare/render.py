"""A comparison as a terminal table, as Markdown (PR comment, step summary) and as JSON.

Every output leads with what decides the exit code: the counts per verdict and, when the
environments differ, that the comparison gates nothing and why.
"""
from __future__ import annotations

from ..store import dumps
from ..text import change, duration, markdown_table, md, text_table
from .verdict import CaseResult, Comparison

_COLUMNS = ("verdict", "case", "baseline", "candidate", "change", "interval", "p (U)", "notes")


def _row(c: CaseResult) -> tuple[str, ...]:
    t = c.timing
    if t is None:
        return (c.verdict, c.key, "", "", "", "", "", "; ".join(c.notes))
    return (c.verdict, c.key, duration(t.base_median), duration(t.cand_median), change(t.ratio),
            f"{change(t.ci_low)} .. {change(t.ci_high)}", f"{t.p_value:.2g}",
            "; ".join(c.notes))


def headline(cmp: Comparison) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in cmp.counts().items()) or "no cases"
    o = cmp.options
    rule = (f"threshold {o.threshold:.0%}, alpha {o.alpha:g}, "
            f"{1 - 2 * o.alpha:.0%} intervals include run-to-run shift")
    return f"{counts} ({rule})"


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
    banner = env_banner(cmp)
    return "\n".join([headline(cmp), *([banner] if banner else []), "",
                      text_table(_COLUMNS, [_row(c) for c in cmp.cases]), "", outcome(cmp)])


def markdown(cmp: Comparison) -> str:
    """Changed cases in a table; unchanged ones folded away, so a PR comment stays short."""
    def md_table(cases):
        return [markdown_table(_COLUMNS, [_row(c) for c in cases])]

    changed = [c for c in cmp.cases if c.verdict != "unchanged"]
    same = [c for c in cmp.cases if c.verdict == "unchanged"]
    lines = [f"### Benchmark comparison: {outcome(cmp)}", "",
             f"Baseline {md(', '.join(cmp.baseline))} vs candidate "
             f"{md(', '.join(cmp.candidate))}: {md(headline(cmp))}.", ""]
    banner = env_banner(cmp)
    if banner:
        lines += [f"> **Warning:** {md(banner)}", ""]
    if changed:
        lines += [*md_table(changed), ""]
    if same:
        lines += [f"<details><summary>{len(same)} unchanged</summary>", "", *md_table(same), "",
                  "</details>", ""]
    lines.append("_change: candidate vs baseline median step time (+ = slower); a "
                 "regression needs the change beyond the threshold, p < alpha and the "
                 "interval clear of 0._")
    return "\n".join(lines) + "\n"


def to_json(cmp: Comparison) -> str:
    return dumps(cmp.to_dict()) + "\n"
