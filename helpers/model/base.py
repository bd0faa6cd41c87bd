"""The interface every recurrent cell implements, and the batched pieces all cells share.

Shapes: B parallel streams, T steps, m hidden units, K characters, G gate blocks, S state
vectors of size m. Parameters keep the assignment's names with G stacked blocks:
U (G m, K), W (G m, m), b (G m,), V (K, m), c (K,). Every cell shares the output layer

    o_t = V h_t + c,  p_t = softmax(o_t),  loss = (1/B) sum_{b,t} -log p_t[y_t]

and differs in the recurrence that turns z_t = W h_{t-1} + U x_t + b into h_t. A cell is one
subclass of :class:`Cell` in its own module, with forward and backward side by side, registered
in :mod:`helpers.model.cells`; the trainer, the gradient check, evaluation and synthesis call it
through that registry only.
"""
from __future__ import annotations

import numpy as np

from .params import ParamSet, init_params


class Cell:
    """A recurrent cell: ``forward``/``backward`` on mini-batches, ``step`` for sampling.

    Subclasses set ``name``, ``gates`` (G) and ``state_size`` (S), and implement ``recur``
    (the forward recurrence over all steps) and ``bptt`` (its backward pass).
    """

    name: str = ""
    gates: int = 1
    state_size: int = 1

    def init_params(self, m: int, K: int, sig: float, rng: np.random.Generator, dtype=np.float64) -> ParamSet:
        """The assignment's initialisation (U, W, V ~ N(0, sig^2); b, c = 0) for this cell."""
        return init_params(m, K, sig, rng, dtype=dtype, gates=self.gates)

    def initial_state(self, m: int, B: int, dtype=np.float64) -> np.ndarray:
        """The zero recurrent state of B streams, shape (B, S m)."""
        return np.zeros((B, self.state_size * m), dtype)

    def workspace(self, m: int, K: int, T: int, dtype=np.float64):
        """Buffers ``forward`` may reuse between calls (None: it allocates its own)."""
        return None

    def forward(self, p: ParamSet, X: np.ndarray, Y: np.ndarray, state: np.ndarray, ws=None):
        """Run the cell over a mini-batch.

        Parameters
        ----------
        p : ParamSet with ``gates`` blocks
        X, Y : int arrays (B, T)
            Inputs and targets of B streams.
        state : array (B, S m)
            The recurrent state before the first step.
        ws : the cell's workspace, optional

        Returns
        -------
        loss : float
            Mean over the B streams of the summed -log p_t[y_t].
        cache : dict
            What ``backward`` needs; ``cache["state"]`` is the state after the last step (B, S m).
        """
        m, (B, T) = p.m, X.shape
        Z = np.take(p.U.T, X.T, axis=0)  # U x_t for every (t, b), (T, B, G m); X.T is time-major
        Z += p.b
        H = np.empty((T + 1, B, m), p.flat.dtype)
        H[0] = state[:, :m]
        extra, new_state = self.recur(p, Z, H, state)
        P, loss = output_layer(p, H[1:], Y)
        return loss / B, {"X": X, "Y": Y, "Z": Z, "H": H, "P": P, "state": new_state, **extra}

    def backward(self, p: ParamSet, cache: dict, grads: ParamSet) -> None:
        """BPTT through the mini-batch of ``forward``; writes the mean gradients into ``grads``.

        Unclipped (the training loop clips), so it can be checked against numerical gradients.
        """
        X, Y, Z, H, P = cache["X"], cache["Y"], cache["Z"], cache["H"], cache["P"]
        (B, T), m = X.shape, p.m
        dO = P  # dL/do_t = (p_t - onehot(y_t)) / B, in place
        dO[np.arange(T)[:, None], np.arange(B)[None, :], Y.T] -= 1.0
        dO /= B
        np.dot(dO.reshape(T * B, -1).T, H[1:].reshape(T * B, m), out=grads.V)  # dV = sum dL/do_t h_t^T
        dO.sum(axis=(0, 1), out=grads.c)
        dZ = self.bptt(p, Z, H, cache, dO @ p.V)  # dL/dh_t from the outputs, (T, B, m)
        dZ2 = dZ.reshape(T * B, -1)
        np.dot(dZ2.T, H[:-1].reshape(T * B, m), out=grads.W)  # dW = sum dL/dz_t h_{t-1}^T
        dZ2.sum(axis=0, out=grads.b)
        onehot = np.zeros((T * B, p.K), p.flat.dtype)
        onehot[np.arange(T * B), X.T.reshape(-1)] = 1.0
        np.dot(dZ2.T, onehot, out=grads.U)  # dU = sum dL/dz_t x_t^T

    def recur(self, p: ParamSet, Z: np.ndarray, H: np.ndarray, state: np.ndarray):
        """Fill H[1:] from Z (T, B, G m) = U x_t + b; returns (a dict of what bptt needs besides Z and H,
        the final state (B, S m))."""
        raise NotImplementedError

    def bptt(self, p: ParamSet, Z, H, cache: dict, dH: np.ndarray) -> np.ndarray:
        """dL/dz_t (T, B, G m) from dL/dh_t of the outputs (T, B, m); ``cache`` is forward's."""
        raise NotImplementedError

    def step(self, p: ParamSet, state: np.ndarray, x: int) -> np.ndarray:
        """One recurrence step of a single stream (state (S m,)) on input index x, for sampling."""
        raise NotImplementedError


def output_layer(p: ParamSet, Hs: np.ndarray, Y: np.ndarray):
    """Softmax of o_t = V h_t + c for all (t, b); returns P (T, B, K) and the summed -log p."""
    P = Hs @ p.V.T
    P += p.c
    P -= P.max(axis=-1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=-1, keepdims=True)
    T, B = Y.shape[1], Y.shape[0]
    picked = P[np.arange(T)[:, None], np.arange(B)[None, :], Y.T]
    return P, float(-np.log(picked).sum())


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out
