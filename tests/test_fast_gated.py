"""helpers.model.fast_gated (the numba path of the GRU and the LSTM) against the per-step oracles of
helpers.model.reference and the numpy cells, numerical gradients and the engine (exact resume: test_resume);
its exp, tanh and sigmoid (helpers.model.fast_math) against float64, and its BLAS call
(helpers.model.fast_blas). Skipped without numba. Sizes are tiny; the first run compiles the
kernels (about a minute), later runs load them from numba's cache.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from helpers.model import cells, fast, gradcheck, oracles
from helpers.model.params import ParamSet
from helpers.train import engine
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason=fast.REASON or "numba path unavailable")
if fast.AVAILABLE:
    from numba import njit

    from helpers.model import fast_blas, fast_gated
    from helpers.model.fast_math import exp_, sigmoid_, tanh_

GATED = ("gru", "lstm")
TEXT = (
    "The boy who lived had never been so glad to see the end of a summer; the castle waited "
    "beyond the lake, and the owls flew over the hills at night.\n"
) * 3


def random_model(cell, layers, m=5, K=7, seed=0, sig=0.4, dtype=np.float64) -> ParamSet:
    """Every entry (biases too) from N(0, sig^2)."""
    p = ParamSet(m, K, gates=cells.get(cell).gates, layers=layers, dtype=dtype)
    p.flat[...] = np.random.default_rng(seed).standard_normal(p.flat.size) * sig
    return p


def batch(cell, p, B, T, dropout, seed=7, dtype=np.float64, locked=False):
    """Inputs, targets, a nonzero state and (with dropout) the masks of dropout_masks."""
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, p.K, (B, T)), rng.integers(0, p.K, (B, T))
    state = (rng.standard_normal((B, p.layers * cells.STATE_SIZES[cell] * p.m)) * 0.5).astype(dtype)
    masks = cells.dropout_masks(rng, dropout, p.layers, T, B, p.m, dtype, locked) if dropout else None
    return X, Y, state, masks


def oracle_mean(cell, p, X, Y, state, masks=None):
    """Mean over streams of the per-step stacked oracle (float64): (loss, grads, final states)."""
    B, d = X.shape[0], ParamSet(p.m, p.K, gates=p.gates, layers=p.layers, flat=p.flat.astype(np.float64))
    loss, grads, states = 0.0, {k: 0.0 for k in p.names}, []
    for b in range(B):
        mk = None if masks is None else [np.asarray(mask[:, b], np.float64) for mask in masks]
        lb, gb, sb = oracles.stacked_loss_and_grads(cell, d.as_dict(), X[b], Y[b], np.float64(state[b]), mk)
        loss += lb / B
        states.append(sb)
        grads = {k: grads[k] + gb[k] / B for k in grads}
    return loss, grads, np.array(states)


def norm_rel(a, b) -> float:
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-300))


# --- loss, gradients and state against the oracle and the numpy cells ------------------------------


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dropout,locked", [(0.0, False), (0.3, False), (0.3, True)])
@pytest.mark.parametrize("B,threads", [(1, 1), (3, 1), (3, 2), (4, 2)])
def test_float64_equals_the_oracle_and_the_numpy_cell(cell, layers, dropout, locked, B, threads):
    """locked: the same mask at every step, a read-only broadcast view (dropout_mask "locked")."""
    p = random_model(cell, layers, seed=layers + B)
    X, Y, state, masks = batch(cell, p, B, 6, dropout, locked=locked)
    assert_float64_equals_the_oracle_and_the_numpy_cell(cell, p, X, Y, state, masks, None, threads)


def assert_float64_equals_the_oracle_and_the_numpy_cell(cell, p, X, Y, state, masks, ws, threads):
    """fast_gated.loss_and_grads against the per-step oracle and the numpy cell; returns (loss, grads)."""
    grads, np_grads = p.zeros_like(), p.zeros_like()
    loss, final = fast_gated.loss_and_grads(cell, p, X, Y, state.copy(), grads, masks, ws, threads)
    np_loss, np_final = cells.loss_and_grads(cell, p, X, Y, state.copy(), np_grads, masks=masks)
    ref_loss, ref_grads, ref_final = oracle_mean(cell, p, X, Y, state, masks)
    assert loss == pytest.approx(ref_loss, rel=1e-12) and loss == pytest.approx(np_loss, rel=1e-12)
    np.testing.assert_allclose(final, ref_final, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(final, np_final, rtol=1e-12, atol=1e-15)
    for name in p.names:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(grads[name], np_grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
    return loss, grads


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("B,threads", [(1, 1), (5, 2)])
def test_float32_agrees_with_the_oracle_as_closely_as_numpy_float32(cell, layers, dropout, B, threads):
    """float32 to rounding: within 1e-4 of the float64 oracle, and no further than 4x numpy's own error."""
    p = random_model(cell, layers, m=16, K=11, seed=3, sig=0.3, dtype=np.float32)
    X, Y, state, masks = batch(cell, p, B, 12, dropout, dtype=np.float32)
    grads, np_grads = p.zeros_like(), p.zeros_like()
    loss, final = fast_gated.loss_and_grads(cell, p, X, Y, state.copy(), grads, masks, threads=threads)
    np_loss, np_final = cells.loss_and_grads(cell, p, X, Y, state.copy(), np_grads, masks=masks)
    ref_loss, ref_grads, ref_final = oracle_mean(cell, p, X, Y, state, masks)
    assert grads.flat.dtype == np.float32 and final.dtype == np.float32
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert norm_rel(final, ref_final) < 1e-5
    for name in p.names:
        err, np_err = norm_rel(grads[name], ref_grads[name]), norm_rel(np_grads[name], ref_grads[name])
        assert err < max(1e-4, 4 * np_err), (name, err, np_err)


@pytest.mark.parametrize("cell", GATED)
def test_one_and_two_threads_agree_to_rounding_and_workspaces_are_reused(cell):
    p = random_model(cell, 2, seed=5)
    X, Y, state, masks = batch(cell, p, 4, 5, 0.2)
    ws = fast_gated.Workspace(cell, p.m, p.K, 4, 5, 2, np.float64, threads=2)
    assert ws.fits(cell, p, 4, 5, 2) and not ws.fits(cell, p, 4, 5, 1) and not ws.fits(cell, p, 3, 5, 2)
    out = {}
    for threads in (1, 2, 2):
        g = p.zeros_like()
        loss, final = fast_gated.loss_and_grads(
            cell, p, X, Y, state, g, masks, ws if threads == 2 else None, threads
        )
        out.setdefault(threads, []).append((loss, final, g.flat.copy()))
    (l1, _f1, g1), (l2, f2, g2), (l3, f3, g3) = out[1][0], out[2][0], out[2][1]
    assert (
        l2 == l3 and np.array_equal(f2, f3) and np.array_equal(g2, g3)
    )  # the same workspace: the same numbers
    assert l1 == pytest.approx(l2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-11, atol=1e-15)


def two_threads():
    if fast.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba on two threads")


@pytest.mark.parametrize("m", [6, 8])  # 3 and 4 units a thread
@pytest.mark.parametrize("dropout,locked", [(0.0, False), (0.3, False), (0.3, True)])
@pytest.mark.parametrize("B", [1, 4])
def test_the_lstm_crew_equals_the_oracle_and_the_numpy_cell(m, dropout, locked, B):
    """One LSTM layer on two threads runs on a crew that splits the units (helpers.model.fast_crew)."""
    two_threads()
    p = random_model("lstm", 1, m=m, seed=B)
    X, Y, state, masks = batch("lstm", p, B, 6, dropout, locked=locked)
    ws = fast_gated.Workspace("lstm", m, p.K, B, 6, 1, np.float64, threads=2)
    assert ws.crew and (ws.n, ws.blas_threads) == (2, 1) and ws.Z is None
    loss, grads = assert_float64_equals_the_oracle_and_the_numpy_cell("lstm", p, X, Y, state, masks, ws, 2)
    again = p.zeros_like()  # the same workspace again: the same numbers
    assert fast_gated.loss_and_grads("lstm", p, X, Y, state.copy(), again, masks, ws, threads=2)[0] == loss
    np.testing.assert_array_equal(again.flat, grads.flat)


def test_the_crew_serves_only_a_one_layer_lstm_whose_units_split_evenly():
    two_threads()
    for cell, m, layers, crew in (
        ("lstm", 6, 1, True),
        ("lstm", 5, 1, False),
        ("lstm", 6, 2, False),
        ("gru", 6, 1, False),
    ):
        ws = fast_gated.Workspace(cell, m, 7, 3, 4, layers, np.float32, threads=2)
        assert ws.crew == crew, (cell, m, layers)
        assert not fast_gated.Workspace(cell, m, 7, 3, 4, layers, np.float32, threads=1).crew


def test_no_crew_on_a_threading_layer_that_may_run_two_iterations_on_one_thread(monkeypatch):
    two_threads()
    monkeypatch.setattr(fast.numba.config, "THREADING_LAYER", "tbb")
    assert not fast_gated.Workspace("lstm", 6, 7, 3, 4, 1, np.float64, threads=2).crew


def blas_threads() -> list:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_one_layer_gives_its_threads_to_blas_for_the_call_and_a_stack_to_numba(monkeypatch):
    if not fast_blas.addresses()[0] or fast.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numpy's own BLAS and two cores")
    seen = []

    @contextlib.contextmanager
    def recording(n):
        seen.append(n)
        with real(n):
            seen.append(fast_blas._THREADS[0][0]())  # the count inside the call
            yield

    real = fast_blas.threads
    monkeypatch.setattr(fast_blas, "threads", recording)
    numba_before = fast.numba.get_num_threads()
    for layers, expected in ((1, [2, 2]), (2, [1, 1])):
        p = random_model("lstm", layers, seed=layers)
        X, Y, state, _ = batch("lstm", p, 4, 5, 0.0)
        with threadpool_limits(1, "blas"):
            before = blas_threads()
            seen.clear()
            fast_gated.loss_and_grads("lstm", p, X, Y, state, p.zeros_like(), None, None, threads=2)
            assert seen == expected and blas_threads() == before  # restored after the call
            monkeypatch.setattr(fast_gated, "_loss_and_grads", lambda *a: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                fast_gated.loss_and_grads("lstm", p, X, Y, state, p.zeros_like(), None, None, threads=2)
            assert blas_threads() == before  # and after an error
            monkeypatch.undo()
            monkeypatch.setattr(fast_blas, "threads", recording)
        assert fast.numba.get_num_threads() == numba_before  # numba's count too
        ws = fast_gated.Workspace("lstm", p.m, p.K, 4, 5, layers, np.float64, threads=2)
        assert (ws.n, ws.blas_threads) == ((1, 2) if layers == 1 else (2, 1))


@pytest.mark.parametrize("cell", GATED)
def test_one_layer_on_blas_threads_agrees_with_one_thread(cell):
    """At a size where OpenBLAS does split the products between its threads."""
    p = random_model(cell, 1, m=64, K=20, seed=3, sig=0.2)
    X, Y, state, _ = batch(cell, p, 32, 6, 0.0)
    out = []
    with threadpool_limits(1, "blas"):
        for threads in (1, 2):
            g = p.zeros_like()
            loss, final = fast_gated.loss_and_grads(cell, p, X, Y, state, g, None, None, threads)
            out.append((loss, final, g.flat.copy()))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(out[0][2], out[1][2], rtol=1e-10, atol=1e-14)


def test_bad_inputs_are_refused():
    p = random_model("gru", 1)
    X, Y, state, _ = batch("gru", p, 2, 4, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        fast_gated.loss_and_grads("gru", p, X + 7, Y, state, p.zeros_like())
    with pytest.raises(ValueError, match="one shape"):
        fast_gated.loss_and_grads("gru", p, X, Y[:, :-1], state, p.zeros_like())
    with pytest.raises(ValueError, match="serves"):
        fast_gated.Workspace("rnn", 5, 7, 2, 4)


# --- numerical gradients through the compiled path --------------------------------------------------


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("layers,dropout", [(1, 0.0), (1, 0.3), (2, 0.3)])
def test_gradcheck_through_the_numba_path(cell, layers, dropout):
    """On two threads the one-layer LSTM runs on the crew (m = 4: two units a thread)."""
    p = random_model(cell, layers, m=4, K=6, seed=11, sig=0.5)
    X, Y, state, masks = batch(cell, p, 2, 5, dropout, seed=3)
    ws = fast_gated.Workspace(cell, p.m, p.K, 2, 5, layers, np.float64, threads=2)
    grads = p.zeros_like()
    fast_gated.loss_and_grads(cell, p, X, Y, state, grads, masks, ws, threads=2)

    def loss():
        return fast_gated.loss_and_grads(cell, p, X, Y, state, p.zeros_like(), masks, ws, threads=2)[0]

    for name in p.names:
        view = p[name].reshape(-1)
        numeric = np.array([gradcheck.centered_difference(loss, view, i, 1e-5) for i in range(view.size)])
        assert gradcheck.relative_errors(grads[name], numeric)["norm"] < 1e-7, name


# --- exp, tanh, sigmoid and the BLAS call -----------------------------------------------------------

if fast.AVAILABLE:

    @njit(error_model="numpy")
    def _apply(kind, x, out):
        for i in range(x.shape[0]):
            out[i] = tanh_(x[i]) if kind == 0 else (exp_(x[i]) if kind == 1 else sigmoid_(x[i]))

    @njit
    def _gemm(blas, A, Bm, C, beta):
        fast_blas.gemm(blas, A, Bm, C, beta)


@pytest.mark.parametrize("kind,ulps", [(0, 1.5), (1, 1.0), (2, 2.5)])
def test_float32_exp_tanh_sigmoid_within_a_few_ulps(kind, ulps):
    x = np.concatenate(
        [
            np.linspace(-20, 20, 400_001),
            np.geomspace(1e-30, 1, 2000),
            -np.geomspace(1e-30, 1, 2000),
            [0.0, -0.0, 0.625, -0.625],
        ]
    ).astype(np.float32)
    out, x64 = np.empty_like(x), x.astype(np.float64)
    _apply(kind, x, out)
    ref = (np.tanh(x64), np.exp(x64), 1.0 / (1.0 + np.exp(-x64)))[kind]
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert (np.abs(out - ref) / ulp).max() <= ulps
    odd = np.array([np.nan, np.inf, -np.inf, 200.0, -200.0], np.float32)
    _apply(kind, odd, res := np.empty_like(odd))
    assert np.isnan(res[0]) and np.isfinite(res[1:]).all()  # NaN stays NaN; e^x saturates at e^88
    _apply(kind, x64, out64 := np.empty_like(x64))
    np.testing.assert_allclose(out64, ref, rtol=1e-15, atol=1e-300)  # float64: libm's


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("numpy_blas", [True, False])
def test_gemm_on_every_layout(dtype, numpy_blas):
    blas = fast_blas.addresses() if numpy_blas else np.zeros(3, np.int64)
    rng = np.random.default_rng(0)
    A, Bm, wide = (rng.standard_normal(s).astype(dtype) for s in ((7, 5), (5, 9), (5, 12)))
    layouts = (
        (A, Bm),
        (np.ascontiguousarray(A.T).T, Bm),
        (A, wide[:, :9]),
        (A[2:3], Bm),
        (A, np.asfortranarray(Bm)),
    )
    for a, b in layouts:
        C = np.ones((a.shape[0], 9), dtype)
        _gemm(blas, a, b, C, 0.0)
        np.testing.assert_allclose(C, a @ b, rtol=1e-5)
        _gemm(blas, a, b, C, 1.0)
        np.testing.assert_allclose(C, 2 * (a @ b), rtol=1e-5)


# --- the engine, and exact resume ------------------------------------------------------------------


def trainer(cell, engine_name, **kw):
    cfg = TrainConfig(
        cell=cell,
        m=6,
        seq_length=5,
        batch_size=3,
        optimizer="adam",
        eta=0.01,
        sample_until=0,
        engine=engine_name,
        **kw,
    )
    data = np.random.default_rng(0).integers(0, 9, 400)
    return Trainer(
        cfg, data, [chr(97 + k) for k in range(9)], TrainState.fresh(cfg, 9, np.random.default_rng(1))
    )


@pytest.mark.parametrize("cell", GATED)
def test_engines_numba_and_auto_serve_the_gated_cells_and_train_as_numpy(cell):
    runs = {name: trainer(cell, name, n_layers=2, dropout=0.2) for name in ("numpy", "numba", "auto")}
    assert {k: t.engine.name for k, t in runs.items()} == {
        "numpy": "numpy",
        "numba": "numba",
        "auto": "numba",
    }
    for t in runs.values():
        for _ in range(6):
            t.update()
    ref = runs["numpy"].state
    for name in ("numba", "auto"):
        s = runs[name].state
        np.testing.assert_allclose(s.params.flat, ref.params.flat, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(s.hprev, ref.hprev, rtol=1e-10, atol=1e-13)
        assert s.rng.bit_generator.state == ref.rng.bit_generator.state  # the same dropout draws


def test_auto_keeps_the_vanilla_rnn_on_numpy():
    assert engine.make(trainer("rnn", "auto").cfg, 9, np.float64).name == "numpy"
    assert trainer("lstm", "numba").engine.threads >= 1
