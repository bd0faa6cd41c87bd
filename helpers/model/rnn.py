"""The vanilla RNN cell, forward and backward (BPTT) side by side.

Two paths compute the same function: :class:`RNN` runs mini-batches of B streams through the
shared batched layers of :mod:`helpers.model.base`; ``forward``/``backward`` below serve one
stream on preallocated buffers (:class:`Workspace`), about 2x faster at B = 1, which is the
assignment's training. Only the recurrence runs per time step; the input gather, the output
layer, the softmax and the weight gradients are whole-sequence array operations.

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]

``helpers.model.oracles`` holds the plain per-step version that the tests use as the oracle.
"""

from __future__ import annotations

import numpy as np

from .base import Cell
from .params import ParamSet


class Workspace:
    """Preallocated buffers for sequences of up to ``seq_length`` steps.

    Attributes (T = seq_length)
    ---------------------------
    A : (T, m)  pre-activations a_t, reused as dL/da_t in backward
    H : (T+1, m)  hidden states, H[0] = h_0 = hprev
    P : (T, K)  probabilities p_t, turned into dL/do_t in backward
    dH : (T, m)  dL/dh_t
    X : (T, K)  one-hot inputs, for dU as one matrix product
    """

    def __init__(self, m: int, K: int, seq_length: int, dtype=np.float64):
        T = int(seq_length)
        self.m, self.K, self.T, self.dtype = m, K, T, np.dtype(dtype)
        self.A = np.empty((T, m), dtype)
        self.H = np.empty((T + 1, m), dtype)
        self.P = np.empty((T, K), dtype)
        self.dH = np.empty((T, m), dtype)
        self.X = np.zeros((T, K), dtype)
        self.tmp = np.empty(m, dtype)
        self.rows = np.arange(T)
        # row views made once: indexing a row costs about as much as the small op on it
        self.A_rows, self.H_rows, self.dH_rows = list(self.A), list(self.H), list(self.dH)

    def fits(self, p: ParamSet, T: int) -> bool:
        """Whether these buffers serve parameters ``p`` and a sequence of length ``T``."""
        return p.m == self.m and p.K == self.K and T <= self.T and p.flat.dtype == self.dtype


def _workspace(p: ParamSet, T: int, ws: Workspace | None) -> Workspace:
    return ws if ws is not None and ws.fits(p, T) else Workspace(p.m, p.K, T, p.flat.dtype)


def forward(p: ParamSet, x: np.ndarray, y: np.ndarray, hprev: np.ndarray, ws: Workspace | None = None):
    """Run the RNN over one sequence and return the summed cross-entropy loss.

    Parameters
    ----------
    p : ParamSet
        U (m,K), W (m,m), V (K,m), b (m,), c (K,).
    x, y : int arrays, shape (T,)
        Input and target character indices.
    hprev : array, shape (m,)
        h_0, the hidden state before the first step.
    ws : Workspace, optional
        Buffers to reuse; their contents afterwards are what ``backward`` needs.

    Returns
    -------
    loss : float
        sum_t -log p_t[y_t].
    ws : Workspace
        Holds H (hidden states) and P (probabilities) of this sequence.
    """
    T = len(x)
    ws = _workspace(p, T, ws)
    A, H, P = ws.A[:T], ws.H[: T + 1], ws.P[:T]
    np.take(p.U.T, x, axis=0, out=A)  # U x_t: gather U's columns instead of a one-hot product
    A += p.b
    H[0] = hprev
    W, tmp, A_rows, H_rows = p.W, ws.tmp, ws.A_rows, ws.H_rows
    for t in range(T):  # the recurrence: a_t = W h_{t-1} + U x_t + b, h_t = tanh(a_t)
        np.dot(W, H_rows[t], out=tmp)
        np.add(tmp, A_rows[t], out=tmp)
        np.tanh(tmp, out=H_rows[t + 1])
    np.dot(H[1:], p.V.T, out=P)  # o_t = V h_t + c for all t at once
    P += p.c
    P -= P.max(axis=1, keepdims=True)  # p_t = softmax(o_t), shifted for stability
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)
    loss = -np.log(P[ws.rows[:T], y]).sum()
    return float(loss), ws


def backward(p: ParamSet, x: np.ndarray, y: np.ndarray, ws: Workspace, grads: ParamSet) -> None:
    """BPTT through the sequence ``forward`` just ran; writes dL/dU ... dL/dc into ``grads``.

    Overwrites the workspace's P and A. Gradients are not clipped here (the training loop does
    that), so they can be compared with numerical ones.
    """
    T = len(x)
    H, dO, dA, dH = ws.H[: T + 1], ws.P[:T], ws.A[:T], ws.dH[:T]
    dO[ws.rows[:T], y] -= 1.0  # dL/do_t = p_t - onehot(y_t)
    np.dot(dO.T, H[1:], out=grads.V)  # dL/dV = sum_t dL/do_t h_t^T
    dO.sum(axis=0, out=grads.c)
    np.dot(dO, p.V, out=dH)  # dL/dh_t from the output, for all t at once
    np.multiply(H[1:], H[1:], out=dA)
    np.subtract(1.0, dA, out=dA)  # tanh'(a_t) = 1 - h_t^2, stored in dA until used
    dH[T - 1] *= dA[T - 1]
    W, tmp, dH_rows, D_rows = p.W, ws.tmp, ws.dH_rows, ws.A_rows
    for t in range(T - 2, -1, -1):  # dL/da_t = (dL/dh_t + W^T dL/da_{t+1}) * (1 - h_t^2)
        np.dot(dH_rows[t + 1], W, out=tmp)
        np.add(tmp, dH_rows[t], out=tmp)
        np.multiply(tmp, D_rows[t], out=dH_rows[t])
    dA = dH  # from here on dH holds dL/da_t
    np.dot(dA.T, H[:T], out=grads.W)  # dL/dW = sum_t dL/da_t h_{t-1}^T
    dA.sum(axis=0, out=grads.b)
    X = ws.X[:T]
    X[ws.rows[:T], x] = 1.0
    np.dot(dA.T, X, out=grads.U)  # dL/dU = sum_t dL/da_t x_t^T, as one product
    X[ws.rows[:T], x] = 0.0


def loss_and_grads(p: ParamSet, x, y, hprev, grads: ParamSet, ws: Workspace | None = None):
    """Forward and backward over one sequence.

    Returns
    -------
    loss : float
    hlast : ndarray, shape (m,)
        h_T, a copy, to carry into the next sequence as hprev.
    """
    loss, ws = forward(p, x, y, hprev, ws)
    hlast = ws.H[len(x)].copy()
    backward(p, x, y, ws, grads)
    return loss, hlast


class RNN(Cell):
    """The vanilla RNN as a :class:`~helpers.model.base.Cell`; state h (m,) per stream.

    With B = 1, one layer, no dropout and a :class:`Workspace` (from ``workspace``), forward and
    backward take the one-stream path above; otherwise the batched path.
    """

    name, gates, state_size = "rnn", 1, 1

    def workspace(self, m, K, T, dtype=np.float64) -> Workspace:
        return Workspace(m, K, T, dtype)

    def forward(self, p, X, Y, state, ws=None, masks=None):
        if X.shape[0] == 1 and isinstance(ws, Workspace) and p.layers == 1 and masks is None:
            x, y = X[0], Y[0]
            loss, ws = forward(p, x, y, state[0], ws)
            return loss, {"stream": (x, y, ws), "state": ws.H[len(x)][None, :].copy()}
        return super().forward(p, X, Y, state, masks=masks)

    def backward(self, p, cache, grads) -> None:
        if "stream" in cache:
            backward(p, *cache["stream"], grads)
        else:
            super().backward(p, cache, grads)

    def recur(self, p, Z, H, state):
        WT = self.recurrent_operand(p.W)
        for t in range(Z.shape[0]):  # a_t = W h_{t-1} + U x_t + b;  h_t = tanh(a_t)
            Z[t] += H[t] @ WT
            np.tanh(Z[t], out=H[t + 1])
        return {}, H[-1].copy()

    def bptt(self, p, Z, H, cache, dH):
        """dL/da_t = (dL/dh_t + W^T dL/da_{t+1}) * (1 - h_t^2)."""
        dA = np.empty_like(dH)
        da_next = np.zeros_like(dH[0])
        for t in range(dH.shape[0] - 1, -1, -1):
            dA[t] = (dH[t] + da_next @ p.W) * (1.0 - H[t + 1] ** 2)
            da_next = dA[t]
        return dA

    def step_in(self, p, state, ux):
        return np.tanh(p.W @ state + ux + p.b)  # h_t = tanh(W h_{t-1} + U x_t + b)
