"""Values and tables as text: units, terminal and Markdown tables, and escaping.

One helper per job, shared by every command and report. Escaping is here because every
string that came from a result file is hostile until proven otherwise: a case id, an
error message or a CPU model name may hold Markdown, HTML or a spreadsheet formula, and
the outputs are pasted into PR comments and opened in spreadsheets.

* ``md(text)``: safe inside Markdown (a table cell or a line): HTML special characters
  become entities (GitHub then shows them as text), Markdown punctuation that builds
  links, images, emphasis, code or tables is backslash-escaped, and line breaks become
  spaces, so a value can neither start a heading nor break a table row. ``@name`` and
  ``#123`` (and ``GH-123``) get a zero-width space after the ``@``/``#``/``-``, so a PR
  comment can neither ping people nor link issues: GitHub matches mentions and
  references in the rendered text, where an entity such as ``&#64;`` is already an ``@``
  again; a character between them breaks the match (what Renovate does).
* ``printable(text)``: safe on a terminal: control characters (C0, DEL, C1: ESC starts
  the sequences that recolour, retitle or rewrite a terminal) and bidirectional overrides
  become visible escapes such as ``\x1b``, and line breaks and other whitespace controls
  become spaces, so one value stays on one line. Applied to each value, not to a whole
  output (whose own line breaks are meant).
* ``csv_cell(value)``: OWASP's guidance for CSV injection: a text cell that starts with
  ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'`` so spreadsheet
  programs show it as text; quoting is left to the csv writer. Numbers stay numbers.
* HTML goes through the standard library's ``html.escape`` (see ``report.render``).
"""
from __future__ import annotations

import html
import math
import re

# --- units -------------------------------------------------------------------------------

_SI = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """3 significant digits with an SI prefix: 833 kFLOP and 8.18 GFLOP both read."""
    if value is None or not math.isfinite(value):
        return "-"
    prefix, scale = next(((p, s) for p, s in _SI if abs(value) >= s), ("", 1.0))
    return f"{value / scale:.{digits}g} {prefix}{unit}".rstrip()


def nbytes(value: float) -> str:
    """Binary units: 512 B, 1.5 KiB, 97.7 MiB, 79.2 GiB."""
    if value is None or not math.isfinite(value):
        return "-"
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def duration(seconds: float) -> str:
    """A time with the unit that keeps 3-4 significant digits: 1.234 s, 18.1 ms, 950 us."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def change(ratio: float) -> str:
    """A ratio as a signed change: 1.052 -> '+5.2%'."""
    return f"{ratio - 1:+.1%}"


def count(value: float) -> str:
    """Whole numbers with thousands separators; fractions with two decimals."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


# --- escaping ----------------------------------------------------------------------------

# Markdown punctuation that can build structure mid-line; "_" only at a word's edge
# (inside a word it never emphasizes), so lenet_bn stays readable in the raw text.
_MD_PUNCT = re.compile(r"([\\`*\[\]|~])|(?<!\w)_|_(?!\w)")
_MENTION = re.compile(r"(@(?=\w)|#(?=\d)|\bGH-(?=\d))", re.IGNORECASE)
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


# Unicode's controls (category Cc: C0, DEL, C1), the line and paragraph separators, and
# the bidirectional embeddings, overrides and isolates that reorder what is shown.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text) -> str:
    """``text`` made safe to print on a terminal, on one line."""
    return _UNPRINTABLE.sub(lambda m: " " if m.group().isspace()
                            else m.group().encode("unicode_escape").decode("ascii"), str(text))


def md(text) -> str:
    """``text`` made inert for Markdown (see the module docstring)."""
    one_line = " ".join(str(text).split())
    escaped = _MD_PUNCT.sub(lambda m: "\\" + m.group(0), html.escape(one_line, quote=False))
    return _MENTION.sub(lambda m: m.group(1) + "&#8203;", escaped)


def csv_cell(value):
    """``value`` made inert for spreadsheets (see the module docstring)."""
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS):
        return "'" + value
    return value


def csv_frame(df):
    """A copy of the DataFrame ``df`` with every text cell passed through ``csv_cell``."""
    out = df.copy()
    for col in out.columns:
        # Any column that can hold text: object, or pandas' string dtypes (whose kind is
        # "O" or "T"), not numbers, booleans or times.
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out


# --- tables ------------------------------------------------------------------------------

def text_table(headers, rows, numeric=None) -> str:
    """An aligned plain-text table for the terminal, every cell ``printable``;
    ``numeric[i]`` right-aligns column i."""
    rows = [[printable(c) for c in r] for r in rows]
    headers = [printable(h) for h in headers]
    numeric = numeric or [False] * len(headers)
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric))
             .rstrip() for r in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers, rows, numeric=None) -> str:
    """A GitHub Markdown table; every header and cell escaped with ``md``."""
    numeric = numeric or [False] * len(headers)
    lines = ["| " + " | ".join(md(h) for h in headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
