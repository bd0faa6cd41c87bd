"""Text synthesis: sampling one character at a time from the RNN.

With ``temperature=1`` and ``top_p=1`` this is the assignment's sampler: x_{t+1} is drawn
from p_t, and h_0, x_0 are given. Draws use inverse-CDF sampling on preallocated vectors
(one uniform number per character, all drawn up front from ``rng``).
"""
from __future__ import annotations

import numpy as np

from . import cells
from .params import ParamSet


def _check_options(n: int, temperature: float, top_p: float) -> None:
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
    h0 : array (m,), or (2m,) = [h, s] for the LSTM
        Recurrent state to start from.
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
    cell : "rnn" or "lstm"

    Returns
    -------
    indices : int array (n,)
    h : array
        The recurrent state after the last step.
    """
    _check_options(n, temperature, top_p)
    h = np.array(h0, dtype=p.flat.dtype)
    x = int(x0)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    o = np.empty(p.K, dtype=p.flat.dtype)
    cdf = np.empty(p.K, dtype=p.flat.dtype)
    for t in range(n):
        if cell == "rnn":
            h = np.tanh(p.W @ h + p.U[:, x] + p.b)  # h_t = tanh(W h_{t-1} + U x_t + b)
        else:
            h = cells.step_state(cell, p, h, x)  # [h_t, s_t]
        np.dot(p.V, h[:p.m], out=o)
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
    h = np.array(h0, dtype=p.flat.dtype)
    for x in indices:
        h = np.tanh(p.W @ h + p.U[:, int(x)] + p.b) if cell == "rnn" else cells.step_state(cell, p, h, int(x))
    return h


def cell_of(p: ParamSet) -> str:
    """The cell a parameter set belongs to, from its number of gate blocks."""
    return {gates: name for name, gates in cells.CELLS.items()}[p.gates]
