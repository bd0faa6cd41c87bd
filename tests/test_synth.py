"""Sampling: reproducibility, greedy limits, option checks and the sampled distribution."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import chi2_stat, chi2_upper, random_params, softmax
from helpers.common import files
from helpers.train import checkpoint as ckpt
from helpers.model import oracles as reference
from helpers.model import sample as synth
from helpers.runs import steps as workflow
from helpers.model.params import NAMES

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
    a, ha = synth.sample_indices(model, h0, 2, 200, np.random.default_rng(5))
    b, hb = synth.sample_indices(model, h0, 2, 200, np.random.default_rng(5))
    c, _ = synth.sample_indices(model, h0, 2, 200, np.random.default_rng(6))
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
    got, h = synth.sample_indices(model, h0, 3, n, np.random.default_rng(11), temperature, top_p)
    assert got.tolist() == expected
    np.testing.assert_allclose(h, h_exp, rtol=1e-12, atol=1e-14)


def test_final_hidden_state_is_after_last_step(model):
    h0 = np.zeros(M)
    idx, h = synth.sample_indices(model, h0, 1, 10, np.random.default_rng(0))
    # feeding x0 and the first 9 samples through the recurrence gives the returned state
    np.testing.assert_allclose(h, synth.warm_up(model, h0, [1, *idx[:-1].tolist()]), rtol=1e-12)


def test_zero_length(model):
    idx, h = synth.sample_indices(model, np.ones(M) * 0.1, 0, 0, np.random.default_rng(0))
    assert idx.shape == (0,)
    np.testing.assert_allclose(h, 0.1)


def test_tiny_top_p_is_greedy(model):
    h0 = np.tanh(np.random.default_rng(2).standard_normal(M))
    expected, h_exp, _ = greedy_by_hand(model, h0, 4, 60)
    for seed in range(3):  # the randomness must not matter
        got, h = synth.sample_indices(model, h0, 4, 60, np.random.default_rng(seed), top_p=1e-9)
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
    got, _ = synth.sample_indices(model, h0, 1, 40, FixedUniforms(u), top_p=1e-9)
    assert got.tolist() == expected
    # without the cut, u = 0 picks the first character and u -> 1 the last (all have mass > 0)
    got, _ = synth.sample_indices(model, h0, 1, 40, FixedUniforms(u))
    assert set(got.tolist()) == ({0} if u == 0.0 else {K - 1})


def test_tiny_temperature_is_greedy(model):
    h0 = np.zeros(M)
    expected, _, margin = greedy_by_hand(model, h0, 0, 60)
    assert margin > 1e-4  # no near-ties, so a temperature of 1e-7 makes the argmax certain
    for seed in range(3):
        got, _ = synth.sample_indices(model, h0, 0, 60, np.random.default_rng(seed), temperature=1e-7)
        assert got.tolist() == expected


def test_greedy_is_not_what_temperature_one_gives(model):
    """Sanity check that the greedy tests can fail: ordinary sampling departs from the argmax."""
    expected, _, _ = greedy_by_hand(model, np.zeros(M), 0, 60)
    got, _ = synth.sample_indices(model, np.zeros(M), 0, 60, np.random.default_rng(0))
    assert got.tolist() != expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0}, {"temperature": -1.0}, {"temperature": float("nan")},
        {"top_p": 0.0}, {"top_p": -0.1}, {"top_p": 1.5}, {"top_p": float("nan")},
        {"n": -1}, {"n": 2.5},
    ],
)
def test_invalid_options_raise(model, kwargs):
    args = {"n": 5, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError) as err:
        synth.sample_indices(model, np.zeros(M), 0, n, np.random.default_rng(0), **args)
    name = next(iter(kwargs))
    assert ("length" if name == "n" else name) in str(err.value)


def test_nucleus_by_hand():
    p = np.array([0.1, 0.45, 0.3, 0.15])
    q = p.copy()
    synth._nucleus_(q, 0.7)  # 0.45 + 0.3 = 0.75 >= 0.7: keep characters 1 and 2
    np.testing.assert_allclose(q, [0.0, 0.6, 0.4, 0.0])
    q = p.copy()
    synth._nucleus_(q, 0.2)  # the argmax alone reaches 0.2
    np.testing.assert_allclose(q, [0.0, 1.0, 0.0, 0.0])
    q = p.copy()
    synth._nucleus_(q, 1.0)
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
        idx, _ = synth.sample_indices(model, h0, 2, 1, rng)
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
    idx = [synth.sample_indices(model, h0, 5, 1, rng, temperature=2.0)[0][0] for _ in range(n)]
    counts = np.bincount(idx, minlength=K).astype(float)
    stat, dof = chi2_stat(counts, probs)
    assert stat < chi2_upper(dof)


def test_matches_reference_sampler_statistically(model):
    """synth (inverse CDF) and reference.sample (rng.choice) draw from the same distribution.

    Compared on the second character, whose distribution mixes over the first draw.
    """
    h0 = np.zeros(M)
    n = 6000
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(2)
    pairs_a = np.zeros((K, K))
    pairs_b = np.zeros((K, K))
    for _ in range(n):
        a = synth.sample_indices(model, h0, 0, 2, rng_a)[0]
        b = reference.sample(model.U, model.W, model.V, model.b, model.c, h0, 0, 2, rng_b)
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
    np.testing.assert_allclose(synth.warm_up(model, np.zeros(M), [1, 4, 0]), h, rtol=1e-14)
    np.testing.assert_array_equal(synth.warm_up(model, np.full(M, 0.5), []), np.full(M, 0.5))


def test_float32_model_samples(model):
    p32 = model.astype(np.float32)
    idx, h = synth.sample_indices(p32, np.zeros(M), 0, 50, np.random.default_rng(0))
    assert h.dtype == np.float32 and idx.min() >= 0 and idx.max() < K


# --- workflow.synthesize from a checkpoint ----------------------------------------------


def test_synthesize_from_checkpoint(tmp_path, model):
    chars = ["\n", " ", "a", "b", "c", "\U0001F600"]
    path = tmp_path / "m.npz"
    ckpt.save(path, ckpt.Checkpoint(params=model, chars=chars, step=7, smooth_loss=3.5))
    out = tmp_path / "s.json"
    r1 = workflow.synthesize(str(path), length="40", seed=3, prime="ab", out_path=str(out))
    r2 = workflow.synthesize(str(path), length=40, seed=3, prime="ab")
    assert r1["text"] == r2["text"] and len(r1["text"]) == 40
    assert set(r1["text"]) <= set(chars)
    assert files.read_json(out)["text"] == r1["text"]
    assert r1["step"] == 7 and r1["smooth_loss"] == 3.5
    # by hand: warm up on the prime but its last character, which is x0
    h0 = synth.warm_up(model, np.zeros(M), [2])
    idx, _ = synth.sample_indices(model, h0, 3, 40, np.random.default_rng(3))
    assert r1["text"] == "".join(chars[i] for i in idx)
    assert "'z'" in workflow.synthesize(str(path), prime="az")["note"]  # left out, and named
    assert workflow.synthesize(str(path), prime="")["prime"] == "\n"  # the default, a line break
    for name in NAMES:  # the checkpoint's weights were used unchanged
        np.testing.assert_array_equal(ckpt.load(path).params[name], model[name])
