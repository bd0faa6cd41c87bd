"""Comparing models on one text and one budget of characters: each run is a papermill run of
``notebooks/02_train.ipynb``, so the comparison is reproducible with one command.

    make compare                                   # notebooks/06_compare.ipynb with papermill
    make compare ARGS="-p chars_budget 2000000"

Every run trains on the same text with the same validation split and sees the same number of
characters (updates x batch_size x seq_length); the comparison is of the validation loss per
character against characters seen and against wall-clock time. The figure, table and samples
are drawn by :mod:`helpers.report.compare_section` from ``compare.json``.
"""

from __future__ import annotations

import json
import math
import time

from ..common.files import read_json, write_json
from ..common.paths import resolve
from ..common.units import bits
from ..runs.steps import synthesize
from .notebooks import NotebookError, run_notebook

DEFAULT_RUNS = [
    {"name": "rnn-m100", "cell": "rnn", "m": 100},
    {"name": "rnn-m256", "cell": "rnn", "m": 256},
    {"name": "lstm-m100", "cell": "lstm", "m": 100},
    {"name": "rnn-m100-b16", "cell": "rnn", "m": 100, "batch_size": 16},
    {"name": "lstm-m100-b16", "cell": "lstm", "m": 100, "batch_size": 16},
]
"""The seed's vanilla RNN, a larger one, the LSTM, and both with 16 streams."""


def run_parameters(
    run: dict,
    data_path: str,
    out_dir,
    chars_budget: int,
    seq_length: int,
    val_fraction: float,
    evals: int,
    seed: int,
) -> dict:
    """The 02_train parameters of one run: its own settings plus the shared text, budget and split."""
    if not isinstance(run, dict) or not run.get("name"):
        raise ValueError(
            f"each run needs a 'name' and its 02_train parameters, e.g. "
            f'{{"name": "lstm", "cell": "lstm"}}; got {run!r}'
        )
    settings = {k: v for k, v in run.items() if k != "name"}
    shared = sorted(
        set(settings) & {"data_path", "out_dir", "seed", "val_fraction", "n_updates", "seq_length"}
    )
    if shared:
        raise ValueError(
            f"run {run['name']!r} sets {', '.join(shared)}, which every run shares (same text, split, "
            "seed and character budget); set them for the whole comparison instead."
        )
    per_update = int(settings.get("batch_size", 1)) * seq_length
    n_updates = max(1, math.ceil(chars_budget / per_update))
    return {
        "data_path": data_path,
        "out_dir": str(resolve(out_dir) / run["name"]),
        "seed": seed,
        "seq_length": seq_length,
        "val_fraction": val_fraction,
        "n_updates": n_updates,
        "eval_every": max(1, n_updates // evals),
        "sample_every": n_updates,
        "sample_until": 0,
        "checkpoint_every": n_updates,
        "log_every": max(1, n_updates // 500),
        **settings,
    }


def run_all(
    data_path: str = "auto",
    out_dir: str = "output/compare",
    runs=None,
    chars_budget: int = 1_000_000,
    seq_length: int = 25,
    val_fraction: float = 0.05,
    evals: int = 10,
    seed: int = 0,
    log=print,
) -> list[dict]:
    """Train every run with papermill into ``out_dir/<name>`` and write ``compare.json``.

    A run that fails is recorded with its error; the others go on. Returns the summary rows.
    """
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
            run_notebook("02_train", out / run["name"] / "02_train.ipynb", params)
            rows.append(summary_row(run, out / run["name"]))
        except NotebookError as err:
            rows.append({"name": run["name"], "settings": run, "status": "failed", "error": err.error})
        log(f"[{run['name']}] {rows[-1]['status']} in {time.perf_counter() - start:.0f} s")
        write_json(
            out / "compare.json",
            {
                "chars_budget": chars_budget,
                "seq_length": seq_length,
                "val_fraction": val_fraction,
                "data_path": data_path,
                "runs": rows,
            },
        )
    return rows


def summary_row(run: dict, folder, sample_length: int = 300, seed: int = 0) -> dict:
    """One run's final figures, from its run.json and metrics.json, and a sample of its best model."""
    r, m = read_json(folder / "run.json"), read_json(folder / "metrics.json")
    return {
        "name": run["name"],
        "settings": run,
        "status": "done",
        "chars_seen": m["chars_seen"],
        "seconds": m["seconds"],
        "best_val_loss_per_char": m["best_val_loss_per_char"],
        "best_val_bits_per_char": bits(m["best_val_loss_per_char"]),
        "final_val_loss_per_char": m["val_loss_per_char"],
        "updates_per_second": r["updates_per_second"],
        "chars_per_second": m["chars_seen"] / m["seconds"],
        "history": m["history"],
        "sample": synthesize(str(folder / "best.npz"), sample_length, seed)["text"],
    }
