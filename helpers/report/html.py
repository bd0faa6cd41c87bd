"""The report's small HTML toolkit: tables, figures, captions and text blocks.

Every section of the report (and the comparison, documents and sweep sections) is built from
these pieces, so a table or a sample looks the same wherever it appears. The pieces carry the
little inline style they need to read well in a notebook; the report's own CSS is in its
nbconvert template (``templates/report/index.html.j2``), so nothing a notebook displays restyles
the other notebooks open in JupyterLab.
"""

from __future__ import annotations

import base64
import html
import io

CAPTION_STYLE = "text-align: center; font-size: 0.9em; color: #333"
"""Inline style of a caption, so that it reads the same in a notebook as in the report."""

TEXT_STYLE = (
    "white-space: pre-wrap; overflow-wrap: break-word; font-family: 'DejaVu Sans Mono', Menlo, Consolas, "
    "monospace; font-size: 8.5pt; line-height: 1.35; background: #f5f5f2; border-left: 3px solid #c8c8c0; "
    "padding: 5px 9px"
)


def layers(n: int) -> str:
    """'1 layer', '2 layers'."""
    return f"{n} layer" + ("s" if n > 1 else "")


def text_block(text: str) -> str:
    """A synthesized text as HTML, line breaks kept; styled inline so it reads the same in a notebook."""
    return f'<div class="text" style="{TEXT_STYLE}">{html.escape(text)}</div>'


def sample(head: str, text: str) -> str:
    """A synthesized text under a bold heading (``head`` is HTML), kept on one page when printed."""
    head = f'<p class="sample-head" style="font-weight: bold; margin: 0.2em 0">{head}</p>'
    return f'<div class="sample">{head}{text_block(text)}</div>'


def caption(text: str) -> str:
    """A centred caption under a table or figure (``text`` is HTML)."""
    return f'<p class="caption" style="{CAPTION_STYLE}">{text}</p>'


def table(head, rows, caption_html: str = "", raw_head: bool = False) -> str:
    """A results table: ``head`` (plain texts, or HTML when ``raw_head``), ``rows`` of HTML cells, and an
    optional caption.

    A row may be a string: a whole ``<tr>`` given as it is (e.g. a failed run spanning columns).
    """
    th = "".join(f"<th>{h if raw_head else html.escape(str(h))}</th>" for h in head)
    body = "".join(
        row if isinstance(row, str) else "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f'<table class="results"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>' + (
        caption(caption_html) if caption_html else ""
    )


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image(data: bytes, alt: str) -> str:
    """PNG bytes as an ``<img>`` with the data inside (the report stays one self-contained file)."""
    src = f"data:image/png;base64,{base64.b64encode(data).decode()}"
    return f'<img class="figure" alt="{html.escape(alt)}" src="{src}"/>'


def img_tag(fig, alt: str) -> str:
    """A matplotlib figure as a self-contained ``<img>``."""
    return image(png(fig), alt)


def activation_colour(value: float) -> str:
    """A light diverging colour for an activation in [-1, 1]: white at 0, light red toward +1, light
    blue toward −1; dark text stays readable on every shade (as in Karpathy's visualisations). The
    live component (``static/live.js``) draws the same colours."""
    v = max(-1.0, min(1.0, float(value)))
    return f"hsl({8 if v > 0 else 210}, 80%, {100 - 20 * abs(v):.0f}%)"


ACTIVATION_STYLE = (
    "white-space: pre-wrap; font-family: 'DejaVu Sans Mono', monospace; font-size: 8.5pt; line-height: 1.6"
)
ACTIVATION_LEGEND = (
    f'<p class="note">Background: <span style="background: {activation_colour(1)}">&nbsp;near +1&nbsp;'
    '</span> <span style="border: 1px solid #ddd">&nbsp;0&nbsp;</span> <span style="background: '
    f'{activation_colour(-1)}">&nbsp;near −1&nbsp;</span></p>'
)


def activation_passage(text: str, values) -> str:
    """``text`` with each character on the colour of one unit's activation after it (a line break as ↵)."""
    spans = "".join(
        f'<span style="background: {activation_colour(v)}">{html.escape("↵" + ch if ch == chr(10) else ch)}'
        "</span>"
        for ch, v in zip(text, values)
    )
    return f'<div class="activations" style="{ACTIVATION_STYLE}">{spans}</div>'
