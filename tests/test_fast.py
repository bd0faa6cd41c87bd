"""helpers.fast (the optional numba path) against helpers.rnn, helpers.reference, helpers.optim
and helpers.synth.

Skipped when numba is not installed. The first run compiles the kernels (about 10 s); numba
caches the machine code under helpers/__pycache__, so later runs take a few seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the fast path is optional: pip install numba")

from conftest import random_params, random_sequence  # noqa: E402
from helpers import fast, optim, reference, rnn, synth  # noqa: E402
from helpers.params import NAMES, ParamSet, init_params  # noqa: E402

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason=fast.REASON or "numba path unavailable")

SIZES = [(100, 80), (5, 4), (13, 7)]  # the real size (BLAS, padding) and odd small ones (remainders)


def oracle(p: ParamSet, x, y, hprev):
    """reference.loss_and_grads on float64 copies of p's arrays."""
    arrs = [np.array(p[n], dtype=np.float64) for n in NAMES]
    return reference.loss_and_grads(*arrs, x, y, np.asarray(hprev, dtype=np.float64))


def assert_close(actual, desired, rtol):
    """Relative agreement, with an absolute floor scaled to the array's magnitude."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.abs(desired).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol, atol=rtol * scale)


def norm_rel(actual, desired) -> float:
    desired = np.asarray(desired, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(actual, np.float64) - desired) / max(np.linalg.norm(desired), 1e-300))


def case(m, K, T, seed, sig=0.3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = random_params(m, K, rng, sig=sig, dtype=dtype)
    x, y = random_sequence(K, T, rng)
    hprev = np.tanh(rng.standard_normal(m)).astype(dtype)  # a nonzero, realistic carried state
    return p, x, y, hprev


@pytest.mark.parametrize("T", [1, 7, 25])
@pytest.mark.parametrize("m,K", SIZES)
def test_loss_and_grads_float64_matches_numpy_and_reference(m, K, T):
    p, x, y, hprev = case(m, K, T, seed=1000 * m + 10 * K + T)
    grads, np_grads = p.zeros_like(), p.zeros_like()
    loss, hlast = fast.loss_and_grads(p, x, y, hprev, grads)
    np_loss, np_hlast = rnn.loss_and_grads(p, x, y, hprev, np_grads)
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev)
    assert isinstance(loss, float)
    assert loss == pytest.approx(np_loss, rel=1e-10) and loss == pytest.approx(ref_loss, rel=1e-10)
    for name in NAMES:
        assert_close(grads[name], np_grads[name], rtol=1e-10)
        assert_close(grads[name], ref_grads[name], rtol=1e-10)
    assert_close(hlast, np_hlast, rtol=1e-10)
    assert_close(hlast, ref_hlast, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_on_paramset_views(dtype):
    """The raw kernel works on the ParamSet views and a Workspace's buffers."""
    p, x, y, hprev = case(100, 80, 25, seed=9, sig=0.05, dtype=dtype)
    grads, np_grads = p.zeros_like(), p.zeros_like()
    ws = fast.Workspace(p.m, p.K, 25, dtype)
    loss, hlast = fast.loss_and_grads_kernel(p.U, p.W, p.V, p.b, p.c, x, y, hprev, grads.U, grads.W, grads.V,
                                             grads.b, grads.c, *ws.buffers())
    np_loss, np_hlast = rnn.loss_and_grads(p, x, y, hprev, np_grads)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert loss == pytest.approx(np_loss, rel=rtol)
    assert norm_rel(grads.flat, np_grads.flat) < rtol
    assert norm_rel(hlast, np_hlast) < rtol
    np.testing.assert_array_equal(hlast, ws.H[25, :100])
    np.testing.assert_array_equal(ws.H[:, 100:], 0)  # the padding stays zero


def test_workspace_reuse_and_shorter_sequences():
    """One workspace serves sequences of any length up to its own, in any order."""
    m, K = 100, 80
    ws = fast.Workspace(m, K, 25)
    for T, seed in [(25, 1), (3, 2), (25, 3), (1, 4), (11, 5)]:
        p, x, y, hprev = case(m, K, T, seed)
        grads, np_grads = p.zeros_like(), p.zeros_like()
        loss, hlast = fast.loss_and_grads(p, x, y, hprev, grads, ws)
        np_loss, _ = rnn.loss_and_grads(p, x, y, hprev, np_grads)
        assert loss == pytest.approx(np_loss, rel=1e-10)
        assert_close(grads.flat, np_grads.flat, rtol=1e-10)


@pytest.mark.parametrize("T", [1, 7, 25])
@pytest.mark.parametrize("m,K", SIZES)
def test_loss_and_grads_float32_close_to_float64(m, K, T):
    # sig scaled so that W's spectral radius stays below 1: a well-conditioned problem, where
    # float32 rounding is not amplified through time
    p64, x, y, hprev = case(m, K, T, seed=7 * m + K + T, sig=0.3 * min(1.0, (10 / m) ** 0.5))
    p = p64.astype(np.float32)
    grads = p.zeros_like()
    loss, hlast = fast.loss_and_grads(p, x, y, hprev.astype(np.float32), grads)
    assert grads.flat.dtype == np.float32 and hlast.dtype == np.float32
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev.astype(np.float32))
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    for name in NAMES:
        assert norm_rel(grads[name], ref_grads[name]) < 1e-4, name
    assert norm_rel(hlast, ref_hlast) < 1e-4


def test_float32_as_accurate_as_numpy_float32_when_ill_conditioned():
    """With sig = 0.3 at m = 100 rounding grows through time in any float32 implementation."""
    p64, x, y, hprev = case(100, 80, 25, seed=5)
    p, h32 = p64.astype(np.float32), hprev.astype(np.float32)
    ref_loss, ref_grads, _ = oracle(p, x, y, h32)
    g_fast, g_np = p.zeros_like(), p.zeros_like()
    loss, _ = fast.loss_and_grads(p, x, y, h32, g_fast)
    np_loss, _ = rnn.loss_and_grads(p, x, y, h32, g_np)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    for name in NAMES:
        err_fast, err_np = norm_rel(g_fast[name], ref_grads[name]), norm_rel(g_np[name], ref_grads[name])
        assert err_fast < max(1e-4, 4 * err_np), (name, err_fast, err_np)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_adagrad_is_bit_identical_to_optim(dtype):
    rng = np.random.default_rng(11)
    n = 26180 + 3  # the m=100, K=80 size plus an odd tail
    theta = (rng.standard_normal(n) * 0.1).astype(dtype)
    mem = (rng.random(n) * rng.choice([0.0, 1e-9, 1.0, 100.0], n)).astype(dtype)
    g = (rng.standard_normal(n) * rng.choice([1e-6, 1.0, 10.0], n)).astype(dtype)  # many beyond +-5
    g[:4] = [5.0, -5.0, 0.0, -0.0]
    t1, m1, g1 = theta.copy(), mem.copy(), g.copy()
    t2, m2, g2 = theta.copy(), mem.copy(), g.copy()
    for eta in (0.1, 0.05):
        optim.clip_(g1)
        optim.adagrad_(t1, g1, m1, eta)
        fast.clip_adagrad_(t2, g2, m2, eta)
        np.testing.assert_array_equal(g2, g1)
        np.testing.assert_array_equal(m2, m1)
        np.testing.assert_array_equal(t2, t1)
        g1[...] = g2[...] = g * 0.5


def test_clip_adagrad_keeps_nan_and_checks_arguments():
    theta, mem, g = np.zeros(3), np.zeros(3), np.array([np.nan, 7.0, -np.inf])
    fast.clip_adagrad_(theta, g, mem, 0.1)
    assert np.isnan(g[0]) and g[1] == 5.0 and g[2] == -5.0 and np.isnan(theta[0])
    with pytest.raises(ValueError, match="one dtype"):
        fast.clip_adagrad_(theta, g.astype(np.float32), mem, 0.1)
    with pytest.raises(ValueError, match="one shape"):
        fast.clip_adagrad_(theta, g[:2], mem, 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        fast.clip_adagrad_(np.zeros(6)[::2], g, mem, 0.1)


def test_all_finite():
    a = np.zeros(1001)
    assert fast.all_finite(a)
    for bad in (np.nan, np.inf, -np.inf):
        a[-1] = bad
        assert not fast.all_finite(a)
    assert not fast.all_finite(np.array([3e38, np.nan], np.float32))
    assert fast.all_finite(np.array([[3e38, -3e38]], np.float32))


@pytest.mark.parametrize("m,K,n_updates", [(100, 80, 4), (13, 7, 12)])
def test_fast_step_updates_match_numpy_training(m, K, n_updates):
    """Consecutive updates as the trainer does them: loss+BPTT, clip, AdaGrad, hprev carried.

    Rounding differences grow from update to update (AdaGrad's first steps move an entry by
    about eta * g / sqrt(g^2 + eps), which amplifies a difference in a gradient entry that is
    rounding noise up to eta / sqrt(eps) = 1e3 times, and training feeds it back). The
    per-step oracle drifts from the numpy path in the same way, about 5 times less at m = 100;
    with random text and eta = 0.1 both grow by about 50 times per update from the fifth on.
    """
    rng = np.random.default_rng(21)
    T, eta = 25, 0.1
    data = rng.integers(0, K, T * n_updates + 1)
    p_np = init_params(m, K, 0.01, rng)
    p_np.b[...] = rng.standard_normal(m) * 0.01
    p_fast, mem_np = p_np.copy(), p_np.zeros_like()
    grads_np, tmp, ws = p_np.zeros_like(), np.empty_like(p_np.flat), rnn.Workspace(m, K, T)
    step = fast.FastStep(p_fast, p_fast.zeros_like(), p_fast.zeros_like(), T)
    h_np = h_fast = np.zeros(m)
    for e in range(0, T * n_updates, T):
        x, y = data[e:e + T], data[e + 1:e + T + 1]
        loss_np, h_np = rnn.loss_and_grads(p_np, x, y, h_np, grads_np, ws)
        optim.clip_(grads_np.flat)
        optim.adagrad_(p_np.flat, grads_np.flat, mem_np.flat, eta, tmp=tmp)
        loss_fast, h_fast = step.update(x, y, h_fast, eta)
        assert step.finite
        assert loss_fast == pytest.approx(loss_np, rel=1e-11)
        assert norm_rel(h_fast, h_np) < 1e-10
        assert norm_rel(step.grads.flat, grads_np.flat) < 1e-10  # the clipped gradients
        assert norm_rel(step.mem.flat, mem_np.flat) < 1e-10
        assert norm_rel(p_fast.flat, p_np.flat) < 1e-11
        assert np.abs(p_fast.flat - p_np.flat).max() < 1e-10


def test_fast_step_float32_tracks_numpy_float32():
    rng = np.random.default_rng(2)
    m, K, T, eta = 100, 80, 25, 0.05
    data = rng.integers(0, K, 6 * T + 1)
    p_np = init_params(m, K, 0.01, rng, dtype=np.float32)
    p_fast, mem_np, grads_np = p_np.copy(), p_np.zeros_like(), p_np.zeros_like()
    step = fast.FastStep(p_fast, p_fast.zeros_like(), p_fast.zeros_like(), T)
    h_np = h_fast = np.zeros(m, np.float32)
    for e in range(0, 6 * T, T):
        x, y = data[e:e + T], data[e + 1:e + T + 1]
        loss_np, h_np = rnn.loss_and_grads(p_np, x, y, h_np, grads_np)
        optim.clip_(grads_np.flat)
        optim.adagrad_(p_np.flat, grads_np.flat, mem_np.flat, eta)
        loss_fast, h_fast = step.update(x, y, h_fast, eta)
        assert step.finite and h_fast.dtype == np.float32 and p_fast.flat.dtype == np.float32
        assert loss_fast == pytest.approx(loss_np, rel=1e-5)
        assert norm_rel(p_fast.flat, p_np.flat) < 1e-4


def test_fast_step_skips_non_finite_updates():
    p, x, y, hprev = case(13, 7, 5, seed=3)
    p.W[0, 0] = np.nan
    mem = p.zeros_like()
    mem.flat[...] = 0.5
    before, mem_before = p.flat.copy(), mem.flat.copy()
    step = fast.FastStep(p, p.zeros_like(), mem, 5)
    loss, _ = step.update(x, y, hprev, 0.1)
    assert not step.finite and not np.isfinite(loss)
    np.testing.assert_array_equal(p.flat, before)
    np.testing.assert_array_equal(mem.flat, mem_before)


def test_invalid_sequences_raise():
    p, x, y, hprev = case(5, 4, 6, seed=4)
    grads = p.zeros_like()
    lstm = ParamSet(5, 4, gates=4)
    with pytest.raises(ValueError, match="vanilla RNN"):
        fast.loss_and_grads(lstm, x, y, hprev, lstm.zeros_like())
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fast.loss_and_grads(p, np.array([0, 4, 1]), np.array([0, 1, 2]), hprev, grads)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fast.loss_and_grads(p, np.array([0, 1, 1]), np.array([0, -1, 2]), hprev, grads)
    with pytest.raises(ValueError, match="one length"):
        fast.loss_and_grads(p, x, y[:-1], hprev, grads)
    with pytest.raises(ValueError, match="hprev"):
        fast.loss_and_grads(p, x, y, hprev[:-1], grads)
    step = fast.FastStep(p, p.zeros_like(), p.zeros_like(), 4)
    with pytest.raises(ValueError, match="longer than"):
        step.update(x, y, hprev, 0.1)


def sampling_params(m=100, K=80, seed=0, sig=0.05):
    """Random weights and biases whose recurrence is not chaotic (W's spectral radius ~ 0.5)."""
    rng = np.random.default_rng(seed)
    p = random_params(m, K, rng, sig=sig)
    p.c[...] = rng.standard_normal(K)  # a varied output distribution
    return p, np.tanh(rng.standard_normal(m))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_matches_synth_given_the_same_rng(temperature):
    p, h0 = sampling_params()
    idx_ref, h_ref = synth.sample_indices(p, h0, 3, 2000, np.random.default_rng(5), temperature=temperature)
    idx, h = fast.sample_indices(p, h0, 3, 2000, np.random.default_rng(5), temperature=temperature)
    assert idx.dtype == np.int64 and idx.shape == (2000,)
    np.testing.assert_array_equal(idx, idx_ref)
    assert_close(h, h_ref, rtol=1e-12)
    assert len(np.unique(idx)) > 40  # a real test: many different characters


def test_sampler_kernel_with_given_uniforms():
    p, h0 = sampling_params(m=13, K=7, seed=1, sig=0.2)
    u = np.random.default_rng(9).random(500)
    out = np.empty(500, np.int64)
    fast.sample_indices_kernel(p.U, p.W, p.V, p.b, p.c, h0, 2, u, out)

    class Replay:  # hands synth the same uniforms
        def random(self, n):
            assert n == len(u)
            return u

    idx_ref, _ = synth.sample_indices(p, h0, 2, 500, Replay())
    np.testing.assert_array_equal(out, idx_ref)
    u[:3] = [0.0, np.nextafter(1.0, 0.0), 0.5]  # the extremes stay in range
    fast.sample_indices_kernel(p.U, p.W, p.V, p.b, p.c, h0, 2, u, out, 1.0)
    assert out.min() >= 0 and out.max() < 7


def test_sampler_float32_and_options():
    p, h0 = sampling_params()
    p32 = p.astype(np.float32)
    idx, h = fast.sample_indices(p32, h0, 0, 300, np.random.default_rng(1))
    assert h.dtype == np.float32 and idx.min() >= 0 and idx.max() < 80
    idx64, _ = fast.sample_indices(p, h0, 0, 300, np.random.default_rng(1))
    assert np.mean(idx == idx64) > 0.9  # float32 rounding rarely moves a draw across a boundary
    # top_p < 1 is synth's own code, with the same draws
    a, _ = fast.sample_indices(p, h0, 0, 100, np.random.default_rng(2), top_p=0.9)
    b, _ = synth.sample_indices(p, h0, 0, 100, np.random.default_rng(2), top_p=0.9)
    np.testing.assert_array_equal(a, b)
    assert fast.sample_indices(p, h0, 0, 0, np.random.default_rng(0))[0].shape == (0,)
    with pytest.raises(ValueError, match="x0"):
        fast.sample_indices(p, h0, 80, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature"):
        fast.sample_indices(p, h0, 0, 5, np.random.default_rng(0), temperature=0)


def test_transcendentals_within_two_ulp_of_numpy():
    import numba

    @numba.njit
    def apply(xs, kind):
        out = np.empty_like(xs)
        for i in range(xs.shape[0]):
            out[i] = fast.tanh64(xs[i]) if kind == 0 else fast.exp_nonpositive(xs[i])
        return out

    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.normal(0, 3, 20000), rng.uniform(-1, 1, 5000), [0.625, -0.625, 21.9, 25.0]])
    t, ref = apply(xs, 0), np.tanh(xs)
    assert (np.abs(t - ref) <= 2 * np.spacing(np.abs(ref))).all()
    e_in = -np.abs(np.concatenate([rng.exponential(5, 20000), rng.uniform(0, 700, 5000)]))
    e, ref = apply(e_in, 1), np.exp(e_in)
    assert (np.abs(e - ref) <= 2 * np.spacing(ref)).all()
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(apply(special, 0), np.tanh(special))
    assert np.signbit(apply(special, 0)[1])
    np.testing.assert_array_equal(apply(np.array([0.0, -np.inf, np.nan, -800.0]), 1), [1.0, 0.0, np.nan, 0.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fallback_gemm_matches_numpy(dtype):
    """The compiled GEMM used when no CBLAS is found (every transpose combination)."""
    import ctypes

    dgemm, sgemm = fast._fallback_gemms()
    gemm = dgemm if dtype == np.float64 else sgemm
    rng = np.random.default_rng(0)
    M, N, Kd = 5, 7, 3
    ctype = ctypes.c_double if dtype == np.float64 else ctypes.c_float
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctype))  # noqa: E731
    for ta in (fast._NO_TRANS, fast._TRANS):
        for tb in (fast._NO_TRANS, fast._TRANS):
            A = rng.standard_normal((M, Kd) if ta == fast._NO_TRANS else (Kd, M)).astype(dtype)
            B = rng.standard_normal((Kd, N) if tb == fast._NO_TRANS else (N, Kd)).astype(dtype)
            C = np.full((M, N + 2), np.nan, dtype)  # ldc > N: the extra columns stay untouched
            gemm.ctypes(fast._ROW_MAJOR, ta, tb, M, N, Kd, 1.0, ptr(A), A.shape[1], ptr(B), B.shape[1], 0.0,
                        ptr(C), N + 2)
            want = (A if ta == fast._NO_TRANS else A.T) @ (B if tb == fast._NO_TRANS else B.T)
            np.testing.assert_allclose(C[:, :N], want, rtol=1e-5 if dtype == np.float32 else 1e-13)
            assert np.isnan(C[:, N:]).all()


def test_blas_info_and_unavailable_message(monkeypatch):
    info = fast.blas_info()
    assert info["kind"] in ("cblas", "fallback")
    monkeypatch.setattr(fast, "AVAILABLE", False)
    monkeypatch.setattr(fast, "REASON", "numba is not installed (test)")
    p, x, y, hprev = case(5, 4, 3, seed=0)
    with pytest.raises(RuntimeError, match="not installed"):
        fast.loss_and_grads(p, x, y, hprev, p.zeros_like())
    with pytest.raises(RuntimeError, match="not installed"):
        fast.FastStep(p, p.zeros_like(), p.zeros_like(), 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_step_is_bit_identical_to_its_parts(dtype):
    """FastStep (which skips U's untouched columns) = loss_and_grads + clip_adagrad_ on everything."""
    rng = np.random.default_rng(8)
    m, K, T = 100, 80, 25
    data = rng.integers(0, 30, 4 * T + 1)  # only 30 of the 80 characters: many untouched columns
    p1 = init_params(m, K, 0.01, rng, dtype=dtype)
    mem1, g1, ws = p1.zeros_like(), p1.zeros_like(), fast.Workspace(m, K, T, dtype)
    mem1.flat[...] = rng.random(mem1.flat.size)  # as after some training
    p2, mem2 = p1.copy(), p1.zeros_like()
    mem2.flat[...] = mem1.flat
    step = fast.FastStep(p2, p2.zeros_like(), mem2, T)
    h1 = h2 = np.zeros(m, dtype)
    for e in range(0, 4 * T, T):
        x, y = data[e:e + T], data[e + 1:e + T + 1]
        l1, h1 = fast.loss_and_grads(p1, x, y, h1, g1, ws)
        assert fast.all_finite(g1.flat)
        fast.clip_adagrad_(p1.flat, g1.flat, mem1.flat, 0.1)
        l2, h2 = step.update(x, y, h2, 0.1)
        assert l1 == l2
        np.testing.assert_array_equal(h2, h1)
        np.testing.assert_array_equal(step.grads.flat, g1.flat)
        np.testing.assert_array_equal(mem2.flat, mem1.flat)
        np.testing.assert_array_equal(p2.flat, p1.flat)
