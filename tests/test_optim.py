"""The optimizers (AdaGrad, RMSProp, Adam), gradient clipping and the learning-rate schedule, checked
entry by entry against the formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.train import optim
from helpers.train.config import TrainConfig
from helpers.train.schedule import learning_rate


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
        np.testing.assert_allclose(mem, mem0 + g1**2 + g2**2, rtol=1e-14)


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
            st.floats(-10, 10),
            st.floats(-10, 10),
            st.floats(0, 100),
        ),
        min_size=1,
        max_size=12,
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


# --- RMSProp and Adam, and the optimizers' shared signature -------------------------------------


THETA0 = [0.5, -1.0, 2.0, 0.0, 3.0]
GRADS = ([0.3, -2.0, 0.0, 1e-3, 4.0], [-0.1, 0.5, 1.5, -2.0, 4.0])


def run_optimizer(name, eta, n_steps):
    theta = np.array(THETA0)
    slots = [np.zeros_like(theta) for _ in range(optim.SLOTS[name])]
    tmp = np.empty_like(theta)
    for t in range(1, n_steps + 1):
        g = np.array(GRADS[t - 1])
        optim.OPTIMIZERS[name](theta, g, slots, eta, t, tmp)
        np.testing.assert_array_equal(g, GRADS[t - 1])  # the gradient is left alone
    return theta, slots


@pytest.mark.parametrize("n_steps", [1, 2])
def test_rmsprop_by_hand(n_steps):
    eta = 0.05
    theta, ms = list(THETA0), [0.0] * 5
    for t in range(n_steps):
        for k in range(5):
            g = GRADS[t][k]
            ms[k] = 0.9 * ms[k] + 0.1 * g * g
            theta[k] -= eta * g / math.sqrt(ms[k] + 1e-8)
    got, slots = run_optimizer("rmsprop", eta, n_steps)
    assert optim.SLOTS["rmsprop"] == 1
    np.testing.assert_allclose(slots[0], ms, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got, theta, rtol=1e-14, atol=1e-15)
    if (
        n_steps == 1
    ):  # entry 0 on paper: m = 0.1 * 0.09 = 0.009, theta = 0.5 - 0.05 * 0.3 / sqrt(0.009 + 1e-8)
        assert got[0] == pytest.approx(0.5 - 0.015 / math.sqrt(0.009 + 1e-8), rel=1e-14)


@pytest.mark.parametrize("n_steps", [1, 2])
def test_adam_by_hand(n_steps):
    eta = 0.01
    theta, m1, v = list(THETA0), [0.0] * 5, [0.0] * 5
    for t in range(1, n_steps + 1):
        for k in range(5):
            g = GRADS[t - 1][k]
            m1[k] = 0.9 * m1[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            m_hat, v_hat = m1[k] / (1 - 0.9**t), v[k] / (1 - 0.999**t)
            theta[k] -= eta * m_hat / (math.sqrt(v_hat) + 1e-8)
    got, slots = run_optimizer("adam", eta, n_steps)
    assert optim.SLOTS["adam"] == 2
    np.testing.assert_allclose(slots[0], m1, rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(slots[1], v, rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(got, theta, rtol=1e-13, atol=1e-15)
    if n_steps == 1:  # Adam's first step is eta * sign(g) (up to eps) for every non-zero g
        np.testing.assert_allclose(np.array(THETA0) - got, eta * np.sign(GRADS[0]), rtol=1e-5, atol=0)


def test_adagrad_shared_signature_equals_adagrad_():
    rng = np.random.default_rng(4)
    theta = rng.standard_normal(20)
    mem = np.abs(rng.standard_normal(20))
    t1, m1 = theta.copy(), mem.copy()
    t2, m2 = theta.copy(), mem.copy()
    for step in (1, 2, 3):
        g = rng.standard_normal(20)
        optim.adagrad(t1, g, [m1], 0.1, step, np.empty(20))
        optim.adagrad_(t2, g, m2, 0.1)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(m1, m2)
    assert optim.SLOTS["adagrad"] == 1
    assert set(optim.OPTIMIZERS) == {"adagrad", "rmsprop", "adam"}


# --- the learning-rate schedule -------------------------------------------------------------------


def test_defaults_give_eta_itself():
    cfg = TrainConfig(eta=0.1)
    assert all(learning_rate(cfg, t, e) is cfg.eta for t, e in ((1, 1), (500, 3), (10**6, 40)))


def test_schedule_by_hand():
    decay = TrainConfig(eta=0.2, lr_decay=0.5)
    assert [learning_rate(decay, 7, e) for e in (1, 2, 4)] == pytest.approx([0.2, 0.1, 0.025])
    warm = TrainConfig(eta=0.2, warmup=4)
    assert [learning_rate(warm, t, 1) for t in (1, 2, 4, 9)] == pytest.approx([0.05, 0.1, 0.2, 0.2])
    cos = TrainConfig(eta=0.2, lr_schedule="cosine", n_updates=100)
    assert learning_rate(cos, 1, 1) == pytest.approx(0.2)
    assert learning_rate(cos, 51, 1) == pytest.approx(0.1)
    assert learning_rate(cos, 100, 1) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.99)))
    both = TrainConfig(eta=0.2, lr_schedule="cosine", n_updates=100, warmup=10, lr_decay=0.9)
    assert learning_rate(both, 5, 2) == pytest.approx(0.2 * 0.9 * 0.5 * 0.5 * (1 + math.cos(math.pi * 0.04)))
