"""The interface every recurrent cell implements, and the batched pieces all cells share.

Shapes: B parallel streams, T steps, m hidden units, K characters, G gate blocks, S state
vectors of size m per layer, L layers. Parameters keep the assignment's names with G stacked
blocks: U (G m, K), W (G m, m), b (G m,), V (K, m), c (K,), and for layers l >= 2 U_l (G m, m),
W_l, b_l (see :mod:`helpers.model.params`). Every cell shares the stacking and the output layer

    z^1_t = U x_t + b,   z^l_t = U_l d^{l-1} * h^{l-1}_t + b_l   (the input part of layer l)
    o_t = V (d^L * h^L_t) + c,  p_t = softmax(o_t),  loss = (1/B) sum_{b,t} -log p_t[y_t]

(d^l: the inverted-dropout mask after layer l, 1 without dropout) and differs in the recurrence
that turns z_t + W h_{t-1} into h_t. A cell is one subclass of :class:`Cell` in its own module,
with forward and backward side by side, registered in :mod:`helpers.model.cells`; the trainer,
the gradient check, evaluation and synthesis call it through that registry only.
"""

from __future__ import annotations

import numpy as np

from .params import Layer, ParamSet, init_params


class Cell:
    """A recurrent cell: ``forward``/``backward`` on mini-batches, ``step`` for sampling.

    Subclasses set ``name``, ``gates`` (G) and ``state_size`` (S), and implement ``recur``
    (the forward recurrence of one layer over all steps), ``bptt`` (its backward pass) and
    ``step_in`` (one step of one layer and one stream).
    """

    name: str = ""
    gates: int = 1
    state_size: int = 1

    def init_params(
        self,
        m: int,
        K: int,
        sig: float,
        rng: np.random.Generator,
        dtype=np.float64,
        layers: int = 1,
        init: str = "assignment",
    ) -> ParamSet:
        """The initial weights of this cell (``init``: see :data:`helpers.model.params.INITS`; the
        assignment's U, W, V ~ N(0, sig^2), b, c = 0 by default)."""
        return init_params(m, K, sig, rng, dtype=dtype, gates=self.gates, layers=layers, init=init)

    def initial_state(self, m: int, B: int, dtype=np.float64, layers: int = 1) -> np.ndarray:
        """The zero recurrent state of B streams, shape (B, L S m): layer 1's S m entries first."""
        return np.zeros((B, layers * self.state_size * m), dtype)

    def workspace(self, m: int, K: int, T: int, dtype=np.float64):
        """Buffers ``forward`` may reuse between calls (None: it allocates its own)."""
        return None

    def forward(self, p: ParamSet, X: np.ndarray, Y: np.ndarray, state: np.ndarray, ws=None, masks=None):
        """Run the stacked cells over a mini-batch.

        Parameters
        ----------
        p : ParamSet with ``gates`` blocks and L layers
        X, Y : int arrays (B, T)
            Inputs and targets of B streams.
        state : array (B, L S m)
            The recurrent state before the first step.
        ws : the cell's workspace, optional
        masks : list of L arrays (T, B, m), optional
            Inverted-dropout masks (0 or 1/(1-rate)) applied to each layer's output h_t; None: no dropout.

        Returns
        -------
        loss : float
            Mean over the B streams of the summed -log p_t[y_t].
        cache : dict
            What ``backward`` needs; ``cache["state"]`` is the state after the last step (B, L S m).
        """
        m, (B, T), Sm = p.m, X.shape, self.state_size * p.m
        layers, states, below = [], [], None
        for l in range(p.layers):
            lp = p.layer(l + 1)
            if l == 0:
                Z = np.take(lp.U.T, X.T, axis=0)  # U x_t for every (t, b), (T, B, G m); X.T is time-major
            else:
                Z = below @ lp.U.T  # U_l h^{l-1}_t, (T, B, G m)
            Z += lp.b
            H = np.empty((T + 1, B, m), p.flat.dtype)
            H[0] = state[:, l * Sm : l * Sm + m]
            extra, new_state = self.recur(lp, Z, H, state[:, l * Sm : (l + 1) * Sm])
            layers.append({"Z": Z, "H": H, "input": below, **extra})
            states.append(new_state)
            below = H[1:] if masks is None else H[1:] * masks[l]  # inverted dropout on h^l_t
        P, loss = output_layer(p, below, Y)
        state = states[0] if len(states) == 1 else np.concatenate(states, axis=1)
        return loss / B, {
            "X": X,
            "Y": Y,
            "P": P,
            "layers": layers,
            "top": below,
            "masks": masks,
            "state": state,
        }

    def backward(self, p: ParamSet, cache: dict, grads: ParamSet) -> None:
        """BPTT through the mini-batch of ``forward``; writes the mean gradients into ``grads``.

        Unclipped (the training loop clips), so it can be checked against numerical gradients.
        """
        X, Y, P, top, masks = cache["X"], cache["Y"], cache["P"], cache["top"], cache["masks"]
        (B, T), m = X.shape, p.m
        dO = P  # dL/do_t = (p_t - onehot(y_t)) / B, in place
        dO[np.arange(T)[:, None], np.arange(B)[None, :], Y.T] -= 1.0
        dO /= B
        np.dot(dO.reshape(T * B, -1).T, top.reshape(T * B, m), out=grads.V)  # dV = sum dL/do_t h_t^T
        dO.sum(axis=(0, 1), out=grads.c)
        dH = dO @ p.V  # dL/dh^L_t from the outputs, (T, B, m)
        for l in range(p.layers - 1, -1, -1):
            layer, lp, g = cache["layers"][l], p.layer(l + 1), grads.layer(l + 1)
            if masks is not None:
                dH *= masks[l]  # through the dropout mask
            dZ = self.bptt(lp, layer["Z"], layer["H"], layer, dH)
            dZ, dR = dZ if isinstance(dZ, tuple) else (dZ, dZ)  # input part, recurrent part (W h_{t-1})
            np.dot(
                dR.reshape(T * B, -1).T, layer["H"][:-1].reshape(T * B, m), out=g.W
            )  # dW = sum dL/dr_t h_{t-1}^T
            dZ2 = dZ.reshape(T * B, -1)
            dZ2.sum(axis=0, out=g.b)
            if l == 0:
                scatter_columns(dZ2, X.T.reshape(-1), out=g.U)  # dU = sum dL/dz_t x_t^T, x_t one-hot
            else:
                np.dot(dZ2.T, layer["input"].reshape(T * B, m), out=g.U)  # dU_l = sum dL/dz_t (d h^{l-1}_t)^T
                dH = dZ @ lp.U  # dL/d(d h^{l-1}_t)

    def recur(self, p: Layer, Z: np.ndarray, H: np.ndarray, state: np.ndarray):
        """Fill H[1:] of one layer from Z (T, B, G m) = U x_t + b; ``state`` is the layer's (B, S m).
        Returns (a dict of what bptt needs besides Z and H, the layer's final state (B, S m))."""
        raise NotImplementedError

    def bptt(self, p: Layer, Z, H, cache: dict, dH: np.ndarray):
        """dL/dz_t (T, B, G m) from dL/dh_t (T, B, m) of one layer; ``cache`` is its forward dict.

        A cell whose recurrent product W h_{t-1} enters differently from U x_t + b (the GRU) returns
        the pair (dL/dz_t, dL/d(W h_{t-1})).
        """
        raise NotImplementedError

    def recurrent_operand(self, W: np.ndarray) -> np.ndarray:
        """W^T for the per-step product h_{t-1} W^T of a mini-batch, as a contiguous copy: OpenBLAS
        runs (B, m) x (m, G m) in float32 about 1.7x faster from it than through the view W.T
        (``make bench`` times both)."""
        return np.ascontiguousarray(W.T)

    def step_in(self, p: Layer, state: np.ndarray, ux: np.ndarray) -> np.ndarray:
        """One step of one layer and one stream: state (S m,) and the input product ux = U x_t (G m,)."""
        raise NotImplementedError

    def step(self, p, state: np.ndarray, x: int) -> np.ndarray:
        """One recurrence step of a single stream of a one-layer model (state (S m,)) on input index x."""
        return self.step_in(p, state, p.U[:, x])

    def model_step(self, p: ParamSet, state: np.ndarray, x: int) -> np.ndarray:
        """One step of every layer of a single stream (state (L S m,)) on input index x, for sampling."""
        if p.layers == 1:
            return self.step(p, state, x)
        Sm, out, ux = self.state_size * p.m, np.empty_like(state), p.U[:, x]
        for l in range(p.layers):
            lp = p.layer(l + 1)
            if l:
                ux = lp.U @ out[(l - 1) * Sm : (l - 1) * Sm + p.m]  # U_l h^{l-1}_t
            out[l * Sm : (l + 1) * Sm] = self.step_in(lp, state[l * Sm : (l + 1) * Sm], ux)
        return out

    def top(self, p: ParamSet, state: np.ndarray) -> np.ndarray:
        """h_t of the top layer within a state (..., L S m)."""
        start = (p.layers - 1) * self.state_size * p.m
        return state[..., start : start + p.m]


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


def scatter_columns(dZ: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[:, k] = sum of the rows dZ[i] with x[i] = k: the product dZ^T onehot(x) without the one-hot.

    dZ (N, G m), x (N,) ints in [0, K), out (G m, K).
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    out[...] = 0.0
    out[:, xs[starts]] = np.add.reduceat(dZ[order], starts, axis=0).T
    return out


def dropout_masks(
    rng: np.random.Generator, rate: float, layers: int, T: int, B: int, m: int, dtype, locked: bool = False
) -> list:
    """L inverted-dropout masks (T, B, m): each entry 1/(1-rate) with probability 1-rate, else 0.

    Drawn from ``rng`` (float32 uniforms, layer 1 first), so a run's seed fixes them. ``locked``: one
    (B, m) mask per layer, the same at all T steps (variational dropout), as a read-only view.
    """
    keep = np.asarray(1.0 / (1.0 - rate), dtype)
    shape = (1, B, m) if locked else (T, B, m)
    return [
        np.broadcast_to((rng.random(shape, dtype=np.float32) >= rate) * keep, (T, B, m))
        for _ in range(layers)
    ]


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out
