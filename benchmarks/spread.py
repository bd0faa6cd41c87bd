"""How far apart do training runs end up that differ only in the seed (or in rounding)?

    python -m benchmarks.spread [--seeds 0 1 2 3 4] [--updates 300000] [--engine numpy]
                                [--dtype float64] [--json PATH]

Trains the default configuration (m = 100, eta = 0.1, seq_length = 25, AdaGrad) on the book once
per seed with :func:`helpers.runs.steps.train`, each into its own temporary folder, and prints per
seed and as min / median / max over the seeds:

  10k, 100k   smooth loss after 10,000 and 100,000 updates (samples.json)
  mean 9-10k  mean of the logged smooth loss over updates 9,000 to 10,000 (train_log.csv), a
              candidate statistic that averages over the last stretch of the 10k figure
  best        lowest smooth loss and the update it was reached at (run.json)
  wall s      wall-clock seconds of the run

Training is chaotic: a change in the last bit of one matrix product (another BLAS kernel, CPU,
engine or dtype) sends the run down a different path, so the spread over seeds is also a fair
guess of the spread over machines. The machine (CPU, numpy, BLAS library and the kernel it chose,
``OPENBLAS_CORETYPE``) is printed with the table; ``--engine`` and ``--dtype`` try another
arithmetic path. Needs the book at data/goblet_book.txt or ../shared/data/goblet_book.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from helpers.common.files import read_log
from helpers.common.paths import ROOT
from helpers.runs import steps

BOOKS = (ROOT / "data" / "goblet_book.txt", ROOT.parent / "shared" / "data" / "goblet_book.txt")
COLUMNS = (
    ("10k", "loss_10k"),
    ("100k", "loss_100k"),
    ("mean 9-10k", "mean_9k_10k"),
    ("best", "best_smooth_loss"),
    ("best step", "best_step"),
    ("wall s", "seconds"),
)


def machine() -> dict:
    """CPU model, numpy version, the BLAS libraries loaded (with the kernel each chose) and OPENBLAS_* settings."""
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.lower().startswith("model name")
            ),
            "?",
        )
        if Path("/proc/cpuinfo").is_file()
        else "?"
    )
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    return {"cpu": cpu, "numpy": np.__version__, "blas": blas, "openblas_env": env}


def one_run(book: Path, seed: int, updates: int, **params) -> dict:
    """Train one seed quietly into a temporary folder; return its figures (None where not reached)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        start = time.perf_counter()
        run = steps.train(
            str(book),
            tmp,
            seed=seed,
            n_updates=updates,
            sample_every=10_000,
            sample_until=100_000,
            checkpoint_every=min(updates, 100_000),
            **params,
        )
        seconds = time.perf_counter() - start
        at = {s["step"]: s["smooth_loss"] for s in json.loads((Path(tmp) / "samples.json").read_text())}
        log = read_log(Path(tmp) / "train_log.csv")
    window = (log["step"] >= 9_000) & (log["step"] <= 10_000)
    return {
        "seed": seed,
        "loss_10k": at.get(10_000),
        "loss_100k": at.get(100_000),
        "mean_9k_10k": float(log["smooth_loss"][window].mean()) if window.any() else None,
        "best_smooth_loss": run["best_smooth_loss"],
        "best_step": run["best_step"],
        "seconds": seconds,
        "engine": run["engine"],
    }


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    """Per-seed rows, then min / median / max over seeds of every column."""
    lines = [f"{'seed':>6}" + "".join(f"{name:>12}" for name, _ in COLUMNS)]
    lines += [f"{r['seed']:>6}" + "".join(f"{fmt(r[key]):>12}" for _, key in COLUMNS) for r in rows]
    for label, f in (("min", min), ("median", statistics.median), ("max", max)):
        cells = []
        for _, key in COLUMNS:
            values = [r[key] for r in rows if r[key] is not None]
            cells.append(fmt(f(values) if values and key != "best_step" else None))
        lines.append(f"{label:>6}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.spread", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--updates", type=int, default=300_000)
    ap.add_argument("--engine", default="numpy", choices=("numpy", "numba"))
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument(
        "--json", metavar="PATH", help="write the machine and every run's figures to this JSON file"
    )
    args = ap.parse_args(argv)
    book = next((p for p in BOOKS if p.is_file()), None)
    if book is None:
        ap.error("the book is not at data/goblet_book.txt or ../shared/data/goblet_book.txt")
    print(f"{args.updates:,} updates per seed, engine {args.engine}, {args.dtype}, on {book}", flush=True)
    rows = []
    for seed in args.seeds:
        rows.append(one_run(book, seed, args.updates, engine=args.engine, dtype=args.dtype))
        print(f"seed {seed} done in {rows[-1]['seconds']:.0f} s", flush=True)
    info = machine()  # after training: numba's BLAS (scipy's) is loaded by then
    print(table(rows))
    print(
        f"CPU {info['cpu']}; numpy {info['numpy']}; BLAS {', '.join(info['blas']) or '?'}; "
        f"{' '.join(f'{k}={v}' for k, v in info['openblas_env'].items()) or 'no OPENBLAS_* set'}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "updates": args.updates,
                    "engine": args.engine,
                    "dtype": args.dtype,
                    "runs": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
