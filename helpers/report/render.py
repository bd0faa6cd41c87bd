"""Rendering: the executed report notebook to standalone HTML (no code), and that HTML to PDF."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from ..common.files import atomic_path
from ..common.paths import resolve

TEMPLATES = Path(__file__).parent / "templates"
"""nbconvert templates: ``report`` is JupyterLab's without network scripts."""
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
            "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Chromium.app/Contents/MacOS/Chromium")


def find_browser() -> str | None:
    """A Chromium or Chrome executable: ``$CHROME`` if set, else the usual names and install paths."""
    candidates = ([os.environ["CHROME"]] if os.environ.get("CHROME") else []) + list(BROWSERS)
    for name in candidates:
        found = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def to_html(executed_notebook, html_path) -> Path:
    """Render an executed report notebook to standalone HTML without code cells or prompts."""
    nb = nbformat.read(resolve(executed_notebook), as_version=4)
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(TEMPLATES)], exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    html_path = resolve(html_path)
    with atomic_path(html_path) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return html_path


def to_pdf(html_path, pdf_path, browser: str | None = None, timeout: float = 120) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium/Chrome (A4, no header or footer)."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError(
            "no Chromium or Chrome found for the PDF; install one (Debian: `apt-get install chromium`, macOS: "
            "Google Chrome) or set CHROME=/path/to/chrome. The HTML report is already written.")
    pdf_path = resolve(pdf_path)
    with atomic_path(pdf_path) as tmp:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-pdf-header-footer", f"--user-data-dir={tmp.parent / '.chrome-profile'}",
               f"--print-to-pdf={tmp}", resolve(html_path).as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or tmp.stat().st_size == 0:
            raise RuntimeError(f"{browser} could not print the PDF (exit {done.returncode}): {done.stderr[-2000:]}")
    shutil.rmtree(pdf_path.parent / ".chrome-profile", ignore_errors=True)
    return pdf_path
