"""Text synthesis: sampling one character at a time from the RNN.

With ``temperature=1`` and ``top_p=1`` this is the assignment's sampler: x_{t+1} is drawn
from p_t, and h_0, x_0 are given. Draws use inverse-CDF sampling on preallocated vectors
(one uniform number per character, all drawn up front from ``rng``).
"""
from __future__ import annotations

import numpy as np

from . import cells
from .params import ParamSet


def check_options(n: int, temperature: float, top_p: float) -> None:
    if int(n) != n or n < 0:
        raise ValueError(f"length must be a whole number >= 0, got {n!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (1 is the model's own distribution), got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every character), got {top_p!r}")


def _nucleus_(p: np.ndarray, top_p: float) -> None:
    """Keep the smallest set of most likely entries whose mass reaches ``top_p``; renormalise."""
    order = np.argsort(-p, kind="stable")
    mass = np.cumsum(p[order])
    keep = int(np.searchsorted(mass, top_p * mass[-1])) + 1  # always keeps the argmax
    p[order[keep:]] = 0.0
    p /= p.sum()


def sample_indices(p: ParamSet, h0, x0: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, top_p: float = 1.0, cell: str = "rnn") -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` character indices.

    Parameters
    ----------
    p : ParamSet
        The model.
    h0 : array (L S m,)
        Recurrent state to start from: h (m,) for a one-layer RNN or GRU, [h, s] (2m,) for the
        LSTM, layer after layer for L layers.
    x0 : int
        Index of the first input character.
    n : int
        How many characters to produce.
    rng : np.random.Generator
        Source of randomness (``n`` uniforms are drawn).
    temperature : float
        Divides o_t before the softmax; < 1 sharpens, > 1 flattens.
    top_p : float
        Nucleus cut-off in (0, 1].
    cell : a cell name (helpers.model.cells)

    Returns
    -------
    indices : int array (n,)
    h : array
        The recurrent state after the last step.
    """
    check_options(n, temperature, top_p)
    h = np.array(h0, dtype=p.flat.dtype)
    x = int(x0)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    o = np.empty(p.K, dtype=p.flat.dtype)
    cdf = np.empty(p.K, dtype=p.flat.dtype)
    c = cells.get(cell)
    step, top = c.model_step, c.top
    for t in range(n):
        h = step(p, h, x)  # h_t from h_{t-1} and x_t (for the LSTM: [h_t, s_t]; every layer)
        np.dot(p.V, top(p, h), out=o)
        o += p.c  # o_t = V h_t + c
        if temperature != 1.0:
            o /= temperature
        o -= o.max()
        np.exp(o, out=o)  # unnormalised p_t
        if top_p < 1.0:
            o /= o.sum()
            _nucleus_(o, top_p)
        np.cumsum(o, out=cdf)
        x = min(int(np.searchsorted(cdf, u[t] * cdf[-1], side="right")), p.K - 1)
        out[t] = x
    return out, h


def warm_up(p: ParamSet, h0, indices, cell: str = "rnn") -> np.ndarray:
    """Run the recurrence over ``indices`` (a priming text) and return the final state."""
    h, step = np.array(h0, dtype=p.flat.dtype), cells.get(cell).model_step
    for x in indices:
        h = step(p, h, int(x))
    return h


def sample_document(params: ParamSet, end: int, max_length: int, rng: np.random.Generator,
                    temperature: float = 1.0, top_p: float = 1.0, chunk: int = 32) -> tuple[np.ndarray, bool]:
    """Indices of one document, from h_0 = 0 and x_0 = ``end``, and whether it reached ``end``.

    Draws like :func:`sample_indices` with ``n = max_length``, ``chunk`` characters at a time,
    and cuts at the first ``end`` (which is not returned). The vanilla RNN only.
    """
    h, x, parts, n = np.zeros(params.m, params.flat.dtype), int(end), [], 0
    while n < max_length:
        idx, h = sample_indices(params, h, x, min(chunk, max_length - n), rng, temperature, top_p)
        hits = np.flatnonzero(idx == end)
        parts.append(idx[:hits[0]] if hits.size else idx)
        if hits.size:
            return np.concatenate(parts), True
        n, x = n + len(idx), int(idx[-1])
    return np.concatenate(parts) if parts else np.empty(0, np.int64), False


def sample_documents(params: ParamSet, chars: list[str], end: int, n: int, max_length: int,
                     rng: np.random.Generator, temperature: float = 1.0,
                     top_p: float = 1.0) -> tuple[list[str], list[bool]]:
    """``n`` documents (texts) and, for each, whether it ended with the end character."""
    docs = [sample_document(params, end, max_length, rng, temperature, top_p) for _ in range(n)]
    return ["".join(chars[i] for i in idx) for idx, _ in docs], [ended for _, ended in docs]
