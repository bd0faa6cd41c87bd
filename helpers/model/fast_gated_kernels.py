"""The numba kernels behind :mod:`helpers.model.fast_gated` (import that module, not this one).

The GRU's and the LSTM's recurrences of :mod:`helpers.model.gru` and :mod:`helpers.model.lstm`,
forward and backward, with each step's gate arithmetic fused into one pass over its (B, G m)
rows, and the products in BLAS (:func:`helpers.model.fast_blas.gemm`: numpy's own BLAS). Arrays
are time-major as in the numpy cells: Z, dZ (T, B, G m), H (T+1, B, m), dH (T, B, m).

Threads: the B streams are cut into ``n`` chunks of consecutive streams, and ``prange`` runs
each chunk's whole recurrence (T steps, its own per-step products) on its own thread: the
streams never meet within an update, so there is one join per layer and direction, not one per
step. The whole-sequence products (the output layer, the weight gradients) are cut into ``n``
blocks of consecutive rows the same way. Each kernel is a function of one chunk (``*_rows``) and
a driver that runs the n chunks under ``prange``; with n = 1 the caller calls ``*_rows`` itself,
on its own thread (called from another compiled function outside ``prange`` instead of from
Python, the fused loops of ``*_rows`` ran at half speed with numba 0.68; measured, cause not
found). With n > 1 BLAS runs on one thread (``threadpool_limits(1, "blas")``, the session's): its
threads would only compete with these; a one-layer network runs n = 1 with BLAS on its threads
instead (:func:`helpers.model.fast_gated._split`).

Every line computes an equation of the numpy cell's, in the same order of operations, so the
results differ from numpy's by rounding only (the products' and sums' order, and exp and tanh:
:mod:`helpers.model.fast_math`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .fast_blas import gemm
from .fast_math import exp_, sigmoid_, tanh_

JIT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)
PAR = dict(JIT, parallel=True)


@njit(**JIT)
def span(c, n, N):
    """Rows [lo, hi) of block c of N rows cut into n blocks."""
    return c * N // n, (c + 1) * N // n


# ---- the GRU (gate order r, z, n) ----


@njit(**JIT)
def gru_forward_rows(blas, X, UT, b, Z, H, Wn, WT, Rc, lo, hi):
    """:func:`gru_forward` for the streams lo .. hi - 1; Rc (hi - lo, 3m) scratch."""
    T, m, gather = Z.shape[0], Z.shape[2] // 3, X.shape[0] > 0
    for t in range(T):
        gemm(blas, H[t, lo:hi], WT, Rc)  # [w_r, w_z, w_n] = W h_{t-1}
        for i in range(hi - lo):
            z_, r_, h0, h1, wn = Z[t, lo + i], Rc[i], H[t, lo + i], H[t + 1, lo + i], Wn[t, lo + i]
            a = UT[X[lo + i, t]] if gather else z_
            for j in range(m):
                r = sigmoid_((a[j] + b[j]) + r_[j])  # r = sigmoid(a_r + w_r)
                z = sigmoid_((a[m + j] + b[m + j]) + r_[m + j])  # z = sigmoid(a_z + w_z)
                nn = tanh_((a[2 * m + j] + b[2 * m + j]) + r * r_[2 * m + j])  # n = tanh(a_n + r w_n)
                z_[j], z_[m + j], z_[2 * m + j], wn[j] = r, z, nn, r_[2 * m + j]
                h1[j] = nn + z * (h0[j] - nn)  # h_t = (1 - z) n + z h_{t-1}


@njit(**PAR)
def gru_forward(blas, X, UT, b, Z, H, Wn, WT, R, n):
    """Fill H[1:] and the gates: Z[t] = [r, z, n] of step t, Wn[t] = w_n = W_n h_{t-1}.

    Layer 1 (X (B, T) ints): a_t = U x_t + b is read from UT (K, 3m) row x_t; a layer above
    (X of shape (0, 0)): Z holds U_l h^{l-1}_t on entry and a_t = Z[t] + b. WT (m, 3m) = W^T; R (n,
    >= B/n, 3m) scratch; ``blas`` see :func:`helpers.model.fast_blas.gemm`.
    """
    B = Z.shape[1]
    for c in prange(n):
        lo, hi = span(c, n, B)
        gru_forward_rows(blas, X, UT, b, Z, H, Wn, WT, R[c, : hi - lo], lo, hi)


@njit(**JIT)
def gru_backward_rows(blas, Z, H, Wn, dH, mask, W, dZ, dR, hn, lo, hi):
    """:func:`gru_backward` for the streams lo .. hi - 1; hn (hi - lo, m) scratch."""
    T, m, masked = dH.shape[0], dH.shape[2], mask.shape[0] > 0
    hn[:] = 0.0
    for t in range(T - 1, -1, -1):
        for i in range(hi - lo):
            g, dz, dr, h0, d = Z[t, lo + i], dZ[t, lo + i], dR[t, lo + i], H[t, lo + i], dH[t, lo + i]
            wn, d_m, hn_ = Wn[t, lo + i], mask[t, lo + i] if masked else d, hn[i]
            for j in range(m):
                dhj = (d[j] * d_m[j] if masked else d[j]) + hn_[j]  # dL/dh_t
                r, z, nn = g[j], g[m + j], g[2 * m + j]
                da_n = dhj * (1.0 - z) * (1.0 - nn * nn)  # through n = tanh(a_n + r w_n)
                dz[2 * m + j] = da_n
                dr[2 * m + j] = da_n * r  # d w_n
                dz[j] = dr[j] = da_n * wn[j] * r * (1.0 - r)  # through r
                dz[m + j] = dr[m + j] = dhj * (h0[j] - nn) * z * (1.0 - z)  # through z
                hn_[j] = dhj * z  # dL/dh_{t-1} directly ...
        if t > 0:
            gemm(blas, dR[t, lo:hi], W, hn, 1.0)  # ... + W^T dL/d(W h_{t-1})


@njit(**PAR)
def gru_backward(blas, Z, H, Wn, dH, mask, W, dZ, dR, G1, n):
    """dZ[t] = dL/d(U x_t + b), dR[t] = dL/d(W h_{t-1}) from dH[t] = dL/dh_t (from above), backwards.

    ``mask`` (T, B, m) multiplies dH (dropout), or has shape (0, 0, 0) for none. G1 (n, >= B/n, m)
    scratch: dL/dh_{t-1} carried back.
    """
    B = dH.shape[1]
    for c in prange(n):
        lo, hi = span(c, n, B)
        gru_backward_rows(blas, Z, H, Wn, dH, mask, W, dZ, dR, G1[c, : hi - lo], lo, hi)


# ---- the LSTM (gate order i, f, g, o) ----


@njit(**JIT)
def lstm_forward_rows(blas, X, UT, b, Z, H, S, TS, WT, Rc, lo, hi):
    """:func:`lstm_forward` for the streams lo .. hi - 1; Rc (hi - lo, 4m) scratch."""
    T, m, gather = Z.shape[0], Z.shape[2] // 4, X.shape[0] > 0
    for t in range(T):
        gemm(blas, H[t, lo:hi], WT, Rc)  # W h_{t-1}
        for i in range(hi - lo):
            z_, r_, s0, s1 = Z[t, lo + i], Rc[i], S[t, lo + i], S[t + 1, lo + i]
            ts, h1 = TS[t, lo + i], H[t + 1, lo + i]
            a = UT[X[lo + i, t]] if gather else z_
            for j in range(m):  # z_t = (U x_t + b) + W h_{t-1}, then the gates
                ig = sigmoid_((a[j] + b[j]) + r_[j])
                fg = sigmoid_((a[m + j] + b[m + j]) + r_[m + j])
                gg = tanh_((a[2 * m + j] + b[2 * m + j]) + r_[2 * m + j])
                og = sigmoid_((a[3 * m + j] + b[3 * m + j]) + r_[3 * m + j])
                z_[j], z_[m + j], z_[2 * m + j], z_[3 * m + j] = ig, fg, gg, og
                s1[j] = fg * s0[j] + ig * gg  # s_t = f s_{t-1} + i g
                ts[j] = tanh_(s1[j])
                h1[j] = og * ts[j]  # h_t = o tanh(s_t)


@njit(**PAR)
def lstm_forward(blas, X, UT, b, Z, H, S, TS, WT, R, n):
    """Fill H[1:], S[1:] (cell states), TS[t] = tanh(s_t) and the gates Z[t] = [i, f, g, o].

    As :func:`gru_forward` for X, UT, b, WT and R; S[0] holds s_0 on entry.
    """
    B = Z.shape[1]
    for c in prange(n):
        lo, hi = span(c, n, B)
        lstm_forward_rows(blas, X, UT, b, Z, H, S, TS, WT, R[c, : hi - lo], lo, hi)


@njit(**JIT)
def lstm_backward_rows(blas, Z, S, TS, dH, mask, W, dZ, sn, hw, lo, hi):
    """:func:`lstm_backward` for the streams lo .. hi - 1; sn, hw (hi - lo, m) scratch."""
    T, m, masked = dH.shape[0], dH.shape[2], mask.shape[0] > 0
    sn[:] = 0.0
    hw[:] = 0.0
    for t in range(T - 1, -1, -1):
        for i in range(hi - lo):
            g, dz, s0, ts, d = Z[t, lo + i], dZ[t, lo + i], S[t, lo + i], TS[t, lo + i], dH[t, lo + i]
            d_m, sn_, hw_ = mask[t, lo + i] if masked else d, sn[i], hw[i]
            for j in range(m):
                dhj = (d[j] * d_m[j] if masked else d[j]) + hw_[j]  # dL/dh_t
                ig, fg, gg, og = g[j], g[m + j], g[2 * m + j], g[3 * m + j]
                ds = dhj * og * (1.0 - ts[j] * ts[j]) + sn_[j]  # dL/ds_t
                dz[j] = ds * gg * ig * (1.0 - ig)  # through i
                dz[m + j] = ds * s0[j] * fg * (1.0 - fg)  # through f
                dz[2 * m + j] = ds * ig * (1.0 - gg * gg)  # through g
                dz[3 * m + j] = dhj * ts[j] * og * (1.0 - og)  # through o
                sn_[j] = ds * fg  # dL/ds_{t-1}
        if t > 0:
            gemm(blas, dZ[t, lo:hi], W, hw)  # dL/dh_{t-1} = W^T dL/dz_t


@njit(**PAR)
def lstm_backward(blas, Z, S, TS, dH, mask, W, dZ, G1, G2, n):
    """dZ[t] = dL/dz_t from dH[t] = dL/dh_t (from above), backwards; ``mask`` as in gru_backward.

    G1, G2 (n, >= B/n, m) scratch: dL/ds_t carried back, dL/dh_{t-1} through W h_{t-1}.
    """
    B = dH.shape[1]
    for c in prange(n):
        lo, hi = span(c, n, B)
        lstm_backward_rows(blas, Z, S, TS, dH, mask, W, dZ, G1[c, : hi - lo], G2[c, : hi - lo], lo, hi)


# ---- the output layer and the whole-sequence products ----


@njit(**JIT)
def softmax_rows(blas, top, VT, c, Y, P, B, lo, hi):
    """:func:`softmax_loss` for the rows lo .. hi - 1; returns their sum -log p[y]."""
    K, loss = P.shape[1], 0.0
    gemm(blas, top[lo:hi], VT, P[lo:hi])  # V h (c below)
    for r in range(lo, hi):
        o = P[r]
        for k in range(K):
            o[k] += c[k]  # o = V h + c
        omax = o[0]
        for k in range(1, K):
            omax = o[k] if o[k] > omax else omax
        for k in range(K):
            o[k] = exp_(o[k] - omax)  # exp(o - max o), a loop of its own so that it vectorizes
        s = o.dtype.type(0.0)
        for k in range(K):
            s += o[k]
        for k in range(K):
            o[k] /= s  # p = softmax(o)
        loss -= np.log(np.float64(o[Y[r]]))  # -log p[y]
        o[Y[r]] -= 1.0  # dL/do = p - onehot(y) ...
        for k in range(K):
            o[k] /= B  # ... / B
    return loss


@njit(**PAR)
def softmax_loss(blas, top, VT, c, Y, P, B, n):
    """P = softmax(top V^T + c) row by row, then turned into dL/do = (p - onehot(y)) / B; returns
    sum -log p[y] in float64. top (N, m), VT (m, K), Y (N,) the targets in row order, P (N, K)."""
    N = P.shape[0]
    loss = np.zeros(n)
    for b in prange(n):
        lo, hi = span(b, n, N)
        loss[b] = softmax_rows(blas, top, VT, c, Y, P, B, lo, hi)
    return loss.sum()


@njit(**PAR)
def rows_dot(blas, A, Bm, out, n):
    """out = A Bm, in n blocks of rows. A (N, k), Bm (k, p), out (N, p)."""
    if n == 1:
        gemm(blas, A, Bm, out)
        return
    for b in prange(n):
        lo, hi = span(b, n, A.shape[0])
        gemm(blas, A[lo:hi], Bm, out[lo:hi])


@njit(**PAR)
def tdot(blas, A, Bm, out, part, n):
    """out = A^T Bm = sum over rows of a_r b_r^T: each of n blocks of rows into part[block], then summed.
    A (N, p), Bm (N, q), out (p, q), part (n, p, q) scratch (unused when n == 1)."""
    if n == 1:
        gemm(blas, A.T, Bm, out)
        return
    for b in prange(n):
        lo, hi = span(b, n, A.shape[0])
        gemm(blas, A[lo:hi].T, Bm[lo:hi], part[b])
    out[:] = part[0]
    for b in range(1, n):
        out += part[b]


@njit(**JIT)
def sums_rows(dZ, X, acc, lo, hi):
    """:func:`bias_and_inputs` for the rows lo .. hi - 1 into acc (K + 1, G), zeroed first."""
    G, inputs = dZ.shape[1], X.shape[0] > 0
    B = dZ.shape[0] // X.shape[1] if inputs else 1
    acc[:] = 0.0
    s = acc[acc.shape[0] - 1]
    for r in range(lo, hi):
        d = dZ[r]
        for j in range(G):
            s[j] += d[j]  # dL/db = sum_t dL/dz_t
        if inputs:
            u = acc[X[r % B, r // B]]
            for j in range(G):
                u[j] += d[j]  # dL/dU x_t^T: row x_t of dU^T


@njit(**PAR)
def bias_and_inputs(dZ, X, db, dUT, part, n):
    """db = sum of the rows of dZ (N = T B, G); when X (B, T) is not empty, also dUT (K, G) = sum of
    the rows r = t B + b of dZ with x = X[b, t] (dL/dU^T for one-hot inputs; transposed by the caller).
    part (n, K + 1, G) scratch: row K holds a block's db."""
    for b in prange(n):
        lo, hi = span(b, n, dZ.shape[0])
        sums_rows(dZ, X, part[b], lo, hi)
    K = part.shape[1] - 1
    db[:] = part[0, K]
    for b in range(1, n):
        db += part[b, K]
    if X.shape[0] > 0:
        dUT[:] = part[0, :K]
        for b in range(1, n):
            dUT += part[b, :K]


@njit(**JIT)
def multiply_rows(A, M, out, lo, hi):
    """out = A * M for the rows lo .. hi - 1."""
    for r in range(lo, hi):
        for j in range(A.shape[1]):
            out[r, j] = A[r, j] * M[r, j]


@njit(**PAR)
def multiply(A, M, out, n):
    """out = A * M elementwise (the dropout mask), in n blocks of rows; all (N, m)."""
    for b in prange(n):
        lo, hi = span(b, n, A.shape[0])
        multiply_rows(A, M, out, lo, hi)
