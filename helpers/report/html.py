"""The report's small HTML toolkit: style, tables, figures, captions and text blocks.

Every section of the report (and the comparison, documents and sweep sections) is built from
these pieces, so a table or a sample looks the same wherever it appears.
"""
from __future__ import annotations

import base64
import html
import io

from IPython.display import HTML

STYLE = """<style>
/* nbconvert's lab theme styles output HTML too; these rules are specific enough to win */
.jp-RenderedHTMLCommon table.results { border-collapse: collapse; margin: 0.6em auto 0.2em auto !important;
  font-size: 10pt; }
.jp-RenderedHTMLCommon table.results th, .jp-RenderedHTMLCommon table.results td {
  border: none; border-bottom: 1px solid #bbb; padding: 3px 12px; text-align: right; }
.jp-RenderedHTMLCommon table.results thead th { border-bottom: 2px solid #444; }
.jp-RenderedHTMLCommon table.results td:first-child, .jp-RenderedHTMLCommon table.results th:first-child {
  text-align: left; }
.jp-RenderedHTMLCommon p.caption { text-align: center; font-size: 9.5pt; color: #333; margin: 0.3em 3em 1.2em 3em; }
.jp-RenderedHTMLCommon p.formula { text-align: center; }
.jp-RenderedHTMLCommon img.figure { display: block; margin: 0.5em auto; max-width: 100%; }
.jp-RenderedHTMLCommon div.sample { break-inside: avoid; margin-bottom: 0.7em; }
.jp-RenderedHTMLCommon p.sample-head { font-weight: bold; margin: 0.2em 0; }
.jp-RenderedHTMLCommon p.meta { color: #444; font-size: 10pt; }
@media print {
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output {
    break-inside: auto !important; }
  h2 { break-after: avoid; }
  table.results, img.figure, p.caption, div.sample { break-inside: avoid; }
}
</style>"""

TEXT_STYLE = ("white-space: pre-wrap; overflow-wrap: break-word; font-family: 'DejaVu Sans Mono', Menlo, Consolas, "
              "monospace; font-size: 8.5pt; line-height: 1.35; background: #f5f5f2; border-left: 3px solid #c8c8c0; "
              "padding: 5px 9px")


def style() -> HTML:
    """The report's CSS (tables, captions, samples), as an HTML block to display first."""
    return HTML(STYLE)


def text_block(text: str) -> str:
    """A synthesized text as HTML, line breaks kept; styled inline so it reads the same in a notebook."""
    return f'<div class="text" style="{TEXT_STYLE}">{html.escape(text)}</div>'


def sample(head: str, text: str) -> str:
    """A synthesized text under a bold heading (``head`` is HTML), kept on one page when printed."""
    return f'<div class="sample"><p class="sample-head">{head}</p>{text_block(text)}</div>'


def caption(text: str) -> str:
    """A centred caption under a table or figure (``text`` is HTML)."""
    return f'<p class="caption">{text}</p>'


def table(head, rows, caption_html: str = "") -> str:
    """A results table: ``head`` (plain texts), ``rows`` of HTML cells, and an optional caption.

    A row may be a string: a whole ``<tr>`` given as it is (e.g. a failed run spanning columns).
    """
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join(row if isinstance(row, str) else "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f'<table class="results"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'
            + (caption(caption_html) if caption_html else ""))


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image(data: bytes, alt: str) -> str:
    """PNG bytes as an ``<img>`` with the data inside (the report stays one self-contained file)."""
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}"/>'


def img_tag(fig, alt: str) -> str:
    """A matplotlib figure as a self-contained ``<img>``."""
    return image(png(fig), alt)
