"""The report's content as blocks, rendered twice: Markdown (``report.md``) and one self-contained HTML file.

A report is a title and a list of :class:`Section`; a section holds blocks (paragraphs, bullet lists, tables,
figures, code, the table of contents). Every level-2 section gets an anchor — the one GitHub gives its
heading — so the table of contents links work in the HTML and on GitHub alike.

The HTML embeds its figures as base64 PNG and its tables as HTML, with a few lines of CSS and no external
resource. It fits a 1,280 px window: wide tables get a smaller font and cells that wrap, and only a table
that still cannot fit scrolls, inside its own box (never the page).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from sesweep.analysis.figures import DPI, FigureFile
from sesweep.analysis.table_display import text_columns, to_markdown


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    caption: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class FigureBlock:
    figure: FigureFile
    width_in: float


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Contents:
    """The table of contents: a link to every other level-2 section of the report."""


def figure_width_in(figure: FigureFile) -> float:
    """The figure's width in inches, read from the PNG header (the report shows it at paper size)."""
    with figure.png.open("rb") as fh:
        header = fh.read(24)
    return int.from_bytes(header[16:20], "big") / DPI


Block = Para | Bullets | TableBlock | FigureBlock | Code | Contents


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2

    @property
    def anchor(self) -> str:
        return anchor(self.title)


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _listed(sections: Sequence[Section]) -> list[Section]:
    """The sections the table of contents lists: every titled level-2 one but the contents itself."""
    return [s for s in sections if s.title and s.level == 2 and not any(isinstance(b, Contents) for b in s.blocks)]


#: a table with at least this many columns is set smaller and may wrap its cells (HTML)
WIDE_COLUMNS = 9


# --------------------------------------------------------------------------------------------------
# Markdown


def render_markdown(title: str, sections: Sequence[Section], figure_dir: str = "figures") -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        if s.title:
            lines += [f"{'#' * s.level} {s.title}", ""]
        for b in s.blocks:
            lines += [*_md_block(b, figure_dir, sections), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_text(text: str) -> str:
    """Text with the characters Markdown would read as emphasis escaped."""
    return text.replace("*", "\\*")


def _md_block(b: Block, figure_dir: str, sections: Sequence[Section]) -> list[str]:
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, Contents):
        return [f"- [{s.title}](#{s.anchor})" for s in _listed(sections)]
    if isinstance(b, TableBlock):
        return [f"*{_md_text(b.caption)}*", "", to_markdown(b.frame).rstrip()]
    if isinstance(b, FigureBlock):
        f = b.figure
        return [f"![{f.slug}]({figure_dir}/{f.png.name})", "",
                f"*{_md_text(f.caption)}* ([PDF]({f.pdf.parent.name}/{f.pdf.name}))"]
    return [f"```{b.lang}", b.text, "```"]


# --------------------------------------------------------------------------------------------------
# HTML

CSS = """
html { -webkit-text-size-adjust: 100%; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45; overflow-wrap: anywhere; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
nav.toc ol { columns: 2; column-gap: 2.5em; margin: .3em 0; }
nav.toc li { margin: .1em 0; }
.table-box { max-width: 100%; overflow-x: auto; margin: .3em 0 1.5em; }
table { border-collapse: collapse; font-size: .85em; font-variant-numeric: tabular-nums; overflow-wrap: normal; }
table.wide { font-size: .74em; }
th, td { padding: .25em .5em; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { border-bottom: 2px solid #999; background: #fafafa; white-space: normal; vertical-align: bottom;
     min-width: 3.5em; }
table.wide td { white-space: normal; }
table.wide td.text { white-space: nowrap; }
td.text, th.text { text-align: left; }
td.senet, th.senet { background: #f3f6fb; }
.caption { font-size: .86em; color: #444; margin-top: 1em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .86em; color: #444; max-width: 52em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: .85em; overflow-wrap: normal; }
li { margin: .25em 0; }
"""


def render_html(title: str, sections: Sequence[Section]) -> str:
    """A single HTML file: CSS inline, figures as data: URIs, nothing fetched from anywhere."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        if s.title:
            ident = f' id="{html.escape(s.anchor)}"' if s.level == 2 else ""
            parts.append(f"<h{s.level}{ident}>{html.escape(s.title)}</h{s.level}>")
        parts += [_html_block(b, sections) for b in s.blocks]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_block(b: Block, sections: Sequence[Section]) -> str:
    if isinstance(b, Para):
        return f"<p>{html.escape(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Contents):
        links = "".join(f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a></li>'
                        for s in _listed(sections))
        return f'<nav class="toc"><ol>{links}</ol></nav>'
    if isinstance(b, TableBlock):
        return (f'<div class="caption">{html.escape(b.caption)}</div>\n'
                f'<div class="table-box">{html_table(b.frame)}</div>')
    if isinstance(b, FigureBlock):
        data = base64.b64encode(b.figure.png.read_bytes()).decode("ascii")
        width = round(b.width_in * 150)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.figure.slug)}" '
                f'style="width:{width}px"><figcaption>{html.escape(b.figure.caption)}</figcaption></figure>')
    return f"<pre><code>{html.escape(b.text)}</code></pre>"


def _keep_together(text: str) -> str:
    """A number cell that may wrap only between a value and its interval: "3.06 ± 10.62" and "[−7.36, +6.80]"
    stay whole (no-break spaces), "−0.28 [−7.36, +6.80]" may break before the "["."""
    return re.sub(r" (?=[±\d+−-])|(?<=±) |(?<=,) ", "\u00a0", text)


def html_table(frame: pd.DataFrame) -> str:
    """An HTML table; label columns (up to the variant) left-aligned, numbers right-aligned, SENet's published
    columns shaded; a table of :data:`WIDE_COLUMNS` or more columns set smaller, its cells free to wrap."""
    k = text_columns(frame)
    senet = [str(c).startswith("SENet") for c in frame.columns]

    def cell(tag: str, i: int, value: object) -> str:
        classes = " ".join(c for c, on in (("text", i < k), ("senet", senet[i])) if on)
        text = str(value) if tag == "th" or i < k else _keep_together(str(value))
        return f"<{tag}{f' class={chr(34)}{classes}{chr(34)}' if classes else ''}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(frame.columns))
    rows = ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
            for r in frame.itertuples(index=False)]
    wide = ' class="wide"' if len(frame.columns) >= WIDE_COLUMNS else ""
    return f"<table{wide}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
