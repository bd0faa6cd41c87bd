"""The report's section on a parameter sweep (notebooks/08_sweep.ipynb), read from the sweep's
folder only: ``sweep.json`` (the plan), each point's ``point.json``, ``run.json``, ``metrics.json``
and ``train_log.csv``. :func:`collect` is also what :mod:`helpers.jobs.sweep` writes ``sweep.csv`` from.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from IPython.display import HTML
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..common.files import read_json, read_log
from ..common.paths import resolve
from ..common.units import bits, perplexity
from .html import caption, img_tag, table

RESULTS = ("final_smooth_loss", "best_smooth_loss", "best_val_loss_per_char", "updates_per_second", "seconds")
VAL_KEY = "best_val_loss_per_char"  # the best model's, in metrics.json, when training held out text


def canonical(params) -> str:
    """One text per set of parameters, whatever the order of its keys."""
    return json.dumps(params, sort_keys=True)


def _read(path) -> dict:
    """A JSON file's contents; empty when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_for(folder, parameters: dict) -> dict | None:
    """The point.json in ``folder`` when it is readable and was written for ``parameters``."""
    record = _read(Path(folder) / "point.json")
    return record if record and canonical(record.get("parameters")) == canonical(parameters) else None


def collect(out_dir) -> list[dict]:
    """One row per point of the sweep in ``out_dir``: name, grid values, RESULTS, status, error.

    Status is "done", "failed", "running" (or interrupted) or "pending" (not run with these
    parameters yet). Results are None where unknown; the validation loss per character comes from
    the point's metrics.json when training held out a validation text.
    """
    out = resolve(out_dir)
    rows = []
    for p in read_json(out / "sweep.json")["points"]:
        folder = out / p["name"]
        record = record_for(folder, p["parameters"]) or {"status": "pending"}
        row = {
            "name": p["name"],
            **p["point"],
            **dict.fromkeys(RESULTS),
            "status": record["status"],
            "error": record.get("error", ""),
        }
        if record["status"] == "done":
            summary, metrics = _read(folder / "run.json"), _read(folder / "metrics.json")
            row.update({k: summary.get(k) for k in RESULTS if k != VAL_KEY})
            row[VAL_KEY] = metrics.get(VAL_KEY)
        rows.append(row)
    return rows


def label(point: dict) -> str:
    """A curve's legend entry: the point's grid values."""
    return ", ".join(f"{k} {v}" for k, v in point.items()) or "base"


def loss_figure(out_dir):
    """The smooth loss against the update step of every finished point, labelled; a matplotlib Figure."""
    out = resolve(out_dir)
    points = {p["name"]: p["point"] for p in read_json(out / "sweep.json")["points"]}
    done = [
        r["name"]
        for r in collect(out)
        if r["status"] == "done" and (out / r["name"] / "train_log.csv").is_file()
    ]
    fig = Figure(figsize=(7.5, 3.8), dpi=150)
    ax = fig.subplots()
    for i, name in enumerate(done):
        log = read_log(out / name / "train_log.csv")
        ax.plot(
            log["step"],
            log["smooth_loss"],
            lw=1.1,
            ls=("-", "--", ":", "-.")[i // 10 % 4],
            label=label(points[name]),
        )
    if done:
        ax.legend(
            frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + len(done) // 16
        )
    else:
        ax.text(0.5, 0.5, "no point has finished yet", transform=ax.transAxes, ha="center", color="#555555")
    ax.set_xlabel("update step")
    ax.set_ylabel("smooth loss (per sequence)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def _cell(value, fmt: str = "") -> str:
    return "" if value is None else html.escape(format(value, fmt) if fmt else str(value))


def _table(rows: list[dict], names: list[str]) -> str:
    """The results as a ``table.results``: grid values, losses, speed, status and error."""
    head = [
        *names,
        "final smooth loss",
        "best smooth loss",
        "best validation loss per char",
        "bits/char",
        "perplexity",
        "updates/s",
        "seconds",
        "status",
    ]
    fmts = (".3f", ".3f", ".3f", ",.0f", ".1f")
    body = [
        [_cell(r[n]) for n in names]
        + [_cell(r[k], f) for k, f in zip(RESULTS, fmts)]
        + [_cell(r["status"]) + ("<br/>" + _cell(r["error"][:300]) if r["error"] else "")]
        for r in rows
    ]
    for row, r in zip(body, rows):  # the held-out loss in bits and as perplexity beside it
        val = r[VAL_KEY]
        row[len(names) + 3 : len(names) + 3] = [
            _cell(None if val is None else bits(val), ".3f"),
            _cell(None if val is None else perplexity(val), ".2f"),
        ]
    return table(head, body)


def _summary(sweep: dict, rows: list[dict]) -> str:
    """A paragraph: how many runs finished, what they share, which reached the lowest loss."""
    common = ", ".join(f"{k} {v}" for k, v in sweep["base"].items()) or "the notebook defaults"
    done = [r for r in rows if r["status"] == "done"]
    text = (
        f"<p>notebooks/02_train.ipynb ran once per point of the grid: {len(rows)} runs, {len(done)} finished. "
        f"Common to all runs: {html.escape(common)}."
    )
    key, what = (
        (VAL_KEY, "best validation loss per character")
        if any(r[VAL_KEY] is not None for r in done)
        else ("best_smooth_loss", "smooth loss of the best model")
    )
    ranked = [r for r in done if r[key] is not None]
    if ranked:
        best = min(ranked, key=lambda r: r[key])
        values = label({n: best[n] for n in sweep["grid"]})
        text += f" The lowest {what}, {best[key]:.3f}, came with {html.escape(values)}."
    if "seq_length" in sweep["grid"]:
        text += (
            " The smooth loss is summed over a sequence, so runs with different seq_length are not directly "
            "comparable."
        )
    return text + "</p>"


def section(out_dir):
    """The report's sweep section (body only): the results table and the loss curves of ``out_dir``."""
    out = resolve(out_dir)
    sweep, rows = read_json(out / "sweep.json"), collect(out)
    return HTML(
        _summary(sweep, rows)
        + _table(rows, list(sweep["grid"]))
        + caption(f"Results of the sweep (sweep.csv in {html.escape(str(out))}).")
        + img_tag(loss_figure(out), "Smooth loss of every run of the sweep")
        + caption("Smooth loss of every finished run, labelled with its grid values.")
    )
