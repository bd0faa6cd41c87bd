"""Gradient clipping and the AdaGrad step, checked entry by entry against the formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.train import optim


def adagrad_by_hand(theta, grad, mem, eta, eps=1e-8):
    """m <- m + g^2; theta <- theta - eta g / sqrt(m + eps), one Python float at a time."""
    new_mem = [mi + gi * gi for mi, gi in zip(mem, grad)]
    new_theta = [ti - eta * gi / math.sqrt(mi + eps) for ti, gi, mi in zip(theta, grad, new_mem)]
    return new_theta, new_mem


def test_constants_match_the_assignment():
    assert optim.CLIP == 5.0
    assert optim.EPS == 1e-8


def test_one_adagrad_step_by_hand():
    theta = np.array([1.0, -2.0, 3.0, 0.5])
    grad = np.array([0.5, -1.0, 2.0, 0.0])
    mem = np.array([0.0, 1.0, 0.25, 0.0])
    eta = 0.1
    exp_theta, exp_mem = adagrad_by_hand(theta.tolist(), grad.tolist(), mem.tolist(), eta)
    # the first entry worked out on paper: m = 0.25, theta = 1 - 0.1 * 0.5 / sqrt(0.25 + 1e-8)
    assert exp_theta[0] == pytest.approx(1 - 0.05 / math.sqrt(0.25 + 1e-8), rel=1e-15)
    g_before = grad.copy()
    optim.adagrad_(theta, grad, mem, eta)
    np.testing.assert_allclose(mem, exp_mem, rtol=1e-15)
    np.testing.assert_allclose(theta, exp_theta, rtol=1e-15)
    np.testing.assert_array_equal(grad, g_before)  # the gradient is not modified
    assert theta[3] == 0.5  # zero gradient, zero memory: no step and no nan (eps)


def test_two_steps_accumulate_memory_and_scratch_buffer_is_equivalent():
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(20)
    g1, g2 = rng.standard_normal(20), rng.standard_normal(20) * 3
    mem0 = np.abs(rng.standard_normal(20))
    eta = 0.05

    th, mm = adagrad_by_hand(theta0.tolist(), g1.tolist(), mem0.tolist(), eta)
    th, mm = adagrad_by_hand(th, g2.tolist(), mm, eta)

    for tmp in (None, np.empty(20)):
        theta, mem = theta0.copy(), mem0.copy()
        optim.adagrad_(theta, g1, mem, eta, tmp=tmp)
        optim.adagrad_(theta, g2, mem, eta, tmp=tmp)
        np.testing.assert_allclose(mem, mm, rtol=1e-14)
        np.testing.assert_allclose(theta, th, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(mem, mem0 + g1 ** 2 + g2 ** 2, rtol=1e-14)


def test_first_step_from_zero_memory_moves_by_eta():
    """With m = 0 the first step is eta * g / sqrt(g^2 + eps) = eta * sign(g) (for |g| >> 1e-4)."""
    theta = np.zeros(5)
    grad = np.array([3.0, -0.5, 100.0, -7.0, 0.1])
    optim.adagrad_(theta, grad, np.zeros(5), eta=0.1)
    np.testing.assert_allclose(theta, -0.1 * np.sign(grad), rtol=1e-5)


def test_custom_eps_and_float32():
    theta = np.array([1.0, 2.0], dtype=np.float32)
    grad = np.array([1e-3, -2.0], dtype=np.float32)
    mem = np.zeros(2, dtype=np.float32)
    optim.adagrad_(theta, grad, mem, eta=0.5, eps=1e-2)
    assert theta.dtype == np.float32 and mem.dtype == np.float32
    exp_theta, exp_mem = adagrad_by_hand([1.0, 2.0], [1e-3, -2.0], [0.0, 0.0], 0.5, eps=1e-2)
    np.testing.assert_allclose(theta, exp_theta, rtol=1e-6)
    np.testing.assert_allclose(mem, exp_mem, rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(-10, 10), st.floats(-10, 10), st.floats(0, 100),
        ),
        min_size=1, max_size=12,
    ),
    eta=st.floats(1e-4, 1.0),
)
def test_property_adagrad_matches_formula(data, eta):
    theta = np.array([d[0] for d in data])
    grad = np.array([d[1] for d in data])
    mem = np.array([d[2] for d in data])
    exp_theta, exp_mem = adagrad_by_hand(theta.tolist(), grad.tolist(), mem.tolist(), eta)
    optim.adagrad_(theta, grad, mem, eta)
    np.testing.assert_allclose(mem, exp_mem, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(theta, exp_theta, rtol=1e-12, atol=1e-12)


# --- clipping -------------------------------------------------------------------------


def test_clip_inside_and_outside():
    g = np.array([-12.0, -5.0, -4.999, -1.0, 0.0, 2.5, 5.0, 5.0001, 1e9])
    expected = np.array([-5.0, -5.0, -4.999, -1.0, 0.0, 2.5, 5.0, 5.0, 5.0])
    out = optim.clip_(g)
    assert out is g  # in place, returns its argument
    np.testing.assert_array_equal(g, expected)


def test_clip_leaves_values_inside_untouched_and_custom_limit():
    rng = np.random.default_rng(1)
    g = rng.uniform(-4.9, 4.9, size=100)
    before = g.copy()
    optim.clip_(g)
    np.testing.assert_array_equal(g, before)
    optim.clip_(g, limit=1.0)
    np.testing.assert_array_equal(g, np.minimum(np.maximum(before, -1.0), 1.0))
    assert np.abs(g).max() <= 1.0


def test_clip_2d_and_infinities():
    g = np.array([[np.inf, -np.inf], [7.0, -0.3]])
    optim.clip_(g)
    np.testing.assert_array_equal(g, [[5.0, -5.0], [5.0, -0.3]])
