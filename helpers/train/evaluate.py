"""Validation: the model's loss per character on a held-out text (forward only, no updates)."""

from __future__ import annotations

import numpy as np

from ..common.units import bits  # noqa: F401  (re-exported: evaluate.bits)
from ..model import cells
from ..model.params import ParamSet

CHUNK = 200
"""Characters per forward pass; the recurrent state is carried from chunk to chunk."""


def loss_per_char(cell: str, p: ParamSet, data: np.ndarray, chunk: int = CHUNK) -> float:
    """Mean -log p(next character) over ``data`` (nats), reading it as one stream from a zero state.

    Parameters
    ----------
    cell : a cell name (helpers.model.cells)
    p : ParamSet
    data : int array (N,), N >= 2
        The encoded validation text; N - 1 characters are predicted.
    """
    n = len(data) - 1
    if n < 1:
        raise ValueError("the validation text needs at least 2 characters")
    c = cells.get(cell)
    state, ws = cells.initial_state(cell, p), c.workspace(p.m, p.K, chunk, p.flat.dtype)
    total = 0.0
    for start in range(0, n, chunk):
        x, y = data[start : min(start + chunk, n)], data[start + 1 : min(start + chunk, n) + 1]
        loss, cache = c.forward(p, x[None, :], y[None, :], state, ws)
        state = cache["state"]
        total += loss
    return total / n
