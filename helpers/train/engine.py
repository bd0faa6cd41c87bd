"""Training engines: the numpy path (every cell, any batch) and the numba path (the vanilla RNN
with one stream; the GRU and the LSTM with any layers, dropout and batch), behind one small
interface the trainer calls. ``engine="auto"`` is numba for the gated cells when numba is
installed and numpy otherwise (the vanilla RNN's default run stays the numpy one).

An engine computes ``loss_and_grads(p, X, Y, state, grads)`` on mini-batches (B, T) with state
(B, S m), takes the clipped optimizer step, and names the sampler it draws training samples
with. The numba engine gives the same results to rounding (its fused clip + AdaGrad and clip +
Adam steps are bit-identical to :func:`helpers.train.optim.clip_` + :func:`~helpers.train.optim.adagrad_`
or :func:`~helpers.train.optim.adam`).
"""

from __future__ import annotations

import numpy as np

from ..model import cells, sample
from . import optim
from .config import TrainConfig


def _fast():
    """helpers.model.fast, imported when the numba engine is asked for (numba takes ~0.4 s to import)."""
    from ..model import fast

    return fast


class NumpyEngine:
    """Every cell and batch size, on numpy; reuses the cell's workspace between updates."""

    name = "numpy"

    def __init__(self, cfg: TrainConfig, K: int, dtype):
        self.cfg, self.cell = cfg, cells.get(cfg.cell)
        self.ws = self.cell.workspace(cfg.m, K, cfg.seq_length, dtype) if cfg.batch_size == 1 else None
        self.sampler = sample.sample_indices

    def loss_and_grads(self, p, X, Y, state, grads, masks=None):
        """Mean loss over the streams and the state after the last step; gradients into ``grads``.
        ``masks``: the update's dropout masks, or None."""
        loss, cache = self.cell.forward(p, X, Y, state, self.ws, masks)
        self.cell.backward(p, cache, grads)
        return loss, cache["state"]

    def step(self, theta, g, slots, t: int, tmp, eta: float | None = None, decay=None) -> None:
        """Clip the gradients to [-clip, clip] (the assignment's 5; 0: not), then to an L2 norm of
        clip_norm (0: not), decay the weights (``decay``: the mask of the weights, or None), then one
        optimizer step (update number ``t``) with learning rate ``eta`` (the configured one when None)."""
        cfg, eta = self.cfg, self.cfg.eta if eta is None else eta
        self.clip(g)
        if decay is not None:
            optim.decay_(theta, eta * cfg.weight_decay, decay)
        optim.OPTIMIZERS[cfg.optimizer](theta, g, slots, eta, t, tmp)

    def clip(self, g) -> None:
        """Clip the gradients in place to [-clip, clip] (0: not), then to an L2 norm of clip_norm (0: not)."""
        if self.cfg.clip:
            optim.clip_(g, self.cfg.clip)
        if self.cfg.clip_norm:
            optim.clip_norm_(g, self.cfg.clip_norm)


class NumbaEngine(NumpyEngine):
    """The compiled paths: the one-layer vanilla RNN for one stream without dropout
    (:mod:`helpers.model.fast`), and the GRU and the LSTM with any layers, dropout and batch
    (:mod:`helpers.model.fast_gated`) on ``threads`` threads (default: numba's, i.e. NUMBA_NUM_THREADS)."""

    name = "numba"

    def __init__(self, cfg: TrainConfig, K: int, dtype, threads: int | None = None):
        self.cfg, self.cell, fast = cfg, cells.get(cfg.cell), _fast()
        if cfg.cell in GATED:
            from ..model import fast_gated

            self.gated, self.threads = fast_gated, threads or fast.numba.config.NUMBA_NUM_THREADS
            self.ws = fast_gated.Workspace(
                cfg.cell, cfg.m, K, cfg.batch_size, cfg.seq_length, cfg.n_layers, dtype, self.threads
            )
            self.sampler = sample.sample_indices
        else:
            self.gated = None
            self.ws, self.sampler = fast.Workspace(cfg.m, K, cfg.seq_length, dtype), fast.sample_indices

    def loss_and_grads(self, p, X, Y, state, grads, masks=None):
        if self.gated is not None:
            return self.gated.loss_and_grads(
                self.cfg.cell, p, X, Y, state, grads, masks, self.ws, self.threads
            )
        loss, hlast = _fast().loss_and_grads(p, X[0], Y[0], state[0], grads, self.ws)
        return loss, hlast[None, :]

    def step(self, theta, g, slots, t: int, tmp, eta: float | None = None, decay=None) -> None:
        cfg, eta = self.cfg, self.cfg.eta if eta is None else eta
        if cfg.optimizer == "adagrad" and cfg.clip == optim.CLIP and not cfg.clip_norm and decay is None:
            clip_adagrad_(theta, g, slots[0], eta)
        elif cfg.optimizer == "adam" and decay is None:
            if cfg.clip_norm:  # the norm is numpy's (BLAS's sum), so the clipping before it is too
                self.clip(g)
            clip_adam_(theta, g, slots, eta, t, 0.0 if cfg.clip_norm else cfg.clip)
        else:
            super().step(theta, g, slots, t, tmp, eta, decay)


GATED = ("gru", "lstm")
"""The cells the numba engine serves with any layers, dropout and batch (``engine="auto"`` picks it for them)."""


def make(cfg: TrainConfig, K: int, dtype, out=print) -> NumpyEngine:
    """The engine ``cfg.engine`` names, or numpy with a note when numba cannot serve the run.

    ``"auto"``: numba for the GRU and the LSTM when numba is installed, else numpy (no note)."""
    if cfg.engine == "auto":
        return (
            NumbaEngine(cfg, K, dtype)
            if cfg.cell in GATED and _fast().AVAILABLE
            else NumpyEngine(cfg, K, dtype)
        )
    if cfg.engine == "numba":
        fast = _fast()
        one_stream_rnn = cfg.batch_size == 1 and cfg.n_layers == 1 and cfg.dropout == 0
        if fast.AVAILABLE and (cfg.cell in GATED or one_stream_rnn):
            return NumbaEngine(cfg, K, dtype)
        why = (
            fast.REASON
            if not fast.AVAILABLE
            else "it serves the GRU, the LSTM, and the vanilla RNN only one-layer with batch_size 1 and no dropout"
        )
        out(f"engine 'numba' unavailable ({why}); using numpy")
    return NumpyEngine(cfg, K, dtype)


def _flat_arrays(*arrays: np.ndarray) -> None:
    """Refuse arrays that are not flat, of one shape, C-contiguous and of one dtype (float64 or float32)."""
    if not all(a.ndim == 1 and a.shape == arrays[0].shape for a in arrays):
        raise ValueError(
            f"the arrays must be flat and of one shape, got {', '.join(str(a.shape) for a in arrays)}"
        )
    if len({a.dtype for a in arrays}) != 1 or arrays[0].dtype not in (np.float64, np.float32):
        raise ValueError(
            f"the arrays must share one dtype, float64 or float32; got {', '.join(str(a.dtype) for a in arrays)}"
        )
    if not all(a.flags.c_contiguous for a in arrays):
        raise ValueError("the arrays must be C-contiguous (e.g. ParamSet.flat)")


def clip_adam_(
    theta: np.ndarray, g: np.ndarray, slots, eta: float, t: int, limit: float = optim.CLIP
) -> None:
    """Clip ``g`` to [-limit, limit] (0: not), then Adam's step number ``t`` on ``theta`` and its
    moments ``slots`` = (m, v); all in place, compiled. Bit-identical to
    ``optim.clip_(g, limit); optim.adam(theta, g, slots, eta, t, tmp)``; flat arrays as in :func:`clip_adagrad_`.
    """
    fast = _fast()
    fast.require()
    m1, m2 = slots
    _flat_arrays(theta, g, m1, m2)
    f, b1, b2 = theta.dtype.type, optim.BETA1, optim.BETA2
    moments = (f(b1), f(1.0 - b1), f(b2), f(1.0 - b2))
    bias2, eps, step = f(1.0 - b2**t), f(optim.EPS), f(eta / (1.0 - b1**t))
    fast.kernels().clip_adam(theta, g, m1, m2, f(limit or np.inf), *moments, bias2, eps, step)


def clip_adagrad_(
    theta: np.ndarray,
    g: np.ndarray,
    mem: np.ndarray,
    eta: float,
    eps: float = optim.EPS,
    limit: float = optim.CLIP,
) -> None:
    """Clip ``g`` to [-limit, limit], then one AdaGrad step on ``theta`` and ``mem``; all in place, compiled.

    Bit-identical to ``optim.clip_(g, limit); optim.adagrad_(theta, g, mem, eta, eps)``.

    Parameters
    ----------
    theta, g, mem : (n,) arrays
        Flat, C-contiguous, one dtype (float64 or float32), e.g. the ``flat`` buffers of ParamSets.
    eta, eps, limit : float
        Learning rate, AdaGrad's epsilon, clipping limit (used in the arrays' dtype).
    """
    fast = _fast()
    fast.require()
    _flat_arrays(theta, g, mem)
    f = theta.dtype.type
    fast.kernels().clip_adagrad(theta, g, mem, f(eta), f(eps), f(limit))
