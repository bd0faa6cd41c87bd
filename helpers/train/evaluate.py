"""Validation: the model's loss per character on a held-out text (forward only, no updates)."""

from __future__ import annotations

import numpy as np

from ..model import cells
from ..model.params import ParamSet

CHUNK = 200
"""Characters per forward pass; the recurrent state is carried from chunk to chunk."""
STREAMS = 32
"""Parallel streams a long text is read in (one matrix product per step serves them all)."""
WARMUP = 100
"""Characters each stream but the first reads before its part, unscored, so that its state is the
one a single pass would have (a char-RNN's state forgets in a few dozen characters)."""


def loss_per_char(
    cell: str, p: ParamSet, data: np.ndarray, streams: int = STREAMS, warmup: int = WARMUP
) -> float:
    """Mean -log p(next character) over ``data`` (nats): N - 1 characters predicted, for N = len(data) >= 2.

    The text is read in ``streams`` parallel parts from a zero state, each part but the first after
    ``warmup`` unscored characters of the text before it: the figure of one pass from a zero state
    to within rounding of the model's memory, in a fraction of the time (``streams=1`` is that one pass).
    """
    n = len(data) - 1
    if n < 1:
        raise ValueError("the validation text needs at least 2 characters")
    B = max(1, min(int(streams), n // max(4 * warmup, 1)))
    part = -(-n // B)  # ceil(n / B): predictions scored per stream
    lead = warmup if B > 1 else 0
    X = np.zeros((B, lead + part), np.int64)  # each row from its first character on; padding at the end
    Y, scored = np.zeros_like(X), np.zeros(X.shape, bool)
    for b in range(B):
        first, last = b * part, min((b + 1) * part, n)  # the predictions stream b scores
        begin = max(0, first - lead)
        X[b, : last - begin], Y[b, : last - begin] = data[begin:last], data[begin + 1 : last + 1]
        scored[b, first - begin : last - begin] = True
    return _scored_loss(cell, p, X, Y, scored) / n


def _scored_loss(cell: str, p: ParamSet, X, Y, scored) -> float:
    """Summed -log p_t[y_t] over the ``scored`` positions of B streams (B, T), in chunks of CHUNK steps
    (one stream: every position, on the cell's one-stream path)."""
    c, (B, T) = cells.get(cell), X.shape
    state, ws = (
        cells.initial_state(cell, p, B),
        c.workspace(p.m, p.K, CHUNK, p.flat.dtype) if B == 1 else None,
    )
    total = 0.0
    for start in range(0, T, CHUNK):
        x, y, keep = (
            X[:, start : start + CHUNK],
            Y[:, start : start + CHUNK],
            scored[:, start : start + CHUNK],
        )
        loss, cache = c.forward(p, x, y, state, ws)
        state = cache["state"]
        if B == 1:
            total += loss
        else:
            picked = cache["P"][
                np.arange(x.shape[1])[:, None], np.arange(B)[None, :], y.T
            ]  # p_t[y_t], (T, B)
            total -= float(np.log(picked[keep.T]).sum())
    return total
