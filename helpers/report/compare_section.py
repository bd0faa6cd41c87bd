"""The report's comparison of models (notebooks/06_compare.ipynb), from ``compare.json`` only:
the validation loss against characters seen and seconds, the final figures, one sample each.
"""

from __future__ import annotations

import html

from IPython.display import HTML
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..common.files import read_json
from ..common.paths import resolve
from ..common.units import perplexity
from . import html as h
from .figures import show


def figure(out_dir) -> Figure:
    """Validation loss per character against characters seen (left) and seconds (right)."""
    rows = [r for r in read_json(resolve(out_dir) / "compare.json")["runs"] if r["status"] == "done"]
    fig = Figure(figsize=(8.5, 3.4), dpi=150)
    left, right = fig.subplots(1, 2, sharey=True)
    for r in rows:
        hist = r["history"]
        for ax, key in ((left, "chars_seen"), (right, "seconds")):
            ax.plot(
                [h[key] for h in hist],
                [h["val_loss_per_char"] for h in hist],
                marker="o",
                ms=2.5,
                lw=1.2,
                label=r["name"],
            )
    later = [h["val_loss_per_char"] for r in rows for h in r["history"][1:]]
    if later:  # the first evaluations can be far above the rest; keep the comparison readable
        left.set_ylim(min(later) * 0.95, max(later) * 1.15)
    left.set_xlabel("characters seen")
    right.set_xlabel("seconds of training")
    left.set_ylabel("validation loss (nats / char)")
    left.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    for ax in (left, right):
        ax.grid(alpha=0.25)
    right.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def figure_image(out_dir):
    """The comparison figure for a notebook cell."""
    return show(figure(out_dir))


def table(out_dir) -> HTML:
    """The final figures of every run as an HTML table."""
    data = read_json(resolve(out_dir) / "compare.json")
    rows = [
        [
            html.escape(r["name"]),
            f"{r['best_val_loss_per_char']:.3f}",
            f"{r['best_val_bits_per_char']:.3f}",
            f"{perplexity(r['best_val_loss_per_char']):.2f}",
            f"{r['chars_seen']:,}",
            f"{r['seconds']:.0f}",
            f"{r['chars_per_second']:,.0f}",
        ]
        if r["status"] == "done"
        else f"<tr><td>{html.escape(r['name'])}</td><td colspan='6'>failed: {html.escape(r['error'])}</td></tr>"
        for r in data["runs"]
    ]
    return HTML(
        h.table(
            ("run", "best val nats/char", "bits/char", "perplexity", "chars seen", "seconds", "chars/s"),
            rows,
            f"Best validation loss per character within a budget of {data['chars_budget']:,} characters "
            f"(validation: the last {data['val_fraction']:.0%} of the text).",
        )
    )


def samples(out_dir) -> HTML:
    """One text from each run's best model, as compare.json recorded it."""
    runs = read_json(resolve(out_dir) / "compare.json")["runs"]
    return HTML(
        "".join(
            h.sample(html.escape(r["name"]), r.get("sample", "(no sample recorded: re-run the comparison)"))
            for r in runs
            if r["status"] == "done"
        )
    )


def section(out_dir) -> HTML:
    """The comparison for the report: the figure, the table and one sample of each run."""
    intro = (
        "<p>Each model trained on the same text with the same budget of characters; the best model of "
        "each is the one with the lowest validation loss.</p>"
    )
    return HTML(
        intro
        + h.img_tag(figure(out_dir), "validation loss")
        + h.caption("Validation loss per character against characters seen and wall-clock time.")
        + table(out_dir).data
        + samples(out_dir).data
    )
