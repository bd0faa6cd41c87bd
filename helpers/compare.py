"""Comparing models on one text and one budget of characters: each run is a papermill run of
``notebooks/02_train.ipynb``, so the comparison is reproducible with one command.

    make compare                                   # notebooks/06_compare.ipynb with papermill
    make compare ARGS="-p chars_budget 2000000"

Every run trains on the same text with the same validation split and sees the same number of
characters (updates x batch_size x seq_length); the comparison is of the validation loss per
character against characters seen and against wall-clock time.
"""
from __future__ import annotations

import html
import json
import math
import time

from IPython.display import HTML
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .checkpoint import read_json, write_json
from .evaluate import bits
from .plots import img_tag, show
from .report import text_block
from .paths import ROOT, resolve
from .pipeline import KERNEL_QUIET

DEFAULT_RUNS = [
    {"name": "rnn-m100", "cell": "rnn", "m": 100},
    {"name": "rnn-m256", "cell": "rnn", "m": 256},
    {"name": "lstm-m100", "cell": "lstm", "m": 100},
    {"name": "rnn-m100-b16", "cell": "rnn", "m": 100, "batch_size": 16},
    {"name": "lstm-m100-b16", "cell": "lstm", "m": 100, "batch_size": 16},
]
"""The seed's vanilla RNN, a larger one, the LSTM, and both with 16 streams."""


def run_parameters(run: dict, data_path: str, out_dir, chars_budget: int, seq_length: int, val_fraction: float,
                   evals: int, seed: int) -> dict:
    """The 02_train parameters of one run: its own settings plus the shared text, budget and split."""
    if not isinstance(run, dict) or not run.get("name"):
        raise ValueError(f"each run needs a 'name' and its 02_train parameters, e.g. "
                         f'{{"name": "lstm", "cell": "lstm"}}; got {run!r}')
    settings = {k: v for k, v in run.items() if k != "name"}
    shared = sorted(set(settings) & {"data_path", "out_dir", "seed", "val_fraction", "n_updates", "seq_length"})
    if shared:
        raise ValueError(f"run {run['name']!r} sets {', '.join(shared)}, which every run shares (same text, split, "
                         "seed and character budget); set them for the whole comparison instead.")
    per_update = int(settings.get("batch_size", 1)) * seq_length
    n_updates = max(1, math.ceil(chars_budget / per_update))
    return {"data_path": data_path, "out_dir": str(resolve(out_dir) / run["name"]), "seed": seed,
            "seq_length": seq_length, "val_fraction": val_fraction, "n_updates": n_updates,
            "eval_every": max(1, n_updates // evals), "sample_every": n_updates, "sample_until": 0,
            "checkpoint_every": n_updates, "log_every": max(1, n_updates // 500), **settings}


def run_all(data_path: str = "auto", out_dir: str = "output/compare", runs=None, chars_budget: int = 1_000_000,
            seq_length: int = 25, val_fraction: float = 0.05, evals: int = 10, seed: int = 0,
            log=print) -> list[dict]:
    """Train every run with papermill into ``out_dir/<name>`` and write ``compare.json``.

    A run that fails is recorded with its error; the others go on. Returns the summary rows.
    """
    import papermill

    if not val_fraction > 0:
        raise ValueError("the comparison needs a validation split: val_fraction > 0, e.g. 0.05")
    runs = DEFAULT_RUNS if runs is None else (json.loads(runs) if isinstance(runs, str) else runs)
    names = [r.get("name") for r in runs if isinstance(r, dict)]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be distinct, got {names}")
    out = resolve(out_dir)
    rows = []
    for run in runs:
        params = run_parameters(run, data_path, out, chars_budget, seq_length, val_fraction, evals, seed)
        log(f"[{run['name']}] {params['n_updates']:,} updates")
        start = time.perf_counter()
        (out / run["name"]).mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(ROOT / "notebooks" / "02_train.ipynb", out / run["name"] / "02_train.ipynb",
                                       parameters=params, cwd=str(ROOT), progress_bar=False, kernel_name="python3",
                                       extra_arguments=KERNEL_QUIET)
            rows.append(summary_row(run, out / run["name"]))
        except papermill.PapermillExecutionError as err:
            rows.append({"name": run["name"], "settings": run, "status": "failed", "error": f"{err.ename}: {err.evalue}"})
        log(f"[{run['name']}] {rows[-1]['status']} in {time.perf_counter() - start:.0f} s")
        write_json(out / "compare.json", {"chars_budget": chars_budget, "seq_length": seq_length,
                                          "val_fraction": val_fraction, "data_path": data_path, "runs": rows})
    return rows


def summary_row(run: dict, folder) -> dict:
    """One run's final figures, from its run.json and metrics.json."""
    r, m = read_json(folder / "run.json"), read_json(folder / "metrics.json")
    return {"name": run["name"], "settings": run, "status": "done", "chars_seen": m["chars_seen"],
            "seconds": m["seconds"], "best_val_loss_per_char": m["best_val_loss_per_char"],
            "best_val_bits_per_char": bits(m["best_val_loss_per_char"]),
            "final_val_loss_per_char": m["val_loss_per_char"], "updates_per_second": r["updates_per_second"],
            "chars_per_second": m["chars_seen"] / m["seconds"], "history": m["history"]}


def figure(out_dir) -> Figure:
    """Validation loss per character against characters seen (left) and seconds (right)."""
    rows = [r for r in read_json(resolve(out_dir) / "compare.json")["runs"] if r["status"] == "done"]
    fig = Figure(figsize=(8.5, 3.4), dpi=150)
    left, right = fig.subplots(1, 2, sharey=True)
    for r in rows:
        hist = r["history"]
        for ax, key in ((left, "chars_seen"), (right, "seconds")):
            ax.plot([h[key] for h in hist], [h["val_loss_per_char"] for h in hist], marker="o", ms=2.5, lw=1.2,
                    label=r["name"])
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
    body = ""
    for r in data["runs"]:
        if r["status"] != "done":
            body += f"<tr><td>{html.escape(r['name'])}</td><td colspan='5'>failed: {html.escape(r['error'])}</td></tr>"
            continue
        body += (f"<tr><td>{html.escape(r['name'])}</td><td>{r['best_val_loss_per_char']:.3f}</td>"
                 f"<td>{r['best_val_bits_per_char']:.3f}</td><td>{r['chars_seen']:,}</td><td>{r['seconds']:.0f}</td>"
                 f"<td>{r['chars_per_second']:,.0f}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run", "best val nats/char", "bits/char", "chars seen", "seconds",
                                            "chars/s"))
    return HTML(f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                f'<p class="caption">Best validation loss per character within a budget of '
                f'{data["chars_budget"]:,} characters (validation: the last {data["val_fraction"]:.0%} of the text).</p>')


def samples(out_dir, length: int = 300, seed: int = 0) -> HTML:
    """One text from each run's best model."""
    from .workflow import synthesize

    blocks = ""
    for r in read_json(resolve(out_dir) / "compare.json")["runs"]:
        if r["status"] == "done":
            text = synthesize(str(resolve(out_dir) / r["name"] / "best.npz"), length, seed)["text"]
            blocks += (f'<div class="sample"><p class="sample-head">{html.escape(r["name"])}</p>'
                       f'{text_block(text)}</div>')
    return HTML(blocks)


def section(out_dir) -> HTML:
    """The comparison for the report: the figure, the table and one sample of each run."""
    intro = ("<p>Each model trained on the same text with the same budget of characters; the best model of "
             "each is the one with the lowest validation loss.</p>")
    return HTML(intro + img_tag(figure(out_dir), "validation loss")
                + '<p class="caption">Validation loss per character against characters seen and wall-clock time.</p>'
                + table(out_dir).data + samples(out_dir).data)
