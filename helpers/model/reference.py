"""The plain per-step RNN (min-char-rnn style): the test oracle for ``helpers.model.rnn``.

Every time step builds its one-hot input and computes each equation with its own matrix-vector
products, exactly as written in the assignment. Slow, short and easy to check by eye.
"""
from __future__ import annotations

import numpy as np


def loss_and_grads(U, W, V, b, c, x, y, hprev):
    """Forward and BPTT over one sequence, one time step at a time.

    Parameters
    ----------
    U (m,K), W (m,m), V (K,m), b (m,), c (K,) : arrays
        The parameters.
    x, y : sequences of int, length T
        Input and target indices.
    hprev : array (m,)
        h_0.

    Returns
    -------
    loss : float
    grads : dict of arrays
        dU, dW, dV, db, dc under the keys "U", "W", "V", "b", "c".
    hlast : array (m,)
        h_T.
    """
    K = U.shape[1]
    xs, hs, ps = {}, {-1: np.array(hprev, dtype=U.dtype)}, {}
    loss = 0.0
    for t in range(len(x)):
        xs[t] = np.zeros(K, dtype=U.dtype)
        xs[t][x[t]] = 1.0  # one-hot x_t
        a = W @ hs[t - 1] + U @ xs[t] + b  # a_t = W h_{t-1} + U x_t + b
        hs[t] = np.tanh(a)  # h_t = tanh(a_t)
        o = V @ hs[t] + c  # o_t = V h_t + c
        e = np.exp(o - o.max())
        ps[t] = e / e.sum()  # p_t = softmax(o_t)
        loss += -np.log(ps[t][y[t]])  # -log p_t[y_t]
    grads = {name: np.zeros_like(arr) for name, arr in zip("UWVbc", (U, W, V, b, c))}
    da_next = np.zeros_like(hs[-1])
    for t in reversed(range(len(x))):
        do = ps[t].copy()
        do[y[t]] -= 1.0  # dL/do_t = p_t - y_t
        grads["V"] += np.outer(do, hs[t])
        grads["c"] += do
        dh = V.T @ do + W.T @ da_next  # dL/dh_t
        da = dh * (1.0 - hs[t] ** 2)  # dL/da_t
        grads["W"] += np.outer(da, hs[t - 1])
        grads["U"] += np.outer(da, xs[t])
        grads["b"] += da
        da_next = da
    return float(loss), grads, hs[len(x) - 1].copy()


def sample(U, W, V, b, c, h0, x0, n, rng):
    """Sample ``n`` indices one step at a time, as the assignment describes: one-hot x_t, each
    equation its own product, and ``rng.choice`` from p_t."""
    K = U.shape[1]
    h, x, out = np.array(h0, dtype=float), np.zeros(K), []
    x[int(x0)] = 1.0  # one-hot x_0
    for _ in range(n):
        h = np.tanh(W @ h + U @ x + b)  # h_t = tanh(W h_{t-1} + U x_t + b)
        o = V @ h + c  # o_t = V h_t + c
        p = np.exp(o - o.max())
        p /= p.sum()  # p_t = softmax(o_t)
        i = int(rng.choice(K, p=p))
        x = np.zeros(K)
        x[i] = 1.0  # the drawn character is the next input
        out.append(i)
    return out


def lstm_loss_and_grads(U, W, V, b, c, x, y, h0, s0):
    """The LSTM over one sequence, one time step at a time (gate order i, f, g, o).

    U (4m,K), W (4m,m), b (4m,), V (K,m), c (K,); h0, s0 (m,) the hidden and cell state.
    Returns (loss, grads dict keyed "U" "W" "V" "b" "c", h_T, s_T).
    """
    m, K = W.shape[1], U.shape[1]

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    hs, ss, cache, loss = {-1: np.array(h0, float)}, {-1: np.array(s0, float)}, {}, 0.0
    for t in range(len(x)):
        xt = np.zeros(K)
        xt[x[t]] = 1.0
        z = W @ hs[t - 1] + U @ xt + b
        i, f, g, o = sig(z[:m]), sig(z[m:2 * m]), np.tanh(z[2 * m:3 * m]), sig(z[3 * m:])
        ss[t] = f * ss[t - 1] + i * g  # s_t = f s_{t-1} + i g
        hs[t] = o * np.tanh(ss[t])  # h_t = o tanh(s_t)
        e = np.exp(V @ hs[t] + c - (V @ hs[t] + c).max())
        p = e / e.sum()
        loss += -np.log(p[y[t]])
        cache[t] = (xt, i, f, g, o, p)
    grads = {name: np.zeros_like(arr) for name, arr in zip("UWVbc", (U, W, V, b, c))}
    dh_next, ds_next = np.zeros(m), np.zeros(m)
    for t in reversed(range(len(x))):
        xt, i, f, g, o, p = cache[t]
        do_ = p.copy()
        do_[y[t]] -= 1.0
        grads["V"] += np.outer(do_, hs[t])
        grads["c"] += do_
        dh = V.T @ do_ + dh_next
        ds = dh * o * (1 - np.tanh(ss[t]) ** 2) + ds_next
        dz = np.concatenate([ds * g * i * (1 - i), ds * ss[t - 1] * f * (1 - f),
                             ds * i * (1 - g ** 2), dh * np.tanh(ss[t]) * o * (1 - o)])
        grads["W"] += np.outer(dz, hs[t - 1])
        grads["U"] += np.outer(dz, xt)
        grads["b"] += dz
        dh_next, ds_next = W.T @ dz, ds * f
    return float(loss), grads, hs[len(x) - 1].copy(), ss[len(x) - 1].copy()
