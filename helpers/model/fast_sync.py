"""A barrier for the threads of one numba ``prange`` (used by :mod:`helpers.model.fast_crew`).

The one-layer LSTM on two threads splits its hidden units between them: each thread computes its
units' gates, and both need all of h_t before step t + 1, so they meet at every step, 100 times
an update. numba has no barrier, and a ``prange`` per step costs tens of microseconds; this one
costs well under one. Its state is one int64 array ``sync`` (:func:`new`): the arrivals, the
generation (each on a cache line of its own) and the address of libc's ``sched_yield``. A waiting
thread spins on the generation, pausing, and after :data:`SPINS` spins yields its core at each
turn, so that a busy machine (another process on the other core) loses time slices, not the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

ARRIVED, GENERATION, YIELD = 0, 16, 32
"""Where ``sync`` holds the arrivals, the generation and sched_yield's address (0: none)."""
SPINS = 4096
"""Spins (with a pause each) before a waiting thread starts yielding its core: about 40 us."""
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def new() -> np.ndarray:
    """A fresh ``sync`` array for :func:`barrier` (nobody arrived, generation 0)."""
    sync = np.zeros(48, np.int64)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        sync[YIELD] = ctypes.cast(libc.sched_yield, ctypes.c_void_p).value or 0
    except (OSError, AttributeError):
        pass
    return sync


def _pointer(context, builder, arrty, arr, idx):
    """The address of arr[idx] (a 1-D int64 array)."""
    return cgutils.get_item_pointer(
        context, builder, arrty, context.make_array(arrty)(context, builder, arr), [idx]
    )


@intrinsic
def _fetch_add(typingctx, arr, idx, value):
    """arr[idx] += value atomically (sequentially consistent); returns the value before."""

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return types.int64(arr, types.intp, types.int64), codegen


@intrinsic
def _load(typingctx, arr, idx):
    """arr[idx], read atomically with acquire ordering (never hoisted out of a loop)."""

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_pointer(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)

    return types.int64(arr, types.intp), codegen


@intrinsic
def _store(typingctx, arr, idx, value):
    """arr[idx] = value atomically with release ordering."""

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _pointer(context, builder, sig.args[0], args[0], args[1]), "release", 8)
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.int64), codegen


@intrinsic
def _relax(typingctx, address):
    """One wait of a spin loop: x86's ``pause``; with a nonzero ``address``, also call it (sched_yield)."""

    def codegen(context, builder, sig, args):
        if _X86:
            pause = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, pause, "llvm.x86.sse2.pause"), [])
        with builder.if_then(builder.icmp_signed("!=", args[0], ir.Constant(args[0].type, 0))):
            fnty = ir.FunctionType(ir.IntType(32), [])
            builder.call(builder.inttoptr(args[0], fnty.as_pointer()), [])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


@njit(cache=True, nogil=True)
def generation(sync):
    """The barrier's current generation: what a thread passes to its first :func:`barrier`."""
    return _load(sync, GENERATION)


@njit(cache=True, nogil=True)
def barrier(sync, n, gen):
    """Wait until all ``n`` threads have arrived at generation ``gen``; returns the next generation.

    Every write a thread made before it arrives is seen by every thread after it leaves.
    """
    if _fetch_add(sync, ARRIVED, 1) == n - 1:  # the last to arrive opens the next generation
        _store(sync, ARRIVED, 0)
        _fetch_add(sync, GENERATION, 1)
        return gen + 1
    spins = 0
    while _load(sync, GENERATION) == gen:
        _relax(sync[YIELD] if spins >= SPINS else 0)
        spins += 1
    return gen + 1
