"""Checkpoints (``.npz``, read with ``allow_pickle=False``) and atomic result files.

A checkpoint holds the weights ``U W V b c``, the AdaGrad state ``mU mW mV mb mc`` (and, for
Adam, its second moment ``vU vW vV vb vc``), ``hprev``,
``step``, ``smooth_loss``, the vocabulary ``chars`` (in index order, with ``char_codes`` as exact code points) and a JSON string ``meta``
(the run's configuration, corpus, text position, epoch and random state).

Every file is written to a temporary file beside its target and then renamed over it, so a
crash mid-write never leaves a broken file in place of a good one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .params import NAMES, ParamSet
from .paths import resolve


@dataclass
class Checkpoint:
    """Everything a checkpoint holds. ``mem`` (AdaGrad state) may be None for weights-only use."""

    params: ParamSet
    chars: list[str]
    step: int = 0
    smooth_loss: float = float("nan")
    hprev: np.ndarray | None = None
    mem: ParamSet | None = None
    meta: dict = field(default_factory=dict)
    mem2: ParamSet | None = None  # a second optimizer state array (Adam's second moment)


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


def save(path, ck: Checkpoint) -> Path:
    """Write checkpoint ``ck`` to ``path`` (an ``.npz``) atomically; returns the resolved path."""
    path = resolve(path)
    arrays = {name: ck.params[name] for name in NAMES}
    if ck.mem is not None:
        arrays.update({"m" + name: ck.mem[name] for name in NAMES})
    if ck.mem2 is not None:
        arrays.update({"v" + name: ck.mem2[name] for name in NAMES})
    hprev = np.zeros(ck.params.m) if ck.hprev is None else ck.hprev
    arrays.update(
        hprev=np.asarray(hprev, dtype=ck.params.flat.dtype),
        step=np.int64(ck.step),
        smooth_loss=np.float64(ck.smooth_loss),
        chars=np.array(ck.chars, dtype=str),  # for people; numpy strings drop a trailing NUL,
        char_codes=np.array([ord(ch) for ch in ck.chars], dtype=np.int32),  # so these are exact
        meta=np.array(json.dumps(ck.meta, ensure_ascii=False)),
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save` (never unpickles anything)."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; train first (notebooks/02_train.ipynb writes "
            "best.npz and last.npz into its out_dir) or pass the path of an existing .npz."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is unreadable or truncated ({err}); use another "
                         "checkpoint, e.g. last.npz or best.npz from a finished run.") from None
    missing = [k for k in (*NAMES, "chars") if k not in data]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}; it was not written by this project.")
    dtype = data["U"].dtype if data["U"].dtype in (np.float32, np.float64) else np.float64
    try:
        params = ParamSet.from_arrays(data, dtype=dtype)
        mem = ParamSet.from_arrays({n: data["m" + n] for n in NAMES}, dtype=dtype) if "mU" in data else None
        mem2 = ParamSet.from_arrays({n: data["v" + n] for n in NAMES}, dtype=dtype) if "vU" in data else None
    except (KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is inconsistent: {err}") from None
    if "char_codes" in data:
        chars = [chr(code) for code in data["char_codes"].tolist()]
    else:
        chars = [str(ch) for ch in data["chars"].tolist()]
    if len(chars) != params.K:
        raise ValueError(f"checkpoint {str(path)!r} has {len(chars)} characters but K={params.K} columns in U.")
    meta = json.loads(str(data["meta"])) if "meta" in data else {}
    return Checkpoint(
        params=params, chars=chars, mem=mem, mem2=mem2, meta=meta,
        step=int(data.get("step", 0)), smooth_loss=float(data.get("smooth_loss", np.nan)),
        hprev=data.get("hprev"),
    )

