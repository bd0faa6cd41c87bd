"""Validation: the model's loss per character on a held-out text (forward only, no updates)."""
from __future__ import annotations

import math

import numpy as np

from . import cells, rnn
from .params import ParamSet

CHUNK = 200
"""Characters per forward pass; the recurrent state is carried from chunk to chunk."""


def loss_per_char(cell: str, p: ParamSet, data: np.ndarray, chunk: int = CHUNK) -> float:
    """Mean -log p(next character) over ``data`` (nats), reading it as one stream from a zero state.

    Parameters
    ----------
    cell : "rnn" or "lstm"
    p : ParamSet
    data : int array (N,), N >= 2
        The encoded validation text; N - 1 characters are predicted.
    """
    n = len(data) - 1
    if n < 1:
        raise ValueError("the validation text needs at least 2 characters")
    state = np.zeros(p.m * cells.STATE_SIZES[cell], p.flat.dtype)
    ws = rnn.Workspace(p.m, p.K, chunk, p.flat.dtype) if cell == "rnn" else None
    total = 0.0
    for start in range(0, n, chunk):
        x, y = data[start:min(start + chunk, n)], data[start + 1:min(start + chunk, n) + 1]
        if cell == "rnn":
            loss, ws = rnn.forward(p, x, y, state, ws)
            state = ws.H[len(x)].copy()
        else:
            loss, cache = cells.forward(cell, p, x[None, :], y[None, :], state[None, :])
            state = cache["state"][0]
        total += loss
    return total / n


def bits(nats: float) -> float:
    """Nats per character to bits per character."""
    return nats / math.log(2)
