"""Sampling (helpers.model.sample): reproducibility, the documented inverse-CDF draws for every cell,
greedy limits, temperature and top-p, option checks, the sampled distribution; synthesis from a
checkpoint (steps.synthesize) of the RNN, an LSTM and a stack. Beam search: test_beam.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.common import files
from helpers.data.text import build_vocab, decode, encode
from helpers.model import oracles, sample
from helpers.model.params import NAMES, init_params
from helpers.runs import steps
from helpers.train import checkpoint as ckpt

from conftest import HOGWARTS, ORWELL, chi2_stat, chi2_upper, lstm_step_by_hand, quiet, random_params, softmax

M, K = 8, 6


@pytest.fixture
def model():
    return random_params(M, K, np.random.default_rng(77), sig=0.6)


def greedy_by_hand(p, h0, x0, n):
    """Greedy decoding, one step at a time from the model equations; also the smallest logit margin."""
    h, x, out, margins = np.array(h0, float), int(x0), [], []
    for _ in range(n):
        h = np.tanh(p.W @ h + p.U[:, x] + p.b)
        o = p.V @ h + p.c
        top2 = np.sort(o)[-2:]
        margins.append(top2[1] - top2[0])
        x = int(np.argmax(o))
        out.append(x)
    return out, h, min(margins)


def inverse_cdf_by_hand(p, h0, x0, u, temperature=1.0, top_p=1.0):
    """The documented sampler: p_t = softmax(o_t / temperature), nucleus cut, then inverse CDF on u_t."""
    h, x, out = np.array(h0, float), int(x0), []
    for ut in u:
        h = np.tanh(p.W @ h + p.U[:, x] + p.b)
        probs = softmax((p.V @ h + p.c) / temperature)
        if top_p < 1:
            order = sorted(range(len(probs)), key=lambda i: -probs[i])
            kept, mass = [], 0.0
            for i in order:  # the smallest set of most likely characters whose mass reaches top_p
                kept.append(i)
                mass += probs[i]
                if mass >= top_p:
                    break
            nucleus = np.zeros_like(probs)
            nucleus[kept] = probs[kept]
            probs = nucleus / nucleus.sum()
        cdf = np.cumsum(probs)
        x = int(np.argmax(cdf > ut * cdf[-1]))  # first index whose cumulative mass exceeds u
        out.append(x)
    return out, h


def test_same_seed_same_output_different_seed_differs(model):
    h0 = np.zeros(M)
    a, ha = sample.sample_indices(model, h0, 2, 200, np.random.default_rng(5))
    b, hb = sample.sample_indices(model, h0, 2, 200, np.random.default_rng(5))
    c, _ = sample.sample_indices(model, h0, 2, 200, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    assert not np.array_equal(a, c)
    assert a.shape == (200,) and a.dtype.kind == "i"
    assert a.min() >= 0 and a.max() < K
    np.testing.assert_array_equal(h0, 0)  # h0 not modified


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.8, 1.0), (1.0, 0.6), (0.5, 0.9)])
def test_sampler_is_inverse_cdf_on_uniforms_from_rng(model, temperature, top_p):
    """The docstring's algorithm, implemented independently: n uniforms drawn up front from rng."""
    h0 = np.tanh(np.random.default_rng(1).standard_normal(M))
    n = 120
    u = np.random.default_rng(11).random(n)
    expected, h_exp = inverse_cdf_by_hand(model, h0, 3, u, temperature, top_p)
    got, h = sample.sample_indices(model, h0, 3, n, np.random.default_rng(11), temperature, top_p)
    assert got.tolist() == expected
    np.testing.assert_allclose(h, h_exp, rtol=1e-12, atol=1e-14)


def test_final_hidden_state_is_after_last_step(model):
    h0 = np.zeros(M)
    idx, h = sample.sample_indices(model, h0, 1, 10, np.random.default_rng(0))
    # feeding x0 and the first 9 samples through the recurrence gives the returned state
    np.testing.assert_allclose(h, sample.warm_up(model, h0, [1, *idx[:-1].tolist()]), rtol=1e-12)


def test_zero_length(model):
    idx, h = sample.sample_indices(model, np.ones(M) * 0.1, 0, 0, np.random.default_rng(0))
    assert idx.shape == (0,)
    np.testing.assert_allclose(h, 0.1)


def test_tiny_top_p_is_greedy(model):
    h0 = np.tanh(np.random.default_rng(2).standard_normal(M))
    expected, h_exp, _ = greedy_by_hand(model, h0, 4, 60)
    for seed in range(3):  # the randomness must not matter
        got, h = sample.sample_indices(model, h0, 4, 60, np.random.default_rng(seed), top_p=1e-9)
        assert got.tolist() == expected
        np.testing.assert_allclose(h, h_exp, rtol=1e-12)


class FixedUniforms:
    """A stand-in generator whose uniforms are all ``value`` (0 is a legal draw of rng.random)."""

    def __init__(self, value):
        self.value = value

    def random(self, n):
        return np.full(n, self.value)


@pytest.mark.parametrize("u", [0.0, np.nextafter(1.0, 0.0)])
def test_extreme_uniforms_never_pick_a_zero_probability_character(model, u):
    """With the nucleus cut to the argmax, even u = 0 or u -> 1 must give the argmax."""
    h0 = np.zeros(M)
    expected, _, _ = greedy_by_hand(model, h0, 1, 40)
    assert any(i != 0 for i in expected) and any(i != K - 1 for i in expected)
    got, _ = sample.sample_indices(model, h0, 1, 40, FixedUniforms(u), top_p=1e-9)
    assert got.tolist() == expected
    # without the cut, u = 0 picks the first character and u -> 1 the last (all have mass > 0)
    got, _ = sample.sample_indices(model, h0, 1, 40, FixedUniforms(u))
    assert set(got.tolist()) == ({0} if u == 0.0 else {K - 1})


def test_tiny_temperature_is_greedy(model):
    h0 = np.zeros(M)
    expected, _, margin = greedy_by_hand(model, h0, 0, 60)
    assert margin > 1e-4  # no near-ties, so a temperature of 1e-7 makes the argmax certain
    for seed in range(3):
        got, _ = sample.sample_indices(model, h0, 0, 60, np.random.default_rng(seed), temperature=1e-7)
        assert got.tolist() == expected


def test_greedy_is_not_what_temperature_one_gives(model):
    """Sanity check that the greedy tests can fail: ordinary sampling departs from the argmax."""
    expected, _, _ = greedy_by_hand(model, np.zeros(M), 0, 60)
    got, _ = sample.sample_indices(model, np.zeros(M), 0, 60, np.random.default_rng(0))
    assert got.tolist() != expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": -0.1},
        {"top_p": 1.5},
        {"top_p": float("nan")},
        {"n": -1},
        {"n": 2.5},
    ],
)
def test_invalid_options_raise(model, kwargs):
    args = {"n": 5, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError) as err:
        sample.sample_indices(model, np.zeros(M), 0, n, np.random.default_rng(0), **args)
    name = next(iter(kwargs))
    assert ("length" if name == "n" else name) in str(err.value)


def test_nucleus_by_hand():
    p = np.array([0.1, 0.45, 0.3, 0.15])
    q = p.copy()
    sample._nucleus_(q, 0.7)  # 0.45 + 0.3 = 0.75 >= 0.7: keep characters 1 and 2
    np.testing.assert_allclose(q, [0.0, 0.6, 0.4, 0.0])
    q = p.copy()
    sample._nucleus_(q, 0.2)  # the argmax alone reaches 0.2
    np.testing.assert_allclose(q, [0.0, 1.0, 0.0, 0.0])
    q = p.copy()
    sample._nucleus_(q, 1.0)
    np.testing.assert_allclose(q, p)


def first_step_probs(p, h0, x0, temperature=1.0):
    h1 = np.tanh(p.W @ h0 + p.U[:, x0] + p.b)
    return softmax((p.V @ h1 + p.c) / temperature)


def test_first_character_distribution_matches_softmax(model):
    h0 = np.tanh(np.random.default_rng(3).standard_normal(M))
    probs = first_step_probs(model, h0, 2)
    assert probs.min() > 0.005  # a distribution worth testing: every character is possible
    n = 20000
    rng = np.random.default_rng(123)
    counts = np.zeros(K)
    for _ in range(n):
        idx, _ = sample.sample_indices(model, h0, 2, 1, rng)
        counts[idx[0]] += 1
    stat, dof = chi2_stat(counts, probs)
    assert stat < chi2_upper(dof), (stat, dof, counts / n, probs)
    # and the test has power: the same counts are far from a uniform distribution
    stat_u, dof_u = chi2_stat(counts, np.full(K, 1 / K))
    assert stat_u > chi2_upper(dof_u)


def test_temperature_distribution(model):
    h0 = np.zeros(M)
    probs = first_step_probs(model, h0, 5, temperature=2.0)
    n = 10000
    rng = np.random.default_rng(9)
    idx = [sample.sample_indices(model, h0, 5, 1, rng, temperature=2.0)[0][0] for _ in range(n)]
    counts = np.bincount(idx, minlength=K).astype(float)
    stat, dof = chi2_stat(counts, probs)
    assert stat < chi2_upper(dof)


def test_matches_reference_sampler_statistically(model):
    """sample (inverse CDF) and oracles.sample (rng.choice) draw from the same distribution.

    Compared on the second character, whose distribution mixes over the first draw.
    """
    h0 = np.zeros(M)
    n = 6000
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(2)
    pairs_a = np.zeros((K, K))
    pairs_b = np.zeros((K, K))
    for _ in range(n):
        a = sample.sample_indices(model, h0, 0, 2, rng_a)[0]
        b = oracles.sample(model.U, model.W, model.V, model.b, model.c, h0, 0, 2, rng_b)
        pairs_a[a[0], a[1]] += 1
        pairs_b[b[0], b[1]] += 1
    # the exact distribution of the pair (x1, x2), computed by hand
    h1 = np.tanh(model.W @ h0 + model.U[:, 0] + model.b)
    p1 = softmax(model.V @ h1 + model.c)
    exact = np.zeros((K, K))
    for i in range(K):
        h2 = np.tanh(model.W @ h1 + model.U[:, i] + model.b)
        exact[i] = p1[i] * softmax(model.V @ h2 + model.c)
    assert exact.sum() == pytest.approx(1.0)
    for counts in (pairs_a, pairs_b):
        stat, dof = chi2_stat(counts.ravel(), exact.ravel())
        assert stat < chi2_upper(dof), (stat, dof)
    # two-sample homogeneity test between the samplers, on cells with enough mass
    total = pairs_a + pairs_b
    cells = total.ravel() >= 10
    a, b, t = pairs_a.ravel()[cells], pairs_b.ravel()[cells], total.ravel()[cells]
    stat = float((((a - t / 2) ** 2 + (b - t / 2) ** 2) / (t / 2)).sum())
    assert stat < chi2_upper(int(cells.sum()) - 1)


def test_warm_up_by_hand(model):
    h = np.zeros(M)
    for x in [1, 4, 0]:
        h = np.tanh(model.W @ h + model.U[:, x] + model.b)
    np.testing.assert_allclose(sample.warm_up(model, np.zeros(M), [1, 4, 0]), h, rtol=1e-14)
    np.testing.assert_array_equal(sample.warm_up(model, np.full(M, 0.5), []), np.full(M, 0.5))


def test_float32_model_samples(model):
    p32 = model.astype(np.float32)
    idx, h = sample.sample_indices(p32, np.zeros(M), 0, 50, np.random.default_rng(0))
    assert h.dtype == np.float32 and idx.min() >= 0 and idx.max() < K


# --- steps.synthesize from a checkpoint ----------------------------------------------


def test_synthesize_from_checkpoint(tmp_path, model):
    chars = ["\n", " ", "a", "b", "c", "\U0001f600"]
    path = tmp_path / "m.npz"
    ckpt.save(path, ckpt.Checkpoint(params=model, chars=chars, step=7, smooth_loss=3.5))
    out = tmp_path / "s.json"
    r1 = steps.synthesize(str(path), length="40", seed=3, prime="ab", out_path=str(out))
    r2 = steps.synthesize(str(path), length=40, seed=3, prime="ab")
    assert r1["text"] == r2["text"] and len(r1["text"]) == 40
    assert set(r1["text"]) <= set(chars)
    assert files.read_json(out)["text"] == r1["text"]
    assert r1["step"] == 7 and r1["smooth_loss"] == 3.5
    # by hand: warm up on the prime but its last character, which is x0
    h0 = sample.warm_up(model, np.zeros(M), [2])
    idx, _ = sample.sample_indices(model, h0, 3, 40, np.random.default_rng(3))
    assert r1["text"] == "".join(chars[i] for i in idx)
    assert "'z'" in steps.synthesize(str(path), prime="az")["note"]  # left out, and named
    assert steps.synthesize(str(path), prime="")["prime"] == "\n"  # the default, a line break
    for name in NAMES:  # the checkpoint's weights were used unchanged
        np.testing.assert_array_equal(ckpt.load(path).params[name], model[name])


def sample_by_hand(p, h0, x0, n, seed):
    """The documented sampler for an LSTM: all n uniforms drawn up front, inverse CDF of p_t for each."""
    u = np.random.default_rng(seed).random(n)
    m = p.m
    h, s = np.array(h0[:m], float), np.array(h0[m:], float)
    x, out = int(x0), []
    for t in range(n):
        h, s = lstm_step_by_hand(p, h, s, x)
        cdf = np.cumsum(softmax(p.V @ h + p.c))
        x = min(int(np.searchsorted(cdf, u[t] * cdf[-1], side="right")), p.K - 1)
        out.append(x)
    return out, np.concatenate([h, s])


def test_sample_indices_lstm_reproducible_in_vocabulary_and_as_documented():
    rng = np.random.default_rng(8)
    m, K, n = 6, 9, 60
    p = random_params(m, K, rng, sig=0.8, gates=4)
    h0 = rng.standard_normal(2 * m) * 0.3
    a, ha = sample.sample_indices(p, h0, 2, n, np.random.default_rng(99), cell="lstm")
    b, hb = sample.sample_indices(p, h0, 2, n, np.random.default_rng(99), cell="lstm")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    assert len(a) == n and a.min() >= 0 and a.max() < K
    assert ha.shape == (2 * m,)
    assert len(set(a.tolist())) > 1  # sig 0.8: not one character over and over
    c, _ = sample.sample_indices(p, h0, 2, n, np.random.default_rng(100), cell="lstm")
    assert not np.array_equal(a, c)
    expected, state = sample_by_hand(p, h0, 2, n, 99)
    assert a.tolist() == expected
    np.testing.assert_allclose(ha, state, rtol=1e-11, atol=1e-13)


def test_synthesize_from_an_lstm_checkpoint(tmp_path, text_file):
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    quiet(
        steps.train,
        str(path),
        str(out),
        seed=0,
        n_updates=40,
        cell="lstm",
        batch_size=2,
        m=8,
        eta=0.1,
        seq_length=6,
        sig=0.1,
        sample_every=20,
        sample_until=60,
        sample_length=15,
        log_every=5,
        checkpoint_every=1000,
    )
    ck = ckpt.load(out / "best.npz")
    assert ck.params.gates == 4
    prime = "the cl"
    r1 = quiet(
        steps.synthesize,
        str(out / "best.npz"),
        length=50,
        seed=3,
        prime=prime,
        out_path=str(tmp_path / "s.json"),
    )
    r2 = quiet(steps.synthesize, str(out / "best.npz"), length=50, seed=3, prime=prime)
    assert r1["text"] == r2["text"]
    assert len(r1["text"]) == 50 and set(r1["text"]) <= set(ORWELL)
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["text"] == r1["text"]
    # the documented procedure, with the LSTM written out here: warm up on prime[:-1], x0 = prime[-1]
    idx = encode(prime, ck.chars)
    m = ck.params.m
    h, s = np.zeros(m), np.zeros(m)
    for x in idx[:-1]:
        h, s = lstm_step_by_hand(ck.params, h, s, int(x))
    expected, _ = sample_by_hand(ck.params, np.concatenate([h, s]), int(idx[-1]), 50, 3)
    assert r1["text"] == "".join(ck.chars[i] for i in expected)


def test_synthesize_from_a_two_layer_checkpoint(tmp_path, text_file):
    path = text_file(HOGWARTS, "t.txt")
    quiet(
        steps.train,
        str(path),
        str(tmp_path / "r"),
        n_updates=5,
        m=4,
        seq_length=5,
        sample_every=1000,
        sample_until=0,
        cell="gru",
        n_layers=2,
    )
    res = steps.synthesize(str(tmp_path / "r" / "best.npz"), 40, seed=1, prime="The ")
    again = steps.synthesize(str(tmp_path / "r" / "best.npz"), 40, seed=1, prime="The ")
    assert len(res["text"]) == 40 and res["text"] == again["text"] and set(res["text"]) <= set(HOGWARTS)
    json.dumps(res)


# --- any text, any model (hypothesis) -------------------------------------------------------------

# any code point but lone surrogates, which no UTF-8 file can hold
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    TEXTS,
    st.integers(1, 12),
    st.integers(0, 2**32 - 1),
    st.floats(0.05, 5.0),
    st.floats(0.01, 1.0),
    st.integers(0, 60),
)
def test_sampling_yields_vocabulary_characters(text, m, seed, temperature, top_p, n):
    chars = build_vocab(text)
    rng = np.random.default_rng(seed)
    p = init_params(m, len(chars), 1.0, rng)
    p.c[...] = rng.standard_normal(len(chars)) * 3
    idx, h = sample.sample_indices(p, np.zeros(m), int(rng.integers(len(chars))), n, rng, temperature, top_p)
    assert len(idx) == n and ((0 <= idx) & (idx < len(chars))).all() and np.isfinite(h).all()
    assert set(decode(idx, chars)) <= set(chars)
