"""The report's section on a run of short documents (notebooks/07_documents.ipynb), from its
``documents_run.json`` and ``documents_samples.json`` only."""

from __future__ import annotations

import html

import numpy as np
from IPython.display import HTML

from ..common.files import read_json
from ..common.paths import resolve
from ..data.collection import STDLIB_SOURCE
from . import latex
from .html import table, text_block


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _document_blocks(documents: list[str]) -> str:
    return "".join(text_block(d) for d in documents)


def _stages(samples: list, k: int) -> list:
    """At most ``k`` samples, evenly spread from the first to the last."""
    picks = sorted({round(i) for i in np.linspace(0, len(samples) - 1, min(k, len(samples)))})
    return [samples[i] for i in picks]


def _intro(run: dict) -> str:
    """What was trained on, how, and how synthesis stops."""
    c, cfg = run["corpus"], run["config"]
    note = (
        " No collection was given, so these are the sentences of at most 140 characters in the documentation "
        "that ships with Python."
        if c["source"] == STDLIB_SOURCE
        else ""
    )
    seconds = f" in {run['seconds']:,.0f} s" if run.get("seconds") else ""
    return (
        f"<p>The same network was trained on short documents: <b>{html.escape(c['name'])}</b>, "
        f"{c['n_documents']:,} documents with {c['n_chars']:,} characters (mean length {c['mean_length']:.0f}, "
        f"longest {c['max_length']:,}), K = {c['K']} with the end-of-text character "
        f"U+{ord(run['end_char']):04X}.{note} Each document is read as END document END in chunks of at most "
        f"{cfg['seq_length']} characters that never cross into another document; the hidden state starts at "
        f"zero at each document's start, and the documents are shuffled every epoch. With m = {cfg['m']}, "
        f"eta = {cfg['eta']:g} and sig = {cfg['sig']:g}, {run['steps_done']:,} updates took "
        f"{_plural(len(run['epoch_starts']), 'epoch')}{seconds}; the smooth loss fell to "
        f"{run['final_smooth_loss']:.2f} (lowest {run['best_smooth_loss']:.2f} after {run['best_step']:,} "
        "updates). It sums over chunks that are shorter at each document's end, so it is not comparable with "
        "the book's.</p><p>Synthesis starts from a zero hidden state with the end character as "
        f"{latex.html('x_0', as_img=True)} "
        f"and stops when the network writes the end character or after {cfg['max_length']} characters.</p>"
    )


def _stage_table(samples: list, mean_length: float) -> str:
    """Every sampling step: smooth loss, documents that ended, their mean length."""
    rows = [
        [
            f"{s['step']:,}",
            f"{s['smooth_loss']:.2f}",
            f"{sum(s['ended'])} of {len(s['documents'])}",
            f"{np.mean([len(d) for d in s['documents']]):.0f}",
        ]
        for s in samples
    ]
    return table(
        ["update", "smooth loss", "ended", "mean length"],
        rows,
        "Table D. Documents synthesized during training: how many ended with the end character, and their "
        f"mean length (the collection's is {mean_length:.0f}).",
    )


def section(folder, stages: int = 4) -> HTML:
    """The report section: the collection, the training and documents from ``stages`` points of it.

    Reads ``documents_run.json`` and ``documents_samples.json`` in ``folder`` only.
    """
    folder = resolve(folder)
    run, samples = (read_json(folder / f"documents_{n}.json") for n in ("run", "samples"))
    blocks = "".join(
        f'<div class="sample"><p class="sample-head">Update {s["step"]:,}, smooth loss '
        f"{s['smooth_loss']:.2f}</p>{_document_blocks(s['documents'])}</div>"
        for s in _stages(samples, stages)
    )
    return HTML(_intro(run) + _stage_table(samples, run["corpus"]["mean_length"]) + blocks)
