"""Optional numba JIT path for the vanilla RNN's loss and gradients and the sampler (``pip install -e .[fast]``).

The same model and the same math as :mod:`helpers.model.rnn` and :mod:`helpers.model.sample`,
compiled by numba, so one update costs a few native calls instead of a few hundred numpy calls
(the fused clip + AdaGrad step is :func:`helpers.train.engine.clip_adagrad_`):

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]       then BPTT, clip to [-5, 5], AdaGrad

The kernels live in :mod:`helpers.model.fast_kernels`: plain loops plus ``np.dot`` for the matrix
products (numba calls scipy's BLAS for those, hence the scipy requirement). Loss and gradients
agree with :mod:`helpers.model.rnn` to rounding (about 1e-13 relative in float64, 1e-5 in float32).
Like the numpy path,
run it under ``threadpoolctl.threadpool_limits(1, "blas")``: the matrices are too small for
BLAS threads to pay off. Gradient checking never uses this path.

numba (and scipy) are optional: when either is missing, ``AVAILABLE`` is False, ``REASON`` says
why and how to install them, and every function here raises ``RuntimeError(REASON)``. numba's
on-disk cache (``__pycache__`` beside fast_kernels.py) that is truncated or corrupted is rebuilt
with a note rather than raising (:func:`tolerate_broken_cache`).

API (on :class:`helpers.model.params.ParamSet` objects)
-------------------------------------------------
    Workspace(m, K, seq_length, dtype)                                scratch arrays, reusable
    loss_and_grads(p, x, y, hprev, grads, ws=None) -> (loss, hlast)   as rnn.loss_and_grads
    sample_indices(p, h0, x0, n, rng, temperature=1.0, top_p=1.0, cell="rnn")  as sample.sample_indices
    all_finite(a) -> bool                                              every entry finite
    warmup(dtype=None)                                                 compile / load the kernels
"""

from __future__ import annotations

import numpy as np

from . import sample
from .params import ParamSet

try:
    import numba

    # numba's np.dot calls scipy's BLAS; loading it now lets threadpool_limits limit it too
    import scipy.linalg.cython_blas  # noqa: F401

    from . import fast_kernels as _k
except ImportError as exc:  # optional dependencies: the project's "fast" extra
    numba = None
    AVAILABLE = False
    REASON = (
        f"the numba JIT path is unavailable ({exc}). It is optional: install it with "
        "`pip install numba scipy` (or `pip install -e .[fast]`), or use the numpy path "
        "(helpers.model.rnn, helpers.model.sample), which gives the same results."
    )
else:
    AVAILABLE = True
    REASON = ""


def tolerate_broken_cache(dispatcher, note=print) -> None:
    """Make numba take an unreadable on-disk cache of ``dispatcher`` (an ``@njit(cache=True)`` function) for a miss.

    numba ignores a cache written by another numba version, but a truncated or corrupted index
    (``.nbi``) or data file (``.nbc``), from a full disk or a killed process, makes it raise on
    the first call. Here such a cache is emptied (its index rewritten) with a note, the function
    compiled again and its cache written anew; a cache that cannot be written is skipped with a note.
    """
    cache = getattr(dispatcher, "_cache", None)
    load, save = getattr(cache, "load_overload", None), getattr(cache, "save_overload", None)
    if load is None or save is None or getattr(load, "tolerant", False):
        return
    name = getattr(dispatcher, "__name__", "a kernel")

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as err:  # pickle, EOF and OS errors of a broken file
            note(
                f"note: numba's cache of {name} is unreadable ({type(err).__name__}: {err}); compiling it again "
                "and rewriting the cache"
            )
            try:
                cache.flush()  # an empty index: the next save writes a good one
            except Exception as flush_err:
                note(
                    f"note: could not empty numba's cache of {name} ({flush_err}); delete __pycache__/*.nbi and "
                    "*.nbc beside helpers/model/fast_kernels.py (or NUMBA_CACHE_DIR) to stop this note"
                )
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception as err:
            note(
                f"note: numba could not cache {name} ({type(err).__name__}: {err}); it is compiled again next time"
            )

    load_overload.tolerant = True
    cache.load_overload, cache.save_overload = load_overload, save_overload


if AVAILABLE:
    from . import fast_math as _math

    for _kernel in [*vars(_k).values(), *vars(_math).values()]:
        if hasattr(_kernel, "py_func"):  # the @njit dispatchers
            tolerate_broken_cache(_kernel)


def require() -> None:
    """Raise RuntimeError(REASON) when numba is missing."""
    if not AVAILABLE:
        raise RuntimeError(REASON)


def kernels():
    """The compiled kernels module (:mod:`helpers.model.fast_kernels`); numba must be available."""
    require()
    return _k


class Workspace:
    """Scratch arrays of the fast path, for sequences of up to ``seq_length`` steps.

    Attributes (T = seq_length)
    ---------------------------
    H : (T+1, m)  hidden states: after ``loss_and_grads`` on a sequence of length T', H[t] = h_t
    A : (T, m)  U x_t + b in the forward pass, reused as dL/da_t in backward
    P : (T, K)  probabilities p_t, turned into dL/do_t in backward
    tmp : (m,)  one vector of scratch
    """

    def __init__(self, m: int, K: int, seq_length: int, dtype=np.float64):
        T = int(seq_length)
        if T < 1:
            raise ValueError(f"seq_length must be >= 1, got {seq_length!r}")
        self.m, self.K, self.T, self.dtype = int(m), int(K), T, np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"the fast path supports float64 and float32, not {self.dtype}")
        self.H = np.zeros((T + 1, self.m), dtype)
        self.A = np.zeros((T, self.m), dtype)
        self.P = np.zeros((T, self.K), dtype)
        self.tmp = np.zeros(self.m, dtype)

    def fits(self, p: ParamSet, T: int) -> bool:
        """Whether these buffers serve parameters ``p`` and a sequence of length ``T``."""
        return p.m == self.m and p.K == self.K and T <= self.T and p.flat.dtype == self.dtype


# ---- argument checks (the kernels trust their arguments) ----


def _check_params(p: ParamSet) -> None:
    if getattr(p, "gates", 1) != 1 or getattr(p, "layers", 1) != 1:
        raise ValueError(
            f"the fast path serves the one-layer vanilla RNN (gates=1); these parameters have "
            f"gates={p.gates}, layers={p.layers}"
        )
    if p.flat.dtype not in (np.float64, np.float32):
        raise ValueError(f"the fast path supports float64 and float32 parameters, not {p.flat.dtype}")
    if not p.flat.flags.c_contiguous:
        raise ValueError("the parameters' flat buffer must be C-contiguous")


def _indices(a) -> np.ndarray:
    """``a`` as a contiguous 1-D int64 array."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"character indices must be integers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"character indices must be a 1-D sequence, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _vector(h, p: ParamSet, name: str) -> np.ndarray:
    """``h`` as a contiguous (m,) array in the parameters' dtype."""
    h = np.ascontiguousarray(h, dtype=p.flat.dtype)
    if h.shape != (p.m,):
        raise ValueError(f"{name} has shape {h.shape}, expected ({p.m},)")
    return h


def _index_error(x: np.ndarray, y: np.ndarray, K: int) -> ValueError:
    """The error for sequences the kernel refused."""
    if x.shape != y.shape or x.shape[0] < 1:
        return ValueError(
            f"x and y must be index sequences of one length >= 1, got shapes {x.shape}, {y.shape}"
        )
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    return ValueError(f"character indices must lie in [0, {K}), got values in [{lo}, {hi}]")


# ---- the API ----


def loss_and_grads(p: ParamSet, x, y, hprev, grads: ParamSet, ws: Workspace | None = None):
    """Forward and BPTT over one sequence: the compiled ``helpers.model.rnn.loss_and_grads``.

    Parameters
    ----------
    p : ParamSet, float64 or float32, vanilla RNN (gates=1)
        U (m,K), W (m,m), V (K,m), b (m,), c (K,).
    x, y : int arrays (T,)
        Input and target indices in [0, K).
    hprev : array (m,)
        h_0.
    grads : ParamSet with p's layout and dtype
        Receives dL/dU ... dL/dc (unclipped).
    ws : Workspace, optional
        Buffers to reuse (new ones are made when omitted or when they do not fit).

    Returns
    -------
    loss : float
    hlast : ndarray (m,)
        h_T, a copy.
    """
    require()
    _check_params(p)
    if (
        grads.flat.dtype != p.flat.dtype
        or grads.flat.shape != p.flat.shape
        or grads.m != p.m
        or grads.K != p.K
    ):
        raise ValueError("grads must have the parameters' layout and dtype (use p.zeros_like())")
    x, y, hprev = _indices(x), _indices(y), _vector(hprev, p, "hprev")
    T = x.shape[0]
    if ws is None or not ws.fits(p, T):
        ws = Workspace(p.m, p.K, max(T, 1), p.flat.dtype)
    loss, ok = _k.loss_and_grads(p.flat, grads.flat, x, y, hprev, ws.H, ws.A, ws.P, ws.tmp)
    if not ok:
        raise _index_error(x, y, p.K)
    return float(loss), ws.H[T].copy()


def all_finite(a: np.ndarray) -> bool:
    """Whether every entry of the array ``a`` (any shape) is finite."""
    require()
    return bool(_k.all_finite(np.ascontiguousarray(a).reshape(-1)))


def sample_indices(
    p: ParamSet,
    h0,
    x0: int,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_p: float = 1.0,
    cell: str = "rnn",
) -> tuple[np.ndarray, np.ndarray]:
    """The compiled ``helpers.model.sample.sample_indices``: same arguments, same results.

    Draws ``u = rng.random(n)`` up front as sample_indices does, so from one ``rng`` state both give the
    same indices (unless the recurrence is chaotic enough to amplify rounding differences in
    the matrix products, as random weights with sig = 0.3 are). ``top_p < 1``, cells other
    than the vanilla RNN and stacked layers are handed to sample.sample_indices.

    Returns
    -------
    indices : int64 array (n,)
    h : array (m,)
        The hidden state after the last step.
    """
    sample.check_options(n, temperature, top_p)
    if top_p < 1.0 or cell != "rnn" or p.layers != 1:
        return sample.sample_indices(p, h0, x0, n, rng, temperature, top_p, cell)
    require()
    _check_params(p)
    if not 0 <= int(x0) < p.K:
        raise ValueError(f"x0 must lie in [0, {p.K}), got {x0}")
    h0 = _vector(h0, p, "h0")
    u = rng.random(int(n))
    out = np.empty(int(n), dtype=np.int64)
    h = _k.sample(p.flat, p.K, h0, int(x0), u, float(temperature), out)
    return out, h


def warmup(dtype=None) -> None:
    """Compile (or load from numba's on-disk cache) every kernel for ``dtype``.

    ``dtype`` is float64, float32, or None for both. Compiling takes several seconds the first
    time; later processes load the cached machine code in well under a second.
    """
    require()
    dtypes = (np.float64, np.float32) if dtype is None else (np.dtype(dtype).type,)
    rng = np.random.default_rng(0)
    for dt in dtypes:
        p = ParamSet(3, 4, dtype=dt)
        p.flat[...] = rng.standard_normal(p.flat.size) * 0.1
        g, mem = p.zeros_like(), p.zeros_like()  # the fused update is compiled here too
        x = np.array([0, 1], dtype=np.int64)
        loss_and_grads(p, x, x, np.zeros(3, dt), g)
        _k.clip_adagrad(p.flat, g.flat, mem.flat, dt(0.1), dt(1e-8), dt(5.0))
        all_finite(g.flat)
        sample_indices(p, np.zeros(3, dt), 0, 2, rng)
