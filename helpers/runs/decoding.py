"""Beam search beside sampling: the most probable continuation a beam finds, and sampled texts at a
few temperatures, each with its log-probability per character under the model.

    decoding.compare("output/run/best.npz", length=300, prime="Harry ", beam_width=8)

Beam search maximises the probability of the whole text, so it picks the likeliest character
again and again and soon settles into short, frequent phrases that repeat; sampling at
temperature 1 gives text as varied as the training text and a much lower probability per
character. The table makes that visible.
"""

from __future__ import annotations

import html
import math

from IPython.display import HTML

from ..common import files
from ..common.paths import resolve
from ..report.html import sample, table
from .steps import synthesize

TEMPERATURES = (0.5, 0.8, 1.0)
"""The temperatures sampled beside the beam."""


def compare(
    checkpoint: str,
    length: int = 300,
    prime: str = "",
    beam_width: int = 8,
    seed: int = 0,
    temperatures=TEMPERATURES,
    out_path: str | None = None,
) -> list[dict]:
    """The beam's continuation and one sample per temperature, as :func:`steps.synthesize` results.

    ``beam_width`` below 2 leaves the beam out. Writes the list as JSON to ``out_path`` when given.
    """
    results = (
        [synthesize(checkpoint, length, seed, prime, beam_width=beam_width)] if int(beam_width) >= 2 else []
    )
    results += [synthesize(checkpoint, length, seed, prime, temperature=t) for t in temperatures]
    if out_path:
        files.write_json(resolve(out_path), results)
    return results


def label(result: dict) -> str:
    """ "beam search, width 8" or "sampled, temperature 0.8"."""
    if result.get("beam_width", 0) >= 2:
        return f"beam search, width {result['beam_width']}"
    return f"sampled, temperature {result['temperature']:g}"


def section(results: list[dict]) -> HTML:
    """A table of log-probability per character and distinct words, then the texts."""
    rows = []
    for r in results:
        n = max(len(r["text"]), 1)
        words = r["text"].split()
        rows.append(
            [
                html.escape(label(r)),
                f"{r['log_prob'] / n:.3f}",
                f"{math.exp(-r['log_prob'] / n):.2f}",
                f"{len(set(words))} of {len(words)}",
            ]
        )
    intro = (
        "<p>The same model and priming text, decoded two ways: beam search keeps the most probable prefixes "
        "and returns the most probable continuation it finds; sampling draws each character from p<sub>t</sub> "
        "(sharpened below temperature 1). Beam search reads conservative: its text is far more probable per "
        "character, and it is so because it repeats the commonest words and phrases.</p>"
    )
    return HTML(
        intro
        + table(
            ("decoding", "log p per char (nats)", "perplexity", "distinct words"),
            rows,
            "Log-probability per character of each text under the model.",
        )
        + "".join(sample(label(r), r["text"]) for r in results)
    )
