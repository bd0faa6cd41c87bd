"""The cells (helpers.model.cells: rnn, lstm, gru) on mini-batches of B streams and stacks of L layers,
against the per-step oracles in helpers.model.oracles and against steps written out here; a cell's
model_step (what sampling uses) against its forward pass; dropout masks. All sizes are tiny.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.model import cells, oracles, rnn, sample
from helpers.model.params import NAMES

from conftest import gru_step_by_hand, lstm_step_by_hand, oracle_stream, random_model, random_params, softmax

CELLS = ("rnn", "lstm", "gru")


def oracle_mean(cell, p, X, Y, state, masks=None):
    """Mean over streams of the per-step stacked oracle: (loss, grads, final states)."""
    B = X.shape[0]
    loss, grads, states = 0.0, {k: 0.0 for k in p.names}, []
    for b in range(B):
        mk = None if masks is None else [mask[:, b] for mask in masks]
        lb, gb, sb = oracles.stacked_loss_and_grads(cell, p.as_dict(), X[b], Y[b], state[b], mk)
        loss += lb / B
        states.append(sb)
        for k in grads:
            grads[k] = grads[k] + gb[k] / B
    return loss, grads, np.array(states)


# --- one layer: the mini-batch forward/BPTT against the per-step oracles ---------------------------


@pytest.mark.parametrize("cell,B,T", [("lstm", 3, 7), ("lstm", 1, 5), ("rnn", 4, 6), ("rnn", 1, 9)])
def test_cells_batch_is_the_mean_over_streams_of_the_reference(cell, B, T):
    rng = np.random.default_rng(7 + B + T)
    m, K = 5, 7
    p = random_params(m, K, rng, sig=0.4, gates=cells.CELLS[cell])
    X, Y = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    S = cells.STATE_SIZES[cell]
    state = rng.standard_normal((B, S * m)) * 0.5  # a non-zero starting state, h and s
    state_before = state.copy()
    grads = p.zeros_like()
    loss, new_state = cells.loss_and_grads(cell, p, X, Y, state, grads)

    refs = [oracle_stream(cell, p, X[b], Y[b], state_before[b]) for b in range(B)]
    assert loss == pytest.approx(sum(r[0] for r in refs) / B, rel=1e-11, abs=1e-11)
    for name in NAMES:
        expected = sum(r[1][name] for r in refs) / B
        np.testing.assert_allclose(grads[name], expected, rtol=1e-9, atol=1e-11, err_msg=name)
    assert new_state.shape == (B, S * m)
    np.testing.assert_allclose(new_state, np.stack([r[2] for r in refs]), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(state, state_before)  # the input state is not modified
    # the forward pass alone agrees with the forward of loss_and_grads
    assert cells.forward(cell, p, X, Y, state)[0] == pytest.approx(loss, rel=1e-13)


def test_cells_rnn_one_stream_equals_helpers_rnn():
    rng = np.random.default_rng(11)
    m, K, T = 6, 8, 10
    p = random_params(m, K, rng, sig=0.4)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    h0 = rng.standard_normal(m) * 0.3
    g1, g2 = p.zeros_like(), p.zeros_like()
    loss1, h1 = rnn.loss_and_grads(p, x, y, h0, g1)
    loss2, h2 = cells.loss_and_grads("rnn", p, x[None, :], y[None, :], h0[None, :], g2)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    np.testing.assert_allclose(g2.flat, g1.flat, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(h2[0], h1, rtol=1e-12, atol=1e-14)


def test_lstm_forward_loss_from_the_equations():
    """An independent check of the LSTM loss: the step written out here, not the oracle."""
    rng = np.random.default_rng(5)
    m, K, T = 4, 6, 8
    p = random_params(m, K, rng, sig=0.6, gates=4)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    h, s, loss = np.zeros(m), np.zeros(m), 0.0
    for t in range(T):
        h, s = lstm_step_by_hand(p, h, s, x[t])
        loss -= math.log(softmax(p.V @ h + p.c)[y[t]])
    got = cells.forward("lstm", p, x[None, :], y[None, :], np.zeros((1, 2 * m)))[0]
    assert got == pytest.approx(loss, rel=1e-12)


def test_gru_loss_from_the_equations():
    p = random_model("gru", 1)
    x, y = [3, 1, 4, 1, 5], [1, 4, 1, 5, 2]
    h, expected = np.zeros(p.m), 0.0
    for t in range(len(x)):
        h = gru_step_by_hand(p, h, x[t])
        o = p.V @ h + p.c
        expected += -(o[y[t]] - o.max() - np.log(np.exp(o - o.max()).sum()))
    loss, cache = cells.forward("gru", p, np.array([x]), np.array([y]), np.zeros((1, p.m)))
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(cache["state"][0], h, rtol=1e-12)
    assert oracles.gru_loss_and_grads(*(p[n] for n in NAMES), x, y, np.zeros(p.m))[0] == pytest.approx(
        expected
    )


def test_gru_step_and_registry():
    p = random_model("gru", 1, seed=3)
    h = np.random.default_rng(1).standard_normal(p.m) * 0.5
    np.testing.assert_allclose(cells.get("gru").model_step(p, h, 2), gru_step_by_hand(p, h, 2), rtol=1e-12)
    assert cells.CELLS["gru"] == 3 and cells.STATE_SIZES["gru"] == 1 and cells.of(p) == "gru"


# --- stacks of layers, with and without dropout ----------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_stacked_oracle_with_one_layer_is_the_cell_oracle(cell):
    """The generic per-step oracle agrees with the assignment's (and the LSTM's) own oracle."""
    p = random_model(cell, 1, seed=5)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, p.K, 6), rng.integers(0, p.K, 6)
    state = rng.standard_normal(cells.STATE_SIZES[cell] * p.m) * 0.5
    loss, grads, final = oracles.stacked_loss_and_grads(cell, p.as_dict(), x, y, state)
    if cell == "rnn":
        l2, g2, h2 = oracles.loss_and_grads(*(p[n] for n in NAMES), x, y, state)
    else:
        l2, g2, h, s = oracles.lstm_loss_and_grads(*(p[n] for n in NAMES), x, y, state[: p.m], state[p.m :])
        h2 = np.concatenate([h, s])
    assert loss == pytest.approx(l2, rel=1e-12)
    np.testing.assert_allclose(final, h2, rtol=1e-12)
    for n in NAMES:
        np.testing.assert_allclose(grads[n], g2[n], rtol=1e-10, atol=1e-13, err_msg=n)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_batched_stack_is_the_mean_of_the_oracle(cell, layers, dropout):
    p = random_model(cell, layers, seed=layers)
    rng = np.random.default_rng(7)
    B, T = 3, 6
    X, Y = rng.integers(0, p.K, (B, T)), rng.integers(0, p.K, (B, T))
    state = rng.standard_normal((B, layers * cells.STATE_SIZES[cell] * p.m)) * 0.5
    masks = cells.dropout_masks(rng, dropout, layers, T, B, p.m, np.float64) if dropout else None
    grads = p.zeros_like()
    loss, final = cells.loss_and_grads(cell, p, X, Y, state.copy(), grads, masks=masks)
    l_ref, g_ref, s_ref = oracle_mean(cell, p, X, Y, state, masks)
    assert loss == pytest.approx(l_ref, rel=1e-12)
    np.testing.assert_allclose(final, s_ref, rtol=1e-11, atol=1e-14)
    for name in p.names:
        np.testing.assert_allclose(grads[name], g_ref[name], rtol=1e-9, atol=1e-13, err_msg=name)


def test_dropout_masks_are_inverted_reproducible_and_from_the_rng():
    a = cells.dropout_masks(np.random.default_rng(5), 0.25, 2, 40, 8, 16, np.float32)
    b = cells.dropout_masks(np.random.default_rng(5), 0.25, 2, 40, 8, 16, np.float32)
    assert len(a) == 2 and a[0].shape == (40, 8, 16) and a[0].dtype == np.float32
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    values = np.unique(np.concatenate([x.ravel() for x in a]))
    np.testing.assert_allclose(values, [0.0, 1 / 0.75])
    kept = np.mean([x.ravel() > 0 for x in a])
    assert abs(kept - 0.75) < 0.02  # 10,240 draws: 5 standard deviations
    assert not np.array_equal(a[0], a[1])


def test_locked_dropout_masks_are_one_mask_per_stream_over_all_steps():
    a = cells.dropout_masks(np.random.default_rng(5), 0.25, 2, 40, 8, 16, np.float32, locked=True)
    b = cells.dropout_masks(np.random.default_rng(5), 0.25, 2, 40, 8, 16, np.float32, locked=True)
    assert len(a) == 2 and a[0].shape == (40, 8, 16) and a[0].dtype == np.float32
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, np.broadcast_to(x[0], x.shape))  # the same at every step
        assert not np.array_equal(x[0, 0], x[0, 1])  # not the same in every stream
    np.testing.assert_allclose(np.unique(a[0]), [0.0, 1 / 0.75])
    kept = np.mean([x[0].ravel() > 0 for x in a])
    assert abs(kept - 0.75) < 0.07  # 256 draws: 5 standard deviations
    assert not np.array_equal(a[0], a[1])


# --- one step at a time (sampling) against the forward pass ----------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_step_state_chained_equals_forward_states(cell):
    rng = np.random.default_rng(21)
    m, K, T = 5, 6, 9
    p = random_params(m, K, rng, sig=0.4, gates=cells.CELLS[cell])
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    S = cells.STATE_SIZES[cell]
    state0 = rng.standard_normal(S * m) * 0.5
    _, cache = cells.forward(cell, p, x[None, :], y[None, :], state0[None, :].copy())
    state = state0.copy()
    for t in range(T):
        state = cells.get(cell).model_step(p, state, int(x[t]))
        np.testing.assert_allclose(state[:m], cache["layers"][0]["H"][t + 1, 0], rtol=1e-12, atol=1e-14)
        if cell == "lstm":
            np.testing.assert_allclose(state[m:], cache["layers"][0]["S"][t + 1, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state, cache["state"][0], rtol=1e-12, atol=1e-14)
    if cell == "lstm":  # and against the step written out here
        h, s = state0[:m], state0[m:]
        for t in range(T):
            h, s = lstm_step_by_hand(p, h, s, int(x[t]))
        np.testing.assert_allclose(state, np.concatenate([h, s]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_sampling_steps_of_a_stack_equal_the_forward_states(cell):
    p = random_model(cell, 2, seed=9)
    rng = np.random.default_rng(3)
    x = rng.integers(0, p.K, 7)
    state0 = rng.standard_normal(2 * cells.STATE_SIZES[cell] * p.m) * 0.5
    _, cache = cells.forward(cell, p, x[None, :], x[None, :], state0[None, :].copy())
    state = state0.copy()
    for t in range(len(x)):
        state = cells.get(cell).model_step(p, state, int(x[t]))
        np.testing.assert_allclose(cells.get(cell).top(p, state), cache["top"][t, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state, cache["state"][0], rtol=1e-12, atol=1e-14)
    idx, h = sample.sample_indices(p, state0, 2, 30, np.random.default_rng(0), cell=cell)
    assert idx.shape == (30,) and idx.min() >= 0 and idx.max() < p.K and h.shape == state0.shape
