"""The LSTM cell (gate order i, f, g, o), forward and BPTT side by side.

    z_t = W h_{t-1} + U x_t + b = [z_i, z_f, z_g, z_o]
    i, f, o = sigmoid(z_i, z_f, z_o),  g = tanh(z_g)
    s_t = f * s_{t-1} + i * g,  h_t = o * tanh(s_t)        (s: the cell state)

The recurrent state of a stream is [h, s] (2m,). ``oracles.lstm_loss_and_grads`` is the
per-step oracle.
"""

from __future__ import annotations

import numpy as np

from .base import Cell, sigmoid
from .params import ParamSet


class LSTM(Cell):
    name, gates, state_size = "lstm", 4, 2

    def init_params(self, m, K, sig, rng, dtype=np.float64, layers=1, init="assignment") -> ParamSet:
        """As every cell, and the forget gate's bias starts at 1 in every layer (remember by default)."""
        p = super().init_params(m, K, sig, rng, dtype, layers, init)
        for l in range(1, layers + 1):
            p.layer(l).b[m : 2 * m] = 1.0
        return p

    def recur(self, p, Z, H, state):
        T, B, m = Z.shape[0], Z.shape[1], p.m
        S = np.empty((T + 1, B, m), p.flat.dtype)
        S[0] = state[:, m:]
        WT = self.recurrent_operand(p.W)
        for t in range(T):
            Z[t] += H[t] @ WT  # z_t = W h_{t-1} + U x_t + b, then the gates in place
            sigmoid(Z[t][:, : 2 * m], out=Z[t][:, : 2 * m])  # i, f
            np.tanh(Z[t][:, 2 * m : 3 * m], out=Z[t][:, 2 * m : 3 * m])  # g
            sigmoid(Z[t][:, 3 * m :], out=Z[t][:, 3 * m :])  # o
            i, f, g, o = (Z[t][:, k * m : (k + 1) * m] for k in range(4))
            S[t + 1] = f * S[t] + i * g  # s_t = f * s_{t-1} + i * g
            H[t + 1] = o * np.tanh(S[t + 1])  # h_t = o * tanh(s_t)
        return {"S": S}, np.concatenate([H[T], S[T]], axis=1)

    def bptt(self, p, Z, H, cache, dH):
        """dL/dz_t gate by gate, carrying dL/dh and dL/ds backwards."""
        (T, B, m), S = dH.shape, cache["S"]
        dZ = np.empty((T, B, 4 * m), dH.dtype)
        dh_next, ds_next = np.zeros((B, m), dH.dtype), np.zeros((B, m), dH.dtype)
        for t in range(T - 1, -1, -1):
            i, f, g, o = (Z[t][:, k * m : (k + 1) * m] for k in range(4))
            tanh_s = np.tanh(S[t + 1])
            dh = dH[t] + dh_next
            ds = dh * o * (1.0 - tanh_s**2) + ds_next  # dL/ds_t
            dZ[t, :, :m] = ds * g * i * (1.0 - i)  # through i = sigmoid(z_i)
            dZ[t, :, m : 2 * m] = ds * S[t] * f * (1.0 - f)  # through f
            dZ[t, :, 2 * m : 3 * m] = ds * i * (1.0 - g**2)  # through g = tanh(z_g)
            dZ[t, :, 3 * m :] = dh * tanh_s * o * (1.0 - o)  # through o
            ds_next = ds * f
            dh_next = dZ[t] @ p.W
        return dZ

    def step_in(self, p, state, ux):
        m = p.m
        z = p.W @ state[:m] + ux + p.b
        i, f, o = (sigmoid(z[k * m : (k + 1) * m]) for k in (0, 1, 3))
        s = f * state[m:] + i * np.tanh(z[2 * m : 3 * m])
        return np.concatenate([o * np.tanh(s), s])
