"""The notebooks' math is LaTeX, and the report draws it as SVG: in the HTML without a script, in the PDF.

JupyterLab renders the Markdown's ``$...$`` with the MathJax it bundles (test_lab_journey.py opens the
notebooks there); the report's exporter draws the same LaTeX with ziamath (helpers/report/latex.py).
"""

from __future__ import annotations

import html
import logging
import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from pypdf import PdfReader

from helpers.common.paths import ROOT
from helpers.jobs import notebooks
from helpers.report import latex
from helpers.report.sections import MODEL_NOTES

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WITH_MATH = {"01_gradient_test", "02_train", "03_synthesis", "05_report"}
FORMULA = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<![\\$])\$(?!\s)(.+?)(?<![\s\\$])\$", re.S)


def markdown_cells(path):
    """The Markdown cells of a notebook as git stores it, their code spans and blocks left out."""
    nb = nbformat.reads(notebooks.stored(path), as_version=4)
    return [
        re.sub(r"```.*?```|`[^`]*`", "", c.source, flags=re.S) for c in nb.cells if c.cell_type == "markdown"
    ]


def formulas(path) -> list[tuple[str, bool]]:
    """Every ``$$...$$`` (display) and ``$...$`` (inline) formula in a notebook's Markdown."""
    return [
        (m.group(1) or m.group(2), m.group(1) is not None)
        for text in markdown_cells(path)
        for m in FORMULA.finditer(text)
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hand_written_html_math_is_left(path):
    """Equations are LaTeX: no <div class="equation">, no <sub>, <sup> or <i> in any notebook's Markdown."""
    for text in markdown_cells(path):
        for html_math in ('class="equation"', "<sub", "<sup", "<i>", "&emsp;"):
            assert html_math not in text, f"{path.name}: {html_math} in {text[:80]!r}"
    assert bool(formulas(path)) == (path.stem in WITH_MATH)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem in WITH_MATH], ids=lambda p: p.stem)
def test_every_formula_in_the_notebooks_renders(path, caplog):
    """Each formula draws to SVG, and the Markdown renders with no formula left as LaTeX or marked broken."""
    for tex, display in formulas(path):
        drawn = latex.svg(tex, display)
        assert drawn.startswith('<svg class="math"') and "<path" in drawn, tex
        assert re.search(r"width: \d+\.\d+em; height: \d+\.\d+em; vertical-align: -?\d+\.\d+em", drawn), tex
    with caplog.at_level(logging.WARNING, logger="helpers.report.latex"):
        rendered = [latex.markdown(text, as_img=False) for text in markdown_cells(path)]
    assert not caplog.records and not any("math-error" in r for r in rendered)
    text = BeautifulSoup("".join(rendered), "html.parser").get_text()
    assert "$" not in text and "\\" not in text
    assert sum(r.count('<svg class="math"') for r in rendered) == len(formulas(path))


@pytest.mark.parametrize("cell", sorted(MODEL_NOTES))
def test_the_model_notes_are_latex_drawn_the_same_way(cell, caplog):
    with caplog.at_level(logging.WARNING, logger="helpers.report.latex"):
        note = latex.markdown(MODEL_NOTES[cell])
    assert not caplog.records and "<sub>" not in MODEL_NOTES[cell]
    assert note.count('<div class="math-display"><img class="math"') == 1
    assert "data:image/svg+xml;base64," in note and "$" not in BeautifulSoup(note, "html.parser").get_text()


def test_formulas_sit_on_the_baseline_and_display_ones_are_blocks():
    """Sizes in em, a descent below the baseline for a subscript; display math leaves its paragraph."""
    x_t = latex.svg("x_t")
    depth = float(re.search(r"vertical-align: (-?[\d.]+)em", x_t).group(1))
    assert -0.4 < depth < -0.1 and 'aria-label="x_t"' in x_t
    out = latex.markdown("before\n$$a_t = W h_{t-1}$$\nafter $h_0$.", as_img=False)
    assert re.fullmatch(
        r'<p>before</p>\n<div class="math-display"><svg class="math".*</svg></div>'
        r'<p>after <svg class="math".*</svg>\.</p>\n',
        out,
        re.S,
    )


def test_a_dollar_that_is_not_math_stays_a_dollar():
    out = latex.markdown(r"It costs $5 and $10, or \$3; `$HOME` is code.", as_img=False)
    assert "<svg" not in out and "costs $5 and $10, or $3; <code>$HOME</code>" in html.unescape(out)


def test_a_formula_that_cannot_be_drawn_shows_its_source_and_warns(caplog):
    with pytest.raises(latex.MathError, match=r"unknown command \\tahn"):
        latex.svg(r"\tahn(a_t)")
    with pytest.raises(latex.MathError, match="cannot draw"):
        latex.svg(r"\frac{a}")
    with caplog.at_level(logging.WARNING, logger="helpers.report.latex"):
        out = latex.markdown(r"so $\tahn(a_t)$ here", as_img=False)
    assert '<code class="math-error"' in out and r"$\tahn(a_t)$</code>" in out and "tahn" in caplog.text


def test_spacing_follows_tex():
    """No gap between a function and its parenthesis; a minus after a comma or a sum is a sign."""
    width = lambda tex: float(re.search(r"width: ([\d.]+)em", latex.svg(tex)).group(1))  # noqa: E731
    assert width(r"\tanh(a)") < width(r"\tanh\,(a)") - 0.1
    assert width(r"\max(g, -5)") < width(r"\max(g, 0 - 5)") - width("0") - 0.1
    assert width(r"\sum_t -\log p") < width(r"\sum_t 0 - \log p") - width("0") - 0.1


@pytest.fixture
def run_dir(report_run):
    return report_run


def test_the_report_draws_its_math_as_inline_svg(run_dir):
    body = (run_dir / "report.html").read_text(encoding="utf-8")
    soup = BeautifulSoup(body, "html.parser")
    assert (
        "<script src" not in body and "mathjax" not in body.lower()
    )  # the math is drawn, not typeset by a script
    words = " ".join(cell.get_text() for cell in soup.select(".jp-MarkdownCell"))
    assert "$" not in words and "\\" not in words and 'class="math-error"' not in body
    expected = formulas(ROOT / "notebooks" / "05_report.ipynb")
    assert len(soup.select(".jp-MarkdownCell svg.math")) == len(expected)
    assert len(soup.select(".jp-MarkdownCell div.math-display > svg.math")) == sum(d for _, d in expected)
    assert soup.select("img.math")  # the best model's x_0, written by helpers/report/sections.py
    assert "div.equation" not in body and "p.formula" not in body  # the CSS of the HTML equations is gone


def test_the_pdf_keeps_the_words_around_the_math(run_dir):
    text = " ".join(page.extract_text() for page in PdfReader(run_dir / "report.pdf").pages)
    text = re.sub(r"\s+", " ", text)
    for words in (
        "the one-hot input character,",
        "the hidden state and",
        "the probabilities of the next character",
        "the relative error of the analytic gradient",
        "the running sum of squared gradients",
    ):
        assert words in text, words
    assert "\\frac" not in text and "operatorname" not in text
