"""Optional numba JIT path for the training update and the sampler (``pip install numba``).

The same model and the same math as :mod:`helpers.rnn`, :mod:`helpers.optim` and
:mod:`helpers.synth`, compiled, so one update costs a few native calls instead of a few hundred
numpy calls:

    a_t = W h_{t-1} + U x_t + b      h_t = tanh(a_t)
    o_t = V h_t + c                  p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]       then BPTT, clip to [-5, 5], AdaGrad

How it is fast, and how exact it is
-----------------------------------
* The two recurrences (forward ``W h_{t-1}``, backward ``W^T dL/da_{t+1}``) are compiled loops of
  the form ``acc += row * s`` over contiguous, zero-padded rows, which the compiler vectorizes
  without reordering any sum. Products are fused multiply-adds (``fma``, one rounding), written
  explicitly: the kernels keep ``fastmath=False`` (IEEE semantics, no reassociation).
* The four whole-sequence products (o_t for all t, dL/dV, dL/dh_t from the output, dL/dW) are
  single GEMM calls into the BLAS numpy itself uses (found through threadpoolctl and called
  directly from compiled code). Without a usable CBLAS a compiled loop does the same products.
  Like the numpy path, run it under ``threadpoolctl.threadpool_limits(1, "blas")``: the matrices
  are too small for threads to pay off.
* tanh and exp are vectorizable float64 implementations (Cephes' rational approximations,
  within 2 ulp of numpy's); float32 arrays are evaluated in float64 and rounded.
* Clipping + AdaGrad is one pass doing the same IEEE operations in the same order as
  ``optim.clip_`` + ``optim.adagrad_``: its results are bit-identical to theirs.
  ``FastStep`` runs the whole update (with the finiteness check) in one compiled call and
  skips U's columns that no input selects (their gradient is exactly zero), same results.

So loss and gradients agree with :mod:`helpers.rnn` to rounding (about 1e-13 relative in float64,
1e-5 in float32), not bit for bit. Gradient checking never uses this path.

numba is optional: when it is missing, ``AVAILABLE`` is False, ``REASON`` says why and how to
get it, and every function here raises ``RuntimeError(REASON)``.

Python-level API (on :class:`helpers.params.ParamSet` objects)
--------------------------------------------------------------
    loss_and_grads(p, x, y, hprev, grads, ws=None) -> (loss, hlast)   as rnn.loss_and_grads
    clip_adagrad_(theta, g, mem, eta, eps=1e-8, limit=5.0)             optim.clip_ + optim.adagrad_
    sample_indices(p, h0, x0, n, rng, temperature=1.0, top_p=1.0, cell="rnn")  as synth.sample_indices
    FastStep(params, grads, mem, seq_length).update(x, y, hprev, eta)  one fused training update
    all_finite(a) -> bool                                              every entry of a flat array finite
    warmup(dtype=None)                                                 compile / load the kernels
    blas_info() -> dict                                                which GEMM the kernels call
The ``*_kernel`` functions are the compiled kernels on plain arrays; see their docstrings.
"""
from __future__ import annotations

import ctypes
import platform
import sys

import numpy as np

from .optim import CLIP, EPS
from .params import ParamSet

try:
    import llvmlite.binding as _llvm
    import numba
    from numba import cfunc, njit, types
    from numba.core.extending import intrinsic
except ImportError as exc:  # numba is an optional dependency (the project's "fast" extra)
    numba = None
    AVAILABLE = False
    REASON = (f"the numba JIT path is unavailable because numba is not installed ({exc}). It is optional: "
              "install it with `pip install numba` (or `pip install -e .[fast]`), or use the numpy path "
              "(helpers.rnn, helpers.optim, helpers.synth), which gives the same results.")
else:
    AVAILABLE = True
    REASON = ""

_JIT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)

# CBLAS constants (row-major GEMM only)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

_BLAS = {"kind": "none", "library": None, "symbols": None, "note": REASON}


def _require() -> None:
    if not AVAILABLE:
        raise RuntimeError(REASON)


def blas_info() -> dict:
    """Which GEMM the compiled kernels call: ``{"kind": "cblas"|"fallback"|"none", "library", "symbols", "note"}``."""
    return dict(_BLAS)


# ---------------------------------------------------------------------------------------------
# GEMM for the compiled kernels: the process's CBLAS (numpy's own BLAS) under a fixed symbol
# name, so the cached machine code stays valid whichever BLAS a later process finds.
# ---------------------------------------------------------------------------------------------

_DGEMM_SYMBOL, _SGEMM_SYMBOL = "charrnn_fast_cblas_dgemm", "charrnn_fast_cblas_sgemm"
_keep_alive = []  # ctypes libraries and cfuncs whose addresses were registered


def _find_cblas():
    """(path, dgemm name, sgemm name, dgemm address, sgemm address) of a loaded CBLAS, or None."""
    try:
        from threadpoolctl import threadpool_info

        paths = [i["filepath"] for i in threadpool_info() if i.get("user_api") == "blas" and i.get("filepath")]
    except Exception:  # threadpoolctl missing or failing: use the fallback loops
        return None
    # The kernels pass every integer argument (CBLAS's enums too) as a 64-bit integer. With the
    # small values used here that is also right for a 32-bit int parameter (enums, LP64 builds)
    # where the calling convention gives every argument its own 64-bit register or stack slot
    # and the callee reads the low half: x86-64 (System V and Windows) and AArch64 outside
    # Apple's platforms. In the ILP64 builds only the enums are 32-bit, and they are always
    # passed in registers.
    machine = platform.machine().lower()
    lp64_ok = machine in ("x86_64", "amd64") or (machine in ("aarch64", "arm64") and sys.platform != "darwin")
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_cblas_", "64_"), ("cblas_", "64_"), ("scipy_cblas_", ""), ("cblas_", "")):
            if suffix == "" and not lp64_ok:
                continue
            dname, sname = f"{prefix}dgemm{suffix}", f"{prefix}sgemm{suffix}"
            try:
                d, s = getattr(lib, dname), getattr(lib, sname)
            except AttributeError:
                continue
            _keep_alive.append(lib)
            addr = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
            return path, dname, sname, addr(d), addr(s)
    return None


def _fallback_gemms():
    """Compiled row-major GEMMs with the CBLAS signature, for when no CBLAS is found."""

    def make(ftype, np_dtype):
        ptr = types.CPointer(ftype)
        i64 = types.int64
        sig = types.void(i64, i64, i64, i64, i64, i64, ftype, ptr, i64, ptr, i64, ftype, ptr, i64)

        @cfunc(sig, cache=True, error_model="numpy")
        def gemm(order, ta, tb, M, N, Kd, alpha, A_, lda, B_, ldb, beta, C_, ldc):
            # C = alpha * op(A) op(B) + beta * C, row-major; op(X) = X or X^T
            A = numba.carray(A_, ((M if ta == _NO_TRANS else Kd), lda))
            B = numba.carray(B_, ((Kd if tb == _NO_TRANS else N), ldb))
            C = numba.carray(C_, (M, ldc))
            if tb == _NO_TRANS:
                Bn = B
            else:  # B^T as rows, so the innermost loop runs along contiguous memory
                Bn = np.empty((Kd, N), np_dtype)
                for j in range(N):
                    for q in range(Kd):
                        Bn[q, j] = B[j, q]
            coef = np.empty(Kd, np_dtype)
            for i in range(M):
                crow = C[i, :N]
                for j in range(N):
                    crow[j] = crow[j] * beta if beta != 0 else 0
                if ta == _NO_TRANS:
                    for q in range(Kd):
                        coef[q] = alpha * A[i, q]
                else:
                    for q in range(Kd):
                        coef[q] = alpha * A[q, i]
                _axpy_rows(crow, Bn, coef, Kd)  # row i of C += sum_q op(A)[i, q] * row q of op(B)

        return gemm

    return make(types.float64, np.float64), make(types.float32, np.float32)


if AVAILABLE:

    @intrinsic
    def _fma(typingctx, a, b, c):
        """a * b + c with a single rounding (llvm.fma), for floats of one type."""
        if not (isinstance(a, types.Float) and a == b == c):
            return None

        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return a(a, b, c), codegen

    @intrinsic
    def _bits_to_f64(typingctx, i):
        """Reinterpret an int64 bit pattern as a float64."""
        if i != types.int64:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return types.float64(i), codegen

    @njit(**_JIT)
    def _axpy_rows(acc, rows, coef, count):
        """acc[:] += sum_{j < count} rows[j, :] * coef[j], as fused multiply-adds in order of j.

        Four rows per pass over ``acc`` (the loop the compiler vectorizes), so ``acc`` is read
        and written a quarter as often; each entry still sees its terms in order of j.
        """
        n = acc.shape[0]
        j = 0
        while j + 4 <= count:
            s0, s1, s2, s3 = coef[j], coef[j + 1], coef[j + 2], coef[j + 3]
            r0, r1, r2, r3 = rows[j], rows[j + 1], rows[j + 2], rows[j + 3]
            for i in range(n):
                acc[i] = _fma(r3[i], s3, _fma(r2[i], s2, _fma(r1[i], s1, _fma(r0[i], s0, acc[i]))))
            j += 4
        while j < count:
            s0 = coef[j]
            r0 = rows[j]
            for i in range(n):
                acc[i] = _fma(r0[i], s0, acc[i])
            j += 1


# GEMM: register the CBLAS (or the fallback) under the fixed symbol names before any kernel is
# compiled or loaded from the cache.
if AVAILABLE:
    _found = _find_cblas()
    if _found is not None:
        _path, _dname, _sname, _daddr, _saddr = _found
        _BLAS.update(kind="cblas", library=_path, symbols=(_dname, _sname),
                     note=f"GEMMs call {_dname}/{_sname} in {_path}")
    else:
        _dg, _sg = _fallback_gemms()
        _keep_alive.extend((_dg, _sg))
        _daddr, _saddr = _dg.address, _sg.address
        _BLAS.update(kind="fallback", note="no CBLAS found through threadpoolctl: GEMMs are compiled loops (slower)")
    _llvm.add_symbol(_DGEMM_SYMBOL, _daddr)
    _llvm.add_symbol(_SGEMM_SYMBOL, _saddr)

    _i64, _uptr = types.int64, types.uintp
    _dgemm = types.ExternalFunction(_DGEMM_SYMBOL, types.void(
        _i64, _i64, _i64, _i64, _i64, _i64, types.float64, _uptr, _i64, _uptr, _i64, types.float64, _uptr, _i64))
    _sgemm = types.ExternalFunction(_SGEMM_SYMBOL, types.void(
        _i64, _i64, _i64, _i64, _i64, _i64, types.float32, _uptr, _i64, _uptr, _i64, types.float32, _uptr, _i64))


if AVAILABLE:

    # ---- vectorizable exp / tanh (Cephes, float64, within 2 ulp of numpy's) ----
    _LOG2E = 1.4426950408889634073599
    _C1, _C2 = 6.93145751953125e-1, 1.42860682030941723212e-6  # ln 2 = C1 + C2
    _EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
    _EQ0, _EQ1, _EQ2, _EQ3 = (3.00198505138664455042e-6, 2.52448340349684104192e-3,
                              2.27265548208155028766e-1, 2.00000000000000000009e0)
    _TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
    _TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3

    @njit(**_JIT)
    def _exp_reduced(x):
        """(e, n) with exp(x) = e * 2**n, e in [1/sqrt2, sqrt2]; x finite."""
        n = np.floor(_LOG2E * x + 0.5)
        r = x - n * _C1
        r = r - n * _C2
        rr = r * r
        px = r * ((_EP0 * rr + _EP1) * rr + _EP2)
        q = ((_EQ0 * rr + _EQ1) * rr + _EQ2) * rr + _EQ3
        return 1.0 + 2.0 * (px / (q - px)), np.int64(n)

    @njit(**_JIT)
    def exp_nonpositive(x):
        """exp(x) in float64 for x <= 0 (the softmax's shifted logits); NaN stays NaN, -inf gives 0."""
        x = -746.0 if x < -746.0 else x  # below this exp(x) rounds to 0 (a NaN fails the test and stays)
        e, n = _exp_reduced(x)
        n1 = n >> 1  # two factors keep every power of two normal, so subnormal results come out right
        return (e * _bits_to_f64((n1 + 1023) << 52)) * _bits_to_f64((n - n1 + 1023) << 52)

    @njit(**_JIT)
    def tanh64(x):
        """tanh(x) in float64, branch-free so loops over it vectorize; NaN stays NaN, tanh(+-inf) = +-1."""
        y = np.abs(x)
        yc = 22.0 if y > 22.0 else y  # tanh(22) rounds to 1
        e, n = _exp_reduced(2.0 * yc)
        big = 1.0 - 2.0 / (e * _bits_to_f64((n + 1023) << 52) + 1.0)  # 1 - 2 / (exp(2|x|) + 1)
        big = -big if x < 0.0 else big
        s = x * x
        small = x + x * s * (((_TP0 * s + _TP1) * s + _TP2) / (((s + _TQ0) * s + _TQ1) * s + _TQ2))
        small = small if y != 0.0 else x  # keeps the sign of zero
        return big if y > 0.625 else small

    # ---- small helpers ----
    @njit(**_JIT)
    def _gemm(C, ta, tb, M, N, Kd, A_ptr, lda, B_ptr, ldb, ldc):
        """C = op(A) op(B) (row-major) through CBLAS; C only selects the precision."""
        if C.itemsize == 8:
            _dgemm(_ROW_MAJOR, ta, tb, M, N, Kd, 1.0, A_ptr, lda, B_ptr, ldb, 0.0, C.ctypes.data, ldc)
        else:
            _sgemm(_ROW_MAJOR, ta, tb, M, N, Kd, 1.0, A_ptr, lda, B_ptr, ldb, 0.0, C.ctypes.data, ldc)

    @njit(**_JIT)
    def _copy_transposed(A, out):
        """out[:A.shape[1], :A.shape[0]] = A.T (any other entries of ``out`` are left alone)."""
        n, k = A.shape
        for j in range(k):  # contiguous writes, strided reads: the faster order here
            orow = out[j]
            for i in range(n):
                orow[i] = A[i, j]

    @njit(**_JIT)
    def _check_indices(x, y, K):
        """True when x and y have one length >= 1 and every entry lies in [0, K)."""
        if x.shape[0] != y.shape[0] or x.shape[0] < 1:
            return False
        bad = 0
        for t in range(x.shape[0]):
            bad += (x[t] < 0) | (x[t] >= K) | (y[t] < 0) | (y[t] >= K)
        return bad == 0

    @njit(**_JIT)
    def loss_and_grads_kernel(U, W, V, b, c, x, y, hprev, dU, dW, dV, db, dc, H, O, dA, WTp, Wp, vec):
        """Forward and BPTT over one sequence; writes dU, dW, dV, db, dc; returns (loss, hlast).

        Parameters
        ----------
        U (m,K), W (m,m), V (K,m), b (m,), c (K,) : float64 or float32 arrays, C-contiguous
        x, y : int64 arrays (T,), T >= 1, entries in [0, K) (not checked here: see _check_indices)
        hprev : (m,) h_0, in the parameters' dtype
        dU, dW, dV, db, dc : outputs, the parameters' shapes (overwritten, unclipped)
        H : (>= T+1, mp), mp >= m; afterwards H[t, :m] = h_t, so H[T, :m] = h_T
        O : (K, Tc), Tc >= T; afterwards O[:, t] = dL/do_t = p_t - onehot(y_t) for t < T
        dA : (>= T, mp); afterwards dA[t, :m] = dL/da_t
        WTp, Wp : (m, mp) scratch for W^T and W
        vec : (mp + 2 Tc,) scratch
        The padding columns (index >= m) of H, dA, WTp and Wp must be zero on entry, as
        ``Workspace`` allocates them; the kernel keeps them zero.

        Returns
        -------
        loss : float, accumulated in float64
        hlast : (m,) view of H[T, :m], i.e. h_T (copy it before reusing the buffers)
        """
        m, K = U.shape
        T = x.shape[0]
        mp = H.shape[1]
        Tc = O.shape[1]
        zero, one = H.dtype.type(0.0), H.dtype.type(1.0)
        a = vec[:mp]
        colmax = vec[mp:mp + Tc]
        colsum = vec[mp + Tc:mp + 2 * Tc]
        _copy_transposed(W, WTp)
        for i in range(m):
            wrow, prow = W[i], Wp[i]
            for j in range(m):
                prow[j] = wrow[j]
        h0 = H[0]
        for i in range(m):
            h0[i] = hprev[i]
        # ---- forward: the recurrence, one step at a time ----
        for t in range(T):
            xt = x[t]
            for i in range(m):
                a[i] = U[i, xt] + b[i]  # U x_t + b: column x_t of U
            for i in range(m, mp):
                a[i] = zero
            _axpy_rows(a, WTp, H[t], m)  # + W h_{t-1}, as a combination of W's columns
            hn = H[t + 1]
            for i in range(mp):
                hn[i] = tanh64(np.float64(a[i]))
        # o_t = V h_t + c for all t at once: O (K, T) = V H[1:T+1]^T, then softmax down each column
        _gemm(O, _NO_TRANS, _TRANS, K, T, m, V.ctypes.data, m, H[1:].ctypes.data, mp, Tc)
        for t in range(T):
            colmax[t] = O[0, t] + c[0]
            colsum[t] = zero
        for k in range(K):
            row, ck = O[k], c[k]
            for t in range(T):
                v = row[t] + ck
                row[t] = v
                colmax[t] = v if v > colmax[t] else colmax[t]
        for k in range(K):
            row = O[k]
            for t in range(T):
                e = exp_nonpositive(np.float64(row[t] - colmax[t]))
                row[t] = e
                colsum[t] += row[t]
        for k in range(K):
            row = O[k]
            for t in range(T):
                row[t] = row[t] / colsum[t]
        loss = 0.0
        for t in range(T):
            loss -= np.log(np.float64(O[y[t], t]))
        # ---- backward ----
        for t in range(T):
            O[y[t], t] -= one  # dL/do_t = p_t - onehot(y_t)
        for k in range(K):  # dL/dc = sum_t dL/do_t
            s = zero
            row = O[k]
            for t in range(T):
                s += row[t]
            dc[k] = s
        # dL/dV = sum_t dL/do_t h_t^T = O[:, :T] H[1:T+1]
        _gemm(dV, _NO_TRANS, _NO_TRANS, K, m, T, O.ctypes.data, Tc, H[1:].ctypes.data, mp, m)
        # dL/dh_t from the output, V^T dL/do_t, for all t: dA[:T] = O[:, :T]^T V
        _gemm(dA, _TRANS, _NO_TRANS, T, m, K, O.ctypes.data, Tc, V.ctypes.data, m, mp)
        for t in range(T - 1, -1, -1):
            # dL/da_t = (dL/dh_t + W^T dL/da_{t+1}) * (1 - h_t^2)
            da = dA[t]
            if t < T - 1:
                _axpy_rows(da, Wp, dA[t + 1], m)
            hn = H[t + 1]
            for j in range(mp):
                da[j] = da[j] * (one - hn[j] * hn[j])
        # dL/dW = sum_t dL/da_t h_{t-1}^T = dA[:T]^T H[:T]
        _gemm(dW, _TRANS, _NO_TRANS, m, m, T, dA.ctypes.data, mp, H.ctypes.data, mp, m)
        for i in range(m):
            db[i] = zero
        for t in range(T):  # dL/db = sum_t dL/da_t
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
        return loss, H[T, :m]

    @njit(**_JIT)
    def _clip_adagrad_at(theta, g, mem, i, eta, eps, limit):
        """Entry i of clip_adagrad_kernel."""
        gi = g[i]
        gi = limit if gi > limit else gi
        gi = -limit if gi < -limit else gi
        g[i] = gi
        mi = mem[i] + gi * gi
        mem[i] = mi
        theta[i] = theta[i] - (gi / np.sqrt(mi + eps)) * eta

    @njit(**_JIT)
    def clip_adagrad_kernel(theta, g, mem, eta, eps, limit):
        """In place, one pass over flat arrays of one dtype (eta, eps, limit given in that dtype):

            g <- clip(g, -limit, limit);  mem <- mem + g*g;  theta <- theta - (g / sqrt(mem + eps)) * eta

        The operations and their order are those of optim.clip_ + optim.adagrad_, so the results
        are bit-identical to theirs. A NaN gradient stays NaN (as with np.clip).
        """
        for i in range(theta.shape[0]):
            _clip_adagrad_at(theta, g, mem, i, eta, eps, limit)

    @njit(**_JIT)
    def count_nonfinite_kernel(a):
        """How many entries of the 1-D array ``a`` are inf or NaN."""
        n = 0
        for i in range(a.shape[0]):
            v = a[i]
            n += (v - v) != 0  # inf - inf and NaN - NaN are NaN, and NaN != 0
        return n

    @njit(**_JIT)
    def _carve(flat, m, K):
        """The views U, W, V, b, c of a ParamSet-layout flat buffer."""
        o = 0
        U = flat[o:o + m * K].reshape((m, K))
        o += m * K
        W = flat[o:o + m * m].reshape((m, m))
        o += m * m
        V = flat[o:o + K * m].reshape((K, m))
        o += K * m
        return U, W, V, flat[o:o + m], flat[o + m:o + m + K]

    @njit(**_JIT)
    def _carve_scratch(scratch, m, K, mp, Tc):
        """The views H, O, dA, WTp, Wp, vec of a Workspace's scratch (layout: see Workspace)."""
        o = 0
        H = scratch[o:o + (Tc + 1) * mp].reshape((Tc + 1, mp))
        o += (Tc + 1) * mp
        O = scratch[o:o + K * Tc].reshape((K, Tc))
        o += K * Tc
        dA = scratch[o:o + Tc * mp].reshape((Tc, mp))
        o += Tc * mp
        WTp = scratch[o:o + m * mp].reshape((m, mp))
        o += m * mp
        Wp = scratch[o:o + m * mp].reshape((m, mp))
        o += m * mp
        return H, O, dA, WTp, Wp, scratch[o:o + mp + 2 * Tc]

    @njit(**_JIT)
    def step_flat_kernel(theta, grad, mem, x, y, hprev, scratch, m, K, mp, Tc, eta, eps, limit, take_step):
        """Loss and gradients on ParamSet-layout flat buffers; then, if ``take_step``, the update.

        ``scratch`` is a Workspace's (``mp``, ``Tc``: its padded width and seq_length). With
        ``take_step`` False this is loss_and_grads_kernel and ``mem``, ``eta``, ``eps``, ``limit``
        are not used. With it True, when the loss and every gradient entry are finite, the
        gradients are clipped and AdaGrad takes its step (in place).

        Returns (loss, status): 0 done; 1 the loss or a gradient entry was not finite, so the
        step was skipped (theta and mem untouched, grad holds the raw gradients); 2 invalid
        x, y (not one length in 1..Tc, or an entry outside [0, K)): nothing was done.

        The step equals a finiteness check + clip_adagrad_kernel over the whole flat buffers
        but visits only the columns of U that some x_t selects: dL/dU is exactly zero in the
        others, where the step would leave theta and mem as they are (for finite mem and eta;
        mem >= 0 always holds in training).
        """
        T = x.shape[0]
        if T > Tc or not _check_indices(x, y, K):
            return np.nan, 2
        U, W, V, b, c = _carve(theta, m, K)
        dU, dW, dV, db, dc = _carve(grad, m, K)
        H, O, dA, WTp, Wp, vec = _carve_scratch(scratch, m, K, mp, Tc)
        loss, _ = loss_and_grads_kernel(U, W, V, b, c, x, y, hprev, dU, dW, dV, db, dc, H, O, dA, WTp, Wp, vec)
        if not take_step:
            return loss, 0
        seen = np.zeros(K, np.bool_)
        cols = np.empty(T, np.int64)  # the distinct inputs: U's columns with nonzero gradients
        nc = 0
        for t in range(T):
            k = x[t]
            if not seen[k]:
                seen[k] = True
                cols[nc] = k
                nc += 1
        mK = m * K
        bad = count_nonfinite_kernel(grad[mK:])  # W, V, b, c
        for i in range(m):
            for q in range(nc):
                v = grad[i * K + cols[q]]
                bad += (v - v) != 0
        if (loss - loss) != 0 or bad != 0:
            return loss, 1
        clip_adagrad_kernel(theta[mK:], grad[mK:], mem[mK:], eta, eps, limit)
        for i in range(m):
            for q in range(nc):
                _clip_adagrad_at(theta, grad, mem, i * K + cols[q], eta, eps, limit)
        return loss, 0

    @njit(**_JIT)
    def sample_indices_kernel(U, W, V, b, c, h0, x0, u, out, temperature=1.0):
        """Sample len(u) indices into ``out`` with the pre-drawn uniforms ``u``; returns h_n.

        Per step: h = tanh(W h + U x + b); o = V h + c, divided by ``temperature`` unless it is 1;
        cdf = cumsum(exp(o - max o)); x = min(searchsorted(cdf, u_t * cdf[-1], side="right"), K-1).
        These are the semantics of synth.sample_indices with top_p = 1. x0 must lie in [0, K).
        """
        m, K = U.shape
        n = u.shape[0]
        lane = 64 // W.itemsize
        mp = (m + lane - 1) // lane * lane
        Kp = (K + lane - 1) // lane * lane
        zero = W.dtype.type(0.0)
        WTp = np.zeros((m, mp), W.dtype)
        _copy_transposed(W, WTp)
        VTp = np.zeros((m, Kp), W.dtype)
        _copy_transposed(V, VTp)
        h = np.zeros(mp, W.dtype)
        for i in range(m):
            h[i] = h0[i]
        a = np.zeros(mp, W.dtype)
        o = np.zeros(Kp, W.dtype)
        temp = W.dtype.type(temperature)
        divide = temperature != 1.0
        x = x0
        for t in range(n):
            for i in range(mp):
                a[i] = zero
            _axpy_rows(a, WTp, h, m)  # W h
            for i in range(m):
                a[i] = (a[i] + U[i, x]) + b[i]
            for i in range(mp):
                h[i] = tanh64(np.float64(a[i]))
            for k in range(Kp):
                o[k] = zero
            _axpy_rows(o, VTp, h, m)  # V h
            for k in range(K):
                o[k] += c[k]
            if divide:
                for k in range(K):
                    o[k] = o[k] / temp
            omax = o[0]
            for k in range(1, K):
                omax = o[k] if o[k] > omax else omax
            s = zero
            for k in range(K):
                s += W.dtype.type(exp_nonpositive(np.float64(o[k] - omax)))
                o[k] = s  # the cumulative sum
            v = u[t] * o[K - 1]
            lo, hi = 0, K  # the first index whose cdf exceeds v (searchsorted side="right")
            while lo < hi:
                mid = (lo + hi) >> 1
                if o[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
            x = min(lo, K - 1)
            out[t] = x
        return h[:m].copy()


# ---------------------------------------------------------------------------------------------
# Python-level API on ParamSet objects
# ---------------------------------------------------------------------------------------------


class Workspace:
    """Zero-initialised scratch of the fast path, for sequences of up to ``seq_length`` steps.

    One flat buffer ``scratch`` holds, in order, H (T+1, mp), O (K, T), dA (T, mp), WTp (m, mp),
    Wp (m, mp) and a vector of mp + 2T entries, where T = seq_length and mp is m
    rounded up to a whole number of 64-byte cache lines. After a loss/gradient computation,
    ``H[t, :m]`` is h_t.
    """

    def __init__(self, m: int, K: int, seq_length: int, dtype=np.float64):
        T = int(seq_length)
        if T < 1:
            raise ValueError(f"seq_length must be >= 1, got {seq_length!r}")
        self.m, self.K, self.T, self.dtype = int(m), int(K), T, np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"the fast path supports float64 and float32, not {self.dtype}")
        lane = 64 // self.dtype.itemsize
        self.mp = mp = (self.m + lane - 1) // lane * lane
        size = (T + 1) * mp + K * T + T * mp + 2 * m * mp + mp + 2 * T
        self.scratch = np.zeros(size, dtype)
        self.H = self.scratch[:(T + 1) * mp].reshape(T + 1, mp)

    def buffers(self) -> tuple[np.ndarray, ...]:
        """The views (H, O, dA, WTp, Wp, vec) of ``scratch``: loss_and_grads_kernel's buffers."""
        m, K, T, mp = self.m, self.K, self.T, self.mp
        shapes = [(T + 1, mp), (K, T), (T, mp), (m, mp), (m, mp), (mp + 2 * T,)]
        views, o = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            views.append(self.scratch[o:o + n].reshape(shape))
            o += n
        return tuple(views)

    def fits(self, p: ParamSet, T: int) -> bool:
        """Whether these buffers serve parameters ``p`` and a sequence of length ``T``."""
        return p.m == self.m and p.K == self.K and T <= self.T and p.flat.dtype == self.dtype


def _index_array(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int64 or not a.flags.c_contiguous:
        if a.dtype.kind not in "iu":
            raise TypeError(f"character indices must be integers, got dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"character indices must be a 1-D sequence, got shape {a.shape}")
    return a


def _vector(h, dtype, m: int, name: str) -> np.ndarray:
    h = np.asarray(h)
    if h.dtype != dtype or not h.flags.c_contiguous:
        h = np.ascontiguousarray(h, dtype=dtype)
    if h.shape != (m,):
        raise ValueError(f"{name} has shape {h.shape}, expected ({m},)")
    return h


def _check_params(p: ParamSet) -> None:
    if getattr(p, "gates", 1) != 1:
        raise ValueError(f"the fast path serves the vanilla RNN (gates=1); these parameters have gates={p.gates}")
    if p.flat.dtype not in (np.float64, np.float32):
        raise ValueError(f"the fast path supports float64 and float32 parameters, not {p.flat.dtype}")
    if not p.flat.flags.c_contiguous:
        raise ValueError("the parameters' flat buffer must be C-contiguous")


def _index_error(x: np.ndarray, y: np.ndarray, K: int, T_max: int) -> ValueError:
    """The error for sequences a kernel refused (only built when one did)."""
    if x.shape != y.shape or x.shape[0] < 1:
        return ValueError(f"x and y must be index sequences of one length >= 1, got shapes {x.shape}, {y.shape}")
    if x.shape[0] > T_max:
        return ValueError(f"a sequence of length {x.shape[0]} is longer than the workspace's seq_length={T_max}")
    lo, hi = min(int(x.min()), int(y.min())), max(int(x.max()), int(y.max()))
    return ValueError(f"character indices must lie in [0, {K}), got values in [{lo}, {hi}]")


def loss_and_grads(p: ParamSet, x, y, hprev, grads: ParamSet, ws: Workspace | None = None):
    """Forward and BPTT over one sequence: the compiled version of ``helpers.rnn.loss_and_grads``.

    Parameters
    ----------
    p : ParamSet, float64 or float32
    x, y : int arrays (T,)
        Input and target indices in [0, K).
    hprev : array (m,)
        h_0.
    grads : ParamSet with p's layout and dtype
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
    _check_params(p)
    x, y = _index_array(x), _index_array(y)
    hprev = _vector(hprev, p.flat.dtype, p.m, "hprev")
    if grads.flat.dtype != p.flat.dtype or grads.m != p.m or grads.K != p.K:
        raise ValueError("grads must have the parameters' layout and dtype (use p.zeros_like())")
    T = x.shape[0]
    if ws is None or not ws.fits(p, T):
        ws = Workspace(p.m, p.K, max(T, 1), p.flat.dtype)
    zero = p.flat.dtype.type(0.0)
    loss, status = step_flat_kernel(p.flat, grads.flat, grads.flat, x, y, hprev, ws.scratch, p.m, p.K, ws.mp, ws.T,
                                    zero, zero, zero, False)
    if status == 2:
        raise _index_error(x, y, p.K, ws.T)
    return float(loss), ws.H[T, :p.m].copy()


def clip_adagrad_(theta: np.ndarray, g: np.ndarray, mem: np.ndarray, eta: float, eps: float = EPS,
                  limit: float = CLIP) -> None:
    """Clip ``g`` to [-limit, limit] in place, then one AdaGrad step on ``theta`` and ``mem``, in place.

    Bit-identical to ``optim.clip_(g, limit); optim.adagrad_(theta, g, mem, eta, eps)`` (the same
    IEEE operations in the same order, in the arrays' dtype), in one pass over flat,
    C-contiguous arrays of one shape and dtype (e.g. the ``flat`` buffers of ParamSets).
    """
    _require()
    if not (theta.ndim == 1 and theta.shape == g.shape == mem.shape):
        raise ValueError(f"theta, g and mem must be flat arrays of one shape, got {theta.shape}, {g.shape}, "
                         f"{mem.shape}")
    if not (theta.dtype == g.dtype == mem.dtype) or theta.dtype not in (np.float64, np.float32):
        raise ValueError(f"theta, g and mem must share one dtype, float64 or float32; got "
                         f"{theta.dtype}, {g.dtype}, {mem.dtype}")
    if not (theta.flags.c_contiguous and g.flags.c_contiguous and mem.flags.c_contiguous):
        raise ValueError("theta, g and mem must be C-contiguous (e.g. ParamSet.flat)")
    f = theta.dtype.type
    clip_adagrad_kernel(theta, g, mem, f(eta), f(eps), f(limit))


def all_finite(a: np.ndarray) -> bool:
    """Whether every entry of an array is finite (one pass, no temporaries for contiguous arrays)."""
    _require()
    return int(count_nonfinite_kernel(np.ascontiguousarray(a).reshape(-1))) == 0


def sample_indices(p: ParamSet, h0, x0: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, top_p: float = 1.0, cell: str = "rnn") -> tuple[np.ndarray, np.ndarray]:
    """The compiled version of ``helpers.synth.sample_indices`` (same arguments, same results).

    Draws ``u = rng.random(n)`` up front exactly as synth does, so from the same ``rng`` state it
    returns the same indices in float64, exactly, as long as the recurrence does not amplify
    rounding differences (with chaotic weights, e.g. random ones with sig = 0.3, any two float
    implementations drift apart after a hundred or so characters). ``top_p < 1`` and cells other
    than the vanilla RNN are handed to synth.sample_indices.

    Returns
    -------
    indices : int64 array (n,)
    h : array (m,), the hidden state after the last step.
    """
    from . import synth

    synth._check_options(n, temperature, top_p)
    if top_p < 1.0 or cell != "rnn":
        return synth.sample_indices(p, h0, x0, n, rng, temperature, top_p, **({"cell": cell} if cell != "rnn" else {}))
    _require()
    _check_params(p)
    x0 = int(x0)
    if not 0 <= x0 < p.K:
        raise ValueError(f"x0 must lie in [0, {p.K}), got {x0}")
    h0 = _vector(h0, p.flat.dtype, p.m, "h0")
    u = rng.random(int(n))
    out = np.empty(int(n), dtype=np.int64)
    h = sample_indices_kernel(p.U, p.W, p.V, p.b, p.c, h0, x0, u, out, float(temperature))
    return out, h


class FastStep:
    """One whole training update in one compiled call: loss + BPTT, clip, AdaGrad.

    Parameters
    ----------
    params, grads, mem : ParamSet
        The parameters (updated in place), a gradient buffer and AdaGrad's running sum of
        squares (updated in place); one layout, float64 or float32.
    seq_length : int
        The longest sequence ``update`` will see.
    eps, limit : float
        AdaGrad's epsilon and the clipping limit.

    After ``update``, ``finite`` says whether the loss and every (unclipped) gradient entry were
    finite. If so, ``grads`` holds the clipped gradients and the step was taken. If not, the step
    was skipped: ``params`` and ``mem`` are untouched and ``grads`` holds the raw gradients, so
    the caller can stop cleanly (the trainer raises NonFiniteLossError).
    """

    def __init__(self, params: ParamSet, grads: ParamSet, mem: ParamSet, seq_length: int,
                 eps: float = EPS, limit: float = CLIP):
        _require()
        _check_params(params)
        for name, q in (("grads", grads), ("mem", mem)):
            if q.m != params.m or q.K != params.K or q.flat.dtype != params.flat.dtype:
                raise ValueError(f"{name} must have the parameters' layout and dtype")
            if not q.flat.flags.c_contiguous:
                raise ValueError(f"{name}'s flat buffer must be C-contiguous")
        self.params, self.grads, self.mem = params, grads, mem
        self.ws = Workspace(params.m, params.K, seq_length, params.flat.dtype)
        self.eps, self.limit = float(eps), float(limit)
        self.finite = True
        f = params.flat.dtype.type
        self._f, self._eps, self._limit = f, f(eps), f(limit)

    def update(self, x, y, hprev, eta: float) -> tuple[float, np.ndarray]:
        """Loss and gradients on (x, y) from h_0 = hprev, then clipping and one AdaGrad step.

        Returns
        -------
        loss : float
            The loss of this sequence (before the step).
        hlast : ndarray (m,)
            h_T (a copy): the next update's hprev.
        """
        p, ws = self.params, self.ws
        x, y = _index_array(x), _index_array(y)
        hprev = _vector(hprev, p.flat.dtype, p.m, "hprev")
        loss, status = step_flat_kernel(p.flat, self.grads.flat, self.mem.flat, x, y, hprev, ws.scratch,
                                        p.m, p.K, ws.mp, ws.T, self._f(eta), self._eps, self._limit, True)
        if status == 2:
            raise _index_error(x, y, p.K, ws.T)
        self.finite = status == 0
        return float(loss), ws.H[x.shape[0], :p.m].copy()


def warmup(dtype=None) -> None:
    """Compile (or load from numba's on-disk cache) every kernel for ``dtype``.

    ``dtype`` is float64, float32, or None for both. Compiling takes several seconds the first
    time; later processes load the cached machine code in well under a second.
    """
    _require()
    dtypes = (np.float64, np.float32) if dtype is None else (np.dtype(dtype).type,)
    rng = np.random.default_rng(0)
    for dt in dtypes:
        p = ParamSet(3, 4, dtype=dt)
        p.flat[...] = rng.standard_normal(p.flat.size) * 0.1
        g, mem = p.zeros_like(), p.zeros_like()
        x = np.array([0, 1], dtype=np.int64)
        loss_and_grads(p, x, x, np.zeros(3, dt), g)
        clip_adagrad_(p.flat, g.flat, mem.flat, 0.1)
        all_finite(g.flat)
        FastStep(p, g, mem, 2).update(x, x, np.zeros(3, dt), 0.1)
        sample_indices(p, np.zeros(3, dt), 0, 2, rng)
