"""The GRU cell, stacked layers and dropout: against per-step oracles, numerical gradients and
equations written out here; the parameter layout and checkpoints of L layers; dropout masks drawn
from the run's rng and absent at evaluation; exact resume; bad values refused. All sizes are tiny.
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from helpers.model import cells, gradcheck
from helpers.model import oracles as reference
from helpers.model import sample as synth
from helpers.model.params import NAMES, ParamSet, init_params
from helpers.runs import steps as workflow
from helpers.train import checkpoint as ckpt
from helpers.train import evaluate
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState



def quiet():
    """Silence training's progress output."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack

CELLS = ("rnn", "lstm", "gru")
TEXT = ("The boy who lived had never been so glad to see the end of a summer; the castle waited "
        "beyond the lake, and the owls flew over the hills at night.\n") * 3


def random_model(cell: str, layers: int, m: int = 5, K: int = 7, seed: int = 0, sig: float = 0.4) -> ParamSet:
    """Every entry (biases too) from N(0, sig^2)."""
    p = ParamSet(m, K, gates=cells.get(cell).gates, layers=layers)
    p.flat[...] = np.random.default_rng(seed).standard_normal(p.flat.size) * sig
    return p


def sig_(v):
    return 1.0 / (1.0 + np.exp(-v))


def gru_step_by_hand(p, h, x):
    """PyTorch's GRU equations with b_hr = b_hz = b_hn = 0 (gate order r, z, n), written independently."""
    m = p.m
    Wr, Wz, Wn = p.W[:m], p.W[m:2 * m], p.W[2 * m:]
    r = sig_(p.U[:m, x] + p.b[:m] + Wr @ h)
    z = sig_(p.U[m:2 * m, x] + p.b[m:2 * m] + Wz @ h)
    n = np.tanh(p.U[2 * m:, x] + p.b[2 * m:] + r * (Wn @ h))
    return (1 - z) * n + z * h


def oracle_mean(cell, p, X, Y, state, masks=None):
    """Mean over streams of the per-step stacked oracle: (loss, grads, final states)."""
    B = X.shape[0]
    loss, grads, states = 0.0, {k: 0.0 for k in p.names}, []
    for b in range(B):
        mk = None if masks is None else [mask[:, b] for mask in masks]
        lb, gb, sb = reference.stacked_loss_and_grads(cell, p.as_dict(), X[b], Y[b], state[b], mk)
        loss += lb / B
        states.append(sb)
        for k in grads:
            grads[k] = grads[k] + gb[k] / B
    return loss, grads, np.array(states)


# --- the GRU ---------------------------------------------------------------------------------

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
    assert reference.gru_loss_and_grads(*(p[n] for n in NAMES), x, y, np.zeros(p.m))[0] == pytest.approx(expected)


def test_gru_step_and_registry():
    p = random_model("gru", 1, seed=3)
    h = np.random.default_rng(1).standard_normal(p.m) * 0.5
    np.testing.assert_allclose(cells.get("gru").model_step(p, h, 2), gru_step_by_hand(p, h, 2), rtol=1e-12)
    assert cells.CELLS["gru"] == 3 and cells.STATE_SIZES["gru"] == 1 and cells.of(p) == "gru"


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_stacked_oracle_with_one_layer_is_the_cell_oracle(cell):
    """The generic per-step oracle agrees with the assignment's (and the LSTM's) own oracle."""
    p = random_model(cell, 1, seed=5)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, p.K, 6), rng.integers(0, p.K, 6)
    state = rng.standard_normal(cells.STATE_SIZES[cell] * p.m) * 0.5
    loss, grads, final = reference.stacked_loss_and_grads(cell, p.as_dict(), x, y, state)
    if cell == "rnn":
        l2, g2, h2 = reference.loss_and_grads(*(p[n] for n in NAMES), x, y, state)
    else:
        l2, g2, h, s = reference.lstm_loss_and_grads(*(p[n] for n in NAMES), x, y, state[:p.m], state[p.m:])
        h2 = np.concatenate([h, s])
    assert loss == pytest.approx(l2, rel=1e-12)
    np.testing.assert_allclose(final, h2, rtol=1e-12)
    for n in NAMES:
        np.testing.assert_allclose(grads[n], g2[n], rtol=1e-10, atol=1e-13, err_msg=n)


# --- every cell x layers: oracle equality and gradient checks ------------------------------

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
        dZ[:, :, :p.m] *= 1.01  # the reset gate's gradient slightly off
        return dZ, dR

    monkeypatch.setattr(type(gru), "bptt", wrong)
    p = random_model(cell, 1, m=4, K=6, seed=1, sig=0.5)
    x = np.arange(8) % p.K
    result = gradcheck.check(p, x[:-1], x[1:], cell=cell)
    assert result["U"]["norm"] > 1e-4 and result["V"]["norm"] < 1e-6


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
    idx, h = synth.sample_indices(p, state0, 2, 30, np.random.default_rng(0), cell=cell)
    assert idx.shape == (30,) and idx.min() >= 0 and idx.max() < p.K and h.shape == state0.shape


# --- the parameter layout of L layers -----------------------------------------------------

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
    assert np.array_equal(two.flat[:one.flat.size].reshape(-1)[:72], two.U.reshape(-1))  # layer 1 first


def test_init_of_a_stack_draws_layer_one_as_before():
    a = init_params(5, 7, 0.1, np.random.default_rng(0))
    b = init_params(5, 7, 0.1, np.random.default_rng(0), layers=3)
    for n in NAMES:
        np.testing.assert_array_equal(a[n], b[n])
    assert np.abs(b.U3).max() > 0 and not np.any(b.b3)
    lstm = cells.init_params("lstm", 5, 7, 0.1, np.random.default_rng(0), layers=2)
    assert np.all(lstm.b[5:10] == 1) and np.all(lstm.b2[5:10] == 1) and not np.any(lstm.b2[:5])


def test_checkpoint_of_a_stack_round_trips_with_plain_names(tmp_path):
    p = random_model("gru", 2)
    ck = ckpt.Checkpoint(params=p, chars=list("abcdefg"), mem=p.zeros_like(), mem2=p.copy(), best=p.copy(),
                         hprev=np.zeros((2, 2 * p.m)))
    path = ckpt.save(tmp_path / "c.npz", ck)
    with np.load(path, allow_pickle=False) as z:
        assert {"U2", "W2", "b2", "mU2", "vW2", "bestb2"} <= set(z.files)
    back = ckpt.load(path)
    assert back.params.layers == 2 and back.mem2.layers == 2 and cells.of(back.params) == "gru"
    np.testing.assert_array_equal(back.params.flat, p.flat)
    np.testing.assert_array_equal(back.best.flat, p.flat)


def test_a_one_layer_checkpoint_has_exactly_the_old_arrays(tmp_path):
    p = random_model("rnn", 1)
    path = ckpt.save(tmp_path / "c.npz", ckpt.Checkpoint(params=p, chars=list("abcdefg"), mem=p.zeros_like()))
    with np.load(path, allow_pickle=False) as z:
        arrays = set(z.files)
    assert arrays == {*NAMES, *("m" + n for n in NAMES), "hprev", "step", "smooth_loss", "chars", "char_codes", "meta"}


# --- dropout in training ------------------------------------------------------------------

def make_trainer(seed=0, text=TEXT, **overrides):
    base = dict(m=6, eta=0.05, seq_length=5, sig=0.1, n_updates=100, sample_every=1000, sample_until=0,
                sample_length=5, log_every=1, checkpoint_every=1000, optimizer="adam")
    cfg = TrainConfig(**{**base, **overrides})
    chars = sorted(set(text))
    data = np.array([chars.index(ch) for ch in text])
    return Trainer(cfg, data, chars, TrainState.fresh(cfg, len(chars), np.random.default_rng(seed)))


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


def test_training_draws_masks_from_the_run_rng_and_evaluation_uses_none():
    t = make_trainer(cell="lstm", n_layers=2, dropout=0.3, batch_size=2, val_fraction=0.2, eval_every=1000)
    seen = []
    real = t.engine.loss_and_grads
    t.engine.loss_and_grads = lambda p, X, Y, s, g, masks=None: seen.append(masks) or real(p, X, Y, s, g, masks)
    before = t.state.rng.bit_generator.state
    rng = np.random.default_rng()
    rng.bit_generator.state = before
    t.update()
    want = cells.dropout_masks(rng, 0.3, 2, 5, 2, 6, np.float64)
    assert len(seen[0]) == 2
    for got, w in zip(seen[0], want):
        np.testing.assert_array_equal(got, w)
    state = t.state.rng.bit_generator.state
    loss = t.validate()  # evaluation: no masks, no draws
    assert t.state.rng.bit_generator.state == state
    no_dropout = evaluate.loss_per_char("lstm", t.state.params, t.val_data)
    assert loss == no_dropout


def test_dropout_zero_draws_nothing_and_dropout_changes_training():
    plain, dropped = make_trainer(cell="gru", n_layers=2), make_trainer(cell="gru", n_layers=2, dropout=0.2)
    plain.update(), dropped.update()  # the first update also draws the first sample's uniforms
    state = plain.state.rng.bit_generator.state
    for _ in range(4):
        plain.update(), dropped.update()
    assert plain.state.rng.bit_generator.state == state
    assert not np.array_equal(plain.state.params.flat, dropped.state.params.flat)
    again = make_trainer(cell="gru", n_layers=2, dropout=0.2)
    for _ in range(5):
        again.update()
    np.testing.assert_array_equal(again.state.params.flat, dropped.state.params.flat)


@pytest.mark.parametrize("cell", CELLS)
def test_resume_is_exact_with_layers_and_dropout(tmp_path, cell):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    kw = dict(m=6, eta=0.01, seq_length=5, sig=0.1, sample_every=12, sample_until=40, sample_length=8, log_every=3,
              checkpoint_every=1000, cell=cell, n_layers=2, dropout=0.25, batch_size=2, optimizer="adam",
              val_fraction=0.1, eval_every=7)
    with quiet():
        workflow.train(str(path), str(tmp_path / "a"), seed=3, n_updates=40, **kw)
        workflow.train(str(path), str(tmp_path / "b"), seed=3, n_updates=17, **kw)
        workflow.train(str(path), str(tmp_path / "b"), seed=3, n_updates=40, init_from=str(tmp_path / "b" / "last.npz"),
                       **kw)
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    for name in ("params", "mem", "mem2", "best"):
        np.testing.assert_array_equal(getattr(a, name).flat, getattr(b, name).flat, err_msg=name)
    np.testing.assert_array_equal(a.hprev, b.hprev)
    assert a.hprev.shape == (2, 2 * cells.STATE_SIZES[cell] * 6)
    assert a.smooth_loss == b.smooth_loss and a.meta["rng_state"] == b.meta["rng_state"]
    assert a.meta["samples"] == b.meta["samples"]


def test_resume_with_other_layers_or_dropout_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    kw = dict(m=6, seq_length=5, sample_every=1000, sample_until=0, checkpoint_every=1000, cell="lstm")
    with quiet():
        workflow.train(str(path), str(tmp_path / "r"), n_updates=3, n_layers=2, dropout=0.1, **kw)
        for other in ({"n_layers": 1, "dropout": 0.1}, {"n_layers": 2, "dropout": 0.0}):
            name = "n_layers=2" if other["n_layers"] == 1 else "dropout=0.1"
            with pytest.raises(ValueError, match=name):
                workflow.train(str(path), str(tmp_path / "r"), n_updates=6, init_from=str(tmp_path / "r" / "last.npz"),
                               **other, **kw)


@pytest.mark.parametrize("kwargs,name", [({"n_layers": 0}, "n_layers"), ({"n_layers": 1.5}, "n_layers"),
                                         ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout")])
def test_bad_layers_and_dropout_are_refused_by_name(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        TrainConfig(**kwargs)


def test_numba_engine_falls_back_for_a_stack(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        run = workflow.train(str(path), str(tmp_path / "r"), n_updates=3, m=4, seq_length=5, sample_every=1000,
                             sample_until=0, engine="numba", n_layers=2)
    assert run["engine"] == "numpy" and "one-layer" in out.getvalue()


def test_synthesize_from_a_two_layer_checkpoint(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    with quiet():
        workflow.train(str(path), str(tmp_path / "r"), n_updates=5, m=4, seq_length=5, sample_every=1000,
                       sample_until=0, cell="gru", n_layers=2)
    res = workflow.synthesize(str(tmp_path / "r" / "best.npz"), 40, seed=1, prime="The ")
    again = workflow.synthesize(str(tmp_path / "r" / "best.npz"), 40, seed=1, prime="The ")
    assert len(res["text"]) == 40 and res["text"] == again["text"] and set(res["text"]) <= set(TEXT)
    json.dumps(res)
