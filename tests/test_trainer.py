"""The training loop in memory (helpers.train.trainer: Trainer and TrainState): each update against a
loop written out here (oracle BPTT, clipping, the optimizer by hand), smooth-loss bookkeeping, epochs,
the best model, samples, B streams, the validation and test parts, dropout masks from the run's rng,
the scheduled learning rate, and non-finite losses. Result files and exact resume: test_train_results.py
and test_resume.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.common import errors
from helpers.common.units import bits
from helpers.data.text import build_vocab, encode
from helpers.model import cells, oracles, sample
from helpers.model.params import NAMES, init_params
from helpers.train import evaluate
from helpers.train.trainer import NonFiniteLossError

from conftest import (
    DURSLEY,
    HOGWARTS,
    NO_SAMPLES,
    ORWELL,
    expected_epoch_starts,
    make_trainer,
    oracle_stream,
    quiet,
    random_params,
)

STREAMS = dict(m=6, sig=0.1, n_updates=100, **NO_SAMPLES)
"""B streams of ORWELL (eta 0.1, seq_length 5)."""
SCHEDULE = dict(m=5, eta=0.05, seq_length=6, sig=0.1, n_updates=60, **NO_SAMPLES)
"""On DURSLEY: (488 - 1) // 6 = 81 updates an epoch."""
DROPOUT = dict(m=6, eta=0.05, sig=0.1, n_updates=100, optimizer="adam", **NO_SAMPLES)
"""Stacks with dropout, on HOGWARTS."""


# --- the loop against an independent re-implementation ----------------------------------


@pytest.mark.parametrize(
    "N,starts",
    [
        (46, [0, 4, 8, 12, 16, 20]),  # 45 // 10 = 4 updates per epoch
        (48, [0, 4, 8, 12, 16, 20]),
        (50, [0, 4, 8, 12, 16, 20]),  # N = 5 T: a 5th chunk would need 51 characters
        (51, [0, 5, 10, 15, 20]),  # 50 // 10 = 5: the 5th chunk ends exactly at the text's end
        (59, [0, 5, 10, 15, 20]),
    ],
)
def test_trainer_equals_hand_written_loop_with_clipping_and_epoch_resets(N, starts):
    """Reference BPTT + hand clipping + hand AdaGrad over consecutive chunks, with resets."""
    text = ("aaaaaaaabc" * 6)[:N]  # long runs of 'a' make big gradients, so clipping is exercised
    T, n, eta = 10, 23, 0.1
    tr = make_trainer(
        text,
        seed=3,
        seq_length=T,
        eta=eta,
        sig=0.5,
        n_updates=n,
        sample_every=1000,
        sample_until=0,
        sample_length=3,
    )
    data = tr.data
    assert len(data) == N
    p = {name: tr.state.params[name].copy() for name in NAMES}
    mem = {name: np.zeros_like(p[name]) for name in NAMES}
    h, e, losses, clipped = np.zeros(8), 0, [], 0
    for _ in range(n):
        if e + T + 1 > N:  # too few characters left: new epoch
            e, h = 0, np.zeros(8)
        x, y = data[e : e + T], data[e + 1 : e + T + 1]
        loss, g, hlast = oracles.loss_and_grads(*(p[k] for k in NAMES), x, y, h)
        for k in NAMES:
            clipped += int((np.abs(g[k]) > 5).sum())
            gk = np.minimum(np.maximum(g[k], -5.0), 5.0)
            mem[k] += gk * gk
            p[k] -= eta * gk / np.sqrt(mem[k] + 1e-8)
        h, e = hlast, e + T
        losses.append(loss)
    assert clipped > 0, "the scenario must exercise clipping"

    quiet(tr.run, n, progress=False)
    s = tr.state
    for k in NAMES:
        np.testing.assert_allclose(s.params[k], p[k], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s.mem[k], mem[k], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.hprev[0], h, rtol=1e-9, atol=1e-12)  # the state of the one stream
    np.testing.assert_allclose([row[1] for row in s.log], losses, rtol=1e-10)
    assert s.step == n and s.position == e
    assert expected_epoch_starts(N, T, n) == starts  # the hand-listed starts agree with the formula
    assert s.epoch_starts == starts and s.epoch == len(starts)


def test_first_loss_is_about_T_log_K():
    tr = make_trainer(sig=0.01, n_updates=1)
    quiet(tr.run, 1, progress=False)
    K = len(tr.chars)
    first = tr.state.log[0]
    assert first[0] == 1
    assert first[1] == pytest.approx(5 * math.log(K), rel=1e-3)
    assert first[2] == first[1]


def test_smooth_loss_bookkeeping():
    tr = make_trainer(n_updates=300, log_every=1)
    quiet(tr.run, 300, progress=False)
    log = tr.state.log
    assert [row[0] for row in log] == list(range(1, 301))
    smooth = None
    for _step, loss, logged in log:
        smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
        assert logged == pytest.approx(smooth, rel=1e-13)
    assert tr.state.smooth_loss == pytest.approx(smooth, rel=1e-13)
    # best model: the lowest smooth loss, first reached at best_step
    smooths = [row[2] for row in log]
    assert tr.state.best_smooth_loss == min(smooths)
    assert tr.state.best_step == 1 + int(np.argmin(smooths))
    assert tr.state.best_smooth_loss <= tr.state.smooth_loss
    # the model learns something in 300 updates
    assert np.mean([row[1] for row in log[-50:]]) < np.mean([row[1] for row in log[:50]])


def test_log_every():
    tr = make_trainer(n_updates=120, log_every=25)
    quiet(tr.run, 120, progress=False)
    assert [row[0] for row in tr.state.log] == [1, 25, 50, 75, 100]


def test_best_params_are_the_params_at_best_step():
    tr = make_trainer(n_updates=150, eta=0.3)
    snapshots = {}
    while tr.state.step < 150:
        tr.update()
        snapshots[tr.state.step] = tr.state.params.flat.copy()
    s = tr.state
    np.testing.assert_array_equal(s.best_params.flat, snapshots[s.best_step])
    assert not np.shares_memory(s.best_params.flat, s.params.flat)


def test_epoch_reset():
    text = "abcdefghijklmnopqrstuvw"  # 23 characters; T = 5: 22 // 5 = 4 updates per epoch
    tr = make_trainer(text, seq_length=5, n_updates=100, sample_every=1000, sample_until=0)
    s = tr.state
    for _ in range(4):
        tr.update()
    assert s.position == 20 and s.epoch == 1
    assert np.any(s.hprev != 0)
    x, y = tr.next_chunk()  # 20 + 5 + 1 > 23: the text is exhausted
    assert s.position == 0 and s.epoch == 2
    np.testing.assert_array_equal(s.hprev, 0)
    assert s.epoch_starts == [0, 4]
    np.testing.assert_array_equal(x[0], tr.data[0:5])  # chunks are (B, T), one stream here
    np.testing.assert_array_equal(y[0], tr.data[1:6])
    # the update after the reset starts from h0 = 0 on the first chunk
    params_before = s.params.copy()
    loss = tr.update()
    ref_loss = oracles.loss_and_grads(
        *(params_before[k] for k in NAMES), tr.data[0:5], tr.data[1:6], np.zeros(8)
    )[0]
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert s.position == 5 and s.epoch == 2 and s.epoch_starts == [0, 4]
    while s.step < 41:
        tr.update()
    assert s.epoch_starts == expected_epoch_starts(23, 5, 41) == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert s.epoch == 11


def test_text_too_short_is_rejected():
    with pytest.raises(ValueError, match="seq_length"):
        make_trainer("abcde", seq_length=5)


# --- reproducibility ---------------------------------------------------------------------


def test_same_seed_same_run_different_seed_differs():
    runs = []
    for seed in (7, 7, 8):
        tr = make_trainer(seed=seed, n_updates=200)
        quiet(tr.run, 200, progress=False)
        runs.append(tr.state)
    a, b, c = runs
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    np.testing.assert_array_equal(a.mem.flat, b.mem.flat)
    assert a.samples == b.samples and a.log == b.log
    assert not np.array_equal(a.params.flat, c.params.flat)
    assert [x["text"] for x in a.samples] != [x["text"] for x in c.samples]


def test_float32_training_tracks_float64():
    t64 = make_trainer(seed=1, n_updates=20)
    t32 = make_trainer(seed=1, n_updates=20, dtype="float32")
    assert t32.state.params.flat.dtype == np.float32
    quiet(t64.run, 20, progress=False)
    quiet(t32.run, 20, progress=False)
    np.testing.assert_allclose([r[1] for r in t32.state.log], [r[1] for r in t64.state.log], rtol=1e-4)
    np.testing.assert_allclose(t32.state.params.flat, t64.state.params.flat, rtol=1e-3, atol=1e-4)


# --- samples -----------------------------------------------------------------------------


def test_samples_schedule_and_contents(monkeypatch):
    calls = []
    real = sample.sample_indices

    def spy(p, h0, x0, n, rng, *args, **kwargs):
        calls.append((p.flat.copy(), np.array(h0, copy=True), int(x0), n))
        return real(p, h0, x0, n, rng, *args, **kwargs)

    monkeypatch.setattr(sample, "sample_indices", spy)  # the engine takes the sampler when it is made
    seed, T = 4, 5
    tr = make_trainer(
        seed=seed, seq_length=T, n_updates=200, sample_every=40, sample_until=130, sample_length=17
    )
    initial = tr.state.params.flat.copy()
    hprevs = {}
    while tr.state.step < 200:
        tr.update()
        hprevs[tr.state.step] = tr.state.hprev.copy()
    samples = tr.state.samples
    assert [s["step"] for s in samples] == [0, 40, 80, 120]
    for s in samples:
        assert len(s["text"]) == 17 and set(s["text"]) <= set(tr.chars)
    # smooth loss recorded with each sample is the one after that update (the first loss at step 0)
    smooth_at = {row[0]: row[2] for row in tr.state.log}
    assert samples[0]["smooth_loss"] == tr.state.log[0][1]
    for s in samples[1:]:
        assert s["smooth_loss"] == smooth_at[s["step"]]
    # the sampler got h0 = the carried state and x0 = the next chunk's first input (no wrap yet)
    assert len(calls) == 4
    p0, h0, x0, n = calls[0]
    np.testing.assert_array_equal(p0, initial)  # before the first update
    np.testing.assert_array_equal(h0, 0)
    assert x0 == tr.data[0] and n == 17
    for (_, h, x, _), step in zip(calls[1:], (40, 80, 120)):
        np.testing.assert_array_equal(h, hprevs[step][0])  # stream 0's state
        assert x == tr.data[step * T]
    # the step-0 sample by hand: the rng continues after drawing U, W, V
    rng = np.random.default_rng(seed)
    p = init_params(8, len(tr.chars), 0.01, rng)
    idx, _ = real(p, np.zeros(8), int(tr.data[0]), 17, rng)
    assert samples[0]["text"] == "".join(tr.chars[i] for i in idx)


# --- non-finite losses -------------------------------------------------------------------


def test_nan_in_params_raises_and_changes_nothing():
    tr = make_trainer(n_updates=50)
    quiet(tr.run, 10, progress=False)
    s = tr.state
    s.params.c[0] = np.nan
    before = (s.params.flat.copy(), s.mem.flat.copy(), s.step, s.smooth_loss, len(s.log), s.position)
    with pytest.raises(NonFiniteLossError) as err:
        tr.update()
    # raised on purpose: a notebook shows its message as one line, not a traceback (helpers.common.errors)
    assert errors.raised_on_purpose(type(err.value), err.value.__traceback__)
    assert f"NonFiniteLossError\x1b[0m: {err.value}" in errors.short_traceback(type(err.value), err.value)[0]
    assert "update 11" in str(err.value)
    np.testing.assert_array_equal(s.params.flat, before[0])  # nan stays where it was; no step taken
    np.testing.assert_array_equal(s.mem.flat, before[1])
    assert (s.step, s.smooth_loss, len(s.log), s.position) == before[2:]


def test_huge_eta_raises():
    tr = make_trainer(eta=1e300, n_updates=100)
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError):
            quiet(tr.run, 100, progress=False)
    assert 1 <= tr.state.step < 100


# --- B streams -----------------------------------------------------------------------------------------


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
    text = ORWELL[
        :200
    ]  # 200 // 3 = 66 per stream (2 characters unused); 66 = 13 * 5 + 1: the last chunk ends at L
    B, T, n = 3, 5, 40
    tr = make_trainer(text, **{**STREAMS, "n_updates": n}, cell=cell, batch_size=B, seq_length=T)
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
            np.testing.assert_array_equal(x[b], data[b * L + e : b * L + e + T])
            np.testing.assert_array_equal(y[b], data[b * L + e + 1 : b * L + e + T + 1])
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
    """B = 2 LSTM streams, oracle gradients averaged, clipped to [-5, 5], RMSProp by hand."""
    text = ORWELL[:150]
    B, T, n, eta, m = 2, 6, 16, 0.05, 5
    tr = make_trainer(
        text,
        seed=2,
        **{**STREAMS, "m": m, "sig": 0.5, "n_updates": n},
        cell="lstm",
        batch_size=B,
        seq_length=T,
        eta=eta,
        optimizer="rmsprop",
    )
    data = tr.train_data
    L = len(data) // B
    p = tr.state.params.copy()
    ms = np.zeros_like(p.flat)
    state = np.zeros((B, 2 * m))
    e, losses = 0, []
    for _ in range(n):
        if e + T + 1 > L:
            e, state = 0, np.zeros((B, 2 * m))
        outs = [
            oracle_stream(
                "lstm", p, data[b * L + e : b * L + e + T], data[b * L + e + 1 : b * L + e + T + 1], state[b]
            )
            for b in range(B)
        ]
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


def test_too_short_text_for_the_streams_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer(ORWELL[:40], **STREAMS, batch_size=8, seq_length=5)


# --- the validation and test parts, and the loss per character ---------------------------------------


@pytest.mark.parametrize("N,frac,n_val", [(500, 0.2, 100), (503, 0.25, 126), (400, 0.0, 0)])
def test_val_split_holds_out_the_end(N, frac, n_val):
    text = (ORWELL * 2)[:N]
    tr = make_trainer(text, **STREAMS, val_fraction=frac)
    chars = build_vocab(text)
    assert len(tr.train_data) == N - n_val and len(tr.val_data) == n_val
    np.testing.assert_array_equal(tr.train_data, encode(text[: N - n_val], chars))
    np.testing.assert_array_equal(tr.val_data, encode(text[N - n_val :], chars) if n_val else [])
    assert tr.L == N - n_val  # one stream reads the training part only


def test_batches_never_read_the_validation_part():
    text = ORWELL[:400]
    B, T = 2, 5
    tr = make_trainer(text, **STREAMS, batch_size=B, seq_length=T, val_fraction=0.25)
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
            starts = [
                s
                for s in range(b * L, b * L + L - T)
                if np.array_equal(train[s : s + T], x[b]) and np.array_equal(train[s + 1 : s + T + 1], y[b])
            ]
            assert starts, "a chunk that is not in stream b of the training part"


@pytest.mark.parametrize("val,test", [(0.0, 0.1), (0.1, 0.1), (0.2, 0.05)])
def test_split_is_train_then_test_then_validation(val, test):
    t = make_trainer(DURSLEY, **SCHEDULE, val_fraction=val, test_fraction=test)
    N = len(DURSLEY)
    n_val, n_test = round(val * N), round(test * N)
    assert len(t.val_data) == n_val and len(t.test_data) == n_test
    np.testing.assert_array_equal(np.concatenate([t.train_data, t.test_data, t.val_data]), t.data)
    assert t.L == len(t.train_data)  # the one stream reads the training part only


def test_a_test_part_that_rounds_to_nothing_is_refused():
    with pytest.raises(ValueError, match="test_fraction 0.001 leaves 0"):
        make_trainer(DURSLEY, **SCHEDULE, test_fraction=0.001)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("streams", [evaluate.STREAMS, 1])
def test_loss_per_char_equals_one_stream_from_zero(cell, streams):
    rng = np.random.default_rng(31)
    m, K, N = 5, 8, 437  # longer than one CHUNK of 200
    p = random_params(m, K, rng, sig=0.5, gates=cells.CELLS[cell])
    data = rng.integers(0, K, N)
    zero = np.zeros(m * cells.STATE_SIZES[cell])
    total = oracle_stream(cell, p, data[:-1], data[1:], zero)[0]
    got = evaluate.loss_per_char(cell, p, data, streams=streams)  # too short to be split: one stream
    assert got == pytest.approx(total / (N - 1), rel=1e-11)
    if streams == evaluate.STREAMS:
        assert evaluate.loss_per_char(cell, p, data) == pytest.approx(total / (N - 1), rel=1e-11)
        two = data[:2]
        assert evaluate.loss_per_char(cell, p, two) == pytest.approx(
            oracle_stream(cell, p, two[:1], two[1:], zero)[0], rel=1e-12
        )
    with pytest.raises(ValueError):
        evaluate.loss_per_char(cell, p, data[:1])


def test_bits():
    assert bits(math.log(2)) == pytest.approx(1.0)
    assert bits(3.0) == pytest.approx(3.0 / 0.6931471805599453)


# --- the learning-rate schedule and dropout in training -----------------------------------------------


def test_the_trainer_steps_with_the_scheduled_eta_across_epochs():
    t = make_trainer(
        DURSLEY, **SCHEDULE, lr_decay=0.5, optimizer="adagrad"
    )  # 81 updates per epoch with T = 6
    seen, real = [], t.engine.step
    t.engine.step = lambda theta, g, slots, step, tmp, eta=None, decay=None: (
        seen.append((t.state.epoch, eta)) or real(theta, g, slots, step, tmp, eta, decay)
    )
    for _ in range(90):
        t.update()
    assert {e for e, _ in seen} == {1, 2}
    assert all(eta == (0.05 if e == 1 else 0.025) for e, eta in seen)


@pytest.mark.parametrize("dropout_mask", ["step", "locked"])
def test_training_draws_masks_from_the_run_rng_and_evaluation_uses_none(dropout_mask):
    t = make_trainer(
        HOGWARTS,
        **DROPOUT,
        cell="lstm",
        n_layers=2,
        dropout=0.3,
        dropout_mask=dropout_mask,
        batch_size=2,
        val_fraction=0.2,
        eval_every=1000,
    )
    seen = []
    real = t.engine.loss_and_grads
    t.engine.loss_and_grads = lambda p, X, Y, s, g, masks=None: (
        seen.append(masks) or real(p, X, Y, s, g, masks)
    )
    before = t.state.rng.bit_generator.state
    rng = np.random.default_rng()
    rng.bit_generator.state = before
    t.update()
    want = cells.dropout_masks(rng, 0.3, 2, 5, 2, 6, np.float64, locked=dropout_mask == "locked")
    assert len(seen[0]) == 2
    for got, w in zip(seen[0], want):
        np.testing.assert_array_equal(got, w)
        assert np.array_equal(got, np.broadcast_to(got[0], got.shape)) == (dropout_mask == "locked")
    state = t.state.rng.bit_generator.state
    loss = t.validate()  # evaluation: no masks, no draws
    assert t.state.rng.bit_generator.state == state
    no_dropout = evaluate.loss_per_char("lstm", t.state.params, t.val_data)
    assert loss == no_dropout


def test_dropout_zero_draws_nothing_and_dropout_changes_training():
    plain = make_trainer(HOGWARTS, **DROPOUT, cell="gru", n_layers=2)
    dropped = make_trainer(HOGWARTS, **DROPOUT, cell="gru", n_layers=2, dropout=0.2)
    plain.update(), dropped.update()  # the first update also draws the first sample's uniforms
    state = plain.state.rng.bit_generator.state
    for _ in range(4):
        plain.update(), dropped.update()
    assert plain.state.rng.bit_generator.state == state
    assert not np.array_equal(plain.state.params.flat, dropped.state.params.flat)
    again = make_trainer(HOGWARTS, **DROPOUT, cell="gru", n_layers=2, dropout=0.2)
    for _ in range(5):
        again.update()
    np.testing.assert_array_equal(again.state.params.flat, dropped.state.params.flat)
