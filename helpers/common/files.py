"""Result files: atomic writes, JSON, and the training log ``train_log.csv``.

The one place that knows these formats: the run steps write them, the report reads them.
Every file is written to a temporary file beside its target, flushed to disk and renamed over
it, so a crash mid-write never leaves a broken file in place of a good one.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .paths import resolve


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain write would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    """Write JSON atomically (UTF-8, indented, characters kept as they are)."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    """Read a JSON result file, naming the file when it is missing or broken."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file {str(path)!r} does not exist; run the notebook that writes it first.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"result file {str(path)!r} is not valid JSON ({err}); re-run the notebook that writes it.") from None


def log_csv(rows) -> str:
    """train_log.csv's text: a header and one ``step,loss,smooth_loss`` row per logged update."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("step", "loss", "smooth_loss"))
    writer.writerows((step, f"{loss:.6f}", f"{smooth:.6f}") for step, loss, smooth in rows)
    return buf.getvalue()


def read_log(path) -> dict[str, np.ndarray]:
    """train_log.csv as arrays ``step``, ``loss``, ``smooth_loss``."""
    table = np.loadtxt(resolve(path), delimiter=",", skiprows=1, ndmin=2)
    return {"step": table[:, 0].astype(int), "loss": table[:, 1], "smooth_loss": table[:, 2]}
