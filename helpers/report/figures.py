"""The report's figures (Figure 2: the smooth loss over all updates, epochs marked), for the
report and for notebook cells."""

from __future__ import annotations

from IPython.display import Image
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..common.files import atomic_path, read_json, read_log
from ..common.paths import resolve
from .html import png


def smooth_loss_figure(run_dir: str):
    """Plot ``train_log.csv`` of ``run_dir``: smooth loss against update step, epochs marked.

    Returns the matplotlib Figure.
    """
    run_dir = resolve(run_dir)
    log = read_log(run_dir / "train_log.csv")
    run = read_json(run_dir / "run.json")
    fig = Figure(figsize=(7.5, 3.6), dpi=150)  # not pyplot: nothing is shown unless returned
    ax = fig.subplots()
    ax.plot(log["step"], log["smooth_loss"], color="#1f4e79", lw=1.3, label="smooth loss")
    for i, start in enumerate(run.get("epoch_starts", [])[1:], start=2):
        ax.axvline(start, color="#999999", lw=0.8, ls=":")
        ax.text(
            start,
            0.98,
            f" epoch {i}",
            transform=ax.get_xaxis_transform(),
            va="top",
            fontsize=7,
            color="#555555",
        )
    best = run.get("best_step")
    if best:
        ax.plot(
            [best],
            [run["best_smooth_loss"]],
            "o",
            ms=4,
            color="#c0392b",
            label=f"best model ({run.get('best_chosen_by', 'smooth loss')}): {run['best_smooth_loss']:.2f} "
            f"after {best:,} updates",
        )
    ax.set_xlabel("update step")
    ax.set_ylabel(f"smooth loss (per {run['config']['seq_length']}-char sequence)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=8, loc="upper right", bbox_to_anchor=(1, 0.92))
    ax.set_xlim(left=0)
    fig.tight_layout()
    return fig


def show(fig):
    """A figure for a notebook cell (figures made without pyplot have no inline display of their own)."""
    return Image(png(fig))


def smooth_loss_image(run_dir):
    """Figure 2 of ``run_dir`` for a notebook cell."""
    return show(smooth_loss_figure(run_dir))


def save_figure(fig, path) -> str:
    """Save ``fig`` atomically as PNG at ``path`` (folders created); returns the path."""
    path = resolve(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return str(path)
