"""LaTeX math as inline SVG, for the report's HTML and PDF: no MathJax, no browser, no network.

The notebooks' Markdown holds LaTeX (``$a_t$``, ``$$ ... $$``), which JupyterLab renders with the
MathJax it bundles. The report is printed from HTML without scripts, so :func:`html` draws each
formula at export time with ziamath (pure Python, with its own STIX Two Math font) into an
``<svg class="math">`` sized in ``em``: it scales with the text around it, and its
``vertical-align`` puts the formula's baseline on the text's. :class:`MathRenderer` is nbconvert's
Markdown renderer with math drawn this way; the report's CSS (its template) sizes and centres it.
The words the report's code adds go through :func:`markdown`, with the same SVG inside ``<img>``.
"""

from __future__ import annotations

import base64
import functools
import html as html_lib
import logging
import re
import warnings
import xml.etree.ElementTree as ET

from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

with warnings.catch_warnings():  # ziamath 0.13 loads its font with a deprecated importlib.resources call
    warnings.simplefilter("ignore", DeprecationWarning)
    import ziamath
    from ziamath.tex import tex2mml

SIZE = 16.0
"""ziamath's font size in SVG units: every length is divided by it to give ``em``."""
THIN = "0.1667em"
"""TeX's thin space."""
OPENERS = {"(", "[", "{", ",", ";", "=", "+", "−", "←", "→", "≈", "<", ">", "≤", "≥", "⊙", "·", "×"}
"""Operators after which a minus is a sign (−5 in max(g, −5)), not a binary minus."""
CLOSERS = {")", "]", "}", "|", "‖"}
"""Closing fences, after which a function name keeps a thin space: σ(z) tanh(s)."""
DISPLAY = re.compile(r'(<div class="math-display">.*?</div>)', re.S)
log = logging.getLogger(__name__)


class MathError(ValueError):
    """A formula that cannot be drawn: its LaTeX and why."""


def _text(el: ET.Element) -> str:
    return (el.text or "").strip()


def _tidy(mathml: ET.Element) -> None:
    """Spacing as TeX sets it, where ziamath's defaults differ: a function name (tanh, max, softmax)
    sits close to its parenthesis, ∂ close to its L, a comma is followed by a thin space, and a minus
    after an operator or a big sum is a sign, not a binary minus. Raises MathError for an unknown
    command, which latex2mathml would print as it is."""
    for el in mathml.iter():
        el.tag = el.tag.rpartition("}")[2]  # no namespace, as ziamath reads it
    for row in mathml.iter():
        items = list(row)
        for i, el in enumerate(items):
            name, prev = _text(el), items[i - 1] if i else None
            nxt = _text(items[i + 1]) if i + 1 < len(items) else ""
            if el.tag in ("mi", "mo") and name.startswith("\\"):
                raise MathError(f"unknown command {name}")
            if el.tag in ("mi", "mo") and len(name) > 1 and name.isalpha():
                el.tag = "mo"
                close = prev is None or (prev.tag == "mo" and _text(prev) not in CLOSERS)
                el.attrib.update(
                    form="prefix",
                    lspace="0em" if close else THIN,
                    rspace="0em" if nxt in ("(", "[") else THIN,
                )
            elif el.tag == "mo" and name == "∂":
                el.tag, el.text = "mi", "\U0001d715"  # TeX's italic ∂, an ordinary symbol close to its L
            elif el.tag == "mo" and name == "," and prev is not None:
                el.set("rspace", THIN)
            elif el.tag == "mo" and name in ("−", "+") and (prev is None or _text(prev) in OPENERS):
                el.set("form", "prefix")
            elif el.tag == "mo" and name in ("−", "+") and len(prev) and _text(prev[0]) in ("∑", "∏"):
                el.attrib.update(form="prefix", lspace=THIN)  # ∑_t −log p: a sign, a thin space after the sum


@functools.lru_cache(maxsize=512)
def _draw(latex: str, display: bool) -> tuple[str, str]:
    """A formula as an SVG document, and the CSS that sizes it in em with its baseline on the text's."""
    ziamath.config.svg2 = False  # plain paths: no ids shared between the formulas of one page
    ziamath.config.precision = 1  # 0.1 unit = 0.006 em: a third of a dot at 300 dpi
    ziamath.config.math.color = "currentColor"
    try:
        mathml = ET.fromstring(tex2mml(latex, inline=not display))
        _tidy(mathml)
        drawn = ziamath.Math(mathml, size=SIZE).svgxml()
    except MathError as err:
        raise MathError(f"{err} in ${latex}$") from None
    except Exception as err:  # noqa: BLE001 - latex2mathml and ziamath raise many kinds
        raise MathError(f"cannot draw ${latex}$ ({type(err).__name__}: {err})") from err
    _, y, width, height = (float(v) / SIZE for v in drawn.attrib["viewBox"].split())  # y = 0 on the baseline
    del drawn.attrib["width"], drawn.attrib["height"]  # the CSS sizes it
    return (
        ET.tostring(drawn, encoding="unicode"),
        f"width: {width:.3f}em; height: {height:.3f}em; vertical-align: {-(y + height):.3f}em",
    )


def svg(latex: str, display: bool = False) -> str:
    """A formula as inline ``<svg class="math">``. Raises MathError for LaTeX that cannot be drawn
    (an unknown command, a missing brace, ...)."""
    drawn, style = _draw(latex.strip(), display)
    label = html_lib.escape(latex.strip())
    return drawn.replace("<svg ", f'<svg class="math" role="img" aria-label="{label}" style="{style}" ', 1)


def img(latex: str, display: bool = False) -> str:
    """A formula as ``<img class="math">`` holding the SVG: for a notebook's outputs, which JupyterLab
    shows without their inline SVG until the notebook is trusted. Raises MathError as :func:`svg`."""
    drawn, style = _draw(latex.strip(), display)
    data = base64.b64encode(drawn.encode()).decode()
    return (
        f'<img class="math" alt="{html_lib.escape(latex.strip())}" style="{style}" '
        f'src="data:image/svg+xml;base64,{data}"/>'
    )


def html(latex: str, display: bool = False, as_img: bool = False) -> str:
    """A formula as HTML (:func:`svg`, or :func:`img` with ``as_img``), in a centred block
    (``div.math-display``) for ``display``."""
    drawn = (img if as_img else svg)(latex, display)
    return f'<div class="math-display">{drawn}</div>' if display else drawn


def markdown(text: str, as_img: bool = True) -> str:
    """Markdown with LaTeX math as HTML, as the report renders a notebook's Markdown; the report's
    code calls it for the words it adds (formulas as ``<img>`` by default, see :func:`img`)."""
    return MarkdownWithMath(renderer=MathRenderer(escape=False, as_img=as_img)).render(text)


class MathRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer with math drawn by :func:`html` instead of left for MathJax.

    ``$...$`` whose text starts or ends with a space is not math ("costs $5 and $10"); ``\\$`` is a
    dollar sign. A formula that cannot be drawn shows as its LaTeX source, marked, with a warning.
    """

    def __init__(self, *args, as_img: bool = False, **kw):
        super().__init__(*args, **kw)
        self.as_img = as_img

    def _math(self, latex: str, display: bool) -> str:
        try:
            return html(latex, display, self.as_img)
        except MathError as err:
            log.warning("%s", err)
            source = self.escape_html(f"$${latex}$$" if display else f"${latex}$")
            return f'<code class="math-error" title="{html_lib.escape(str(err))}">{source}</code>'

    def inline_math(self, body: str) -> str:
        if body != body.strip():
            return self.escape_html(f"${body}$")
        return self._math(body, display=False)

    def block_math(self, body: str) -> str:
        return self._math(body, display=True)

    def latex_environment(self, name: str, body: str) -> str:
        return self._math(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    def paragraph(self, text: str) -> str:
        """A paragraph, with its display formulas taken out of it as blocks of their own."""
        parts = (part.strip() for part in DISPLAY.split(text))
        return "".join(
            part if part.startswith('<div class="math-display">') else f"<p>{part}</p>\n"
            for part in parts
            if part
        )
