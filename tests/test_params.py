"""helpers.model.params and the cells' initialisation: the flat layout of U, W, V, b, c (and the
arrays of layers 2..L), shape checks, and init_params's draws for every cell."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.model import cells
from helpers.model.params import NAMES, ParamSet, init_params, param_shapes


def test_paramset_views_share_the_flat_buffer():
    m, K = 3, 4
    p = ParamSet(m, K)
    assert p.flat.size == m * K + m * m + K * m + m + K
    for name, shape in param_shapes(m, K).items():
        assert p[name].shape == shape
        assert np.shares_memory(p[name], p.flat)
    p.flat[...] = np.arange(p.flat.size)
    # layout order U, W, V, b, c
    assert p.U[0, 0] == 0 and p.W[0, 0] == m * K and p.c[-1] == p.flat.size - 1
    with pytest.raises(KeyError, match="unknown parameter"):
        p["Z"]


def test_paramset_from_arrays_checks_shapes():
    arrays = {n: np.zeros(s) for n, s in param_shapes(3, 4).items()}
    p = ParamSet.from_arrays(arrays)
    assert (p.m, p.K) == (3, 4)
    bad = dict(arrays, V=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="V"):
        ParamSet.from_arrays(bad)
    with pytest.raises(KeyError, match="c"):
        ParamSet.from_arrays({k: v for k, v in arrays.items() if k != "c"})


def test_layout_one_layer_is_the_assignments_and_more_layers_append():
    one = ParamSet(4, 6, gates=3)
    assert one.names == NAMES and one.flat.size == 12 * 6 + 12 * 4 + 6 * 4 + 12 + 6
    two = ParamSet(4, 6, gates=3, layers=2)
    assert two.names == NAMES + ("U2", "W2", "b2")
    assert two.U2.shape == (12, 4) and two.W2.shape == (12, 4) and two.b2.shape == (12,)
    assert two.flat.size == one.flat.size + 12 * 4 * 2 + 12
    two.flat[...] = np.arange(two.flat.size)
    assert two.U2.base is two.flat or np.shares_memory(two.U2, two.flat)
    np.testing.assert_array_equal(two.layer(2).W, two.W2)
    np.testing.assert_array_equal(two.layer(1).U, two.U)
    assert np.array_equal(two.flat[: one.flat.size].reshape(-1)[:72], two.U.reshape(-1))  # layer 1 first


def test_init_params_statistics_and_dtype_independence():
    m, K, sig = 60, 50, 0.01
    p = init_params(m, K, sig, np.random.default_rng(7))
    assert np.all(p.b == 0) and np.all(p.c == 0)
    for name in ("U", "W", "V"):
        assert p[name].std() == pytest.approx(sig, rel=0.1)
        assert abs(p[name].mean()) < 4 * sig / np.sqrt(p[name].size)
    p32 = init_params(m, K, sig, np.random.default_rng(7), dtype=np.float32)
    assert p32.flat.dtype == np.float32
    np.testing.assert_allclose(p32.flat, p.flat, rtol=1e-6)


def test_init_params_lstm_forget_bias_and_shapes():
    m, K = 5, 7
    p = cells.init_params("lstm", m, K, 0.3, np.random.default_rng(0))
    assert p.gates == 4
    assert p.U.shape == (4 * m, K) and p.W.shape == (4 * m, m) and p.b.shape == (4 * m,)
    assert p.V.shape == (K, m) and p.c.shape == (K,)
    np.testing.assert_array_equal(p.b[m : 2 * m], np.ones(m))
    np.testing.assert_array_equal(p.b[:m], 0.0)
    np.testing.assert_array_equal(p.b[2 * m :], 0.0)
    np.testing.assert_array_equal(p.c, 0.0)
    # the RNN's b stays zero
    np.testing.assert_array_equal(init_params(m, K, 0.3, np.random.default_rng(0)).b, 0.0)
    # U, W, V ~ N(0, sig^2), drawn in the order U, W, V
    r = np.random.default_rng(0)
    np.testing.assert_array_equal(p.U, r.standard_normal((4 * m, K)) * 0.3)
    np.testing.assert_array_equal(p.W, r.standard_normal((4 * m, m)) * 0.3)
    np.testing.assert_array_equal(p.V, r.standard_normal((K, m)) * 0.3)


def test_init_of_a_stack_draws_layer_one_as_before():
    a = init_params(5, 7, 0.1, np.random.default_rng(0))
    b = init_params(5, 7, 0.1, np.random.default_rng(0), layers=3)
    for n in NAMES:
        np.testing.assert_array_equal(a[n], b[n])
    assert np.abs(b.U3).max() > 0 and not np.any(b.b3)
    lstm = cells.init_params("lstm", 5, 7, 0.1, np.random.default_rng(0), layers=2)
    assert np.all(lstm.b[5:10] == 1) and np.all(lstm.b2[5:10] == 1) and not np.any(lstm.b2[:5])


def test_cell_of():
    assert cells.of(ParamSet(3, 4)) == "rnn"
    assert cells.of(ParamSet(3, 4, gates=4)) == "lstm"
    assert cells.of(init_params(3, 4, 0.1, np.random.default_rng(0), gates=4)) == "lstm"
