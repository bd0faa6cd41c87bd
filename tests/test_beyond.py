"""The features beyond the assignment: the LSTM cell, mini-batches of B streams, RMSProp and Adam,
the validation split and its metrics, exact resume of such runs, and the engine fall-back.

Every expectation is derived independently: the per-step oracles in ``helpers.model.reference``, hand
written optimizer formulas, an LSTM step written out here with ``1 / (1 + exp(-z))``, and the
documented layout of the streams and of the validation split. All sizes are tiny.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from helpers.model import cells
from helpers.train import evaluate
from helpers.model import gradcheck
from helpers.train import optim
from helpers.model import reference
from helpers.model import rnn
from helpers.model import sample as synth
from helpers.runs import steps as workflow
from helpers.train import checkpoint as ckpt
from helpers.train.config import TrainConfig
from helpers.data.text import build_vocab, encode
from helpers.model.params import NAMES, ParamSet, init_params
from helpers.train.trainer import Trainer, TrainState

TEXT = ("It was a bright cold day in April, and the clocks were striking thirteen. "
        "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, "
        "slipped quickly through the glass doors of Victory Mansions, though not quickly enough "
        "to prevent a swirl of gritty dust from entering along with him.\n") * 2  # 2 x 287 = 574 chars


# --- helpers written for these tests -------------------------------------------------------


def random_gated(m: int, K: int, gates: int, rng: np.random.Generator, sig: float = 0.4) -> ParamSet:
    """Parameters with every entry (biases too) drawn from N(0, sig^2), for ``gates`` blocks."""
    p = ParamSet(m, K, gates=gates)
    p.flat[...] = rng.standard_normal(p.flat.size) * sig
    return p


def sig_(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step_by_hand(p: ParamSet, h, s, x):
    """One LSTM step from the equations (gate order i, f, g, o), written independently."""
    m = p.m
    z = p.W @ h + p.U[:, x] + p.b
    i, f, g, o = sig_(z[:m]), sig_(z[m:2 * m]), np.tanh(z[2 * m:3 * m]), sig_(z[3 * m:])
    s = f * s + i * g
    return o * np.tanh(s), s


def softmax(o):
    e = np.exp(o - o.max())
    return e / e.sum()


def sample_by_hand(p: ParamSet, h0, x0, n, seed, cell):
    """The documented sampler: all n uniforms drawn up front, inverse CDF of p_t for each."""
    u = np.random.default_rng(seed).random(n)
    m = p.m
    h = np.array(h0[:m], float)
    s = np.array(h0[m:], float) if cell == "lstm" else None
    x, out = int(x0), []
    for t in range(n):
        if cell == "lstm":
            h, s = lstm_step_by_hand(p, h, s, x)
        else:
            h = np.tanh(p.W @ h + p.U[:, x] + p.b)
        cdf = np.cumsum(softmax(p.V @ h + p.c))
        x = min(int(np.searchsorted(cdf, u[t] * cdf[-1], side="right")), p.K - 1)
        out.append(x)
    state = np.concatenate([h, s]) if cell == "lstm" else h
    return out, state


def ref_args(p: ParamSet):
    return tuple(np.array(p[name], float) for name in NAMES)


def ref_stream(cell, p, x, y, state):
    """(loss, grads, final state) of one stream from the per-step oracle."""
    m = p.m
    if cell == "lstm":
        loss, g, h, s = reference.lstm_loss_and_grads(*ref_args(p), x, y, state[:m], state[m:])
        return loss, g, np.concatenate([h, s])
    loss, g, h = reference.loss_and_grads(*ref_args(p), x, y, state)
    return loss, g, h


def quiet():
    """Silence stdout and stderr (training prints progress and notes)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def train_quiet(path, out, **kw):
    with quiet():
        return workflow.train(str(path), str(out), **kw)


SMALL = dict(m=8, eta=0.1, seq_length=6, sig=0.1, sample_every=20, sample_until=60, sample_length=15,
             log_every=5, checkpoint_every=1000)


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


# --- cells: the mini-batch forward/BPTT against the per-step oracles ------------------------


@pytest.mark.parametrize("cell,B,T", [("lstm", 3, 7), ("lstm", 1, 5), ("rnn", 4, 6), ("rnn", 1, 9)])
def test_cells_batch_is_the_mean_over_streams_of_the_reference(cell, B, T):
    rng = np.random.default_rng(7 + B + T)
    m, K = 5, 7
    p = random_gated(m, K, cells.CELLS[cell], rng)
    X, Y = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    S = cells.STATE_SIZES[cell]
    state = rng.standard_normal((B, S * m)) * 0.5  # a non-zero starting state, h and s
    state_before = state.copy()
    grads = p.zeros_like()
    loss, new_state = cells.loss_and_grads(cell, p, X, Y, state, grads)

    refs = [ref_stream(cell, p, X[b], Y[b], state_before[b]) for b in range(B)]
    assert loss == pytest.approx(sum(r[0] for r in refs) / B, rel=1e-11, abs=1e-11)
    for name in NAMES:
        expected = sum(r[1][name] for r in refs) / B
        np.testing.assert_allclose(grads[name], expected, rtol=1e-9, atol=1e-11, err_msg=name)
    assert new_state.shape == (B, S * m)
    np.testing.assert_allclose(new_state, np.stack([r[2] for r in refs]), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(state, state_before)  # the input state is not modified
    # loss_only agrees with the forward of loss_and_grads
    assert cells.loss_only(cell, p, X, Y, state) == pytest.approx(loss, rel=1e-13)


def test_cells_rnn_one_stream_equals_helpers_rnn():
    rng = np.random.default_rng(11)
    m, K, T = 6, 8, 10
    p = random_gated(m, K, 1, rng)
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
    p = random_gated(m, K, 4, rng, sig=0.6)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    h, s, loss = np.zeros(m), np.zeros(m), 0.0
    for t in range(T):
        h, s = lstm_step_by_hand(p, h, s, x[t])
        loss -= math.log(softmax(p.V @ h + p.c)[y[t]])
    got = cells.loss_only("lstm", p, x[None, :], y[None, :], np.zeros((1, 2 * m)))
    assert got == pytest.approx(loss, rel=1e-12)


# --- gradient check and initialisation of the LSTM ----------------------------------------


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
        grads.W[p_.m:2 * p_.m] *= 1.1  # forget-gate rows of dW off by 10%

    monkeypatch.setattr(cells.get("lstm"), "backward", broken)
    assert gradcheck.check(p, x, y, cell="lstm")["W"]["norm"] > 1e-3


def test_init_params_lstm_forget_bias_and_shapes():
    m, K = 5, 7
    p = cells.init_params("lstm", m, K, 0.3, np.random.default_rng(0))
    assert p.gates == 4
    assert p.U.shape == (4 * m, K) and p.W.shape == (4 * m, m) and p.b.shape == (4 * m,)
    assert p.V.shape == (K, m) and p.c.shape == (K,)
    np.testing.assert_array_equal(p.b[m:2 * m], np.ones(m))
    np.testing.assert_array_equal(p.b[:m], 0.0)
    np.testing.assert_array_equal(p.b[2 * m:], 0.0)
    np.testing.assert_array_equal(p.c, 0.0)
    # the RNN's b stays zero
    np.testing.assert_array_equal(init_params(m, K, 0.3, np.random.default_rng(0)).b, 0.0)
    # U, W, V ~ N(0, sig^2), drawn in the order U, W, V
    r = np.random.default_rng(0)
    np.testing.assert_array_equal(p.U, r.standard_normal((4 * m, K)) * 0.3)
    np.testing.assert_array_equal(p.W, r.standard_normal((4 * m, m)) * 0.3)
    np.testing.assert_array_equal(p.V, r.standard_normal((K, m)) * 0.3)


# --- step_state and sampling ----------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_step_state_chained_equals_forward_states(cell):
    rng = np.random.default_rng(21)
    m, K, T = 5, 6, 9
    p = random_gated(m, K, cells.CELLS[cell], rng)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    S = cells.STATE_SIZES[cell]
    state0 = rng.standard_normal(S * m) * 0.5
    _, cache = cells.forward(cell, p, x[None, :], y[None, :], state0[None, :].copy())
    state = state0.copy()
    for t in range(T):
        state = cells.step_state(cell, p, state, int(x[t]))
        np.testing.assert_allclose(state[:m], cache["layers"][0]["H"][t + 1, 0], rtol=1e-12, atol=1e-14)
        if cell == "lstm":
            np.testing.assert_allclose(state[m:], cache["layers"][0]["S"][t + 1, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state, cache["state"][0], rtol=1e-12, atol=1e-14)
    if cell == "lstm":  # and against the step written out here
        h, s = state0[:m], state0[m:]
        for t in range(T):
            h, s = lstm_step_by_hand(p, h, s, int(x[t]))
        np.testing.assert_allclose(state, np.concatenate([h, s]), rtol=1e-12, atol=1e-14)


def test_sample_indices_lstm_reproducible_in_vocabulary_and_as_documented():
    rng = np.random.default_rng(8)
    m, K, n = 6, 9, 60
    p = random_gated(m, K, 4, rng, sig=0.8)
    h0 = rng.standard_normal(2 * m) * 0.3
    a, ha = synth.sample_indices(p, h0, 2, n, np.random.default_rng(99), cell="lstm")
    b, hb = synth.sample_indices(p, h0, 2, n, np.random.default_rng(99), cell="lstm")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    assert len(a) == n and a.min() >= 0 and a.max() < K
    assert ha.shape == (2 * m,)
    assert len(set(a.tolist())) > 1  # sig 0.8: not one character over and over
    c, _ = synth.sample_indices(p, h0, 2, n, np.random.default_rng(100), cell="lstm")
    assert not np.array_equal(a, c)
    expected, state = sample_by_hand(p, h0, 2, n, 99, "lstm")
    assert a.tolist() == expected
    np.testing.assert_allclose(ha, state, rtol=1e-11, atol=1e-13)


def test_cell_of():
    assert cells.of(ParamSet(3, 4)) == "rnn"
    assert cells.of(ParamSet(3, 4, gates=4)) == "lstm"
    assert cells.of(init_params(3, 4, 0.1, np.random.default_rng(0), gates=4)) == "lstm"


# --- optimizers --------------------------------------------------------------------------------


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
    if n_steps == 1:  # entry 0 on paper: m = 0.1 * 0.09 = 0.009, theta = 0.5 - 0.05 * 0.3 / sqrt(0.009 + 1e-8)
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
            m_hat, v_hat = m1[k] / (1 - 0.9 ** t), v[k] / (1 - 0.999 ** t)
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


# --- the Trainer with B streams -----------------------------------------------------------------


def make_trainer(text=TEXT, seed=0, **overrides):
    base = dict(m=6, eta=0.1, seq_length=5, sig=0.1, n_updates=100, sample_every=1000, sample_until=0,
                sample_length=5, log_every=1, checkpoint_every=1000)
    base.update(overrides)
    cfg = TrainConfig(**base)
    chars = build_vocab(text)
    state = TrainState.fresh(cfg, len(chars), np.random.default_rng(seed))
    return Trainer(cfg, encode(text, chars), chars, state)


def record_calls(trainer):
    """Wrap trainer.loss_and_grads to record (x, y, hprev) of every update."""
    calls, real = [], trainer.loss_and_grads

    def wrapped(x, y):
        calls.append((np.array(x), np.array(y), np.array(trainer.state.hprev)))
        return real(x, y)

    trainer.loss_and_grads = wrapped
    return calls


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_batch_streams_positions_epochs_and_chars_seen(cell):
    text = TEXT[:200]  # 200 // 3 = 66 per stream (2 characters unused); 66 = 13 * 5 + 1: the last chunk ends at L
    B, T, n = 3, 5, 40
    tr = make_trainer(text, cell=cell, batch_size=B, seq_length=T, n_updates=n)
    data = encode(text, build_vocab(text))
    L = 66
    assert tr.L == L
    calls = record_calls(tr)
    e, expected_starts = 0, [0]
    for step in range(n):
        if e + T + 1 > L:  # chunks at e = 0, 5, ..., 60 (60 + 5 + 1 = 66 = L), then a new epoch
            e = 0
            expected_starts.append(step)
        tr.update()
        x, y, hprev = calls[-1]
        assert x.shape == (B, T) and y.shape == (B, T)
        for b in range(B):
            np.testing.assert_array_equal(x[b], data[b * L + e:b * L + e + T])
            np.testing.assert_array_equal(y[b], data[b * L + e + 1:b * L + e + T + 1])
        S = cells.STATE_SIZES[cell]
        assert hprev.shape == (B, S * tr.cfg.m)
        if e == 0:  # first chunk of an epoch: zero state
            np.testing.assert_array_equal(hprev, 0.0)
        else:
            assert np.abs(hprev).max() > 0
        e += T
        assert tr.state.step == step + 1
        assert tr.chars_seen == (step + 1) * B * T
    assert tr.state.epoch_starts == expected_starts == [0, 13, 26, 39]
    assert tr.state.epoch == 4


def test_batch_training_equals_a_hand_loop_on_the_oracle():
    """B = 2 LSTM streams, reference gradients averaged, clipped to [-5, 5], RMSProp by hand."""
    text = TEXT[:150]
    B, T, n, eta, m = 2, 6, 16, 0.05, 5
    tr = make_trainer(text, seed=2, cell="lstm", batch_size=B, seq_length=T, n_updates=n, eta=eta,
                      optimizer="rmsprop", m=m, sig=0.5)
    data = tr.train_data
    L = len(data) // B
    p = tr.state.params.copy()
    ms = np.zeros_like(p.flat)
    state = np.zeros((B, 2 * m))
    e, losses = 0, []
    for _ in range(n):
        if e + T + 1 > L:
            e, state = 0, np.zeros((B, 2 * m))
        outs = [ref_stream("lstm", p, data[b * L + e:b * L + e + T], data[b * L + e + 1:b * L + e + T + 1],
                           state[b]) for b in range(B)]
        losses.append(sum(o[0] for o in outs) / B)
        g = np.concatenate([(sum(o[1][k] for o in outs) / B).ravel() for k in NAMES])
        g = np.clip(g, -5, 5)
        ms = 0.9 * ms + 0.1 * g * g
        p.flat[...] -= eta * g / np.sqrt(ms + 1e-8)
        state = np.stack([o[2] for o in outs])
        e += T
    got = [tr.update() for _ in range(n)]
    np.testing.assert_allclose(got, losses, rtol=1e-10)
    np.testing.assert_allclose(tr.state.params.flat, p.flat, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(tr.state.mem.flat, ms, rtol=1e-9, atol=1e-14)


# --- validation split and loss per character ----------------------------------------------------


@pytest.mark.parametrize("N,frac,n_val", [(500, 0.2, 100), (503, 0.25, 126), (400, 0.0, 0)])
def test_val_split_holds_out_the_end(N, frac, n_val):
    text = (TEXT * 2)[:N]
    tr = make_trainer(text, val_fraction=frac)
    chars = build_vocab(text)
    assert len(tr.train_data) == N - n_val and len(tr.val_data) == n_val
    np.testing.assert_array_equal(tr.train_data, encode(text[:N - n_val], chars))
    np.testing.assert_array_equal(tr.val_data, encode(text[N - n_val:], chars) if n_val else [])
    assert tr.L == N - n_val  # one stream reads the training part only


def test_batches_never_read_the_validation_part():
    text = TEXT[:400]
    B, T = 2, 5
    tr = make_trainer(text, batch_size=B, seq_length=T, val_fraction=0.25)
    calls = record_calls(tr)
    for _ in range(60):
        tr.update()
    train_len = 300
    assert tr.L == train_len // B
    # every chunk is a slice of the training part (compare against the encoded prefix)
    train = encode(text[:train_len], build_vocab(text))
    L = train_len // B
    for x, y, _ in calls:
        for b in range(B):
            starts = [s for s in range(b * L, b * L + L - T) if np.array_equal(train[s:s + T], x[b])
                      and np.array_equal(train[s + 1:s + T + 1], y[b])]
            assert starts, "a chunk that is not in stream b of the training part"


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("chunk", [evaluate.CHUNK, 7])
def test_loss_per_char_equals_one_stream_from_zero(cell, chunk):
    rng = np.random.default_rng(31)
    m, K, N = 5, 8, 437  # longer than one CHUNK of 200
    p = random_gated(m, K, cells.CELLS[cell], rng, sig=0.5)
    data = rng.integers(0, K, N)
    zero = np.zeros(m * cells.STATE_SIZES[cell])
    total = ref_stream(cell, p, data[:-1], data[1:], zero)[0]
    got = evaluate.loss_per_char(cell, p, data, chunk=chunk)
    assert got == pytest.approx(total / (N - 1), rel=1e-11)
    if chunk == evaluate.CHUNK:
        assert evaluate.loss_per_char(cell, p, data) == pytest.approx(total / (N - 1), rel=1e-11)
        two = data[:2]
        assert evaluate.loss_per_char(cell, p, two) == pytest.approx(
            ref_stream(cell, p, two[:1], two[1:], zero)[0], rel=1e-12)
    with pytest.raises(ValueError):
        evaluate.loss_per_char(cell, p, data[:1])


def test_bits():
    assert evaluate.bits(math.log(2)) == pytest.approx(1.0)
    assert evaluate.bits(3.0) == pytest.approx(3.0 / 0.6931471805599453)


@pytest.mark.parametrize("cell,B,opt", [("lstm", 2, "adam"), ("rnn", 1, "adagrad")])
def test_best_model_is_the_lowest_validation_loss_and_metrics(tmp_path, cell, B, opt):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    n, every, T = 55, 10, 6
    cfg = {**SMALL, "eta": 0.3 if opt == "adagrad" else 0.05}
    run = train_quiet(path, out, seed=1, n_updates=n, cell=cell, batch_size=B, optimizer=opt,
                      val_fraction=0.2, eval_every=every, **cfg)
    last = ckpt.load(out / "last.npz")
    best = ckpt.load(out / "best.npz")
    val_log = last.meta["val_log"]
    steps = [row[0] for row in val_log]
    assert steps == [10, 20, 30, 40, 50]  # every eval_every; the final model's figure goes to metrics only
    assert [row[1] for row in val_log] == [s * B * T for s in steps]
    losses = [row[3] for row in val_log]
    lowest = min(losses)
    assert run["best_step"] in [s for s, v in zip(steps, losses) if v == lowest]
    assert best.step == run["best_step"]

    chars = build_vocab(TEXT)
    data = encode(TEXT, chars)
    n_val = round(0.2 * len(TEXT))
    val = data[len(data) - n_val:]
    # the stored figures are the validation loss of the stored models
    assert evaluate.loss_per_char(cell, best.params, val) == pytest.approx(lowest, rel=1e-10)
    final = evaluate.loss_per_char(cell, last.params, val)

    metrics = read_json(out / "metrics.json")
    assert metrics["val_loss_per_char"] == pytest.approx(final, rel=1e-10)
    assert metrics["val_bits_per_char"] == pytest.approx(final / math.log(2), rel=1e-10)
    assert metrics["best_val_loss_per_char"] == pytest.approx(lowest, rel=1e-12)
    assert metrics["chars_seen"] == n * B * T
    assert metrics["seconds"] > 0
    assert metrics["val_chars"] == n_val
    assert [h["step"] for h in metrics["history"]] == steps
    assert [h["chars_seen"] for h in metrics["history"]] == [s * B * T for s in steps]
    np.testing.assert_allclose([h["val_loss_per_char"] for h in metrics["history"]], losses, rtol=1e-12)
    assert all(h["seconds"] >= 0 for h in metrics["history"])
    assert run["chars_seen"] == n * B * T


def test_without_split_val_fields_are_null_and_best_is_lowest_smooth_loss(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    run = train_quiet(path, out, seed=0, n_updates=40, cell="lstm", batch_size=2, **SMALL)
    metrics = read_json(out / "metrics.json")
    assert metrics["val_loss_per_char"] is None
    assert metrics["val_bits_per_char"] is None
    assert metrics["best_val_loss_per_char"] is None
    assert metrics["history"] == []
    assert metrics["val_chars"] == 0
    assert metrics["chars_seen"] == 40 * 2 * 6
    assert run["val_loss_per_char"] is None
    assert ckpt.load(out / "last.npz").meta["val_log"] == []


# --- exact resume -------------------------------------------------------------------------------


RESUME = dict(SMALL, cell="lstm", batch_size=3, optimizer="adam", val_fraction=0.2, eval_every=10,
              eta=0.02, sample_every=15, sample_until=90)


@pytest.mark.parametrize("stop", [30, 33])  # on and off the eval_every grid
def test_resume_is_exact_for_lstm_batches_adam_and_validation(tmp_path, stop):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    n = 70  # 70 updates go through more than one epoch: L = 459 // 3 = 153 -> 25 per epoch
    whole, part = tmp_path / "whole", tmp_path / "part"
    run_a = train_quiet(path, whole, seed=4, n_updates=n, **RESUME)
    train_quiet(path, part, seed=4, n_updates=stop, **RESUME)
    mid = ckpt.load(part / "last.npz")
    assert mid.step == stop and mid.mem2 is not None
    run_b = train_quiet(path, part, seed=4, n_updates=n, init_from=str(part / "last.npz"), **RESUME)

    a, b = ckpt.load(whole / "last.npz"), ckpt.load(part / "last.npz")
    assert a.step == b.step == n
    for name in ("params", "mem", "mem2"):
        np.testing.assert_array_equal(getattr(b, name).flat, getattr(a, name).flat, err_msg=name)
    np.testing.assert_array_equal(b.hprev, a.hprev)
    assert a.hprev.shape == (3, 2 * RESUME["m"])
    assert b.smooth_loss == a.smooth_loss
    for key in ("position", "epoch", "epoch_starts", "log", "samples", "rng_state", "best_step"):
        assert b.meta[key] == a.meta[key], key
    assert len(a.meta["epoch_starts"]) >= 3
    strip = lambda log: [(r[0], r[1], r[3]) for r in log]  # noqa: E731 - seconds differ
    assert strip(b.meta["val_log"]) == strip(a.meta["val_log"])
    assert [r[0] for r in a.meta["val_log"]] == [10, 20, 30, 40, 50, 60, 70]
    assert read_json(whole / "samples.json") == read_json(part / "samples.json")
    np.testing.assert_array_equal(ckpt.load(part / "best.npz").params.flat, ckpt.load(whole / "best.npz").params.flat)
    assert run_b["best_step"] == run_a["best_step"]
    ma, mb = read_json(whole / "metrics.json"), read_json(part / "metrics.json")
    for key in ("val_loss_per_char", "best_val_loss_per_char", "chars_seen"):
        assert mb[key] == ma[key], key
    assert mb["chars_seen"] == n * 3 * RESUME["seq_length"]


@pytest.mark.parametrize("name,other", [("cell", "rnn"), ("batch_size", 2), ("optimizer", "rmsprop"),
                                        ("optimizer", "adagrad")])
def test_resume_with_another_setting_is_refused(tmp_path, name, other):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    cfg = dict(SMALL, cell="lstm", batch_size=3, optimizer="adam")
    train_quiet(path, out, seed=0, n_updates=10, **cfg)
    with pytest.raises(ValueError, match=name):
        train_quiet(path, out, seed=0, n_updates=20, init_from=str(out / "last.npz"), **{**cfg, name: other})


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,name", [
    ({"cell": "transformer"}, "cell"),
    ({"cell": "LSTM"}, "cell"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"engine": "cuda"}, "engine"),
    ({"val_fraction": 0.6}, "val_fraction"),
    ({"val_fraction": 0.5}, "val_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"eval_every": 0}, "eval_every"),
])
def test_bad_new_settings_are_rejected_with_the_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)
    with pytest.raises(ValueError, match=name):
        TrainConfig.from_kwargs(**kwargs)


def test_good_new_settings_are_accepted_and_coerced():
    cfg = TrainConfig(cell="lstm", optimizer="adam", engine="numba", val_fraction="0.1", batch_size="4")
    assert (cfg.cell, cfg.optimizer, cfg.engine, cfg.val_fraction, cfg.batch_size) == ("lstm", "adam", "numba", 0.1, 4)


def test_too_short_text_for_the_streams_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer(TEXT[:40], batch_size=8, seq_length=5)


# --- engines --------------------------------------------------------------------------------------


def test_numba_engine_for_a_batched_rnn_falls_back_to_numpy_with_a_note(tmp_path):
    """(The GRU and the LSTM have a numba path: tests/test_fast_gated.py.)"""
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        run = workflow.train(str(path), str(out), n_updates=12, cell="rnn", batch_size=2, engine="numba", **SMALL)
    assert run["engine"] == "numpy"
    assert read_json(out / "run.json")["engine"] == "numpy"
    note = buf.getvalue()
    assert "numba" in note and "numpy" in note
    # and the run is the numpy run
    ref_out = tmp_path / "ref"
    train_quiet(path, ref_out, n_updates=12, cell="rnn", batch_size=2, engine="numpy", **SMALL)
    np.testing.assert_array_equal(ckpt.load(out / "last.npz").params.flat, ckpt.load(ref_out / "last.npz").params.flat)


def test_numba_engine_for_the_rnn_is_used(tmp_path):
    from helpers.model import fast

    if not fast.AVAILABLE:
        pytest.skip(fast.REASON or "numba unavailable")
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    run = train_quiet(path, out, n_updates=12, cell="rnn", engine="numba", **SMALL)
    assert run["engine"] == "numba"
    assert read_json(out / "run.json")["engine"] == "numba"


# --- synthesis from an LSTM checkpoint ------------------------------------------------------------


def test_synthesize_from_an_lstm_checkpoint(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    train_quiet(path, out, seed=0, n_updates=40, cell="lstm", batch_size=2, **SMALL)
    ck = ckpt.load(out / "best.npz")
    assert ck.params.gates == 4
    prime = "the cl"
    with quiet():
        r1 = workflow.synthesize(str(out / "best.npz"), length=50, seed=3, prime=prime,
                                 out_path=str(tmp_path / "s.json"))
        r2 = workflow.synthesize(str(out / "best.npz"), length=50, seed=3, prime=prime)
    assert r1["text"] == r2["text"]
    assert len(r1["text"]) == 50 and set(r1["text"]) <= set(TEXT)
    assert read_json(tmp_path / "s.json")["text"] == r1["text"]
    # the documented procedure, with the LSTM written out here: warm up on prime[:-1], x0 = prime[-1]
    idx = encode(prime, ck.chars)
    m = ck.params.m
    h, s = np.zeros(m), np.zeros(m)
    for x in idx[:-1]:
        h, s = lstm_step_by_hand(ck.params, h, s, int(x))
    expected, _ = sample_by_hand(ck.params, np.concatenate([h, s]), int(idx[-1]), 50, 3, "lstm")
    assert r1["text"] == "".join(ck.chars[i] for i in expected)


@pytest.mark.parametrize("name,value,other", [("seq_length", 5, 7), ("eta", 0.05, 0.1), ("val_fraction", 0.2, 0.1),
                                              ("dtype", "float32", "float64"), ("eval_every", 10, 20)])
def test_resume_refuses_other_settings_and_names_the_one_to_use(tmp_path, name, value, other):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    base = {**SMALL, "val_fraction": 0.2, "eval_every": 10, name: value}
    train_quiet(path, tmp_path / "a", seed=1, n_updates=20, **base)
    with pytest.raises(ValueError, match=f"other settings .* resume with {name}={value!r}"):
        train_quiet(path, tmp_path / "a", n_updates=40, init_from=str(tmp_path / "a" / "last.npz"),
                    **{**base, name: other})


def test_resume_refuses_another_text_of_the_same_vocabulary(tmp_path):
    path, longer = tmp_path / "t.txt", tmp_path / "longer.txt"
    path.write_text(TEXT, encoding="utf-8")
    longer.write_text(TEXT + TEXT[:50], encoding="utf-8")
    train_quiet(path, tmp_path / "a", n_updates=20, **SMALL)
    with pytest.raises(ValueError, match=rf"trained on 't.txt' \({len(TEXT):,} characters\).*longer.txt"):
        train_quiet(longer, tmp_path / "a", n_updates=40, init_from=str(tmp_path / "a" / "last.npz"), **SMALL)


def test_resume_before_the_first_evaluation_is_exact(tmp_path):
    """Stopping before eval_every leaves the final model as best.npz, but not in the resumable state."""
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    cfg = {**SMALL, "val_fraction": 0.2, "eval_every": 30, "eta": 0.3}
    train_quiet(path, tmp_path / "whole", seed=2, n_updates=90, **cfg)
    run = train_quiet(path, tmp_path / "part", seed=2, n_updates=20, **cfg)
    assert run["best_step"] == 20 and run["best_chosen_by"] == "validation loss"  # the only model evaluated
    train_quiet(path, tmp_path / "part", seed=2, n_updates=90, init_from=str(tmp_path / "part" / "last.npz"), **cfg)
    a, b = ckpt.load(tmp_path / "whole" / "best.npz"), ckpt.load(tmp_path / "part" / "best.npz")
    assert a.step == b.step and np.array_equal(a.params.flat, b.params.flat)


def test_validation_split_that_rounds_to_nothing_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT[:40], encoding="utf-8")
    with pytest.raises(ValueError, match="leaves 0 character.*use a larger val_fraction"):
        train_quiet(path, tmp_path / "a", n_updates=5, **{**SMALL, "val_fraction": 0.01})
