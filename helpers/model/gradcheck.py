"""Numerical gradient check: centered differences against the analytic BPTT gradients.

Relative error of one parameter (g_a analytic, g_n numerical, both flattened):

    rel = ||g_a - g_n||_2 / max(eps, ||g_a||_2 + ||g_n||_2)      (the "norm" figure)

and the same formula elementwise, |g_a - g_n| / max(eps, |g_a| + |g_n|), whose maximum over
the entries is reported beside it. Always float64, h_0 = 0, no clipping.
"""

from __future__ import annotations

import numpy as np

from . import cells
from .params import ParamSet

EPS = 1e-12
"""Floor of the relative error's denominator."""


def loss_function(p: ParamSet, x, y, hprev, cell: str = "rnn", masks=None):
    """A function of no arguments giving the loss of ``p`` (read in place) on one sequence.

    ``hprev`` is the recurrent state of one stream (L S m,): h_0 (m,) for a one-layer RNN or GRU,
    [h_0, s_0] (2m,) for the LSTM, layer after layer. ``masks``: fixed dropout masks (T, 1, m) per
    layer, or None.
    """
    X, Y, state = np.asarray(x)[None, :], np.asarray(y)[None, :], np.asarray(hprev)[None, :]
    ws = cells.get(cell).workspace(p.m, p.K, len(x), p.flat.dtype)
    return lambda: cells.forward(cell, p, X, Y, state, ws, masks)[0]


def analytic_grads(p: ParamSet, x, y, hprev, cell: str = "rnn", masks=None) -> ParamSet:
    """The BPTT gradients of one sequence, unclipped."""
    grads = p.zeros_like()
    ws = cells.get(cell).workspace(p.m, p.K, len(x), p.flat.dtype)
    cells.loss_and_grads(
        cell, p, np.asarray(x)[None, :], np.asarray(y)[None, :], np.asarray(hprev)[None, :], grads, ws, masks
    )
    return grads


def numerical_grads(
    p: ParamSet, x, y, hprev, h: float = 1e-4, progress=None, cell: str = "rnn", masks=None
) -> ParamSet:
    """Centered differences (L(theta + h) - L(theta - h)) / 2h for every entry of every parameter.

    ``progress``, if given, is called with the number of entries done so far, every 500 entries.
    """
    grads = p.zeros_like()
    loss = loss_function(p, x, y, hprev, cell, masks)
    done = 0
    for name in p.names:
        view = p[name].reshape(-1)  # a view into theta
        out = grads[name].reshape(-1)
        for i in range(view.size):
            out[i] = centered_difference(loss, view, i, h)
            done += 1
            if progress is not None and done % 500 == 0:
                progress(done)
    return grads


def centered_difference(loss, view: np.ndarray, i: int, h: float) -> float:
    """(L(theta_i + h) - L(theta_i - h)) / 2h for entry ``i`` of ``view`` (a view into the parameters
    that ``loss()`` reads); the entry is restored afterwards."""
    old = view[i]
    view[i] = old + h
    plus = loss()
    view[i] = old - h
    minus = loss()
    view[i] = old
    return (plus - minus) / (2 * h)


def relative_errors(g_a: np.ndarray, g_n: np.ndarray, eps: float = EPS) -> dict[str, float]:
    """``{"norm": ..., "max": ...}``: the norm-based relative error and the elementwise maximum."""
    g_a, g_n = np.ravel(g_a), np.ravel(g_n)
    norm = np.linalg.norm(g_a - g_n) / max(eps, np.linalg.norm(g_a) + np.linalg.norm(g_n))
    elementwise = np.abs(g_a - g_n) / np.maximum(eps, np.abs(g_a) + np.abs(g_n))
    return {"norm": float(norm), "max": float(elementwise.max())}


def check(
    p: ParamSet, x, y, h: float = 1e-4, progress=None, cell: str = "rnn", masks=None
) -> dict[str, dict[str, float]]:
    """Compare analytic and numerical gradients of every parameter on one sequence, from a zero state.

    ``masks``: fixed dropout masks (T, 1, m), one per layer, or None (no dropout).
    Returns ``{name: {"norm": .., "max": ..}}`` for U, W, V, b, c (and U2, W2, b2, ... of more layers).
    """
    if p.flat.dtype != np.float64:
        p = p.astype(np.float64)  # the check is always done in float64
    hprev = cells.initial_state(cell, p)[0]
    analytic = analytic_grads(p, x, y, hprev, cell, masks)
    numeric = numerical_grads(p, x, y, hprev, h, progress, cell, masks)
    return {name: relative_errors(analytic[name], numeric[name]) for name in p.names}
