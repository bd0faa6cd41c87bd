"""Reference points for a loss per character: where the run stands between a uniform guess and the
best recipe, from result files only (the run's ``metrics.json``, and those of the assignment's
vanilla RNN and of the best recipe when their folders are given), with PyTorch's figure on the
book as an outside reference (:data:`OUTSIDE`).

A held-out loss is shown three ways: nats per character (the mean -ln p of the next character),
bits per character (nats / ln 2) and perplexity (e^nats: a model that hesitates between this many
equally likely characters would lose as much).
"""

from __future__ import annotations

import html

from IPython.display import HTML

from ..common.files import read_json
from ..common.paths import resolve
from ..common.units import bits, perplexity
from . import latex
from .html import layers, table

EXPLAIN = (
    "<p>A loss per character is the mean of {loss} "
    "over a text, in nats; divided by ln 2 it is in bits per character, and {power} is the "
    "perplexity: a model that hesitated between that many equally likely characters would lose as much. "
    "The uniform guess has perplexity <i>K</i>. The unigram and bigram entropies are what a model that "
    "knew the exact frequencies of single characters, or of a character given the one before, in the "
    "training text would lose on that text."
)
"""The words under the heading; ``{loss}`` and ``{power}`` are formulas (:func:`explain`)."""
HELD_OUT = "rows are losses on held-out parts of the text, which they never trained on."
NOT_HELD_OUT = (
    "This run held no text out, so its row is its smooth loss per character on the text it trained "
    "on, not a held-out figure."
)
OUTSIDE = {
    "corpus": {"name": "goblet_book.txt", "n_chars": 1_107_542, "K": 80},
    "name": "outside reference: PyTorch",
    "nats": 1.077,
    "what": (
        "PyTorch 2.14 on the CPU, 2-layer LSTM of m = 384, dropout 0.25, Adam 0.004 on a cosine schedule "
        "over 13 min, 32 streams of 50; the book's last 5%, best after 782 s on this project's 2-core "
        "AMD EPYC (December 2026, issue #20)"
    ),
}
"""A figure from outside the project, shown when the run's text is the book it was measured on."""
BIGRAM = "<i>H</i>(<i>x</i><sub><i>t</i></sub> | <i>x</i><sub><i>t</i>−1</sub>)"


def explain() -> str:
    """:data:`EXPLAIN` with its formulas drawn (:func:`.latex.html`)."""
    return EXPLAIN.format(
        loss=latex.html(r"-\ln p_t[y_t]", as_img=True), power=latex.html(r"e^{\mathrm{loss}}", as_img=True)
    )


def _row(name: str, nats: float | None, where: str, where_html: str = "") -> list[str]:
    where = where_html or html.escape(where)
    if nats is None:
        return [html.escape(name), "", "", "", where]
    return [html.escape(name), f"{nats:.3f}", f"{bits(nats):.3f}", f"{perplexity(nats):.2f}", where]


def _model_rows(folder, name: str, corpus: dict) -> list[list[str]]:
    """The best validation (and test) loss of the run in ``folder``, checked to be on ``corpus``."""
    run, metrics = read_json(resolve(folder) / "run.json"), read_json(resolve(folder) / "metrics.json")
    same = ("name", "n_chars", "K")  # the path may differ between checkouts
    if [run["corpus"].get(k) for k in same] != [corpus.get(k) for k in same]:
        raise ValueError(
            f"{folder} was trained on {run['corpus']['name']!r} ({run['corpus']['n_chars']:,} characters), "
            f"not on this run's text; give the folder of a run on {corpus['name']!r}."
        )
    c = run["config"]
    model = (
        f"{c.get('cell', 'rnn')}, {layers(c.get('n_layers', 1))} of m = {c['m']}, {c.get('optimizer', 'adagrad')}, "
        f"{metrics['chars_seen']:,} characters in {metrics['seconds'] / 60:.1f} min"
    )
    split = f"last {c.get('val_fraction', 0):.0%}"
    rows = [_row(f"{name}: validation", metrics.get("best_val_loss_per_char"), f"{model}; {split}")]
    if metrics.get("test_loss_per_char") is not None:
        rows.append(
            _row(f"{name}: test", metrics["test_loss_per_char"], f"the {c['test_fraction']:.0%} before it")
        )
    return rows


def section(run_dir, baseline_dir: str = "", best_dir: str = "") -> HTML:
    """The table of reference points, the run's own held-out losses and, when their folders are given,
    the assignment's vanilla RNN (``baseline_dir``) and the best recipe (``best_dir``)."""
    metrics, run = read_json(resolve(run_dir) / "metrics.json"), read_json(resolve(run_dir) / "run.json")
    ref = metrics["reference"]
    K = run["corpus"]["K"]
    rows = [
        _row("uniform guess, ln K", ref["uniform"], f"K = {K}"),
        _row("unigram entropy of the training text", ref["unigram"], f"{ref['train_chars']:,} characters"),
        _row("bigram entropy of the training text", ref["bigram"], "", BIGRAM),
    ]
    seen = set()
    for folder, name in (
        (baseline_dir, "the assignment's vanilla RNN"),
        (best_dir, "the best recipe"),
        (run_dir, "this run"),
    ):
        key = resolve(folder) if folder else None
        if (
            key is None
            or key in seen
            or (folder == run_dir and metrics.get("best_val_loss_per_char") is None)
        ):
            continue
        seen.add(key)
        rows += _model_rows(folder, name, run["corpus"])
    outside = all(run["corpus"].get(k) == v for k, v in OUTSIDE["corpus"].items())
    if outside:
        rows.append(_row(OUTSIDE["name"], OUTSIDE["nats"], OUTSIDE["what"]))
    held_out = any(r[0].startswith("this run") for r in rows)
    if not held_out:
        per_char = run["best_smooth_loss"] / run["config"]["seq_length"]
        rows.append(_row("this run: smooth training loss", per_char, "not held out: it trained on this text"))
    if held_out:
        words = f" The networks' {HELD_OUT}"
    else:
        words = f" {NOT_HELD_OUT}" + (f" The other networks' {HELD_OUT}" if seen or outside else "")
    return HTML(
        '<div class="keep"><h2>Reference points</h2>'
        + explain()
        + words
        + "</p>"
        + table(
            ("reference point", "nats/char", "bits/char", "perplexity", "what"),
            rows,
            "Losses per character, lower is better.",
        )
        + "</div>"
    )
