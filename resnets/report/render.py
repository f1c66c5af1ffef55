"""HTML and Markdown for the report's sections.

Every string that reaches the page, including column names, cell values, run names and
paths, goes through ``html.escape``: result files are input, and a model name like
``<script>`` must show as text. The HTML page is one self-contained file: inline CSS,
images as base64 data URIs, no scripts and no external links, so it opens offline and
can be attached or archived as is.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import text

MISSING = "—"
NOT_REACHED = "not reached"  # how an infinite value (see tables) reads
NOT_SHOWN = "not-shown"  # anchor of the closing list of sections without data

# Laid out to fit: no table wider than the body on a desktop (cells wrap, long ids break
# anywhere, but a number or a short word such as 3x224x224 never), and on a phone a wide
# table scrolls inside its box, never the page.
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1250px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4;overflow-wrap:anywhere}
h1{margin-bottom:.2em;font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;overflow-wrap:anywhere}
th{background:#f2f2f2;overflow-wrap:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num,td.nw{white-space:nowrap;overflow-wrap:normal}
.scroll{overflow-x:auto;max-width:100%}img{max-width:100%;height:auto}
.note{color:#555}.skip{color:#8a5a00;font-style:italic}nav li{display:inline;margin-right:1em}
img.spark{width:160px;max-width:none;display:block}
""".strip()


@dataclass
class Section:
    """One table or plot of the report; ``missing`` says why it has nothing to show.
    ``data`` is the table as numbers for its CSV, when the shown table is text."""

    name: str  # file stem and HTML anchor
    title: str
    caption: str
    table: pd.DataFrame | None = None
    png: bytes | None = None
    missing: str | None = None
    data: pd.DataFrame | None = None
    anchor: str = ""  # the HTML id, when ``name`` is taken (a table and a plot of one topic)
    # HTML a table of text cannot hold (an image in each row), every value in it already
    # escaped by whoever built it; shown after the table.
    body: str = ""

    @property
    def id(self) -> str:
        return self.anchor or self.name

    @property
    def shown(self) -> bool:
        return (self.table is not None and not self.table.empty) or bool(self.png or self.body)


def fmt(value) -> str:
    """A cell as text: thousands separators, 3 significant digits below 100."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return NOT_REACHED
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"
    if value is None or value is pd.NA or value is pd.NaT or value == "":
        return MISSING
    return str(value)


def _numeric(df: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
            for t in df.dtypes]


SHORT = 12  # characters: a text cell this short, without spaces, is never broken


def _td(text: str, numeric: bool) -> str:
    kind = "num" if numeric else "nw" if len(text) <= SHORT and not any(
        c.isspace() for c in text) else ""
    body = html.escape(text).replace("\n", "<br>")
    return f'<td class="{kind}">{body}</td>' if kind else f"<td>{body}</td>"


def html_table(df: pd.DataFrame) -> str:
    numeric = _numeric(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "\n".join("<tr>" + "".join(_td(fmt(v), num) for v, num in zip(row, numeric))
                     + "</tr>" for row in df.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def markdown_table(df: pd.DataFrame) -> str:
    return text.markdown_table(df.columns, [[fmt(v) for v in row]
                                            for row in df.itertuples(index=False)],
                               _numeric(df))


def _html_section(s: Section) -> str:
    parts = [f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>',
             f'<p class="note">{html.escape(s.caption)}</p>']
    if s.table is not None and not s.table.empty:
        parts.append(f'<div class="scroll">{html_table(s.table)}</div>')
    if s.body:
        parts.append(f'<div class="scroll">{s.body}</div>')
    if s.png:
        parts.append(img(s.png, s.title))
    return "\n".join(parts) + "</section>"


def img(png: bytes, alt: str, css_class: str = "") -> str:
    """An ``<img>`` with the PNG inside it (a data URI: the page fetches nothing)."""
    data = base64.b64encode(png).decode("ascii")
    kind = f' class="{html.escape(css_class)}"' if css_class else ""
    return f'<img{kind} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _not_shown(sections: list[Section]) -> str:
    """One closing list of what the data could not fill, each with why (and often the
    option that would fill it), instead of an empty section per topic in the page."""
    items = "".join(f"<li><b>{html.escape(s.title)}</b>: {html.escape(s.missing or '')}.</li>"
                    for s in sections)
    return (f'<section id="{NOT_SHOWN}"><h2>Not in this report</h2>'
            f'<ul class="skip">{items}</ul></section>')


def html_page(title: str, intro: list[str], sections: list[Section]) -> str:
    """The page: only sections with something to show are in it and its index; the rest
    are named at the end with the reason."""
    shown = [s for s in sections if s.shown]
    empty = [s for s in sections if not s.shown]
    links = [(s.id, s.title) for s in shown] + ([(NOT_SHOWN, "Not in this report")]
                                                  if empty else [])
    toc = "".join(f'<li><a href="#{html.escape(a)}">{html.escape(t)}</a></li>'
                  for a, t in links)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in intro),
        f"<nav><ul>{toc}</ul></nav>",
        *(_html_section(s) for s in shown),
        *([_not_shown(empty)] if empty else []),
        "</body></html>", ""])


def markdown_page(title: str, intro: list[str], sections: list[Section], footer: str) -> str:
    """Short: the intro and those of the given sections that have a table."""
    lines = [f"## {text.md(title)}", "", *(text.md(line) + "  " for line in intro), ""]
    for s in sections:
        if s.table is not None and not s.table.empty:
            lines += [f"### {text.md(s.title)}", "", f"_{text.md(s.caption)}_", "",
                      markdown_table(s.table), ""]
    return "\n".join([*lines, text.md(footer), ""])
