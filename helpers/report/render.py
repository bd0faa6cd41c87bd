"""Rendering: the executed report notebook to standalone HTML without code (the PDF is :mod:`.pdf`'s)."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from ..common.files import atomic_path
from ..common.paths import resolve

TEMPLATES = Path(__file__).parent / "templates"
"""nbconvert templates: ``report`` is JupyterLab's without network scripts."""


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
