"""The numba kernels behind :mod:`helpers.fast` (import that module, not this one).

Plain loops compiled by numba, with ``np.dot`` for the matrix products (numba hands those to
scipy's BLAS, which is why the "fast" extra needs scipy). The model is that of :mod:`helpers.rnn`:

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]

Every kernel works in the dtype of its arrays (float64 or float32). ``fastmath=False`` keeps
IEEE semantics: the compiler does not reorder sums, so results differ from numpy's only by
rounding inside the matrix products.

Parameters and gradients are passed as the ``flat`` buffer of a :class:`helpers.params.ParamSet`
(U, W, V, b, c one after the other); :func:`param_views` cuts it into the named arrays.
"""
from __future__ import annotations

import numpy as np
from numba import njit

JIT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


@njit(**JIT)
def param_views(flat, m, K):
    """U (m,K), W (m,m), V (K,m), b (m,), c (K,): views of a ParamSet's flat buffer."""
    U = flat[:m * K].reshape((m, K))
    W = flat[m * K:m * K + m * m].reshape((m, m))
    start = m * K + m * m
    V = flat[start:start + K * m].reshape((K, m))
    b = flat[start + K * m:start + K * m + m]
    c = flat[start + K * m + m:start + K * m + m + K]
    return U, W, V, b, c


@njit(**JIT)
def indices_ok(x, y, K):
    """Whether x and y (int arrays) have one length >= 1 and all entries in [0, K)."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        return False
    for t in range(x.shape[0]):
        if x[t] < 0 or x[t] >= K or y[t] < 0 or y[t] >= K:
            return False
    return True


@njit(**JIT)
def forward(U, W, b, x, hprev, H, a):
    """The recurrence: H[t+1] = h_t for t < T, with H[0] = h_0 = hprev.

    Shapes: U (m,K), W (m,m), b (m,), x (T,), hprev (m,), H (T+1, m); a (m,) is scratch.
    """
    m = W.shape[0]
    H[0] = hprev
    for t in range(x.shape[0]):
        np.dot(W, H[t], a)  # W h_{t-1}
        xt = x[t]
        for i in range(m):
            # h_t = tanh(a_t),  a_t = W h_{t-1} + (U x_t + b);  U x_t is column x_t of U
            H[t + 1, i] = np.tanh(a[i] + (U[i, xt] + b[i]))


@njit(**JIT)
def softmax_loss(V, c, y, Hs, P):
    """Output layer and loss: P[t] = p_t = softmax(V h_t + c); returns sum_t -log p_t[y_t].

    Shapes: V (K,m), c (K,), y (T,), Hs (T, m) = h_1 .. h_T, P (T, K) is written.
    The loss is accumulated in float64.
    """
    K = V.shape[0]
    np.dot(Hs, V.T, P)  # o_t = V h_t for all t at once (c added below)
    loss = 0.0
    for t in range(P.shape[0]):
        o = P[t]
        for k in range(K):
            o[k] += c[k]  # o_t = V h_t + c
        omax = o.max()
        s = o.dtype.type(0.0)
        for k in range(K):
            o[k] = np.exp(o[k] - omax)  # exp(o_t - max o_t), shifted for stability
            s += o[k]
        for k in range(K):
            o[k] /= s  # p_t
        loss -= np.log(np.float64(o[y[t]]))  # -log p_t[y_t]
    return loss


@njit(**JIT)
def backward(W, V, x, y, H, P, dA, tmp, dU, dW, dV, db, dc):
    """BPTT after ``forward`` and ``softmax_loss``; writes dU, dW, dV, db, dc (unclipped).

    Shapes: W (m,m), V (K,m), x, y (T,), H (T+1, m), P (T, K) (turned into dL/do_t),
    dA (T, m) (written: dA[t] = dL/da_t), tmp (m,) scratch; the gradients have the
    parameters' shapes.
    """
    T, m = dA.shape
    one = dA.dtype.type(1.0)
    for t in range(T):
        P[t, y[t]] -= one  # dL/do_t = p_t - onehot(y_t)
    np.dot(P.T, H[1:], dV)  # dL/dV = sum_t dL/do_t h_t^T
    for k in range(dc.shape[0]):
        dc[k] = 0.0
    for t in range(T):
        dc += P[t]  # dL/dc = sum_t dL/do_t
    np.dot(P, V, dA)  # dL/dh_t from the output, V^T dL/do_t, for all t at once
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dA[t + 1], W, tmp)  # W^T dL/da_{t+1}
            dA[t] += tmp  # dL/dh_t = V^T dL/do_t + W^T dL/da_{t+1}
        for i in range(m):
            dA[t, i] *= one - H[t + 1, i] * H[t + 1, i]  # dL/da_t = dL/dh_t * (1 - h_t^2)
    np.dot(dA.T, H[:T], dW)  # dL/dW = sum_t dL/da_t h_{t-1}^T
    dU[:, :] = 0.0
    db[:] = 0.0
    for t in range(T):
        db += dA[t]  # dL/db = sum_t dL/da_t
        dU[:, x[t]] += dA[t]  # dL/dU = sum_t dL/da_t x_t^T: column x_t gets dL/da_t


@njit(**JIT)
def loss_and_grads(theta, grad, x, y, hprev, H, P, dA, tmp):
    """Forward and BPTT over one sequence on ParamSet flat buffers.

    Parameters
    ----------
    theta, grad : (n,) flat buffers of the parameters and of their gradients (written)
    x, y : int64 (T,) input and target indices
    hprev : (m,) h_0
    H (>= T+1, m), P (>= T, K), dA (>= T, m), tmp (m,) : scratch, see helpers.fast.Workspace

    Returns
    -------
    (loss, ok) : ok is False, and nothing is computed, when x, y are not index sequences of
    one length >= 1 with entries in [0, K). Afterwards H[T] = h_T.
    """
    m, K = hprev.shape[0], P.shape[1]
    if not indices_ok(x, y, K):
        return np.nan, False
    T = x.shape[0]
    U, W, V, b, c = param_views(theta, m, K)
    dU, dW, dV, db, dc = param_views(grad, m, K)
    forward(U, W, b, x, hprev, H[:T + 1], tmp)
    loss = softmax_loss(V, c, y, H[1:T + 1], P[:T])
    backward(W, V, x, y, H[:T + 1], P[:T], dA[:T], tmp, dU, dW, dV, db, dc)
    return loss, True


@njit(**JIT)
def clip_adagrad(theta, g, mem, eta, eps, limit):
    """Clip g to [-limit, limit], then one AdaGrad step; in place on flat arrays of one dtype.

    The same IEEE operations in the same order as optim.clip_ + optim.adagrad_ (eta, eps and
    limit given in the arrays' dtype), so the results are bit-identical to theirs.
    """
    for i in range(theta.shape[0]):
        gi = g[i]
        if gi > limit:  # clip; a NaN fails both tests and stays NaN, as with np.clip
            gi = limit
        elif gi < -limit:
            gi = -limit
        g[i] = gi
        mem[i] += gi * gi  # m <- m + g^2
        theta[i] -= (gi / np.sqrt(mem[i] + eps)) * eta  # theta <- theta - eta g / sqrt(m + eps)


@njit(**JIT)
def all_finite(a):
    """Whether every entry of the 1-D array ``a`` is finite."""
    for i in range(a.shape[0]):
        if not np.isfinite(a[i]):
            return False
    return True


@njit(**JIT)
def sample(theta, K, h0, x0, u, temperature, out):
    """Sample len(u) indices into ``out`` using the uniforms ``u``; returns h_n.

    The steps and their order are those of synth.sample_indices with top_p = 1:
    h = tanh(W h + U x + b); o = (V h + c) / temperature; cdf = cumsum(exp(o - max o));
    x = min(searchsorted(cdf, u_t * cdf[-1], side="right"), K - 1).
    Shapes: theta (n,) a ParamSet's flat buffer, h0 (m,), u (N,) float64, out (N,) int64;
    0 <= x0 < K.
    """
    m = h0.shape[0]
    U, W, V, b, c = param_views(theta, m, K)
    h, a, o = h0.copy(), np.empty(m, h0.dtype), np.empty(K, h0.dtype)
    temp = h0.dtype.type(temperature)
    x = x0
    for t in range(u.shape[0]):
        np.dot(W, h, a)  # W h_{t-1}
        for i in range(m):
            h[i] = np.tanh((a[i] + U[i, x]) + b[i])  # h_t = tanh(W h_{t-1} + U x_t + b)
        np.dot(V, h, o)  # V h_t
        for k in range(K):
            o[k] += c[k]  # o_t = V h_t + c
            if temperature != 1.0:
                o[k] /= temp
        omax = o.max()
        s = o.dtype.type(0.0)
        for k in range(K):
            s += np.exp(o[k] - omax)
            o[k] = s  # o now holds the unnormalised cdf of p_t
        x = min(np.searchsorted(o, u[t] * o[K - 1], side="right"), K - 1)  # inverse-CDF draw
        out[t] = x
    return h
