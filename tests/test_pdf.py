"""helpers.report.pdf: which engine prints the PDF, what each failure says, and that the HTML survives it."""

from __future__ import annotations

import importlib.abc
import json
import subprocess
import sys

import pytest
from pypdf import PdfReader

from helpers.common.paths import ROOT
from helpers.jobs import pipeline
from helpers.report import pdf

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Notebook</title></head><body>
<h1>A small report</h1><p>First page.</p>
<table class="results"><thead><tr><th>seq_length</th><th>U</th></tr></thead>
<tbody><tr><td>10</td><td>1.23e-09</td></tr></tbody></table><p class="caption">Table 1. Errors.</p>
<p style="break-before: page">Second page.</p></body></html>"""


@pytest.fixture
def page(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(PAGE, encoding="utf-8")
    return path


def _text(path) -> list[str]:
    return [p.extract_text() for p in PdfReader(path).pages]


def test_engine_comes_from_the_argument_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv("PDF_ENGINE", raising=False)
    assert pdf.choose_engine() == "weasyprint" == pdf.DEFAULT_ENGINE
    monkeypatch.setenv("PDF_ENGINE", "")  # `make report` passes an empty PDF_ENGINE through
    assert pdf.choose_engine() == "weasyprint"
    monkeypatch.setenv("PDF_ENGINE", "Chromium")
    assert pdf.choose_engine() == "chromium"
    assert pdf.choose_engine("weasyprint") == "weasyprint"


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_unknown_engine_is_refused_with_the_list_of_engines(monkeypatch, page, where):
    monkeypatch.setenv("PDF_ENGINE", "wkhtmltopdf" if where == "environment" else "")
    engine = "wkhtmltopdf" if where == "argument" else None
    with pytest.raises(pdf.PdfError, match=r"unknown PDF engine 'wkhtmltopdf'.*weasyprint, chromium"):
        pdf.to_pdf(page, page.with_suffix(".pdf"), engine=engine)
    assert not page.with_suffix(".pdf").exists()


def test_pipeline_refuses_an_unknown_engine_before_running_any_notebook(monkeypatch, tmp_path):
    monkeypatch.setenv("PDF_ENGINE", "typst")
    with pytest.raises(pdf.PdfError, match="unknown PDF engine 'typst'"):
        pipeline.run(tmp_path, {}, log=lambda *_: None)
    assert not (tmp_path / "notebooks").exists()
    done = subprocess.run(
        [sys.executable, "-m", "helpers.jobs.pipeline", "--out-dir", str(tmp_path), "--pdf-engine", "typst"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3 and "unknown PDF engine 'typst'" in done.stderr, done.stderr


def test_weasyprint_prints_a4_pages_with_page_numbers_and_title(monkeypatch, page):
    monkeypatch.delenv("PDF_ENGINE", raising=False)
    out = pdf.to_pdf(page, page.parent / "out" / "report.pdf")  # the folder is made
    reader = PdfReader(out)
    assert len(reader.pages) == 2
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (
        210,
        297,
    )  # A4 in mm
    first, second = _text(out)
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert first.count("A small report") == 1 and "A small report" in second  # the margin of later pages only
    assert "1.23e-09" in first and "Table 1. Errors." in first
    assert reader.metadata.title == "A small report"  # the h1, not nbconvert's "Notebook"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.pdf"]  # no temporary file left


def test_chromium_chosen_but_absent_says_how_to_get_it(monkeypatch, page):
    monkeypatch.setattr(pdf, "find_browser", lambda: None)
    with pytest.raises(
        pdf.PdfError, match=r"(?s)chromium was chosen.*apt-get install chromium.*CHROME=.*weasyprint"
    ):
        pdf.to_pdf(page, page.with_suffix(".pdf"), engine="chromium")
    assert not page.with_suffix(".pdf").exists() and page.read_text(encoding="utf-8") == PAGE


def test_chromium_is_not_looked_for_unless_chosen(monkeypatch, page):
    def boom():
        raise AssertionError("find_browser called for weasyprint")

    monkeypatch.setattr(pdf, "find_browser", boom)
    monkeypatch.delenv("PDF_ENGINE", raising=False)
    assert pdf.to_pdf(page, page.with_suffix(".pdf")).is_file()


def test_weasyprint_failure_keeps_the_html_and_leaves_no_pdf(monkeypatch, page):
    weasyprint = pdf.load_weasyprint()

    def broken(*args, **kwargs):
        raise ValueError("a layout bug")

    monkeypatch.setattr(weasyprint.HTML, "render", broken)
    with pytest.raises(
        pdf.PdfError,
        match=r"(?s)WeasyPrint could not print report.html \(ValueError: a layout bug\)"
        r".*HTML report is kept.*PDF_ENGINE=chromium",
    ):
        pdf.to_pdf(page, page.with_suffix(".pdf"), engine="weasyprint")
    assert page.read_text(encoding="utf-8") == PAGE
    assert sorted(p.name for p in page.parent.iterdir()) == ["report.html"]


def test_a_pdf_from_an_earlier_run_is_not_half_overwritten(monkeypatch, page):
    old = page.with_suffix(".pdf")
    old.write_bytes(b"%PDF-old")
    monkeypatch.setattr(pdf.load_weasyprint().HTML, "render", lambda *a, **k: 1 / 0)
    with pytest.raises(pdf.PdfError, match="ZeroDivisionError"):
        pdf.to_pdf(page, old, engine="weasyprint")
    assert old.read_bytes() == b"%PDF-old"


class _NoPango(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "weasyprint" or name.startswith("weasyprint."):
            raise OSError(
                "cannot load library 'libpango-1.0-0': libpango-1.0-0: cannot open shared object file"
            )
        return None


def test_missing_pango_names_the_library_and_the_fix(monkeypatch, page):
    for name in [n for n in sys.modules if n == "weasyprint" or n.startswith("weasyprint.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoPango(), *sys.meta_path])
    with pytest.raises(
        pdf.PdfError, match=r"(?s)Pango.*libpango-1.0-0.*apt-get install libpango.*PDF_ENGINE=chromium"
    ):
        pdf.to_pdf(page, page.with_suffix(".pdf"))
    assert page.read_text(encoding="utf-8") == PAGE


def test_missing_weasyprint_package_says_pip_install(monkeypatch, page):
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    with pytest.raises(pdf.PdfError, match="pip install weasyprint"):
        pdf.to_pdf(page, page.with_suffix(".pdf"))


@pytest.mark.skipif(pdf.find_browser() is None, reason="no Chromium or Chrome installed (the opt-in engine)")
def test_chromium_opt_in_prints_the_same_report(monkeypatch, page):
    monkeypatch.setenv("PDF_ENGINE", "chromium")
    out = pdf.to_pdf(page, page.parent / "out" / "report.pdf")
    first, second = _text(out)
    assert (
        "1.23e-09" in first and "page 1 of 2" in first and first.count("A small report") == 1
    )  # h1, no margin
    assert "Second page." in second and "page 2 of 2" in second and "A small report" in second
    assert PdfReader(out).metadata.title == "A small report"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.pdf"]  # no profile or print copy left
    assert sorted(p.name for p in page.parent.iterdir()) == ["out", "report.html"]


def _report_pieces(folder) -> str:
    """The reference-point section and the best model's passage, built by the report's own code."""
    from helpers.report import live as live_html
    from helpers.report import reference, sections

    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "reference": {"uniform": 4.382, "unigram": 3.131, "bigram": 2.445, "train_chars": 1_000_000},
                "best_val_loss_per_char": None,
            }
        )
    )
    (folder / "run.json").write_text(
        json.dumps(
            {
                "corpus": {"K": 80, "name": "book.txt", "n_chars": 1_000_000},
                "best_smooth_loss": 43.5,
                "steps_done": 300_000,
                "final_smooth_loss": 44.0,
                "best_chosen_by": "smooth loss",
                "config": {"seq_length": 25},
            }
        )
    )
    lines = [f"line {i:02d} of the passage, as a model writes it: " + "words " * 12 for i in range(16)]
    (folder / "best_passage.json").write_text(
        json.dumps({"text": "\n".join(lines), "prime": "\n", "seed": 0, "step": 299_000, "smooth_loss": 43.5})
    )
    live = "\n".join(f"live {i:02d} of the passage the unit colours: " + "words " * 10 for i in range(12))
    unit = {"unit": 3, "feature": "inside a word", "r": 0.84, "values": [0.5, -0.5] * len(live)}
    printed = live_html.printed({"passage": live, "printed": [unit, {**unit, "unit": 7}]})
    return (
        reference.section(folder).data
        + "<h2>4 The best model</h2>"
        + sections.best_section(folder).data
        + "<h2>5 The model, live</h2>"
        + printed
    )


@pytest.mark.parametrize("filler", range(0, 44, 4))
def test_no_heading_at_a_page_foot_and_no_passage_split_that_fits_on_a_page(tmp_path, filler):
    """Wherever the page breaks fall, a section heading stays with what follows and a passage that
    fits on one page is printed on one page, with the sentence that introduces it."""
    body = "".join(
        f"<p>Paragraph {i} of the report, long enough to fill a line or two of the page with words "
        "that push what follows down the page.</p>"
        for i in range(filler)
    )
    path = tmp_path / "r.html"
    path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><h1>A report</h1>{body}'
        f"{_report_pieces(tmp_path)}</body></html>",
        encoding="utf-8",
    )
    pages = [" ".join(t.split()) for t in _text(pdf.to_pdf(path, tmp_path / "r.pdf", engine="weasyprint"))]

    def page_of(needle: str) -> int:
        found = [i for i, text in enumerate(pages) if needle in text]
        assert len(found) == 1, (needle, found)
        return found[0]

    assert page_of("Reference points") == page_of("uniform guess") == page_of("Losses per character")
    assert (
        page_of("4 The best model")
        == page_of("It synthesized the following")
        == page_of("line 00 of")
        == page_of("line 15 of")
    )

    def pages_of(needle: str) -> list[int]:  # the page of each occurrence, in order
        return [i for i, text in enumerate(pages) for _ in range(text.count(needle))]

    first, last = pages_of("live 00 of"), pages_of("live 11 of")
    assert len(first) == len(last) == 2  # the printed live model: each unit's passage whole, with its line
    assert [page_of("unit 3, inside a word"), page_of("unit 7, inside a word")] == first == last
