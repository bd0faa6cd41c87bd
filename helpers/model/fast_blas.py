"""Matrix products for the numba kernels, through numpy's own BLAS when it can be found.

numba's ``np.dot`` calls scipy's BLAS. Here numpy's wheel bundles a newer OpenBLAS (0.3.31 against
scipy's 0.3.30 on this project's machine), which runs the gated cells' per-step products
(32, 256) x (256, 768) about 20% faster, so :func:`gemm` calls numpy's ``cblas_?gemm`` through
its address (:func:`addresses`, looked up once per process and passed to the kernels as an
array, which keeps them cacheable). It also takes operands whose rows are strided, such as a
padded W^T: a leading dimension of 1024 floats (4 KiB, the LSTM's 4 m for m = 256) makes
OpenBLAS's packed panels collide in the cache, and padding it to 1040 makes the product 1.35x
faster. When numpy's BLAS is not found (another numpy build), ``gemm`` falls back on ``np.dot``.
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_NO_TRANS, _TRANS, _ROW_MAJOR = 111, 112, 101


def _numpy_blas() -> tuple[str, str, str] | None:
    """(path, prefix, suffix) of the OpenBLAS that numpy's wheel bundles, or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    np_dirs = {Path(np.__file__).parent, Path(np.__file__).parent.parent / "numpy.libs"}
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if Path(lib.filepath).parent in np_dirs or Path(lib.filepath).parent.parent in np_dirs:
            return lib.filepath, getattr(lib, "_symbol_prefix", ""), getattr(lib, "_symbol_suffix", "")
    return None


def _functions(*names: str) -> tuple | None:
    """The C functions ``names`` of numpy's OpenBLAS (its symbol prefix and suffix added), and
    whether its integers are 64-bit, or None when numpy's BLAS or one of them is not found."""
    found = _numpy_blas()
    if found is None:
        return None
    path, prefix, suffix = found
    try:
        lib = ctypes.CDLL(path)
        return tuple(getattr(lib, f"{prefix}{name}{suffix}") for name in names), "64" in suffix
    except (OSError, AttributeError):
        return None


def addresses() -> np.ndarray:
    """int64 [address of cblas_sgemm, of cblas_dgemm, 1 if its integers are 64-bit], zeros if not found."""
    found = _functions("cblas_sgemm", "cblas_dgemm")
    if found is None:
        return np.zeros(3, np.int64)
    (s, d), int64 = found
    return np.array(
        [ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value, int(int64)], np.int64
    )


_THREADS = []


@contextlib.contextmanager
def threads(n: int):
    """numpy's OpenBLAS on ``n`` threads inside the block (its count restored after); no-op when
    numpy's BLAS is not found. Cheap (two C calls), so it can wrap every update."""
    if not _THREADS:
        found = _functions("openblas_get_num_threads", "openblas_set_num_threads")
        _THREADS.append(None if found is None else found[0])
    if _THREADS[0] is None:
        yield
        return
    get, set_ = _THREADS[0]
    before = get()
    set_(int(n))
    try:
        yield
    finally:
        set_(before)


@intrinsic
def _cblas_gemm(typingctx, addr, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc):
    """cblas_?gemm(RowMajor, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc) at address ``addr``."""
    sig = types.void(addr, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        addr_, ta_, tb_, M_, N_, K_, A_, lda_, B_, ldb_, beta_, C_, ldc_ = args
        flt, iN, i32 = context.get_value_type(C.dtype), context.get_value_type(M), ir.IntType(32)
        fnty = ir.FunctionType(
            ir.VoidType(),
            [
                i32,
                i32,
                i32,
                iN,
                iN,
                iN,
                flt,
                flt.as_pointer(),
                iN,
                flt.as_pointer(),
                iN,
                flt,
                flt.as_pointer(),
                iN,
            ],
        )
        fn = builder.inttoptr(addr_, fnty.as_pointer())
        data = [context.make_array(ty)(context, builder, v).data for ty, v in ((A, A_), (B, B_), (C, C_))]
        builder.call(
            fn,
            [
                ir.Constant(i32, _ROW_MAJOR),
                builder.trunc(ta_, i32),
                builder.trunc(tb_, i32),
                M_,
                N_,
                K_,
                ir.Constant(flt, 1.0),
                data[0],
                lda_,
                data[1],
                ldb_,
                beta_,
                data[2],
                ldc_,
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _layout(X):
    """(transpose flag, leading dimension) of a 2-D array whose rows or columns are contiguous."""
    size = X.itemsize
    if X.strides[1] == size or X.shape[1] == 1:
        return _NO_TRANS, max(X.strides[0] // size, X.shape[1], 1)
    return _TRANS, max(X.strides[1] // size, X.shape[0], 1)


@njit(cache=True, nogil=True)
def gemm(blas, A, B, C, beta=0.0):
    """C = A B + beta C (beta 0 or 1) for 2-D arrays of one dtype; C's rows contiguous.

    ``blas`` is :func:`addresses`' array; all zeros: ``np.dot`` (scipy's BLAS) on contiguous copies.
    """
    addr = blas[0] if C.itemsize == 4 else blas[1]
    if addr == 0:
        P = np.dot(np.ascontiguousarray(A), np.ascontiguousarray(B))
        if beta == 0.0:
            C[:] = P
        else:
            C += P
        return
    (ta, lda), (tb, ldb) = _layout(A), _layout(B)
    M, N, K, b = A.shape[0], B.shape[1], A.shape[1], C.dtype.type(beta)
    ldc = max(C.strides[0] // C.itemsize, C.shape[1], 1)
    if blas[2]:
        _cblas_gemm(
            addr,
            np.int64(ta),
            np.int64(tb),
            np.int64(M),
            np.int64(N),
            np.int64(K),
            A,
            np.int64(lda),
            B,
            np.int64(ldb),
            b,
            C,
            np.int64(ldc),
        )
    else:
        _cblas_gemm(
            addr,
            np.int64(ta),
            np.int64(tb),
            np.int32(M),
            np.int32(N),
            np.int32(K),
            A,
            np.int32(lda),
            B,
            np.int32(ldb),
            b,
            C,
            np.int32(ldc),
        )
