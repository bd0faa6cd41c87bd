"""Property tests over random texts, vocabularies, models and parameters (hypothesis)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.train import checkpoint
from helpers.model import gradcheck
from helpers.model import sample as synth
from helpers.train.checkpoint import Checkpoint
from helpers.data.text import build_vocab, decode, encode
from helpers.model.params import ParamSet, init_params

# any code point but lone surrogates, which no UTF-8 file can hold
chars_st = st.characters(blacklist_categories=("Cs",))
texts = st.text(alphabet=chars_st, min_size=1, max_size=200)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(texts)
def test_encode_decode_round_trip(text):
    chars = build_vocab(text)
    ids = encode(text, chars)
    assert chars == sorted(set(chars)) and len(chars) == len(set(text))
    assert ids.min() >= 0 and ids.max() < len(chars)
    assert decode(ids, chars) == text


@FAST
@given(texts, st.integers(1, 12), st.integers(0, 2**32 - 1), st.floats(0.05, 5.0), st.floats(0.01, 1.0),
       st.integers(0, 60))
def test_sampling_yields_vocabulary_characters(text, m, seed, temperature, top_p, n):
    chars = build_vocab(text)
    rng = np.random.default_rng(seed)
    p = init_params(m, len(chars), 1.0, rng)
    p.c[...] = rng.standard_normal(len(chars)) * 3
    idx, h = synth.sample_indices(p, np.zeros(m), int(rng.integers(len(chars))), n, rng, temperature, top_p)
    assert len(idx) == n and ((0 <= idx) & (idx < len(chars))).all() and np.isfinite(h).all()
    assert set(decode(idx, chars)) <= set(chars)


@FAST
@given(texts, st.integers(1, 9), st.integers(0, 10**6), st.sampled_from(["float64", "float32"]),
       st.floats(0, 1e3, allow_nan=False))
def test_checkpoint_round_trip(tmp_path, text, m, step, dtype, smooth):
    chars = build_vocab(text)
    rng = np.random.default_rng(step)
    p = init_params(m, len(chars), 0.5, rng, dtype=np.dtype(dtype))
    mem = ParamSet(m, len(chars), dtype=np.dtype(dtype), flat=rng.random(p.flat.size).astype(dtype))
    meta = {"note": text[:20], "rng_state": rng.bit_generator.state}
    ck = Checkpoint(params=p, chars=chars, step=step, smooth_loss=smooth, hprev=rng.standard_normal(m).astype(dtype),
                    mem=mem, meta=meta)
    path = checkpoint.save(tmp_path / "ck.npz", ck)
    back = checkpoint.load(path)
    assert back.chars == chars and back.step == step and back.smooth_loss == smooth and back.meta == meta
    assert back.params.flat.dtype == np.dtype(dtype)
    assert np.array_equal(back.params.flat, p.flat) and np.array_equal(back.mem.flat, mem.flat)
    assert np.array_equal(back.hprev, ck.hprev)


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
