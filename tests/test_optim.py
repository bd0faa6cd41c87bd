"""The optimizers (AdaGrad, RMSProp, Adam), gradient clipping and the learning-rate schedule, checked
entry by entry against the formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.model.params import ParamSet
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


# --- the options the quality recipe needs: initialisation, clipping by norm, weight decay, a time budget ----


def test_the_initialisations():
    """The assignment's draws are unchanged; orthogonal W blocks; Xavier and PyTorch-uniform bounds."""
    from helpers.model.params import init_params

    m, K, G = 6, 9, 4
    old = init_params(m, K, 0.01, np.random.default_rng(3), gates=G)
    rng = np.random.default_rng(3)
    by_hand = [rng.standard_normal(s) * 0.01 for s in ((G * m, K), (G * m, m), (K, m))]
    assert all(np.array_equal(old[n], a) for n, a in zip("UWV", by_hand))
    orth = init_params(m, K, 0.01, np.random.default_rng(3), gates=G, layers=2, init="orthogonal")
    for name in ("W", "W2"):
        for k in range(G):
            block = orth[name][k * m : (k + 1) * m]
            np.testing.assert_allclose(block @ block.T, np.eye(m), atol=1e-12)
    assert np.abs(orth.U).max() <= np.sqrt(6 / (m + K)) and np.abs(orth.V).max() <= np.sqrt(6 / (K + m))
    assert np.abs(orth.U).max() > 0.5 * np.sqrt(6 / (m + K))  # not the assignment's tiny scale
    uni = init_params(m, K, 0.01, np.random.default_rng(3), gates=G, init="uniform")
    assert np.abs(uni.flat).max() <= 1 / np.sqrt(m) and not uni.b.any() and not orth.c.any()
    with pytest.raises(ValueError, match="init must be one of assignment, uniform, orthogonal"):
        init_params(m, K, 0.01, np.random.default_rng(3), init="xavier")
    assert TrainConfig().init_scheme == "assignment"  # the vanilla RNN keeps the assignment's
    assert TrainConfig(cell="gru").init_scheme == TrainConfig(cell="lstm").init_scheme == "orthogonal"
    assert TrainConfig(cell="lstm", init="assignment").init_scheme == "assignment"


def test_clip_norm_scales_the_whole_gradient_and_clip_0_clips_nothing():
    g = np.array([3.0, 4.0, 0.0])
    optim.clip_norm_(g, 1.0)
    np.testing.assert_allclose(g, [0.6, 0.8, 0.0], atol=1e-6)
    small = np.array([0.3, 0.4])
    optim.clip_norm_(small, 1.0)
    assert np.array_equal(small, [0.3, 0.4])
    big = np.full(4, 50.0)
    engine_of(clip=0.0).step(np.zeros(4), big, [np.zeros(4)], 1, np.empty(4), 1.0)
    assert np.array_equal(big, np.full(4, 50.0))  # no elementwise clip: AdaGrad saw 50s
    clipped = np.full(4, 50.0)
    engine_of(clip=5.0, clip_norm=2.0).step(np.zeros(4), clipped, [np.zeros(4)], 1, np.empty(4), 1.0)
    np.testing.assert_allclose(clipped, np.full(4, 1.0), atol=1e-6)  # [5, 5, 5, 5], then to norm 2


def test_weight_decay_shrinks_the_weights_not_the_biases():
    from helpers.train.trainer import weight_mask

    p = ParamSet(2, 3)
    p.flat[...] = 1.0
    mask = weight_mask(p)
    theta, g = p.flat.copy(), np.zeros_like(p.flat)
    engine_of(weight_decay=0.1, optimizer="adam").step(
        theta, g, [np.zeros_like(g)] * 2, 1, np.empty_like(g), 0.5, mask
    )
    shrunk = ParamSet(2, 3, flat=theta)
    assert np.allclose(shrunk.U, 0.95) and np.allclose(shrunk.W, 0.95) and np.allclose(shrunk.V, 0.95)
    assert np.array_equal(shrunk.b, [1.0, 1.0]) and np.array_equal(shrunk.c, [1.0, 1.0, 1.0])  # zero grads


def test_a_cosine_over_a_time_budget_follows_the_clock():
    from helpers.train.schedule import learning_rate

    cfg = TrainConfig(eta=0.2, lr_schedule="cosine", time_budget=100.0, n_updates=10**6)
    assert learning_rate(cfg, 5, 1, seconds=0.0) == pytest.approx(0.2)
    assert learning_rate(cfg, 5, 1, seconds=50.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 5, 1, seconds=100.0) == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(cfg, 5, 1, seconds=250.0) == pytest.approx(0.0, abs=1e-15)
    plain = TrainConfig(eta=0.2, lr_schedule="cosine", n_updates=100)
    assert learning_rate(plain, 51, 1, seconds=999.0) == pytest.approx(0.1)  # no budget: by updates


def engine_of(**settings):
    from helpers.train import engine

    return engine.NumpyEngine(TrainConfig(**settings), 3, np.float64)
