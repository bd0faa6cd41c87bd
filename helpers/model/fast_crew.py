"""The one-layer LSTM on a crew of threads that split the hidden units (used by :mod:`helpers.model.fast_gated`).

Giving both cores to OpenBLAS inside each per-step product moves about 100 KB between the cores
at every step (h_{t-1} to the second thread, half of W h_{t-1} back), and on this project's
machine such a handoff is at times twice as slow as at others (docs/speed.md): the two-thread
update then ran at 57,000 characters/s instead of 75,000. Here each of n threads owns m / n hidden
units for the whole update, with its own copy of their rows of W and arrays of its own for their
gates, cell states and gradients, so the cores share only what the recurrence needs: each
thread's part of h_t forward and its share of W^T dL/dz_t backward, and a spinning barrier at
each step (:mod:`helpers.model.fast_sync`). (With shared (T, B, 4 m) arrays, each thread writing
its part of every row, the slow minutes cost as much as before; with arrays per thread the
update ran at 65,000 to 77,000 in them.)
Thread c, units u0 .. u1 - 1 (k = u1 - u0):

    forward, step t:  W h_{t-1} for its units' four gates, then their gates, s_t, tanh(s_t), h_t
    output layer:     softmax and dL/do for its rows of the T B rows, then dL/dh^L = V^T dL/do and
                      dV = sum dL/do h^T for its units' columns
    backward, step t: dL/dz_t for its units' gates, then its share of W^T dL/dz_t (its 4 k rows
                      of W): the n shares summed, in thread order, give dL/dh_{t-1}
    weights:          dW, db and dU for its units' rows: sums over the T B rows of its own dL/dz

Every line computes the same equation as :mod:`helpers.model.fast_gated_kernels`; the results
differ from one thread's by rounding (W^T dL/dz_t is summed in n parts) and repeat exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import fast_sync
from .fast_blas import gemm
from .fast_gated_kernels import JIT, PAR, softmax_rows, span, sums_rows
from .fast_math import sigmoid_, tanh_

PAD = 16
"""Floats of padding after each row of the per-step products' weights (see :mod:`helpers.model.fast_blas`)."""


@njit(**JIT)
def four(v, m, u0, u1):
    """The views of units u0 .. u1 - 1 of the four gate blocks of v (4 m)."""
    return v[u0:u1], v[m + u0 : m + u1], v[2 * m + u0 : 2 * m + u1], v[3 * m + u0 : 3 * m + u1]


@njit(**JIT)
def own_weights(W, u0, u1, WT, Wc):
    """WT (m, 4 k) = W^T's columns of units u0 .. u1 - 1, gate by gate; Wc (4 k, m) the same rows of W (4 m, m)."""
    m, k = W.shape[1], u1 - u0
    for g in range(4):
        Wc[g * k : (g + 1) * k] = W[g * m + u0 : g * m + u1]
    for q in range(m):
        for r in range(4 * k):
            WT[q, r] = Wc[r, q]


@njit(**JIT)
def forward_steps(blas, X, UT, b, H, Zc, Sc, TSc, D, mask, WT, Rc, Hl, u0, u1, sync, n, gen):
    """T steps of the forward recurrence for units u0 .. u1 - 1 of all B streams; returns the barrier's
    generation. This thread's own: Zc (T, B, 4 k) gates, Sc (T + 1, B, k) cell states, TSc (T, B, k),
    Rc (B, 4 k) and Hl (B, k) scratch; H (T + 1, B, m) shared; D = h * mask when mask is not (0, 0, 0)."""
    T, B, m, k, masked = Zc.shape[0], Zc.shape[1], H.shape[2], u1 - u0, mask.shape[0] > 0
    for t in range(T):
        gemm(blas, H[t], WT, Rc)  # W h_{t-1}, these units' rows
        for i in range(B):
            (ai, af, ag, ao), (bi, bf, bg, bo) = four(UT[X[i, t]], m, u0, u1), four(b, m, u0, u1)
            zi, zf, zg, zo = four(Zc[t, i], k, 0, k)
            wi, wf, wg, wo = four(Rc[i], k, 0, k)
            s0, s1, ts, h1 = Sc[t, i], Sc[t + 1, i], TSc[t, i], Hl[i]
            for j in range(k):  # z_t = (U x_t + b) + W h_{t-1}, then the gates
                ig = sigmoid_((ai[j] + bi[j]) + wi[j])
                fg = sigmoid_((af[j] + bf[j]) + wf[j])
                gg = tanh_((ag[j] + bg[j]) + wg[j])
                og = sigmoid_((ao[j] + bo[j]) + wo[j])
                zi[j], zf[j], zg[j], zo[j] = ig, fg, gg, og
                s1[j] = fg * s0[j] + ig * gg  # s_t = f s_{t-1} + i g
                ts[j] = tanh_(s1[j])
                h1[j] = og * ts[j]  # h_t = o tanh(s_t)
            if masked:
                d, dm = D[t, i, u0:u1], mask[t, i, u0:u1]
                for j in range(k):
                    d[j] = h1[j] * dm[j]  # d * h_t, the output layer's input
            H[t + 1, i, u0:u1] = h1  # h_t of these units, for every thread's next product
        gen = fast_sync.barrier(sync, n, gen)  # h_t whole before step t + 1
    return gen


@njit(**JIT)
def backward_steps(blas, Zc, Sc, TSc, dHc, mask, Wc, dZc, Pls, sn, hw, u0, u1, c, sync, n, gen):
    """T steps of BPTT for units u0 .. u1 - 1: dZc[t] (B, 4 k) = dL/dz_t for their gates, from dHc[t] (B, k)
    = dL/dh_t from above and dL/dh_t through W h_t, summed from the n threads' shares Pls[q, t % 2]
    (n, 2, B, m; two, so that a thread may write step t - 1's while another still reads step t's).
    Zc, Sc, TSc as in :func:`forward_steps`; sn, hw (B, k) scratch; returns the barrier's generation."""
    T, B, k, masked = dHc.shape[0], dHc.shape[1], u1 - u0, mask.shape[0] > 0
    sn[:] = 0.0
    hw[:] = 0.0
    for t in range(T - 1, -1, -1):
        for i in range(B):
            gi, gf, gg_, go = four(Zc[t, i], k, 0, k)
            di, df, dg, do = four(dZc[t, i], k, 0, k)
            s0, ts, d = Sc[t, i], TSc[t, i], dHc[t, i]
            d_m, sn_, hw_ = mask[t, i, u0:u1] if masked else d, sn[i], hw[i]
            for j in range(k):
                dhj = (d[j] * d_m[j] if masked else d[j]) + hw_[j]  # dL/dh_t
                ig, fg, gg, og = gi[j], gf[j], gg_[j], go[j]
                ds = dhj * og * (1.0 - ts[j] * ts[j]) + sn_[j]  # dL/ds_t
                di[j] = ds * gg * ig * (1.0 - ig)  # through i
                df[j] = ds * s0[j] * fg * (1.0 - fg)  # through f
                dg[j] = ds * ig * (1.0 - gg * gg)  # through g
                do[j] = dhj * ts[j] * og * (1.0 - og)  # through o
                sn_[j] = ds * fg  # dL/ds_{t-1}
        if t > 0:
            gemm(blas, dZc[t], Wc, Pls[c, t % 2])  # this thread's share of W^T dL/dz_t (B, m)
            gen = fast_sync.barrier(sync, n, gen)
            for i in range(B):
                hw_ = hw[i]
                hw_[:] = 0.0
                for q in range(n):
                    p_ = Pls[q, t % 2, i, u0:u1]
                    for j in range(k):
                        hw_[j] += p_[j]  # dL/dh_{t-1} through W h_{t-1}, these units
    return gen


@njit(**JIT)
def weight_grads(blas, X, dZc, Hprev, acc, u0, u1, dW, db, dU):
    """dW, db and dU's rows of units u0 .. u1 - 1 from dZc (T B, 4 k): sums over the rows. acc (K + 1, 4 k) scratch."""
    N, k, m = dZc.shape[0], u1 - u0, Hprev.shape[1]
    for g in range(4):
        gemm(blas, dZc[:, g * k : (g + 1) * k].T, Hprev, dW[g * m + u0 : g * m + u1])  # sum dL/dz h_{t-1}^T
    sums_rows(dZc, X, acc, 0, N)  # row K: dL/db = sum_t dL/dz_t; row x: dL/dU's column x
    s = acc[acc.shape[0] - 1]
    for g in range(4):
        for j in range(k):
            db[g * m + u0 + j] = s[g * k + j]
            for x in range(acc.shape[0] - 1):
                dU[g * m + u0 + j, x] = acc[x, g * k + j]


@njit(**PAR)
def lstm_crew(blas, X, Y, UT, b, W, VT, V, cb, H, D, mask, P, ws_, grads_, loss, sync, n):
    """Forward, output layer and BPTT of the one-layer LSTM, units split between n threads.

    X, Y (B, T); UT (K, 4m) = U^T; W (4m, m), VT (m, K), V (K, m), cb (K,); H (T + 1, B, m) with h_0;
    P (T B, K) as in :mod:`helpers.model.fast_gated`; D (T, B, m) the output layer's input when mask
    (T, B, m) is not (0, 0, 0). ws_ (:func:`buffers`): per thread c, WTs[c] (m, >= 4k), Wcs[c] (4k, >= m),
    Rs[c] (B, 4k), Hls[c] (B, k), Pls[c] (2, B, m), Zcs[c] (T, B, 4k), Scs[c] (T + 1, B, k) with s_0,
    TScs[c] (T, B, k), dHcs[c] (T, B, k), dZcs[c] (T, B, 4k), G1[c], G2[c] (B, k), acc[c] (K + 1, 4k).
    grads_ = (dW, db, dU, dV, dc); loss (n,) per thread.
    """
    WTs, Wcs, Rs, Hls, Pls, Zcs, Scs, TScs, dHcs, dZcs, G1, G2, acc = ws_
    dW, db, dU, dV, dc = grads_
    T, B, m = H.shape[0] - 1, H.shape[1], H.shape[2]
    N, K, k = T * B, V.shape[0], m // n
    top = (D if mask.shape[0] > 0 else H[1:]).reshape(N, m)
    dO = P
    for c in prange(n):
        u0, u1 = c * k, (c + 1) * k
        WT, Wc = WTs[c, :, : 4 * k], Wcs[c, :, :m]
        own_weights(W, u0, u1, WT, Wc)
        gen = fast_sync.generation(sync)
        args = (Zcs[c], Scs[c], TScs[c], D, mask, WT, Rs[c], Hls[c], u0, u1, sync, n, gen)
        gen = forward_steps(blas, X, UT, b, H, *args)
        lo, hi = span(c, n, N)
        loss[c] = softmax_rows(blas, top, VT, cb, Y, P, P.dtype.type(B), lo, hi)
        gen = fast_sync.barrier(sync, n, gen)  # dL/do whole
        gemm(blas, dO, V[:, u0:u1], dHcs[c].reshape(N, k))  # dL/dh^L_t = V^T dL/do_t, these units
        gemm(blas, dO.T, top[:, u0:u1], dV[:, u0:u1])  # dV = sum dL/do_t h_t^T, these units
        k0, k1 = span(c, n, K)
        dc[k0:k1] = 0.0
        for r in range(N):
            for q in range(k0, k1):
                dc[q] += dO[r, q]  # dc = sum dL/do_t
        args = (Wc, dZcs[c], Pls, G1[c], G2[c], u0, u1, c, sync, n, gen)
        gen = backward_steps(blas, Zcs[c], Scs[c], TScs[c], dHcs[c], mask, *args)
        weight_grads(blas, X, dZcs[c].reshape(N, 4 * k), H[:-1].reshape(N, m), acc[c], u0, u1, dW, db, dU)


def buffers(n: int, m: int, K: int, B: int, T: int, zeros) -> tuple:
    """The crew's arrays for :func:`lstm_crew` (its ``ws_``), made by ``zeros(*shape)``; k = m // n."""
    k = m // n
    return (
        zeros(n, m, 4 * k + PAD),  # WTs: W^T's columns per thread (rows padded, as fast_gated's WT)
        zeros(n, 4 * k, m + PAD),  # Wcs: W's rows
        zeros(n, B, 4 * k),  # Rs
        zeros(n, B, k),  # Hls
        zeros(n, 2, B, m),  # Pls: each thread's share of W^T dL/dz, read by all
        zeros(n, T, B, 4 * k),  # Zcs
        zeros(n, T + 1, B, k),  # Scs
        zeros(n, T, B, k),  # TScs
        zeros(n, T, B, k),  # dHcs
        zeros(n, T, B, 4 * k),  # dZcs
        zeros(n, B, k),  # G1
        zeros(n, B, k),  # G2
        zeros(n, K + 1, 4 * k),  # acc
    )


def loss_and_grads(blas, p, X, Y, state, grads, mask, ws):
    """:func:`helpers.model.fast_gated.loss_and_grads` for a one-layer LSTM on ws.n threads: the same
    arguments, checked; mask (T, B, m) or ws.none_mask. Returns (mean loss, state (B, 2m))."""
    m, n, T, lp = p.m, ws.n, ws.T, p.layer(1)
    H, Scs, k = ws.H[0], ws.crew_ws[6], m // n
    H[0] = state[:, :m]
    for c in range(n):
        Scs[c, 0] = state[:, m + c * k : m + (c + 1) * k]
    np.copyto(ws.UT, lp.U.T)
    np.copyto(ws.VT, p.V.T)
    g, Yr = grads.layer(1), np.ascontiguousarray(Y.T).reshape(-1)
    args = (blas, X, Yr, ws.UT, lp.b, lp.W, ws.VT, p.V, p.c, H, ws.D[0], mask, ws.P, ws.crew_ws)
    lstm_crew(*args, (g.W, g.b, g.U, grads.V, grads.c), ws.loss, ws.sync, n)
    return ws.loss.sum() / ws.B, np.concatenate([H[T]] + [Scs[c, T] for c in range(n)], axis=1)
