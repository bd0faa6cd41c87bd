"""The vanilla RNN's one-stream path (helpers.model.rnn: vectorized forward/BPTT, its workspace) against
helpers.model.oracles (the per-step oracle) and the model equations by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.model import oracles, rnn
from helpers.model.params import NAMES, ParamSet, param_shapes

from conftest import assert_close, oracle, random_params, random_sequence, softmax


@pytest.mark.parametrize("T", [1, 2, 3, 7, 25])
@pytest.mark.parametrize("m,K", [(5, 4), (8, 7), (12, 3)])
def test_fast_path_matches_reference_float64(m, K, T):
    rng = np.random.default_rng(1000 * m + 10 * K + T)
    p = random_params(m, K, rng, sig=0.3)
    x, y = random_sequence(K, T, rng)
    hprev = np.tanh(rng.standard_normal(m))  # a nonzero, realistic carried state
    grads = p.zeros_like()
    loss, hlast = rnn.loss_and_grads(p, x, y, hprev, grads)
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name in NAMES:
        assert grads[name].shape == param_shapes(m, K)[name]
        assert_close(grads[name], ref_grads[name], rtol=1e-10)
    assert_close(hlast, ref_hlast, rtol=1e-10)
    assert np.any(hlast != hprev)


def test_loss_is_cross_entropy_by_hand():
    """T=1 computed entirely by hand from the model equations."""
    rng = np.random.default_rng(3)
    m, K = 4, 5
    p = random_params(m, K, rng)
    hprev = rng.standard_normal(m) * 0.5
    x, y = np.array([2]), np.array([4])
    h1 = np.tanh(p.W @ hprev + p.U[:, 2] + p.b)
    probs = softmax(p.V @ h1 + p.c)
    grads = p.zeros_like()
    loss, hlast = rnn.loss_and_grads(p, x, y, hprev, grads)
    assert loss == pytest.approx(-np.log(probs[4]), rel=1e-12)
    np.testing.assert_allclose(hlast, h1, rtol=1e-12)
    # dL/dc = p - onehot(y); dL/dV = (p - onehot) h1^T
    do = probs.copy()
    do[4] -= 1
    np.testing.assert_allclose(grads.c, do, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads.V, np.outer(do, h1), rtol=1e-12, atol=1e-15)
    # only column x of dU is nonzero
    da = (p.V.T @ do) * (1 - h1**2)
    expected_dU = np.zeros((m, K))
    expected_dU[:, 2] = da
    np.testing.assert_allclose(grads.U, expected_dU, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads.W, np.outer(da, hprev), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads.b, da, rtol=1e-12, atol=1e-15)


def test_zero_params_loss_is_T_log_K():
    m, K, T = 6, 9, 11
    p = ParamSet(m, K)
    x, y = random_sequence(K, T, np.random.default_rng(0))
    loss = rnn.forward(p, x, y, np.zeros(m))[0]
    assert loss == pytest.approx(T * np.log(K), rel=1e-12)


def test_inputs_not_modified(rng):
    p = random_params(6, 4, rng)
    before = p.flat.copy()
    x, y = random_sequence(4, 8, rng)
    x0, y0 = x.copy(), y.copy()
    hprev = rng.standard_normal(6)
    h0 = hprev.copy()
    rnn.loss_and_grads(p, x, y, hprev, p.zeros_like())
    np.testing.assert_array_equal(p.flat, before)
    np.testing.assert_array_equal(hprev, h0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_workspace_reuse_longer_buffer_and_no_state_leak(rng):
    """One workspace serving sequences of different lengths gives the oracle's answers each time."""
    m, K = 6, 5
    p = random_params(m, K, rng)
    ws = rnn.Workspace(m, K, 12)
    for T in (12, 3, 1, 12, 7):
        x, y = random_sequence(K, T, rng)
        hprev = rng.standard_normal(m) * 0.5
        grads = p.zeros_like()
        grads.flat[...] = np.nan  # backward must overwrite every entry
        loss, hlast = rnn.loss_and_grads(p, x, y, hprev, grads, ws)
        ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        for name in NAMES:
            assert_close(grads[name], ref_grads[name], rtol=1e-10)
        assert_close(hlast, ref_hlast, rtol=1e-10)
        assert not ws.X.any(), "the one-hot buffer must be cleared after backward"


def test_workspace_that_does_not_fit_is_replaced(rng):
    p = random_params(5, 4, rng)
    small = rnn.Workspace(5, 4, 2)
    x, y = random_sequence(4, 6, rng)  # longer than the workspace
    assert not small.fits(p, 6)
    assert small.fits(p, 2)
    assert not small.fits(p.astype(np.float32), 2)
    loss, ws = rnn.forward(p, x, y, np.zeros(5), small)
    assert ws is not small and ws.T >= 6
    assert loss == pytest.approx(oracle(p, x, y, np.zeros(5))[0], rel=1e-10)


def test_hidden_state_chaining_equals_one_long_sequence(rng):
    """Running two halves with hlast carried over gives the loss of the whole sequence."""
    m, K = 6, 5
    p = random_params(m, K, rng)
    x, y = random_sequence(K, 10, rng)
    h0 = rng.standard_normal(m) * 0.2
    g = p.zeros_like()
    l1, h_mid = rnn.loss_and_grads(p, x[:4], y[:4], h0, g)
    l2, h_end = rnn.loss_and_grads(p, x[4:], y[4:], h_mid, g)
    l_all, h_all = rnn.loss_and_grads(p, x, y, h0, g)
    assert l1 + l2 == pytest.approx(l_all, rel=1e-12)
    np.testing.assert_allclose(h_end, h_all, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("T", [1, 4, 25])
def test_float32_workspace(T):
    rng = np.random.default_rng(T)
    m, K = 10, 7
    p64 = random_params(m, K, rng, sig=0.3)
    p32 = p64.astype(np.float32)
    x, y = random_sequence(K, T, rng)
    hprev = (rng.standard_normal(m) * 0.3).astype(np.float32)
    ws = rnn.Workspace(m, K, T, np.float32)
    grads = p32.zeros_like()
    assert grads.flat.dtype == np.float32
    loss, hlast = rnn.loss_and_grads(p32, x, y, hprev, grads, ws)
    assert ws.H.dtype == np.float32 and hlast.dtype == np.float32
    assert np.isfinite(loss)
    # float32 fast path against the float64 oracle on the same (float32-representable) parameters
    ref_loss, ref_grads, ref_hlast = oracle(p32, x, y, hprev)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for name in NAMES:
        diff = np.linalg.norm(grads[name].astype(np.float64) - ref_grads[name])
        assert diff <= 1e-4 * max(np.linalg.norm(ref_grads[name]), 1e-6), name
    np.testing.assert_allclose(hlast, ref_hlast, rtol=1e-4, atol=1e-6)
    # and against the oracle run in float32 itself
    ref32 = oracles.loss_and_grads(*(p32[n] for n in NAMES), x, y, hprev)
    assert loss == pytest.approx(ref32[0], rel=1e-4)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 9), K=st.integers(2, 8), T=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_property_fast_path_equals_oracle(m, K, T, seed):
    rng = np.random.default_rng(seed)
    p = random_params(m, K, rng, sig=0.5)
    x, y = random_sequence(K, T, rng)
    hprev = np.tanh(rng.standard_normal(m))
    grads = p.zeros_like()
    loss, hlast = rnn.loss_and_grads(p, x, y, hprev, grads)
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name in NAMES:
        assert_close(grads[name], ref_grads[name], rtol=1e-9)
    assert_close(hlast, ref_hlast, rtol=1e-10)
