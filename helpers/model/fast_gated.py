"""The numba path for the gated cells (GRU and LSTM): any number of layers, dropout, any batch.

The same model and the same math as :class:`helpers.model.base.Cell` with :mod:`helpers.model.gru`
and :mod:`helpers.model.lstm`, which stay the readable version and the path without numba:

    layer 1 reads U x_t + b (a row of U^T), layer l the product U_l (d^{l-1} h^{l-1}_t) + b_l;
    the recurrence of each layer as in its cell; o_t = V (d^L h^L_t) + c, softmax, mean loss over streams

Per layer and direction one compiled kernel runs the T steps (:mod:`helpers.model.fast_gated_kernels`):
each step's recurrent product in BLAS, then one fused pass over its (B, G m) rows for the gate
arithmetic (forward) or the gate derivatives (backward). The whole-sequence products, the
softmax and the bias and input gradients are kernels too, so numpy allocates nothing per update.
With ``threads`` > 1 a one-layer LSTM runs on a crew of threads that split its hidden units
(:mod:`helpers.model.fast_crew`: it exchanges little between the cores, so it keeps its speed
when the machine makes that exchange slow); a one-layer GRU runs its kernels on one thread and
its matrix products on that many BLAS threads (at m = 256, B = 32: 1.08x faster than splitting
the streams); a stacked network splits the streams (and the rows of the whole-sequence products)
between numba's threads, which paid 1.05x over BLAS threads for a 2-layer LSTM at m = 384
(:func:`_split`). Each way the results differ from one thread's by rounding only.
numba's "workqueue" threading layer is used unless NUMBA_THREADING_LAYER names another (see below).

Loss, gradients and the final state agree with the numpy cells to rounding (about 1e-12
relative in float64, 1e-5 in float32; ``tests/test_fast_gated.py``). Dropout masks are the
caller's (drawn by :func:`helpers.model.base.dropout_masks` from the run's generator, as on the
numpy path), so the two paths draw the same masks and resume stays exact.

    Workspace(cell, m, K, B, T, layers, dtype, threads)                       buffers, reusable
    loss_and_grads(cell, p, X, Y, state, grads, masks=None, ws=None, threads=1) -> (loss, state)
"""

from __future__ import annotations

import os

import numpy as np

from . import fast, fast_blas, fast_sync
from .params import ParamSet

CELLS = {"gru": 3, "lstm": 4}
"""The cells this path serves -> their number of gate blocks."""
if fast.AVAILABLE and "NUMBA_THREADING_LAYER" not in os.environ:
    # numba's workqueue threads sleep while they wait; OpenMP's spin, and when another process holds
    # the other core the spinning thread stalls every join: 2 threads then ran 5x slower than 1
    fast.numba.config.THREADING_LAYER = "workqueue"
PAD = 16
"""Floats of padding after each row of W^T, the per-step product's operand (see :mod:`helpers.model.fast_blas`)."""
_BLAS, _TOLERANT = [], []


def blas() -> np.ndarray:
    """:func:`helpers.model.fast_blas.addresses`, looked up once."""
    if not _BLAS:
        _BLAS.append(fast_blas.addresses())
    return _BLAS[0]


def _k():
    """The kernels module (compiled on first use; numba must be available)."""
    fast.require()
    from . import fast_crew, fast_gated_kernels, fast_math

    if not _TOLERANT:
        _TOLERANT.append(True)
        for module in (fast_gated_kernels, fast_crew, fast_math, fast_blas, fast_sync):
            for kernel in vars(module).values():
                if hasattr(kernel, "py_func"):  # an unreadable on-disk cache is rebuilt with a note
                    fast.tolerate_broken_cache(kernel)
    return fast_gated_kernels


class Workspace:
    """Every buffer of one update of ``cell`` with these sizes, allocated once.

    Per layer l: Z[l] (T, B, G m) the gates, H[l] (T+1, B, m) the states, D[l] (T, B, m) the input of
    the layer above with its dropout mask applied; the GRU's Wn[l] = W_n h_{t-1}, the LSTM's S[l]
    (T+1, B, m) cell states and TS[l] = tanh(s_t). Shared by the layers: dZ, dR (T, B, G m), dH (T, B, m),
    P (T B, K) and the threads' scratch. A crew (:func:`_crew`) keeps the gates, cell states and
    gradients per thread instead (:func:`helpers.model.fast_crew.buffers`), so Z, S, TS, dZ and dH are None.
    """

    def __init__(
        self, cell: str, m: int, K: int, B: int, T: int, layers: int = 1, dtype=np.float64, threads: int = 1
    ):
        if cell not in CELLS:
            raise ValueError(f"the gated numba path serves {', '.join(CELLS)}, not {cell!r}")
        self.cell, self.m, self.K, self.B, self.T, self.layers = (
            cell,
            int(m),
            int(K),
            int(B),
            int(T),
            int(layers),
        )
        self.crew = _crew(cell, self.m, self.layers, threads)
        self.dtype, (self.n, self.blas_threads) = (
            np.dtype(dtype),
            _split(threads, self.B, self.layers, self.crew),
        )
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"the fast path supports float64 and float32, not {self.dtype}")
        G, n, Bc, e = CELLS[cell] * m, self.n, -(-self.B // self.n), lambda *s: np.zeros(s, self.dtype)
        own = self.crew  # the crew's threads keep these per thread
        self.Z = None if own else [e(T, B, G) for _ in range(layers)]
        self.H = [e(T + 1, B, m) for _ in range(layers)]
        self.D = [e(T, B, m) for _ in range(layers)]
        self.Wn = [e(T, B, m) for _ in range(layers)] if cell == "gru" else None
        self.S = [e(T + 1, B, m) for _ in range(layers)] if cell == "lstm" and not own else None
        self.TS = [e(T, B, m) for _ in range(layers)] if cell == "lstm" and not own else None
        self.dZ, self.dR, self.dH, self.P = (
            None if own else e(T, B, G),
            (e(T, B, G) if cell == "gru" else None),
            None if own else e(T, B, m),
            e(T * B, K),
        )
        self.R, self.G1, self.G2 = e(n, Bc, G), e(n, Bc, m), e(n, Bc, m)
        self.part = e(n, G, m)  # per-thread dW, dU_l
        self.part_V, self.part_U, self.part_c = e(n, K, m), e(n, K + 1, G), e(n, 1, K)
        self.UT, self.WT, self.dUT, self.VT = e(K, G), e(m, G + PAD)[:, :G], e(K, G), e(m, K)
        self.none_X, self.none_mask = np.zeros((0, 0), np.int64), e(0, 0, 0)
        if own:
            from . import fast_crew

            self.crew_ws, self.loss, self.sync = (
                fast_crew.buffers(n, m, K, B, T, e),
                np.zeros(n),
                fast_sync.new(),
            )

    def fits(self, cell: str, p: ParamSet, B: int, T: int, threads: int) -> bool:
        """Whether these buffers serve ``cell`` with parameters ``p`` on a (B, T) batch and ``threads``."""
        return (
            cell == self.cell
            and p.m == self.m
            and p.K == self.K
            and p.layers == self.layers
            and B == self.B
            and T == self.T
            and p.flat.dtype == self.dtype
            and _crew(cell, p.m, p.layers, threads) == self.crew
            and _split(threads, B, p.layers, self.crew) == (self.n, self.blas_threads)
        )


def _crew(cell: str, m: int, layers: int, threads: int) -> bool:
    """Whether a crew of ``threads`` runs the update (:mod:`helpers.model.fast_crew`): a one-layer
    LSTM on more than one thread, its m units cut evenly between them, on a threading layer that
    runs every ``prange`` iteration on a thread of its own (workqueue, OpenMP; TBB may run two on
    one thread, which a barrier would wait on forever)."""
    threads = max(1, min(int(threads), fast.numba.config.NUMBA_NUM_THREADS))
    layer = fast.numba.config.THREADING_LAYER in ("workqueue", "omp")
    return layer and cell == "lstm" and layers == 1 and threads > 1 and m % threads == 0


def _split(threads: int, B: int, layers: int, crew: bool = False) -> tuple[int, int]:
    """(numba threads, BLAS threads for the products) for ``threads``: a crew (threads, 1), another
    one-layer network (1, threads), a stack (min(threads, B), 1), cutting the B streams into chunks;
    at most numba's thread count (NUMBA_NUM_THREADS, default: every core). See the module's docstring."""
    threads = max(1, min(int(threads), fast.numba.config.NUMBA_NUM_THREADS))
    if crew:
        return threads, 1
    if layers == 1:
        return 1, threads
    return max(1, min(threads, B)), 1


def loss_and_grads(
    cell: str,
    p: ParamSet,
    X,
    Y,
    state,
    grads: ParamSet,
    masks=None,
    ws: Workspace | None = None,
    threads: int = 1,
):
    """Forward and BPTT over a mini-batch: ``cells.loss_and_grads`` compiled for the GRU and the LSTM.

    X, Y (B, T) ints in [0, K); state (B, L S m); masks None or L arrays (T, B, m). Writes the mean
    gradients (unclipped) into ``grads`` and returns (mean loss over the B streams, state after the
    last step (B, L S m)).
    """
    k, bl = _k(), blas()
    X, Y = np.ascontiguousarray(X, dtype=np.int64), np.asarray(Y)
    if X.ndim != 2 or X.shape != Y.shape or X.size == 0:
        raise ValueError(f"X and Y must be (B, T) index arrays of one shape, got {X.shape} and {Y.shape}")
    (B, T), m = X.shape, p.m
    if ws is None or not ws.fits(cell, p, B, T, threads):
        ws = Workspace(cell, m, p.K, B, T, p.layers, p.flat.dtype, threads)
    if X.min() < 0 or X.max() >= p.K or Y.min() < 0 or Y.max() >= p.K:
        raise ValueError(f"character indices must lie in [0, {p.K})")
    before = fast.numba.get_num_threads()
    fast.numba.set_num_threads(ws.n)
    try:
        with fast_blas.threads(ws.blas_threads):
            return _loss_and_grads(k, bl, cell, p, X, Y, state, grads, masks, ws)
    finally:
        fast.numba.set_num_threads(before)  # numba's count and BLAS's as the caller had them


def _loss_and_grads(k, bl, cell, p, X, Y, state, grads, masks, ws):
    """The body of :func:`loss_and_grads`, its arguments checked and ``ws`` fitting them."""
    (B, T), m = X.shape, p.m
    if ws.crew:
        from . import fast_crew

        mask = ws.none_mask if masks is None else np.ascontiguousarray(masks[0], dtype=ws.dtype)
        return fast_crew.loss_and_grads(bl, p, X, Y, state, grads, mask, ws)
    n, Sm, N = ws.n, (2 if cell == "lstm" else 1) * m, T * B
    below, states = None, []
    for l in range(p.layers):
        lp = p.layer(l + 1)
        np.copyto(ws.WT, lp.W.T)
        H, Z = ws.H[l], ws.Z[l]
        H[0] = state[:, l * Sm : l * Sm + m]
        if l == 0:
            np.copyto(ws.UT, lp.U.T)
            Xk = X
        else:
            k.rows_dot(
                bl, below.reshape(N, m), np.ascontiguousarray(lp.U.T), Z.reshape(N, -1), n
            )  # U_l (d h^{l-1}_t)
            Xk = ws.none_X
        if cell == "gru":
            args = (bl, Xk, ws.UT, lp.b, Z, H, ws.Wn[l], ws.WT)
            k.gru_forward_rows(*args, ws.R[0], 0, B) if n == 1 else k.gru_forward(*args, ws.R, n)
            states.append(H[T])
        else:
            ws.S[l][0] = state[:, l * Sm + m : (l + 1) * Sm]
            args = (bl, Xk, ws.UT, lp.b, Z, H, ws.S[l], ws.TS[l], ws.WT)
            k.lstm_forward_rows(*args, ws.R[0], 0, B) if n == 1 else k.lstm_forward(*args, ws.R, n)
            states.extend((H[T], ws.S[l][T]))
        below = H[1:]
        if masks is not None:
            args = (H[1:].reshape(N, m), _rows(masks[l], N, ws.dtype), ws.D[l].reshape(N, m))
            k.multiply_rows(*args, 0, N) if n == 1 else k.multiply(*args, n)
            below = ws.D[l]  # d^l * h^l_t
    top = below.reshape(N, m)
    np.copyto(ws.VT, p.V.T)
    args = (bl, top, ws.VT, p.c, np.ascontiguousarray(Y.T).reshape(-1), ws.P, ws.dtype.type(B))
    loss = k.softmax_rows(*args, 0, N) if n == 1 else k.softmax_loss(*args, n)
    _backward(k, bl, cell, p, X, grads, masks, ws, top)
    return loss / B, np.concatenate(states, axis=1)


def _sums(k, dZ, X, db, dUT, part, n: int) -> None:
    """``bias_and_inputs`` of the kernels; with one thread its ``sums_rows`` on this one."""
    if n > 1:
        return k.bias_and_inputs(dZ, X, db, dUT, part, n)
    k.sums_rows(dZ, X, part[0], 0, dZ.shape[0])
    np.copyto(db, part[0, -1])
    if X.shape[0]:
        np.copyto(dUT, part[0, :-1])


def _rows(a, N: int, dtype) -> np.ndarray:
    """``a`` as a C-contiguous (N, m) array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype).reshape(N, -1)


def _backward(k, bl, cell, p, X, grads, masks, ws, top) -> None:
    """BPTT after the forward pass of :func:`loss_and_grads`: every gradient into ``grads``."""
    B, m, n, N = ws.B, p.m, ws.n, ws.T * ws.B
    dO, dH2 = ws.P, ws.dH.reshape(N, m)
    k.tdot(bl, dO, top, grads.V, ws.part_V, n)  # dV = sum dL/do_t h_t^T
    _sums(k, dO, ws.none_X, grads.c, ws.dUT, ws.part_c, n)  # dc = sum dL/do_t
    k.rows_dot(bl, dO, p.V, dH2, n)  # dL/dh^L_t from the outputs
    for l in range(p.layers - 1, -1, -1):
        lp, g, H = p.layer(l + 1), grads.layer(l + 1), ws.H[l]
        mask = ws.none_mask if masks is None else np.ascontiguousarray(masks[l], dtype=ws.dtype)
        if cell == "gru":
            args = (bl, ws.Z[l], H, ws.Wn[l], ws.dH, mask, lp.W, ws.dZ, ws.dR)
            k.gru_backward_rows(*args, ws.G1[0], 0, B) if n == 1 else k.gru_backward(*args, ws.G1, n)
            dR = ws.dR
        else:
            args = (bl, ws.Z[l], ws.S[l], ws.TS[l], ws.dH, mask, lp.W, ws.dZ)
            k.lstm_backward_rows(*args, ws.G1[0], ws.G2[0], 0, B) if n == 1 else k.lstm_backward(
                *args, ws.G1, ws.G2, n
            )
            dR = ws.dZ
        dZ2 = ws.dZ.reshape(N, -1)
        k.tdot(
            bl, dR.reshape(N, -1), H[:-1].reshape(N, m), g.W, ws.part, n
        )  # dW = sum dL/d(W h_{t-1}) h_{t-1}^T
        if l == 0:
            _sums(k, dZ2, X, g.b, ws.dUT, ws.part_U, n)  # db, and dU for one-hot inputs
            np.copyto(g.U, ws.dUT.T)
        else:
            _sums(k, dZ2, ws.none_X, g.b, ws.dUT, ws.part_U, n)
            below = (ws.H[l - 1][1:] if masks is None else ws.D[l - 1]).reshape(N, m)
            k.tdot(bl, dZ2, below, g.U, ws.part, n)  # dU_l = sum dL/dz_t (d h^{l-1}_t)^T
            k.rows_dot(bl, dZ2, lp.U, dH2, n)  # dL/d(d h^{l-1}_t)
