"""Analytic (BPTT) against numerical gradients for every cell at 1 and 2 layers (with dropout masks too),
the relative-error formula, that the check can fail, and the gradient-test step's gradcheck.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.model import cells, gradcheck, oracles
from helpers.model.params import NAMES, init_params, param_shapes
from helpers.runs import steps

from conftest import random_model, random_params, random_sequence

CELLS = ("rnn", "lstm", "gru")


# --- relative_errors on hand-made vectors ---------------------------------------------


def test_relative_errors_identical_vectors_are_zero():
    g = np.array([1.0, -2.0, 3.0])
    assert gradcheck.relative_errors(g, g.copy()) == {"norm": 0.0, "max": 0.0}


def test_relative_errors_against_zero_is_one():
    # ||(3,4) - 0|| / (||(3,4)|| + 0) = 5/5; elementwise |3|/3 = |4|/4 = 1
    r = gradcheck.relative_errors(np.array([3.0, 4.0]), np.zeros(2))
    assert r["norm"] == pytest.approx(1.0)
    assert r["max"] == pytest.approx(1.0)


def test_relative_errors_hand_computed():
    g_a = np.array([1.0, 2.0, 0.0, -4.0])
    g_n = np.array([1.0, 2.5, 0.0, -4.0])
    # norm: 0.5 / (sqrt(1+4+16) + sqrt(1+6.25+16))
    expected_norm = 0.5 / (math.sqrt(21.0) + math.sqrt(23.25))
    # elementwise: the second entry 0.5 / 4.5; the zero entry 0 / eps = 0
    r = gradcheck.relative_errors(g_a, g_n)
    assert r["norm"] == pytest.approx(expected_norm, rel=1e-14)
    assert r["max"] == pytest.approx(0.5 / 4.5, rel=1e-14)


def test_relative_errors_opposite_signs_is_one():
    r = gradcheck.relative_errors(np.array([2.0, -1.0]), np.array([-2.0, 1.0]))
    assert r["norm"] == pytest.approx(1.0)
    assert r["max"] == pytest.approx(1.0)


def test_relative_errors_eps_floor_and_matrices():
    # both zero: 0 / eps = 0 rather than nan
    r = gradcheck.relative_errors(np.zeros((2, 3)), np.zeros((2, 3)))
    assert r == {"norm": 0.0, "max": 0.0}
    # tiny values: the denominator is floored at eps=1e-12
    r = gradcheck.relative_errors(np.array([0.0]), np.array([1e-20]))
    assert r["max"] == pytest.approx(1e-20 / 1e-12)
    assert r["norm"] == pytest.approx(1e-20 / 1e-12)
    # a matrix is compared like its flattening (Frobenius norm)
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.0, 0.0]])
    r = gradcheck.relative_errors(a, b)
    assert r["norm"] == pytest.approx(1.0 / (math.sqrt(2) + 1.0))
    assert r["max"] == pytest.approx(1.0)
    assert isinstance(r["norm"], float) and isinstance(r["max"], float)


# --- numerical gradients ---------------------------------------------------------------


def test_numerical_grads_match_reference_with_nonzero_hprev(rng):
    """numerical_grads (centered differences) vs the oracle's analytic gradients, hprev != 0."""
    m, K, T = 5, 4, 6
    p = random_params(m, K, rng, sig=0.4)
    x, y = random_sequence(K, T, rng)
    hprev = np.tanh(rng.standard_normal(m))
    before = p.flat.copy()
    num = gradcheck.numerical_grads(p, x, y, hprev)
    np.testing.assert_array_equal(p.flat, before)  # every perturbed entry restored exactly
    _, ref, _ = oracles.loss_and_grads(p.U, p.W, p.V, p.b, p.c, x, y, hprev)
    for name in NAMES:
        assert gradcheck.relative_errors(ref[name], num[name])["norm"] < 1e-7, name


def test_numerical_grads_progress_counts_entries():
    """progress gets cumulative counts of entries done: increasing, never past the total."""
    m, K = 15, 12
    total = sum(int(np.prod(s)) for s in param_shapes(m, K).values())
    assert total == 612
    rng = np.random.default_rng(4)
    p = random_params(m, K, rng)
    x, y = random_sequence(K, 2, rng)
    seen = []
    gradcheck.numerical_grads(p, x, y, np.zeros(m), progress=seen.append)
    assert seen, "progress was never called"
    assert all(int(v) == v and 0 < v <= total for v in seen)
    assert all(a < b for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("m,K,T", [(5, 4, 1), (5, 7, 3), (8, 5, 10), (10, 6, 6)])
def test_check_small_models(m, K, T):
    rng = np.random.default_rng(100 * m + K + T)
    p = random_params(m, K, rng, sig=0.3)
    x, y = random_sequence(K, T, rng)
    before = p.flat.copy()
    result = gradcheck.check(p, x, y)
    assert set(result) == set(NAMES)
    for name in NAMES:
        assert set(result[name]) == {"norm", "max"}
        assert 0 <= result[name]["norm"] < 1e-6, (name, result[name])
    np.testing.assert_array_equal(p.flat, before)


def test_check_detects_a_wrong_gradient(monkeypatch):
    """The checker must be able to fail: corrupt dW in the analytic pass and see it flagged."""
    from helpers.model import rnn

    real = rnn.backward  # the one-stream BPTT the check's analytic pass runs

    def broken(p, x, y, ws, grads):
        real(p, x, y, ws, grads)
        grads.W *= 1.01

    monkeypatch.setattr(rnn, "backward", broken)
    rng = np.random.default_rng(5)
    p = random_params(5, 4, rng)
    x, y = random_sequence(4, 5, rng)
    result = gradcheck.check(p, x, y)
    assert result["W"]["norm"] > 1e-3
    assert result["U"]["norm"] < 1e-6


def test_check_accepts_float32_params_and_leaves_them_alone():
    rng = np.random.default_rng(9)
    p32 = random_params(6, 5, rng).astype(np.float32)
    before = p32.flat.copy()
    x, y = random_sequence(5, 4, rng)
    result = gradcheck.check(p32, x, y)
    assert all(result[n]["norm"] < 1e-6 for n in NAMES), result
    assert p32.flat.dtype == np.float32
    np.testing.assert_array_equal(p32.flat, before)


def test_check_m100_short_sequence():
    """The assignment's size (m=100, sig=0.01) on a short sequence and a small vocabulary."""
    rng = np.random.default_rng(2024)
    K, T = 10, 5
    p = init_params(100, K, 0.01, rng)
    x, y = random_sequence(K, T, rng)
    result = gradcheck.check(p, x, y)
    for name in NAMES:
        assert result[name]["norm"] < 1e-6, (name, result[name])


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_gradient_check_passes_on_random_small_models(m, K, T, seed):
    rng = np.random.default_rng(seed)
    p = init_params(m, K, 0.5, rng)
    p.b[...] = rng.standard_normal(m) * 0.3
    p.c[...] = rng.standard_normal(K) * 0.3
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    errors = gradcheck.check(p, x, y, h=1e-5)
    assert all(e["norm"] < 1e-6 for e in errors.values()), errors


# --- the LSTM, the GRU and stacks of layers --------------------------------------------------


@pytest.mark.parametrize("seed,m,K,T", [(0, 4, 5, 6), (1, 5, 7, 9), (2, 3, 4, 12)])
def test_gradcheck_lstm(seed, m, K, T):
    rng = np.random.default_rng(seed)
    p = init_params(m, K, 0.5, rng, gates=4)
    p.b[...] += rng.standard_normal(p.b.shape) * 0.5  # non-zero biases everywhere
    p.c[...] = rng.standard_normal(K) * 0.5
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    result = gradcheck.check(p, x, y, cell="lstm")
    assert set(result) == set(NAMES)
    for name, r in result.items():
        assert r["norm"] < 1e-6, (name, r)
        assert r["max"] < 1e-4, (name, r)


def test_gradcheck_lstm_detects_a_wrong_gradient(monkeypatch):
    """The check is able to fail: a backward that forgets the forget gate's path is caught."""
    rng = np.random.default_rng(3)
    p = init_params(4, 5, 0.5, rng, gates=4)
    x, y = rng.integers(0, 5, 8), rng.integers(0, 5, 8)
    real = cells.get("lstm").backward

    def broken(p_, cache, grads):
        real(p_, cache, grads)
        grads.W[p_.m : 2 * p_.m] *= 1.1  # forget-gate rows of dW off by 10%

    monkeypatch.setattr(cells.get("lstm"), "backward", broken)
    assert gradcheck.check(p, x, y, cell="lstm")["W"]["norm"] > 1e-3


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_every_cell_and_layers(cell, layers):
    p = random_model(cell, layers, m=4, K=6, seed=11, sig=0.5)
    x = np.random.default_rng(layers).integers(0, p.K, 8)
    result = gradcheck.check(p, x[:-1], x[1:], cell=cell)
    assert set(result) == set(p.names)
    worst = max(r["norm"] for r in result.values())
    assert worst < 1e-6, result


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_with_fixed_dropout_masks(cell):
    p = random_model(cell, 2, m=4, K=6, seed=12, sig=0.5)
    x = np.random.default_rng(4).integers(0, p.K, 8)
    masks = cells.dropout_masks(np.random.default_rng(0), 0.3, 2, 7, 1, p.m, np.float64)
    result = gradcheck.check(p, x[:-1], x[1:], cell=cell, masks=masks)
    assert max(r["norm"] for r in result.values()) < 1e-6, result


@pytest.mark.parametrize("cell", ["gru"])
def test_gradcheck_detects_a_wrong_gru_gradient(cell, monkeypatch):
    gru = cells.get("gru")
    real = type(gru).bptt

    def wrong(self, p, Z, H, cache, dH):
        dZ, dR = real(self, p, Z, H, cache, dH)
        dZ[:, :, : p.m] *= 1.01  # the reset gate's gradient slightly off
        return dZ, dR

    monkeypatch.setattr(type(gru), "bptt", wrong)
    p = random_model(cell, 1, m=4, K=6, seed=1, sig=0.5)
    x = np.arange(8) % p.K
    result = gradcheck.check(p, x[:-1], x[1:], cell=cell)
    assert result["U"]["norm"] > 1e-4 and result["V"]["norm"] < 1e-6


# --- the gradient-test step ------------------------------------------------------------------


def test_gradient_test_step_writes_json(tmp_path, text_file):
    path = text_file("abcab cabba\nbca abc ab\n")
    out = tmp_path / "out"
    result = steps.gradient_test(str(path), str(out), seq_lengths=("1", 4), m=6, sig=0.3, seed=1)
    written = json.loads((out / "gradcheck.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(result))
    assert set(written["errors"]) == {"1", "4"}
    for T in ("1", "4"):
        assert set(written["errors"][T]) == set(NAMES)
        assert all(e < 1e-6 for e in written["errors"][T].values())
        assert set(written["max_errors"][T]) == set(NAMES)
    assert written["corpus"]["K"] == len(set("abcab cabba\nbca abc ab\n"))
    assert written["m"] == 6 and written["dtype"] == "float64"
