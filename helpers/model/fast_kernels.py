"""The numba kernels behind :mod:`helpers.model.fast` (import that module, not this one).

Plain loops compiled by numba, with ``np.dot`` for the matrix products (numba hands those to
scipy's BLAS, which is why the "fast" extra needs scipy). The model is that of :mod:`helpers.model.rnn`:

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]

Every kernel works in the dtype of its arrays (float64 or float32). ``fastmath=False`` keeps
IEEE semantics (the compiler does not reorder sums), so results differ from numpy's by rounding
only: in the matrix products, in numpy's pairwise sums and in tanh and exp (libm's in float64,
the vectorizable forms of :mod:`helpers.model.fast_math` in float32, within 1.3 ULP).

Parameters and gradients are passed as the ``flat`` buffer of a :class:`helpers.model.params.ParamSet`
(U, W, V, b, c one after the other); :func:`param_views` cuts it into the named arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .fast_math import exp_, tanh_

JIT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


@njit(**JIT)
def param_views(flat, m, K):
    """U (m,K), W (m,m), V (K,m), b (m,), c (K,): views of a ParamSet's flat buffer."""
    end_U = m * K
    end_W = end_U + m * m
    end_V = end_W + K * m
    end_b = end_V + m
    U = flat[:end_U].reshape((m, K))
    W = flat[end_U:end_W].reshape((m, m))
    V = flat[end_W:end_V].reshape((K, m))
    return U, W, V, flat[end_V:end_b], flat[end_b : end_b + K]


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
def forward(U, W, b, x, hprev, H, A, tmp):
    """The recurrence: H[t+1] = h_t for t < T, with H[0] = h_0 = hprev.

    Shapes: U (m,K), W (m,m), b (m,), x (T,), hprev (m,), H (T+1, m);
    A (T, m) receives U x_t + b; tmp (m,) is scratch.
    """
    m, T = W.shape[0], x.shape[0]
    for i in range(m):  # U x_t + b for all t; U x_t is column x_t of U (read row by row)
        for t in range(T):
            A[t, i] = U[i, x[t]] + b[i]
    H[0] = hprev
    for t in range(T):
        np.dot(W, H[t], tmp)  # W h_{t-1}
        for i in range(m):
            H[t + 1, i] = tanh_(tmp[i] + A[t, i])  # h_t = tanh(a_t), a_t = W h_{t-1} + U x_t + b


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
        for k in range(K):
            o[k] = exp_(
                o[k] - omax
            )  # exp(o_t - max o_t), shifted for stability (a loop of its own: it vectorizes)
        s = o.dtype.type(0.0)
        for k in range(K):
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
    zero, one = dA.dtype.type(0.0), dA.dtype.type(1.0)
    for t in range(T):
        P[t, y[t]] -= one  # dL/do_t = p_t - onehot(y_t)
    np.dot(P.T, H[1:], dV)  # dL/dV = sum_t dL/do_t h_t^T
    np.dot(P, V, dA)  # dL/dh_t from the output, V^T dL/do_t, for all t at once
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dA[t + 1], W, tmp)  # W^T dL/da_{t+1}
            for i in range(m):
                dA[t, i] += tmp[i]  # dL/dh_t = V^T dL/do_t + W^T dL/da_{t+1}
        for i in range(m):
            dA[t, i] *= one - H[t + 1, i] * H[t + 1, i]  # dL/da_t = dL/dh_t * (1 - h_t^2)
    np.dot(dA.T, H[:T], dW)  # dL/dW = sum_t dL/da_t h_{t-1}^T
    dc[:] = zero
    db[:] = zero
    for t in range(T):
        for k in range(dc.shape[0]):
            dc[k] += P[t, k]  # dL/dc = sum_t dL/do_t
        for i in range(m):
            db[i] += dA[t, i]  # dL/db = sum_t dL/da_t
    for i in range(m):  # dL/dU = sum_t dL/da_t x_t^T: dL/da_t goes to column x_t (row by row)
        dU[i, :] = zero
        for t in range(T):
            dU[i, x[t]] += dA[t, i]


@njit(**JIT)
def loss_and_grads(theta, grad, x, y, hprev, H, A, P, tmp):
    """Forward and BPTT over one sequence on ParamSet flat buffers.

    Parameters
    ----------
    theta, grad : (n,) flat buffers of the parameters and of their gradients (written)
    x, y : int64 (T,) input and target indices
    hprev : (m,) h_0
    H (>= T+1, m), A (>= T, m), P (>= T, K), tmp (m,) : scratch, see helpers.model.fast.Workspace

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
    forward(U, W, b, x, hprev, H[: T + 1], A[:T], tmp)
    loss = softmax_loss(V, c, y, H[1 : T + 1], P[:T])
    backward(W, V, x, y, H[: T + 1], P[:T], A[:T], tmp, dU, dW, dV, db, dc)  # A becomes dL/da_t
    return loss, True


@njit(**JIT)
def clip_adagrad(theta, g, mem, eta, eps, limit):
    """Clip g to [-limit, limit], then one AdaGrad step; in place on flat arrays of one dtype.

    The same IEEE operations in the same order as helpers.train.optim.clip_ + adagrad_ (eta, eps and
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
def clip_adam(theta, g, m1, m2, limit, beta1, one_minus_beta1, beta2, one_minus_beta2, bias2, eps, step):
    """Clip g to [-limit, limit] (inf: not), then one Adam step; in place on flat arrays of one dtype.

    The same IEEE operations in the same order as helpers.train.optim.clip_ + adam (the scalars given
    in the arrays' dtype: bias2 = 1 - beta2^t, step = eta / (1 - beta1^t)), so the results are
    bit-identical to theirs; one pass over memory instead of about twelve.
    """
    for i in range(theta.shape[0]):
        gi = g[i]
        gi = limit if gi > limit else gi  # clip; a NaN fails both tests and stays NaN, as with np.clip
        gi = -limit if gi < -limit else gi
        g[i] = gi
        a = m1[i] * beta1
        a += one_minus_beta1 * gi  # m <- beta1 m + (1 - beta1) g
        m1[i] = a
        s = gi * gi
        v = m2[i] * beta2
        s *= one_minus_beta2
        v += s  # v <- beta2 v + (1 - beta2) g^2
        m2[i] = v
        d = np.sqrt(v / bias2)  # sqrt(v_hat)
        d += eps
        d = a / d
        d *= step  # eta m_hat / (sqrt(v_hat) + eps)
        theta[i] -= d


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

    The steps are those of sample.sample_indices with top_p = 1, in the same order:
    h = tanh(W h + U x + b); o = (V h + c) / temperature; cdf = cumsum(exp(o - max o));
    x = min(searchsorted(cdf, u_t * cdf[-1], side="right"), K - 1).
    Shapes: theta (n,) a ParamSet's flat buffer, h0 (m,), u (N,) float64, out (N,) int64;
    0 <= x0 < K.
    """
    m = h0.shape[0]
    U, W, V, b, c = param_views(theta, m, K)
    UT = U.T.copy()  # row x of UT is column x of U, i.e. U x for a one-hot x
    WV = np.concatenate((W, V))  # (m+K, m): both W h_t and V h_t in one product
    h, z = h0.copy(), np.empty(m + K, h0.dtype)
    np.dot(W, h, z[:m])  # W h_0
    o = z[m:]  # the last K entries of z = [W h_t; V h_t]
    temp = h0.dtype.type(temperature)
    x = x0
    for t in range(u.shape[0]):
        for i in range(m):
            h[i] = tanh_((z[i] + UT[x, i]) + b[i])  # h_t = tanh(W h_{t-1} + U x_t + b)
        np.dot(WV, h, z)  # z = [W h_t; V h_t]
        for k in range(K):
            o[k] += c[k]  # o_t = V h_t + c
        if temperature != 1.0:
            for k in range(K):
                o[k] /= temp  # o_t / temperature
        omax = o.max()
        s = o.dtype.type(0.0)
        for k in range(K):
            s += exp_(o[k] - omax)  # exp(o_t - max o_t): p_t up to a constant factor
            o[k] = s  # o now holds the cumulative sums, the unnormalised cdf
        x = min(np.searchsorted(o, u[t] * o[K - 1], side="right"), K - 1)  # inverse-CDF draw
        out[t] = x
    return h
