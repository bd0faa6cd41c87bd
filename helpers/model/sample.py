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


def sample_indices(
    p: ParamSet,
    h0,
    x0: int,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_p: float = 1.0,
    cell: str = "rnn",
) -> tuple[np.ndarray, np.ndarray]:
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


def sample_document(
    params: ParamSet,
    end: int,
    max_length: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_p: float = 1.0,
    chunk: int = 32,
) -> tuple[np.ndarray, bool]:
    """Indices of one document, from h_0 = 0 and x_0 = ``end``, and whether it reached ``end``.

    Draws like :func:`sample_indices` with ``n = max_length``, ``chunk`` characters at a time,
    and cuts at the first ``end`` (which is not returned). The vanilla RNN only.
    """
    h, x, parts, n = np.zeros(params.m, params.flat.dtype), int(end), [], 0
    while n < max_length:
        idx, h = sample_indices(params, h, x, min(chunk, max_length - n), rng, temperature, top_p)
        hits = np.flatnonzero(idx == end)
        parts.append(idx[: hits[0]] if hits.size else idx)
        if hits.size:
            return np.concatenate(parts), True
        n, x = n + len(idx), int(idx[-1])
    return np.concatenate(parts) if parts else np.empty(0, np.int64), False


def sample_documents(
    params: ParamSet,
    chars: list[str],
    end: int,
    n: int,
    max_length: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> tuple[list[str], list[bool]]:
    """``n`` documents (texts) and, for each, whether it ended with the end character."""
    docs = [sample_document(params, end, max_length, rng, temperature, top_p) for _ in range(n)]
    return ["".join(chars[i] for i in idx) for idx, _ in docs], [ended for _, ended in docs]


def log_softmax(o: np.ndarray) -> np.ndarray:
    """log softmax(o) along the last axis, shifted for stability."""
    o = o - o.max(axis=-1, keepdims=True)
    return o - np.log(np.exp(o).sum(axis=-1, keepdims=True))


def log_prob(p: ParamSet, h0, x0: int, indices, cell: str = "rnn") -> float:
    """log P(indices | h0, x0) under the model: sum_t log p_t[x_{t+1}] (nats), from one step per character."""
    c, h, x, total = cells.get(cell), np.array(h0, dtype=p.flat.dtype), int(x0), 0.0
    for nxt in indices:
        h = c.model_step(p, h, x)
        total += float(log_softmax(p.V @ c.top(p, h) + p.c)[int(nxt)])
        x = int(nxt)
    return total


def beam_search(
    p: ParamSet, h0, x0: int, n: int, beam_width: int, cell: str = "rnn"
) -> tuple[np.ndarray, float]:
    """The continuation of ``n`` characters with the highest log-probability that a beam finds.

    Keeps the ``beam_width`` most probable prefixes at every step: each is extended by every one
    of the K characters, scored by log P(prefix) + log p_t[k], and the best ``beam_width`` of the
    beam_width x K candidates go on (ties to the earlier beam and the lower index). Width 1 is
    greedy decoding; a width of K^(n-1) keeps every prefix, so the result is the most probable
    sequence of all K^n.

    Parameters
    ----------
    p : ParamSet
    h0 : array (L S m,)
        Recurrent state to start from (as :func:`sample_indices`).
    x0 : int
        Index of the first input character.
    n : int
        Length of the continuation.
    beam_width : int
        Prefixes kept per step, >= 1.
    cell : a cell name

    Returns
    -------
    indices : int array (n,)
        The best continuation found.
    log_prob : float
        Its log-probability under the model (nats), sum_t log p_t[x_{t+1}].
    """
    check_options(n, 1.0, 1.0)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
        raise ValueError(f"beam_width must be a whole number >= 1 (1 is greedy decoding), got {beam_width!r}")
    c = cells.get(cell)
    states = np.array(h0, dtype=p.flat.dtype)[None, :]  # state before each beam's last input
    last, scores = np.array([int(x0)]), np.zeros(1)
    seqs = np.empty((1, 0), dtype=np.int64)
    for _ in range(int(n)):
        states = np.stack([c.model_step(p, s, int(x)) for s, x in zip(states, last)])
        logp = log_softmax(c.top(p, states) @ p.V.T + p.c)  # (beams, K)
        cand = (scores[:, None] + logp).ravel()  # log P(prefix) + log p_t[k]
        keep = np.argsort(-cand, kind="stable")[: int(beam_width)]
        beam, last = np.divmod(keep, p.K)
        states, scores = states[beam], cand[keep]
        seqs = np.concatenate([seqs[beam], last[:, None]], axis=1)
    return seqs[0], float(scores[0])
