"""Analytic (BPTT) against numerical gradients, and the relative-error formula."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import random_params, random_sequence
from helpers.model import gradcheck
from helpers.model import oracles as reference
from helpers.runs import steps as workflow
from helpers.model.params import NAMES, init_params, param_shapes


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
    _, ref, _ = reference.loss_and_grads(p.U, p.W, p.V, p.b, p.c, x, y, hprev)
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


def test_workflow_gradient_test_writes_json(tmp_path, text_file):
    path = text_file("abcab cabba\nbca abc ab\n")
    out = tmp_path / "out"
    result = workflow.gradient_test(str(path), str(out), seq_lengths=("1", 4), m=6, sig=0.3, seed=1)
    written = json.loads((out / "gradcheck.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(result))
    assert set(written["errors"]) == {"1", "4"}
    for T in ("1", "4"):
        assert set(written["errors"][T]) == set(NAMES)
        assert all(e < 1e-6 for e in written["errors"][T].values())
        assert set(written["max_errors"][T]) == set(NAMES)
    assert written["corpus"]["K"] == len(set("abcab cabba\nbca abc ab\n"))
    assert written["m"] == 6 and written["dtype"] == "float64"
