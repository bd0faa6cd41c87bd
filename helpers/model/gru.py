"""The GRU cell (gate order r, z, n), forward and BPTT side by side.

The variant of PyTorch's ``nn.GRU`` and cuDNN (Cho et al. 2014 with the reset gate applied after
the recurrent product, which lets one product W h_{t-1} serve all three gates):

    [a_r, a_z, a_n] = U x_t + b,   [w_r, w_z, w_n] = W h_{t-1}
    r = sigmoid(a_r + w_r),  z = sigmoid(a_z + w_z)         (reset and update gates)
    n = tanh(a_n + r * w_n)                                  (the candidate state)
    h_t = (1 - z) * n + z * h_{t-1}

PyTorch keeps a second bias b_hn inside r * (w_n + b_hn); here there is one bias per gate (b_hn = 0),
so U, W, b stack three blocks like every other cell. Cho et al.'s original form applies r before
the product, tanh(a_n + W_n (r * h_{t-1})). The state of a stream is h (m,);
``oracles.gru_loss_and_grads`` is the per-step oracle.
"""

from __future__ import annotations

import numpy as np

from .base import Cell, sigmoid


class GRU(Cell):
    name, gates, state_size = "gru", 3, 1

    def recur(self, p, Z, H, state):
        T, B, m = Z.shape[0], Z.shape[1], p.m
        Wn = np.empty((T, B, m), p.flat.dtype)  # w_n = W_n h_{t-1}, which bptt needs
        WT = self.recurrent_operand(p.W)
        for t in range(T):
            R = H[t] @ WT  # W h_{t-1} for the three gates, (B, 3m)
            Z[t][:, : 2 * m] += R[:, : 2 * m]
            sigmoid(Z[t][:, : 2 * m], out=Z[t][:, : 2 * m])  # r, z
            r, z, n = Z[t][:, :m], Z[t][:, m : 2 * m], Z[t][:, 2 * m :]
            Wn[t] = R[:, 2 * m :]
            n += r * Wn[t]
            np.tanh(n, out=n)  # n = tanh(a_n + r * w_n)
            H[t + 1] = n + z * (H[t] - n)  # h_t = (1 - z) n + z h_{t-1}
        return {"Wn": Wn}, H[T].copy()

    def bptt(self, p, Z, H, cache, dH):
        """(dL/d(U x_t + b), dL/d(W h_{t-1})) gate by gate, carrying dL/dh backwards."""
        (T, B, m), Wn = dH.shape, cache["Wn"]
        dZ = np.empty((T, B, 3 * m), dH.dtype)
        dR = np.empty((T, B, 3 * m), dH.dtype)
        dh_next = np.zeros((B, m), dH.dtype)
        for t in range(T - 1, -1, -1):
            r, z, n = Z[t][:, :m], Z[t][:, m : 2 * m], Z[t][:, 2 * m :]
            dh = dH[t] + dh_next
            da_n = dh * (1.0 - z) * (1.0 - n**2)  # through n = tanh(a_n + r w_n)
            dZ[t, :, 2 * m :] = da_n
            dR[t, :, 2 * m :] = da_n * r  # d w_n
            dZ[t, :, :m] = da_n * Wn[t] * r * (1.0 - r)  # through r = sigmoid(a_r + w_r)
            dZ[t, :, m : 2 * m] = dh * (H[t] - n) * z * (1.0 - z)  # through z
            dR[t, :, : 2 * m] = dZ[t, :, : 2 * m]
            dh_next = dh * z + dR[t] @ p.W  # dL/dh_{t-1}: directly and through W h_{t-1}
        return dZ, dR

    def step_in(self, p, state, ux):
        m = p.m
        a, R = ux + p.b, p.W @ state  # U x_t + b, W h_{t-1}
        r, z = sigmoid(a[:m] + R[:m]), sigmoid(a[m : 2 * m] + R[m : 2 * m])
        n = np.tanh(a[2 * m :] + r * R[2 * m :])
        return n + z * (state - n)  # (1 - z) n + z h_{t-1}
