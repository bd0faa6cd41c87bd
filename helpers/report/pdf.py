"""Print the report's HTML to PDF: WeasyPrint by default, a headless Chromium or Chrome on request.

    to_pdf("output/run/report.html", "output/run/report.pdf")                     # WeasyPrint
    to_pdf("output/run/report.html", "output/run/report.pdf", engine="chromium")  # opt-in

The engine comes from the ``engine`` argument, else ``$PDF_ENGINE``, else ``weasyprint``.
WeasyPrint is a pip package (it needs the Pango library, which Linux desktops and conda-forge
have); Chromium is looked for only when it is chosen. Both engines get :data:`PRINT_CSS`, the
paged-media rules that apply to the PDF only (A4, title and page numbers in the margins, no
table, figure or sample split across pages). Every failure raises :class:`PdfError`, whose
message names the cause and the fix; the HTML is never touched and the PDF is written
atomically, so a failed print leaves no partial file.
"""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..common.files import atomic_path
from ..common.paths import resolve

ENGINES = ("weasyprint", "chromium")
"""The PDF engines, the default first."""
DEFAULT_ENGINE = ENGINES[0]
BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
PANGO_HELP = (
    "Debian/Ubuntu: `apt-get install libpango-1.0-0 libpangoft2-1.0-0`; Fedora: `dnf install pango`; "
    "macOS: `brew install pango`, or the conda environment (environment.yml), which brings Pango"
)

PRINT_CSS = """
/* Paged media, for the PDF only; the report's own CSS (the report template's CSS) still applies. */
@page {
  size: A4;
  margin: 18mm 17mm 17mm 17mm;
  @top-center { content: string(report-title); font: 8pt "DejaVu Sans", sans-serif; color: #777;
                vertical-align: bottom; padding-bottom: 3mm; }
  @bottom-center { content: "page " counter(page) " of " counter(pages); font: 8pt "DejaVu Sans", sans-serif;
                   color: #777; vertical-align: top; padding-top: 3mm; }
}
@page :first { @top-center { content: none; } }  /* the title itself opens page 1 */
html, body { background: white !important; }
body.jp-Notebook, main, .jp-Cell, .jp-RenderedHTMLCommon { padding: 0 !important; margin: 0 !important; }
/* the notebook theme lays outputs out as table cells; blocks break across pages more cleanly */
.jp-OutputArea-child, .jp-OutputArea-output { display: block !important; overflow: visible !important; }
.jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output {
  break-inside: auto !important; }
h1 { string-set: report-title content(text); }  /* the report's title, for the top margin */
/* !important: WeasyPrint puts these rules before the page's own, which would win ties */
.jp-RenderedHTMLCommon h1 { font-size: 17pt !important; margin: 0 0 0.6em 0 !important; }
.jp-RenderedHTMLCommon h2 { font-size: 14pt !important; margin: 1.2em 0 0.5em 0 !important; }
h1, h2, h3 { break-after: avoid; }
/* a heading is a markdown cell of its own: keep it with the output that follows */
.jp-MarkdownCell { break-inside: avoid; break-after: avoid; }
p { orphans: 2; widows: 2; }
table, img.figure, p.caption, div.sample { break-inside: avoid; }
table, img.figure, p.sample-head { break-after: avoid; }  /* a caption or text stays with its table or figure */
table { max-width: 100%; }
.jp-RenderedHTMLCommon img.figure { max-width: 88% !important; }
/* a text block that fits on a page stays on one; a longer one breaks between lines, at least 4 on a page */
div.text { break-inside: avoid; break-before: avoid; orphans: 4; widows: 4; }  /* and with the words before it */
div.keep { break-inside: avoid; }  /* a section's words and its table, together */
div.math-display { break-before: avoid; break-inside: avoid; }  /* an equation stays with the sentence before it */
a.anchor-link { display: none !important; }
"""
"""Paged-media CSS that both engines add to the report's HTML for the PDF only."""


class PdfError(RuntimeError):
    """The PDF could not be made; the message names the cause and the fix (the HTML is kept)."""


def choose_engine(engine: str | None = None) -> str:
    """The engine to use: ``engine`` if given, else ``$PDF_ENGINE``, else ``weasyprint``.

    Raises PdfError for a name that is not one of :data:`ENGINES`.
    """
    source = "engine" if engine else "PDF_ENGINE"
    name = (engine or os.environ.get("PDF_ENGINE") or DEFAULT_ENGINE).strip().lower()
    if name not in ENGINES:
        raise PdfError(
            f"unknown PDF engine {name!r} (from {source}); the engines are: "
            f"{', '.join(ENGINES)} (default {DEFAULT_ENGINE})."
        )
    return name


def find_browser() -> str | None:
    """A Chromium or Chrome executable: ``$CHROME`` if set, else the usual names and install paths."""
    candidates = ([os.environ["CHROME"]] if os.environ.get("CHROME") else []) + list(BROWSERS)
    for name in candidates:
        found = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def to_pdf(html_path, pdf_path, engine: str | None = None, timeout: float = 300) -> Path:
    """Print ``html_path`` to ``pdf_path`` (A4, with :data:`PRINT_CSS`) with the chosen engine.

    ``engine``: ``"weasyprint"`` or ``"chromium"``; None means ``$PDF_ENGINE`` or ``weasyprint``.
    ``timeout``: the seconds Chromium may take (WeasyPrint runs in this process, without one).
    Raises PdfError, naming the cause and the fix, when the PDF cannot be made; ``html_path`` is kept.
    """
    name = choose_engine(engine)
    html_path, pdf_path = resolve(html_path), resolve(pdf_path)
    if not html_path.is_file():
        raise PdfError(f"no HTML report at {html_path} to print; render it first (make report).")
    kept = f"The HTML report is kept: {html_path}"
    render = _weasyprint if name == "weasyprint" else _chromium
    with atomic_path(pdf_path) as tmp:
        render(html_path, tmp, timeout, kept)
        if tmp.stat().st_size == 0:
            raise PdfError(f"{name} wrote an empty PDF for {html_path}. {kept}")
    return pdf_path


def _report_title(text: str) -> str | None:
    """The text of the report's first h1, for the PDF's title (nbconvert's <title> is the notebook's)."""
    found = re.search(r"<h1\b[^>]*>(.*?)</h1>", text, re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).replace("¶", "").strip() if found else None


def load_weasyprint():
    """The weasyprint module; PdfError names the missing piece (the package or the Pango library)."""
    try:
        import weasyprint
    except ImportError as err:
        raise PdfError(
            f"WeasyPrint is not installed ({err}): `pip install weasyprint` (`make venv` installs it), "
            "or choose PDF_ENGINE=chromium."
        ) from None
    except OSError as err:  # cffi could not open Pango or one of its libraries
        raise PdfError(
            f"WeasyPrint could not load the Pango library it prints with ({err}). Install Pango "
            f"({PANGO_HELP}), or choose PDF_ENGINE=chromium."
        ) from None
    return weasyprint


def _weasyprint(html_path: Path, out: Path, timeout: float, kept: str) -> None:
    quiet = {name: logging.getLogger(name) for name in ("weasyprint", "weasyprint.progress", "fontTools")}
    levels = {name: log.level for name, log in quiet.items()}
    for log in quiet.values():  # progress lines, and dozens of warnings about the notebook theme's screen CSS
        log.setLevel(logging.ERROR)
    try:
        weasyprint = load_weasyprint()  # its import parses the default stylesheets, with progress lines
        document = weasyprint.HTML(filename=str(html_path)).render(
            stylesheets=[weasyprint.CSS(string=PRINT_CSS)]
        )
        document.metadata.title = (
            _report_title(html_path.read_text(encoding="utf-8")) or document.metadata.title
        )
        document.write_pdf(out)
    except PdfError:
        raise
    except Exception as err:  # noqa: BLE001 - any engine failure becomes one error with the way out
        raise PdfError(
            f"WeasyPrint could not print {html_path.name} ({type(err).__name__}: {err}). {kept}; "
            "open it in a browser and print it, or try PDF_ENGINE=chromium."
        ) from err
    finally:
        for name, log in quiet.items():
            log.setLevel(levels[name])


def _print_copy(html_path: Path) -> Path:
    """A copy of the HTML beside it with :data:`PRINT_CSS` and the report's title, for Chromium to print."""
    text = html_path.read_text(encoding="utf-8")
    css, title = PRINT_CSS, _report_title(text)
    if title:
        text = re.sub(
            r"<title>.*?</title>",
            lambda _: f"<title>{html.escape(title)}</title>",
            text,
            count=1,
            flags=re.S | re.I,
        )
        # Chromium has no string-set: the title goes into the top margin as a CSS string
        literal = re.sub(
            r'[\\"<>\s]', lambda m: " " if m.group().isspace() else f"\\{ord(m.group()):x} ", title
        )
        css += (
            f'@page {{ @top-center {{ content: "{literal}"; }} }}\n'
            "@page :first { @top-center { content: none; } }\n"
        )
    style = f"<style>\n@media print {{\n{css}\n}}\n</style>\n"
    text = text.replace("</head>", style + "</head>", 1) if "</head>" in text else style + text
    fd, name = tempfile.mkstemp(prefix=f".{html_path.stem}.", suffix=".print.html", dir=html_path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


def _chromium(html_path: Path, out: Path, timeout: float, kept: str) -> None:
    browser = find_browser()
    if browser is None:
        raise PdfError(
            "PDF engine chromium was chosen, but no Chromium or Chrome was found: install one (Debian: "
            "`apt-get install chromium`; macOS: Google Chrome in /Applications) or set "
            f"CHROME=/path/to/chrome, or use the default engine, weasyprint (unset PDF_ENGINE). {kept}"
        )
    source = _print_copy(html_path)
    profile = Path(tempfile.mkdtemp(prefix=".chrome-profile.", dir=out.parent))
    try:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={out}",
            source.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{browser} did not finish printing within {timeout:g} s. {kept}") from None
        except OSError as err:
            raise PdfError(
                f"{browser} could not be started ({err}); set CHROME to a working Chromium or "
                f"Chrome, or use the default engine, weasyprint. {kept}"
            ) from None
        if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            said = done.stderr.strip()[-2000:]
            raise PdfError(
                f"{browser} could not print the PDF (exit {done.returncode}{': ' + said if said else ''})."
                f" {kept}; try the default engine, weasyprint (unset PDF_ENGINE)."
            )
    finally:
        source.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
