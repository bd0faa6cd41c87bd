"""Recurrent cells on mini-batches: the vanilla RNN and the LSTM, forward and BPTT side by side.

Shapes: B parallel streams, T steps, m hidden units, K characters, G gates (1 for the RNN, 4
for the LSTM). Parameters keep the assignment's names with G stacked blocks:
U (G m, K), W (G m, m), b (G m,), V (K, m), c (K,).

    RNN:   a_t = W h_{t-1} + U x_t + b,  h_t = tanh(a_t)
    LSTM:  z_t = W h_{t-1} + U x_t + b = [z_i, z_f, z_g, z_o]
           i, f, o = sigmoid(z_i, z_f, z_o),  g = tanh(z_g)
           s_t = f * s_{t-1} + i * g,  h_t = o * tanh(s_t)        (s: the cell state)
    both:  o_t = V h_t + c,  p_t = softmax(o_t),  loss = (1/B) sum_{b,t} -log p_t[y_t]

The recurrent state is one array of shape (B, S m): S = 1 (h) for the RNN, S = 2 ([h, s]) for
the LSTM. For one stream of the vanilla RNN, ``helpers.rnn`` is the faster, exact path.
"""
from __future__ import annotations

import numpy as np

from .params import ParamSet

CELLS = {"rnn": 1, "lstm": 4}
"""Cell name -> number of gate blocks G."""
STATE_SIZES = {"rnn": 1, "lstm": 2}
"""Cell name -> number of m-sized state vectors S."""


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def _inputs(p: ParamSet, X: np.ndarray) -> np.ndarray:
    """U x_t + b for every (t, b): gathered columns of U, shape (T, B, G m)."""
    Z = np.take(p.U.T, X.T, axis=0)  # X is (B, T); X.T gives time-major (T, B)
    Z += p.b
    return Z


def _output_layer(p: ParamSet, Hs: np.ndarray, Y: np.ndarray):
    """Softmax of o_t = V h_t + c for all (t, b); returns P (T, B, K) and the summed -log p."""
    P = Hs @ p.V.T
    P += p.c
    P -= P.max(axis=-1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=-1, keepdims=True)
    T, B = Y.shape[1], Y.shape[0]
    picked = P[np.arange(T)[:, None], np.arange(B)[None, :], Y.T]
    return P, float(-np.log(picked).sum())


def forward(cell: str, p: ParamSet, X: np.ndarray, Y: np.ndarray, state: np.ndarray):
    """Run ``cell`` over a mini-batch.

    Parameters
    ----------
    cell : "rnn" or "lstm"
    p : ParamSet with gates = CELLS[cell]
    X, Y : int arrays (B, T)
        Inputs and targets of B streams.
    state : array (B, S m)
        The recurrent state before the first step.

    Returns
    -------
    loss : float
        Mean over the B streams of the summed -log p_t[y_t].
    cache : dict
        What ``backward`` needs; ``cache["state"]`` is the state after the last step.
    """
    m, (B, T) = p.m, X.shape
    Z = _inputs(p, X)
    H = np.empty((T + 1, B, m), p.flat.dtype)
    H[0] = state[:, :m]
    if cell == "rnn":
        for t in range(T):  # a_t = W h_{t-1} + U x_t + b;  h_t = tanh(a_t)
            Z[t] += H[t] @ p.W.T
            np.tanh(Z[t], out=H[t + 1])
        S = None
        new_state = H[T].copy()
    else:
        S = np.empty((T + 1, B, m), p.flat.dtype)
        S[0] = state[:, m:]
        for t in range(T):
            Z[t] += H[t] @ p.W.T  # z_t = W h_{t-1} + U x_t + b, then the gates in place
            sigmoid(Z[t][:, :2 * m], out=Z[t][:, :2 * m])  # i, f
            np.tanh(Z[t][:, 2 * m:3 * m], out=Z[t][:, 2 * m:3 * m])  # g
            sigmoid(Z[t][:, 3 * m:], out=Z[t][:, 3 * m:])  # o
            i, f, g, o = (Z[t][:, k * m:(k + 1) * m] for k in range(4))
            S[t + 1] = f * S[t] + i * g  # s_t = f * s_{t-1} + i * g
            H[t + 1] = o * np.tanh(S[t + 1])  # h_t = o * tanh(s_t)
        new_state = np.concatenate([H[T], S[T]], axis=1)
    P, loss = _output_layer(p, H[1:], Y)
    return loss / B, {"X": X, "Y": Y, "Z": Z, "H": H, "S": S, "P": P, "state": new_state}


def backward(cell: str, p: ParamSet, cache: dict, grads: ParamSet) -> None:
    """BPTT through the mini-batch of ``forward``; writes the mean gradients into ``grads``.

    Unclipped (the training loop clips), so it can be checked against numerical gradients.
    """
    X, Y, Z, H, P = cache["X"], cache["Y"], cache["Z"], cache["H"], cache["P"]
    (B, T), m = X.shape, p.m
    dO = P  # dL/do_t = (p_t - onehot(y_t)) / B, in place
    dO[np.arange(T)[:, None], np.arange(B)[None, :], Y.T] -= 1.0
    dO /= B
    Hs = H[1:].reshape(T * B, m)
    np.dot(dO.reshape(T * B, -1).T, Hs, out=grads.V)  # dV = sum dL/do_t h_t^T
    dO.sum(axis=(0, 1), out=grads.c)
    dH = dO @ p.V  # dL/dh_t from the outputs, (T, B, m)
    dZ = _bptt_rnn(p, Z, H, dH) if cell == "rnn" else _bptt_lstm(p, Z, H, cache["S"], dH)
    dZ2 = dZ.reshape(T * B, -1)
    np.dot(dZ2.T, H[:-1].reshape(T * B, m), out=grads.W)  # dW = sum dL/dz_t h_{t-1}^T
    dZ2.sum(axis=0, out=grads.b)
    onehot = np.zeros((T * B, p.K), p.flat.dtype)
    onehot[np.arange(T * B), X.T.reshape(-1)] = 1.0
    np.dot(dZ2.T, onehot, out=grads.U)  # dU = sum dL/dz_t x_t^T


def _bptt_rnn(p, Z, H, dH):
    """dL/da_t for the RNN: (dL/dh_t + W^T dL/da_{t+1}) * (1 - h_t^2)."""
    T = dH.shape[0]
    dA = np.empty_like(dH)
    da_next = np.zeros_like(dH[0])
    for t in range(T - 1, -1, -1):
        dh = dH[t] + da_next @ p.W
        dA[t] = dh * (1.0 - H[t + 1] ** 2)
        da_next = dA[t]
    return dA


def _bptt_lstm(p, Z, H, S, dH):
    """dL/dz_t for the LSTM, gate by gate, carrying dL/dh and dL/ds backwards."""
    T, B, m = dH.shape
    dZ = np.empty((T, B, 4 * m), dH.dtype)
    dh_next, ds_next = np.zeros((B, m), dH.dtype), np.zeros((B, m), dH.dtype)
    for t in range(T - 1, -1, -1):
        i, f, g, o = (Z[t][:, k * m:(k + 1) * m] for k in range(4))
        tanh_s = np.tanh(S[t + 1])
        dh = dH[t] + dh_next
        ds = dh * o * (1.0 - tanh_s ** 2) + ds_next  # dL/ds_t
        dZ[t, :, :m] = ds * g * i * (1.0 - i)  # through i = sigmoid(z_i)
        dZ[t, :, m:2 * m] = ds * S[t] * f * (1.0 - f)  # through f
        dZ[t, :, 2 * m:3 * m] = ds * i * (1.0 - g ** 2)  # through g = tanh(z_g)
        dZ[t, :, 3 * m:] = dh * tanh_s * o * (1.0 - o)  # through o
        ds_next = ds * f
        dh_next = dZ[t] @ p.W
    return dZ


def loss_and_grads(cell: str, p: ParamSet, X, Y, state, grads: ParamSet):
    """Forward and backward over a mini-batch; returns (mean loss, state after the last step)."""
    loss, cache = forward(cell, p, X, Y, state)
    backward(cell, p, cache, grads)
    return loss, cache["state"]


def loss_only(cell: str, p: ParamSet, X, Y, state) -> float:
    """The mean loss over a mini-batch (forward only)."""
    return forward(cell, p, X, Y, state)[0]


def step_state(cell: str, p: ParamSet, state: np.ndarray, x: int) -> np.ndarray:
    """One recurrence step of a single stream (state (S m,)) on input index x, for sampling."""
    m = p.m
    z = p.W @ state[:m] + p.U[:, x] + p.b
    if cell == "rnn":
        return np.tanh(z)
    i, f, o = (sigmoid(z[k * m:(k + 1) * m]) for k in (0, 1, 3))
    s = f * state[m:] + i * np.tanh(z[2 * m:3 * m])
    return np.concatenate([o * np.tanh(s), s])
