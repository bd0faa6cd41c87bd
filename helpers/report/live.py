"""The model live in the reader's browser: the HTML of the sampler and the neuron explorer.

One component serves the report (05, from ``live_model.json``), the notebooks (03) and a standalone
page (``python -m helpers.runs.live``): a ``<div>`` with a printed fallback inside (the coloured
passage of one or two units, for the PDF and for a notebook whose outputs are not trusted), the
model as JSON, and ``static/live.js`` and ``static/live.css`` inline. Nothing is fetched: the page
works from a file, offline. The model's JSON (``helpers.runs.live.payload``) holds the float32
weights in base64 and the vocabulary; this module only reads it.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

from IPython.display import HTML

from ..common.files import read_json
from ..common.paths import resolve
from .html import ACTIVATION_LEGEND, activation_passage, layers

STATIC = Path(__file__).parent / "static"


@cache
def asset(name: str) -> str:
    """The text of ``static/<name>`` (live.js, live.css)."""
    return (STATIC / name).read_text(encoding="utf-8")


def _json(data: dict) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def printed(data: dict) -> str:
    """What the PDF shows instead: the passage coloured by one or two units, and where the live version is."""
    parts = [
        '<p class="note">In the HTML version of this report the model writes here as you watch, from your '
        "priming text and settings, and colours any text you type by the hidden unit you pick.</p>"
    ]
    for u in data.get("printed", []):
        parts.append(  # a keep: the PDF never splits a unit's passage or parts it from its line
            f'<div class="keep"><p style="margin: 0.5em 0 0.2em 0"><b>unit {u["unit"]}</b>, '
            f"{html.escape(u['feature'])} (correlation {u['r']:+.2f}), on the passage:</p>"
            + activation_passage(data["passage"], u["values"])
            + "</div>"
        )
    return (
        '<div class="charrnn-static">'
        + "".join(parts)
        + (ACTIVATION_LEGEND if data.get("printed") else "")
        + "</div>"
    )


def component(data: dict, parts: str = "both") -> str:
    """The live sampler and explorer (``parts``: "both", "sampler" or "explorer") for the model ``data``."""
    key = f"charrnn-model-{data.get('run_id') or 'model'}-{data.get('step', 0)}"
    return (
        f"<style>{asset('live.css')}</style>"
        f'<div class="charrnn-live" data-charrnn-live="{html.escape(key)}" data-parts="{html.escape(parts)}">'
        f"{printed(data)}</div>"
        f'<script type="application/json" id="{html.escape(key)}">{_json(data)}</script>'
        f"<script>{asset('live.js')}</script>"
    )


def page(data: dict, title: str = "") -> str:
    """A whole self-contained HTML page with the component: mail it, or host it anywhere."""
    title = title or f"A character-level {data['cell'].upper()} writes"
    about = (
        f"{data['cell'].upper()}, {layers(data['layers'])} of {data['m']} units, {data['K']} characters, "
        f"trained on {data.get('corpus', '?')}; {data.get('step', 0):,} updates, smooth loss "
        f"{data.get('smooth_loss', float('nan')):.2f}."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>body {{ '
        "font-family: 'DejaVu Sans', Arial, sans-serif; max-width: 52em; margin: 1.5em auto; padding: 0 1em; "
        f'color: #111; }}</style></head><body><h1>{html.escape(title)}</h1><p class="note">{html.escape(about)}</p>'
        f"{component(data)}</body></html>\n"
    )


def section(run_dir) -> HTML:
    """The report's live section, from ``live_model.json`` (written by 04 with the best model)."""
    return HTML(component(read_json(resolve(run_dir) / "live_model.json")))
