"""The plain per-step cells (min-char-rnn style): the test oracles for the batched cells.

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
        i, f, g, o = sig(z[:m]), sig(z[m : 2 * m]), np.tanh(z[2 * m : 3 * m]), sig(z[3 * m :])
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
        dz = np.concatenate(
            [
                ds * g * i * (1 - i),
                ds * ss[t - 1] * f * (1 - f),
                ds * i * (1 - g**2),
                dh * np.tanh(ss[t]) * o * (1 - o),
            ]
        )
        grads["W"] += np.outer(dz, hs[t - 1])
        grads["U"] += np.outer(dz, xt)
        grads["b"] += dz
        dh_next, ds_next = W.T @ dz, ds * f
    return float(loss), grads, hs[len(x) - 1].copy(), ss[len(x) - 1].copy()


# --- any cell, any number of layers, optional dropout masks: one step at a time --------------


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def cell_step(cell, W, zin, state, m):
    """One step of one layer: zin = U x_t + b (G m,), state (S m,). Returns (new state, cache)."""
    h = state[:m]
    if cell == "rnn":
        hn = np.tanh(W @ h + zin)  # h_t = tanh(W h_{t-1} + U x_t + b)
        return hn, (h, hn)
    if cell == "lstm":
        z = W @ h + zin
        i, f, g, o = _sig(z[:m]), _sig(z[m : 2 * m]), np.tanh(z[2 * m : 3 * m]), _sig(z[3 * m :])
        s = f * state[m:] + i * g  # s_t = f s_{t-1} + i g
        return np.concatenate([o * np.tanh(s), s]), (h, state[m:], i, f, g, o, s)
    w = W @ h  # the GRU: w = W h_{t-1}
    r, z = _sig(zin[:m] + w[:m]), _sig(zin[m : 2 * m] + w[m : 2 * m])
    n = np.tanh(zin[2 * m :] + r * w[2 * m :])
    return (1.0 - z) * n + z * h, (h, r, z, n, w)  # h_t = (1 - z) n + z h_{t-1}


def cell_step_back(cell, W, cache, dh, ds, m):
    """Backward through one ``cell_step``: dh = dL/dh_t, ds = dL/ds_t (LSTM; else ignored).

    Returns (dL/dzin (G m,), dL/d(W h_{t-1}) (G m,), dL/dh_{t-1}, dL/ds_{t-1})."""
    if cell == "rnn":
        h, hn = cache
        da = dh * (1.0 - hn**2)
        return da, da, W.T @ da, None
    if cell == "lstm":
        h, s_prev, i, f, g, o, s = cache
        ds = dh * o * (1 - np.tanh(s) ** 2) + ds
        dz = np.concatenate(
            [
                ds * g * i * (1 - i),
                ds * s_prev * f * (1 - f),
                ds * i * (1 - g**2),
                dh * np.tanh(s) * o * (1 - o),
            ]
        )
        return dz, dz, W.T @ dz, ds * f
    h, r, z, n, w = cache
    dn = dh * (1.0 - z) * (1.0 - n**2)
    dzin = np.concatenate([dn * w[2 * m :] * r * (1 - r), dh * (h - n) * z * (1 - z), dn])
    dw = np.concatenate([dzin[: 2 * m], dn * r])
    return dzin, dw, W.T @ dw + dh * z, None


def stacked_loss_and_grads(cell, P, x, y, state, masks=None):
    """Loss, gradients and final state of L stacked layers of ``cell`` over one sequence, per step.

    P: dict of arrays U W V b c (and U2 W2 b2 ... for layers 2 .. L); state (L S m,) as the
    batched cells keep it; masks: None or L arrays (T, m) multiplying each layer's output h_t.
    Returns (loss, grads keyed like P, final state (L S m,)).
    """
    L, m, K = 1 + sum(1 for k in P if k.startswith("U") and k != "U"), P["W"].shape[1], P["U"].shape[1]
    S = 2 if cell == "lstm" else 1
    key = [("U", "W", "b")] + [(f"U{l}", f"W{l}", f"b{l}") for l in range(2, L + 1)]
    st = [np.array(state[l * S * m : (l + 1) * S * m], float) for l in range(L)]
    caches, ins, ps, tops, loss = [], [], [], [], 0.0
    for t in range(len(x)):
        inp = np.zeros(K)
        inp[x[t]] = 1.0  # one-hot x_t
        caches.append([]), ins.append([])
        for l, (u, w, b) in enumerate(key):
            ins[t].append(inp)
            st[l], cache = cell_step(cell, P[w], P[u] @ inp + P[b], st[l], m)
            caches[t].append(cache)
            inp = st[l][:m] * (masks[l][t] if masks is not None else 1.0)  # dropout on h^l_t
        o = P["V"] @ inp + P["c"]
        e = np.exp(o - o.max())
        ps.append(e / e.sum())
        tops.append(inp)
        loss += -np.log(ps[t][y[t]])
    grads = {k: np.zeros_like(v, dtype=float) for k, v in P.items()}
    dh_next, ds_next = [np.zeros(m) for _ in range(L)], [np.zeros(m) for _ in range(L)]
    for t in reversed(range(len(x))):
        do = ps[t].copy()
        do[y[t]] -= 1.0
        grads["V"] += np.outer(do, tops[t])
        grads["c"] += do
        d_in = P["V"].T @ do  # dL/d(masked h^L_t)
        for l in reversed(range(L)):
            u, w, b = key[l]
            dh = d_in * (masks[l][t] if masks is not None else 1.0) + dh_next[l]
            dzin, dw, dh_next[l], ds_next[l] = cell_step_back(cell, P[w], caches[t][l], dh, ds_next[l], m)
            grads[w] += np.outer(dw, caches[t][l][0])
            grads[u] += np.outer(dzin, ins[t][l])
            grads[b] += dzin
            d_in = P[u].T @ dzin
    return float(loss), grads, np.concatenate(st)


def gru_loss_and_grads(U, W, V, b, c, x, y, h0):
    """The GRU over one sequence, one time step at a time (gate order r, z, n; see helpers.model.gru).

    U (3m,K), W (3m,m), b (3m,), V (K,m), c (K,); h0 (m,). Returns (loss, grads dict keyed
    "U" "W" "V" "b" "c", h_T).
    """
    loss, grads, h = stacked_loss_and_grads("gru", dict(U=U, W=W, V=V, b=b, c=c), x, y, h0)
    return loss, grads, h
