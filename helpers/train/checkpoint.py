"""Checkpoints: ``.npz`` files read with ``allow_pickle=False``.

A checkpoint holds the weights ``U W V b c``, the optimizer state ``mU mW mV mb mc`` (and, for
Adam, its second moment ``vU vW vV vb vc``), ``hprev``, ``step``, ``smooth_loss``, the
vocabulary ``chars`` (in index order, with ``char_codes`` as exact code points) and a JSON string
``meta`` (the run's configuration, corpus, text position, epoch and random state). A ``last.npz``
also carries the best model so far, ``bestU bestW bestV bestb bestc``, so that it alone resumes a
run: a crash between writing ``last.npz`` and ``best.npz`` cannot split the pair.

:func:`to_arrays` and :func:`from_arrays` are the two directions of one format, side by side;
every file is written atomically (:func:`helpers.common.files.atomic_path`).
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..common.files import AtomicGroup, atomic_path
from ..common.paths import resolve
from ..model import cells
from ..model.params import NAMES, ParamSet, count_layers, layer_names

FORMAT = 1
"""The checkpoint format this version writes and reads, recorded as ``meta["format"]`` (a file
without it is taken for format 1, the only one written so far); any other is refused by name."""
GROUPS = {"params": "", "mem": "m", "mem2": "v", "best": "best"}
"""Checkpoint attribute holding a ParamSet -> the prefix of its arrays' names."""


@dataclass
class Checkpoint:
    """Everything a checkpoint holds. ``mem`` (optimizer state) is None for weights-only use."""

    params: ParamSet
    chars: list[str]
    step: int = 0
    smooth_loss: float = float("nan")
    hprev: np.ndarray | None = None
    mem: ParamSet | None = None
    meta: dict = field(default_factory=dict)
    mem2: ParamSet | None = None  # a second optimizer state array (Adam's second moment)
    best: ParamSet | None = None  # the best model so far (in last.npz)


def to_arrays(ck: Checkpoint) -> dict[str, np.ndarray]:
    """The arrays of ``ck`` by name, as they are stored (no object arrays)."""
    arrays = {}
    for attr, prefix in GROUPS.items():
        if getattr(ck, attr) is not None:
            arrays.update({prefix + name: getattr(ck, attr)[name] for name in getattr(ck, attr).names})
    hprev = np.zeros(ck.params.m) if ck.hprev is None else ck.hprev
    arrays.update(
        hprev=np.asarray(hprev, dtype=ck.params.flat.dtype),
        step=np.int64(ck.step),
        smooth_loss=np.float64(ck.smooth_loss),
        chars=np.array(ck.chars, dtype=str),  # for people; numpy strings drop a trailing NUL,
        char_codes=np.array([ord(ch) for ch in ck.chars], dtype=np.int32),  # so these are exact
        meta=np.array(json.dumps({**ck.meta, "format": FORMAT}, ensure_ascii=False)),
    )
    return arrays


def from_arrays(data: dict, where: str = "checkpoint") -> Checkpoint:
    """The Checkpoint stored in ``data`` (as :func:`to_arrays` gives); errors name ``where``."""
    missing = [k for k in (*NAMES, "chars") if k not in data]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; it was not written by this project.")
    meta = json.loads(str(data["meta"])) if "meta" in data else {}
    if meta.pop("format", FORMAT) != FORMAT:
        raise ValueError(
            f"{where} is in checkpoint format {json.loads(str(data['meta']))['format']!r}, but this "
            f"version reads format {FORMAT} "
            "only; use the version of the project that wrote it, or train again."
        )
    dtype = data["U"].dtype if data["U"].dtype in (np.float32, np.float64) else np.float64
    groups = {}
    try:
        for attr, prefix in GROUPS.items():
            present = prefix + "U" in data
            names = layer_names(count_layers({k[len(prefix) :] for k in data if k.startswith(prefix)}))
            groups[attr] = (
                ParamSet.from_arrays({n: data[prefix + n] for n in names}, dtype) if present else None
            )
    except (KeyError, ValueError) as err:
        raise ValueError(f"{where} is inconsistent: {err}") from None
    if "char_codes" in data:
        chars = [chr(code) for code in data["char_codes"].tolist()]
    else:
        chars = [str(ch) for ch in data["chars"].tolist()]
    if groups["params"].gates not in {cell.gates for cell in cells.REGISTRY.values()}:
        raise ValueError(
            f"{where} is inconsistent: W has {groups['params'].gates} blocks of m rows, which no cell "
            f"has ({', '.join(f'{n}: {c.gates}' for n, c in cells.REGISTRY.items())})."
        )
    if len(chars) != groups["params"].K:
        raise ValueError(f"{where} has {len(chars)} characters but K={groups['params'].K} columns in U.")
    return Checkpoint(
        chars=chars,
        meta=meta,
        step=int(data.get("step", 0)),
        smooth_loss=float(data.get("smooth_loss", np.nan)),
        hprev=data.get("hprev"),
        **groups,
    )


def save(path, ck: Checkpoint, group: AtomicGroup | None = None) -> Path:
    """Write checkpoint ``ck`` to ``path`` (an ``.npz``) atomically; returns the resolved path.

    With ``group`` (an :func:`~helpers.common.files.atomic_group`) the file is staged there and
    renamed into place with the group's other files.
    """
    path = resolve(path)
    with contextlib.nullcontext(group.add(path)) if group is not None else atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **to_arrays(ck))
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
        raise ValueError(
            f"checkpoint {str(path)!r} is unreadable or truncated ({err}); use another "
            "checkpoint, e.g. last.npz or best.npz from a finished run."
        ) from None
    return from_arrays(data, f"checkpoint {str(path)!r}")
