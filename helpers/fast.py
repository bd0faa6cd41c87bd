"""Optional numba JIT path for the training step and the sampler (``pip install numba``).

Same model and same math as :mod:`helpers.rnn` / :mod:`helpers.optim` / :mod:`helpers.synth`,
as compiled loops over the preallocated buffers, so one update runs without per-time-step
Python or numpy-call overhead:

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]       (then BPTT, clip to [-5, 5], AdaGrad)

Every kernel is compiled with ``fastmath=False`` (IEEE semantics, no reassociation) and works in
float64 and float32 in the dtype of its arrays. The matrix-vector products are written as
``y += a * row`` loops over contiguous rows (W and V are transposed into scratch buffers once
per update for the products that need columns), which the compiler vectorizes without
reordering any sum. Results therefore agree with the numpy path to rounding (about 1e-13
relative in float64), not bit for bit; ``clip_adagrad_`` does the same operations in the same
order as ``optim.clip_`` + ``optim.adagrad_`` and matches them exactly.

numba is optional: when it is missing, ``AVAILABLE`` is False, ``REASON`` says why, and every
function here raises ``RuntimeError`` with that reason. Gradient checking never uses this path.

Public API (Python level, on :class:`helpers.params.ParamSet` objects)
    loss_and_grads(p, x, y, hprev, grads, ws=None) -> (loss, hlast)    like rnn.loss_and_grads
    clip_adagrad_(theta, g, mem, eta, eps=1e-8, limit=5.0)              clip g, then AdaGrad
    sample_indices(p, h0, x0, n, rng, temperature=1.0, top_p=1.0)       like synth.sample_indices
    FastStep(params, grads, mem, seq_length).update(x, y, hprev, eta)   one fused update
    warmup(dtype=None)                                                  compile ahead of time
The raw kernels (``*_kernel``) take the individual arrays and are documented below.
"""
from __future__ import annotations

import math

import numpy as np

from .optim import CLIP, EPS
from .params import ParamSet

try:
    import numba
    from numba import njit
except ImportError as exc:  # numba is an optional dependency (the "fast" extra)
    numba = None
    AVAILABLE = False
    REASON = (f"numba is not installed ({exc}); the numba JIT path is optional. Install it with "
              "`pip install numba` (or `pip install -e .[fast]`), or use the numpy path (helpers.rnn).")
else:
    AVAILABLE = True
    REASON = ""

_JIT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


def _require() -> None:
    if not AVAILABLE:
        raise RuntimeError(REASON)


if AVAILABLE:

    @njit(**_JIT)
    def _transpose_into(A, out):
        """out = A.T for a 2-D A (n, k) and out (k, n), both C-contiguous."""
        n, k = A.shape
        for i in range(n):
            row = A[i]
            for j in range(k):
                out[j, i] = row[j]

    @njit(**_JIT)
    def loss_and_grads_kernel(U, W, V, b, c, x, y, hprev, dU, dW, dV, db, dc, H, P, dA, WT, VT, tmp):
        """Forward and BPTT over one sequence; writes dU, dW, dV, db, dc; returns (loss, T).

        Parameters
        ----------
        U (m,K), W (m,m), V (K,m), b (m,), c (K,) : float arrays, C-contiguous, one dtype
        x, y : int arrays (T,), T >= 1
        hprev : (m,) h_0
        dU, dW, dV, db, dc : gradient outputs, shapes as the parameters (overwritten)
        H : (>= T+1, m) scratch; afterwards H[:T+1] holds h_0 .. h_T (so H[T] is h_T)
        P : (>= T, K) scratch; afterwards holds dL/do_t = p_t - onehot(y_t)
        dA : (>= T, m) scratch; afterwards holds dL/da_t
        WT (m,m), VT (m,K) : scratch for W.T and V.T
        tmp : (m,) scratch

        The loss is accumulated in float64 (each -log p_t[y_t] is computed in the arrays' dtype).
        """
        m, K = U.shape
        T = x.shape[0]
        one = H.dtype.type(1.0)
        zero = H.dtype.type(0.0)
        _transpose_into(W, WT)
        _transpose_into(V, VT)
        h0 = H[0]
        for i in range(m):
            h0[i] = hprev[i]
        loss = 0.0
        # ---- forward ----
        for t in range(T):
            xt = x[t]
            a = tmp
            for i in range(m):  # U x_t + b: gather column x_t of U
                a[i] = U[i, xt] + b[i]
            hp = H[t]
            for j in range(m):  # + W h_{t-1}, as a sum of W's columns (rows of W.T)
                hj = hp[j]
                wrow = WT[j]
                for i in range(m):
                    a[i] += wrow[i] * hj
            hn = H[t + 1]
            for i in range(m):
                hn[i] = np.tanh(a[i])
            o = P[t]
            for k in range(K):
                o[k] = c[k]
            for j in range(m):  # o_t = V h_t + c
                hj = hn[j]
                vrow = VT[j]
                for k in range(K):
                    o[k] += vrow[k] * hj
            omax = o[0]
            for k in range(1, K):
                if o[k] > omax:
                    omax = o[k]
            s = zero
            for k in range(K):
                e = np.exp(o[k] - omax)
                o[k] = e
                s += e
            for k in range(K):
                o[k] = o[k] / s
            loss += -np.log(o[y[t]])
        # ---- backward ----
        for t in range(T):
            P[t, y[t]] -= one  # dL/do_t = p_t - onehot(y_t)
        for k in range(K):  # dL/dc = sum_t dL/do_t ; dL/dV = sum_t dL/do_t h_t^T
            dc[k] = zero
        for t in range(T):
            do = P[t]
            for k in range(K):
                dc[k] += do[k]
        for k in range(K):
            row = dV[k]
            for j in range(m):
                row[j] = zero
            for t in range(T):
                s = P[t, k]
                hn = H[t + 1]
                for j in range(m):
                    row[j] += s * hn[j]
        for t in range(T - 1, -1, -1):
            # dL/dh_t = V^T dL/do_t + W^T dL/da_{t+1};  dL/da_t = dL/dh_t * (1 - h_t^2)
            da = dA[t]
            for j in range(m):
                da[j] = zero
            do = P[t]
            for k in range(K):
                s = do[k]
                vrow = V[k]
                for j in range(m):
                    da[j] += vrow[j] * s
            if t < T - 1:
                danext = dA[t + 1]
                for i in range(m):
                    s = danext[i]
                    wrow = W[i]
                    for j in range(m):
                        da[j] += wrow[j] * s
            hn = H[t + 1]
            for j in range(m):
                da[j] = da[j] * (one - hn[j] * hn[j])
        for i in range(m):  # dL/dW = sum_t dL/da_t h_{t-1}^T ; dL/db = sum_t dL/da_t
            row = dW[i]
            for j in range(m):
                row[j] = zero
            for t in range(T):
                s = dA[t, i]
                hp = H[t]
                for j in range(m):
                    row[j] += s * hp[j]
        for i in range(m):
            db[i] = zero
        for t in range(T):
            da = dA[t]
            for i in range(m):
                db[i] += da[i]
        for i in range(m):  # dL/dU = sum_t dL/da_t x_t^T: add dL/da_t to column x_t
            row = dU[i]
            for k in range(K):
                row[k] = zero
        for t in range(T):
            xt = x[t]
            da = dA[t]
            for i in range(m):
                dU[i, xt] += da[i]
        return loss, T

    @njit(**_JIT)
    def clip_adagrad_kernel(theta, g, mem, eta, eps, limit):
        """In place, one pass over flat arrays of one dtype (eta, eps, limit in that dtype too):

            g <- clip(g, -limit, limit);  mem <- mem + g*g;  theta <- theta - (g / sqrt(mem + eps)) * eta

        NaN gradients stay NaN (as with np.clip). Returns nothing.
        """
        for i in range(theta.shape[0]):
            gi = g[i]
            if gi > limit:
                gi = limit
            elif gi < -limit:
                gi = -limit
            g[i] = gi
            mi = mem[i] + gi * gi
            mem[i] = mi
            theta[i] -= (gi / np.sqrt(mi + eps)) * eta

    @njit(**_JIT)
    def all_finite_kernel(a):
        """True when every entry of the flat array ``a`` is finite."""
        acc = a.dtype.type(0.0)
        for i in range(a.shape[0]):
            acc += a[i] * 0  # inf * 0 and nan * 0 are nan
        return acc == 0

    @njit(**_JIT)
    def sample_indices_kernel(U, W, V, b, c, h0, x0, u, out, temperature):
        """Sample len(u) indices into ``out`` with the pre-drawn uniforms ``u``; returns h_n.

        Per step: h = tanh(W h + U x + b); o = (V h + c) / temperature (skipped when 1);
        cdf = cumsum(exp(o - max o)); x = min(searchsorted(cdf, u_t * cdf[-1], side="right"), K-1).
        The same semantics as synth.sample_indices with top_p = 1.
        """
        m, K = U.shape
        n = u.shape[0]
        WT = np.empty((m, m), W.dtype)
        _transpose_into(W, WT)
        VT = np.empty((m, K), V.dtype)
        _transpose_into(V, VT)
        h = np.empty(m, W.dtype)
        for i in range(m):
            h[i] = h0[i]
        a = np.empty(m, W.dtype)
        cdf = np.empty(K, W.dtype)
        zero = W.dtype.type(0.0)
        temp = W.dtype.type(temperature)
        divide = temperature != 1.0
        x = x0
        for t in range(n):
            for i in range(m):
                a[i] = zero
            for j in range(m):
                hj = h[j]
                wrow = WT[j]
                for i in range(m):
                    a[i] += wrow[i] * hj
            for i in range(m):
                h[i] = np.tanh(a[i] + U[i, x] + b[i])
            for k in range(K):
                cdf[k] = zero
            for j in range(m):
                hj = h[j]
                vrow = VT[j]
                for k in range(K):
                    cdf[k] += vrow[k] * hj
            for k in range(K):
                o = cdf[k] + c[k]
                if divide:
                    o = o / temp
                cdf[k] = o
            omax = cdf[0]
            for k in range(1, K):
                if cdf[k] > omax:
                    omax = cdf[k]
            s = zero
            for k in range(K):
                s += np.exp(cdf[k] - omax)
                cdf[k] = s
            v = u[t] * cdf[K - 1]
            lo, hi = 0, K  # first index with cdf > v (searchsorted side="right")
            while lo < hi:
                mid = (lo + hi) >> 1
                if cdf[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
            x = min(lo, K - 1)
            out[t] = x
        return h


# ---------------------------------------------------------------------------------------------
# Python-level API on ParamSet objects
# ---------------------------------------------------------------------------------------------


class Workspace:
    """Scratch buffers of the fast path for sequences of up to ``seq_length`` steps."""

    def __init__(self, m: int, K: int, seq_length: int, dtype=np.float64):
        T = int(seq_length)
        if T < 1:
            raise ValueError(f"seq_length must be >= 1, got {seq_length!r}")
        self.m, self.K, self.T, self.dtype = int(m), int(K), T, np.dtype(dtype)
        self.H = np.empty((T + 1, m), dtype)
        self.P = np.empty((T, K), dtype)
        self.dA = np.empty((T, m), dtype)
        self.WT = np.empty((m, m), dtype)
        self.VT = np.empty((m, K), dtype)
        self.tmp = np.empty(m, dtype)

    def fits(self, p: ParamSet, T: int) -> bool:
        """Whether these buffers serve parameters ``p`` and a sequence of length ``T``."""
        return p.m == self.m and p.K == self.K and T <= self.T and p.flat.dtype == self.dtype


def _index_array(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int64 or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=np.int64)
    return a


def _vector(h, dtype) -> np.ndarray:
    h = np.asarray(h)
    if h.dtype != dtype or not h.flags.c_contiguous:
        h = np.ascontiguousarray(h, dtype=dtype)
    return h


def _check_sequence(p: ParamSet, x: np.ndarray, y: np.ndarray, hprev: np.ndarray) -> None:
    T = x.shape[0]
    if x.ndim != 1 or y.shape != (T,) or T < 1:
        raise ValueError(f"x and y must be 1-D index arrays of one length >= 1, got shapes {x.shape}, {y.shape}")
    if hprev.shape != (p.m,):
        raise ValueError(f"hprev has shape {hprev.shape}, expected ({p.m},)")
    # the kernels do not check bounds: an index outside [0, K) would read or write out of bounds
    lo, hi = min(int(x.min()), int(y.min())), max(int(x.max()), int(y.max()))
    if lo < 0 or hi >= p.K:
        raise ValueError(f"character indices must lie in [0, {p.K}), got values in [{lo}, {hi}]")


def loss_and_grads(p: ParamSet, x, y, hprev, grads: ParamSet, ws: Workspace | None = None):
    """Forward and BPTT over one sequence: the numba version of ``helpers.rnn.loss_and_grads``.

    Parameters
    ----------
    p : ParamSet (float64 or float32)
    x, y : int arrays (T,)
        Input and target indices in [0, K).
    hprev : array (m,)
        h_0.
    grads : ParamSet of p's layout and dtype
        Receives dL/dU ... dL/dc (unclipped).
    ws : Workspace, optional
        Buffers to reuse (allocated when omitted or when they do not fit).

    Returns
    -------
    loss : float
    hlast : ndarray (m,)
        h_T, a copy.
    """
    _require()
    x, y = _index_array(x), _index_array(y)
    hprev = _vector(hprev, p.flat.dtype)
    _check_sequence(p, x, y, hprev)
    if grads.flat.dtype != p.flat.dtype or grads.m != p.m or grads.K != p.K:
        raise ValueError("grads must have the parameters' layout and dtype (use p.zeros_like())")
    T = x.shape[0]
    if ws is None or not ws.fits(p, T):
        ws = Workspace(p.m, p.K, T, p.flat.dtype)
    loss, _ = loss_and_grads_kernel(p.U, p.W, p.V, p.b, p.c, x, y, hprev, grads.U, grads.W, grads.V,
                                    grads.b, grads.c, ws.H, ws.P, ws.dA, ws.WT, ws.VT, ws.tmp)
    return float(loss), ws.H[T].copy()


def clip_adagrad_(theta: np.ndarray, g: np.ndarray, mem: np.ndarray, eta: float, eps: float = EPS,
                  limit: float = CLIP) -> None:
    """Clip ``g`` to [-limit, limit] in place, then one AdaGrad step on ``theta`` and ``mem``.

    Equivalent to ``optim.clip_(g, limit); optim.adagrad_(theta, g, mem, eta, eps)`` (same
    operations in the same order, in the arrays' dtype) in a single pass over flat,
    C-contiguous arrays of one shape and dtype.
    """
    _require()
    if not (theta.shape == g.shape == mem.shape and theta.ndim == 1):
        raise ValueError(f"theta, g and mem must be flat arrays of one shape, got {theta.shape}, {g.shape}, {mem.shape}")
    if not (theta.dtype == g.dtype == mem.dtype):
        raise ValueError(f"theta, g and mem must share one dtype, got {theta.dtype}, {g.dtype}, {mem.dtype}")
    if not (theta.flags.c_contiguous and g.flags.c_contiguous and mem.flags.c_contiguous):
        raise ValueError("theta, g and mem must be C-contiguous (e.g. ParamSet.flat)")
    f = theta.dtype.type
    clip_adagrad_kernel(theta, g, mem, f(eta), f(eps), f(limit))


def all_finite(a: np.ndarray) -> bool:
    """Whether every entry of a flat array is finite (one pass, no temporaries)."""
    _require()
    return bool(all_finite_kernel(a))


def sample_indices(p: ParamSet, h0, x0: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, top_p: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The numba version of ``helpers.synth.sample_indices`` (same arguments, same result).

    Draws ``u = rng.random(n)`` up front exactly as synth does, so with the same ``rng`` state
    it returns the same indices (in float64; up to a tie at a rounding boundary, which has
    probability ~1e-14 per character). ``top_p < 1`` is delegated to synth.sample_indices.

    Returns
    -------
    indices : int64 array (n,)
    h : array (m,), the hidden state after the last step.
    """
    from . import synth

    synth._check_options(n, temperature, top_p)
    if top_p < 1.0:
        return synth.sample_indices(p, h0, x0, n, rng, temperature, top_p)
    _require()
    x0 = int(x0)
    if not 0 <= x0 < p.K:
        raise ValueError(f"x0 must lie in [0, {p.K}), got {x0}")
    h0 = _vector(h0, p.flat.dtype)
    if h0.shape != (p.m,):
        raise ValueError(f"h0 has shape {h0.shape}, expected ({p.m},)")
    u = rng.random(int(n))
    out = np.empty(int(n), dtype=np.int64)
    h = sample_indices_kernel(p.U, p.W, p.V, p.b, p.c, h0, x0, u, out, float(temperature))
    return out, h


class FastStep:
    """One full training update on preallocated buffers: loss + BPTT, clip, AdaGrad.

    Parameters
    ----------
    params, grads, mem : ParamSet
        The parameters (updated in place), a gradient buffer and AdaGrad's state, one layout
        and dtype.
    seq_length : int
        The longest sequence ``update`` will see.
    eps, limit : float
        AdaGrad's epsilon and the clipping limit.

    After ``update``, ``grads`` holds the clipped gradients and ``finite`` says whether the loss
    and every (unclipped) gradient entry were finite. When they were not, the step is skipped:
    ``params`` and ``mem`` are left untouched and ``grads`` holds the raw gradients, so the
    caller can report the problem (the trainer raises NonFiniteLossError).
    """

    def __init__(self, params: ParamSet, grads: ParamSet, mem: ParamSet, seq_length: int,
                 eps: float = EPS, limit: float = CLIP):
        _require()
        for name, q in (("grads", grads), ("mem", mem)):
            if q.m != params.m or q.K != params.K or q.flat.dtype != params.flat.dtype:
                raise ValueError(f"{name} must have the parameters' layout and dtype")
        self.params, self.grads, self.mem = params, grads, mem
        self.ws = Workspace(params.m, params.K, seq_length, params.flat.dtype)
        self.eps, self.limit = float(eps), float(limit)
        self.finite = True
        f = params.flat.dtype.type
        self._eps, self._limit, self._f = f(eps), f(limit), f
        p, g, ws = params, grads, self.ws
        self._args = (p.U, p.W, p.V, p.b, p.c)
        self._gargs = (g.U, g.W, g.V, g.b, g.c, ws.H, ws.P, ws.dA, ws.WT, ws.VT, ws.tmp)

    def update(self, x, y, hprev, eta: float) -> tuple[float, np.ndarray]:
        """Loss and gradients on (x, y) from h_0 = hprev, then clip and one AdaGrad step.

        Returns
        -------
        loss : float
            The loss before the step.
        hlast : ndarray (m,)
            h_T (a copy), the next update's hprev.
        """
        p = self.params
        x, y = _index_array(x), _index_array(y)
        hprev = _vector(hprev, p.flat.dtype)
        _check_sequence(p, x, y, hprev)
        T = x.shape[0]
        if T > self.ws.T:
            raise ValueError(f"sequence of length {T} is longer than seq_length={self.ws.T}")
        loss, _ = loss_and_grads_kernel(*self._args, x, y, hprev, *self._gargs)
        self.finite = math.isfinite(loss) and bool(all_finite_kernel(self.grads.flat))
        if self.finite:
            clip_adagrad_kernel(p.flat, self.grads.flat, self.mem.flat, self._f(eta), self._eps, self._limit)
        return float(loss), self.ws.H[T].copy()


def warmup(dtype=None) -> None:
    """Compile (or load from numba's on-disk cache) every kernel for ``dtype``.

    ``dtype`` is float64, float32, or None for both. The first call per dtype in a fresh
    process costs well under a second with a warm cache (a few seconds to compile the first time).
    """
    _require()
    dtypes = (np.float64, np.float32) if dtype is None else (dtype,)
    rng = np.random.default_rng(0)
    for dt in dtypes:
        p = ParamSet(3, 4, dtype=dt)
        p.flat[...] = rng.standard_normal(p.flat.size) * 0.1
        g, mem = p.zeros_like(), p.zeros_like()
        x = np.array([0, 1], dtype=np.int64)
        loss_and_grads(p, x, x, np.zeros(3, dt), g)
        clip_adagrad_(p.flat, g.flat, mem.flat, 0.1)
        all_finite(g.flat)
        sample_indices(p, np.zeros(3, dt), 0, 2, rng)
