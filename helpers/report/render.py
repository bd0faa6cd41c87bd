"""Rendering: the executed report notebook to standalone HTML without code (the PDF is :mod:`.pdf`'s).

:class:`ReportExporter` is an nbconvert exporter registered as ``report`` (``pyproject.toml``), so
the same clean report comes from ``make report``, from ``jupyter nbconvert --to report
05_report.ipynb`` and from JupyterLab's File > Save and Export Notebook As > Report.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from jinja2 import pass_context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import MarkdownWithMath
from traitlets import default

from ..common.files import atomic_path
from ..common.paths import resolve
from .latex import MathRenderer

TEMPLATES = Path(__file__).parent / "templates"
"""nbconvert templates: ``report`` is JupyterLab's without network scripts, plus the report's CSS."""
DROPPED_TAGS = {"parameters", "injected-parameters", "remove-cell"}
"""Cells left out of the report whole: the parameters cell, the one papermill injects, and notes to
the reader of the notebook (tagged ``remove-cell``, nbconvert's usual tag)."""


class ReportExporter(HTMLExporter):
    """Standalone HTML of a notebook's Markdown and outputs: no code, no prompts, no parameters cells,
    no script fetched from the network (the ``report`` template), and the Markdown's LaTeX math drawn
    as inline SVG (:mod:`.latex`) instead of left for MathJax."""

    export_from_notebook = "Report"

    @default("template_name")
    def _template_name_default(self):
        return "report"

    @default("extra_template_basedirs")
    def _extra_template_basedirs_default(self):
        return [str(TEMPLATES)]

    @default("exclude_input")
    def _exclude_input_default(self):
        return True

    @default("exclude_input_prompt")
    def _exclude_input_prompt_default(self):
        return True

    @default("exclude_output_prompt")
    def _exclude_output_prompt_default(self):
        return True

    @pass_context
    def markdown2html(self, context, source):
        """HTMLExporter's Markdown filter, with :class:`~.latex.MathRenderer` as the renderer."""
        cell = context.get("cell", {})
        renderer = MathRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return MarkdownWithMath(renderer=renderer).render(source)

    def from_notebook_node(self, nb, resources=None, **kw):
        nb = copy.deepcopy(nb)
        nb.cells = [c for c in nb.cells if not DROPPED_TAGS & set(c.get("metadata", {}).get("tags", []))]
        return super().from_notebook_node(nb, resources, **kw)


def to_html(executed_notebook, html_path) -> Path:
    """Render an executed report notebook to standalone HTML without code cells or prompts."""
    nb = nbformat.read(resolve(executed_notebook), as_version=4)
    body, _ = ReportExporter().from_notebook_node(nb)
    html_path = resolve(html_path)
    with atomic_path(html_path) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return html_path
