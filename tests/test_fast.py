"""helpers.model.fast (the optional numba path) against helpers.model.rnn, helpers.model.oracles, helpers.train.optim
and helpers.model.sample, plus its behaviour when numba is missing.

The numba tests are skipped when numba (or scipy) is not installed. The first run compiles the
kernels (10-20 s); numba caches the machine code under helpers/__pycache__, so later runs take
a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers.common.paths import ROOT
from helpers.model import fast, rnn, sample
from helpers.model.params import NAMES, ParamSet, init_params
from helpers.train import engine, optim

from conftest import assert_close, oracle, random_params, random_sequence

needs_numba = pytest.mark.skipif(not fast.AVAILABLE, reason=fast.REASON or "numba path unavailable")

SIZES = [(100, 80), (5, 4), (13, 7)]  # the real size and odd small ones


def norm_rel(actual, desired) -> float:
    desired = np.asarray(desired, dtype=np.float64)
    return float(
        np.linalg.norm(np.asarray(actual, np.float64) - desired) / max(np.linalg.norm(desired), 1e-300)
    )


def case(m, K, T, seed, sig=0.3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = random_params(m, K, rng, sig=sig, dtype=dtype)
    x, y = random_sequence(K, T, rng)
    hprev = np.tanh(rng.standard_normal(m)).astype(dtype)  # a nonzero, realistic carried state
    return p, x, y, hprev


# --- loss and gradients ---------------------------------------------------------------------------


@needs_numba
@pytest.mark.parametrize("T", [1, 7, 25])
@pytest.mark.parametrize("m,K", SIZES)
def test_loss_and_grads_float64_matches_numpy_and_reference(m, K, T):
    p, x, y, hprev = case(m, K, T, seed=1000 * m + 10 * K + T)
    grads, np_grads = p.zeros_like(), p.zeros_like()
    loss, hlast = fast.loss_and_grads(p, x, y, hprev, grads)
    np_loss, np_hlast = rnn.loss_and_grads(p, x, y, hprev, np_grads)
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev)
    assert isinstance(loss, float)
    assert loss == pytest.approx(np_loss, rel=1e-10) and loss == pytest.approx(ref_loss, rel=1e-10)
    for name in NAMES:
        assert_close(grads[name], np_grads[name], rtol=1e-10)
        assert_close(grads[name], ref_grads[name], rtol=1e-10)
    assert_close(hlast, np_hlast, rtol=1e-10)
    assert_close(hlast, ref_hlast, rtol=1e-10)


@needs_numba
def test_workspace_holds_the_hidden_states_and_is_reused():
    """One workspace serves sequences of any length up to its own; H[t] = h_t afterwards."""
    m, K = 100, 80
    ws = fast.Workspace(m, K, 25)
    for T, seed in [(25, 1), (3, 2), (25, 3), (1, 4), (11, 5)]:
        p, x, y, hprev = case(m, K, T, seed)
        assert ws.fits(p, T) and not ws.fits(p, 26) and not ws.fits(p.astype(np.float32), T)
        grads, np_grads, np_ws = p.zeros_like(), p.zeros_like(), rnn.Workspace(m, K, T)
        loss, hlast = fast.loss_and_grads(p, x, y, hprev, grads, ws)
        np_loss, _ = rnn.loss_and_grads(p, x, y, hprev, np_grads, np_ws)
        assert loss == pytest.approx(np_loss, rel=1e-10)
        assert_close(grads.flat, np_grads.flat, rtol=1e-10)
        assert_close(ws.H[: T + 1], np_ws.H[: T + 1], rtol=1e-10)
        np.testing.assert_array_equal(hlast, ws.H[T])


@needs_numba
@pytest.mark.parametrize("T", [1, 7, 25])
@pytest.mark.parametrize("m,K", SIZES)
def test_loss_and_grads_float32_close_to_float64(m, K, T):
    # sig scaled so that W's spectral radius stays below 1: a well-conditioned problem, where
    # float32 rounding is not amplified through time
    p64, x, y, hprev = case(m, K, T, seed=7 * m + K + T, sig=0.3 * min(1.0, (10 / m) ** 0.5))
    p = p64.astype(np.float32)
    grads = p.zeros_like()
    loss, hlast = fast.loss_and_grads(p, x, y, hprev.astype(np.float32), grads)
    assert grads.flat.dtype == np.float32 and hlast.dtype == np.float32
    ref_loss, ref_grads, ref_hlast = oracle(p, x, y, hprev.astype(np.float32))
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    for name in NAMES:
        assert norm_rel(grads[name], ref_grads[name]) < 1e-4, name
    assert norm_rel(hlast, ref_hlast) < 1e-4


@needs_numba
def test_float32_as_accurate_as_numpy_float32_when_ill_conditioned():
    """With sig = 0.3 at m = 100 rounding grows through time in any float32 implementation."""
    p64, x, y, hprev = case(100, 80, 25, seed=5)
    p, h32 = p64.astype(np.float32), hprev.astype(np.float32)
    ref_loss, ref_grads, _ = oracle(p, x, y, h32)
    g_fast, g_np = p.zeros_like(), p.zeros_like()
    loss, _ = fast.loss_and_grads(p, x, y, h32, g_fast)
    rnn.loss_and_grads(p, x, y, h32, g_np)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    for name in NAMES:
        err_fast, err_np = norm_rel(g_fast[name], ref_grads[name]), norm_rel(g_np[name], ref_grads[name])
        assert err_fast < max(1e-4, 4 * err_np), (name, err_fast, err_np)


@needs_numba
def test_invalid_arguments_raise():
    p, x, y, hprev = case(5, 4, 6, seed=4)
    grads = p.zeros_like()
    lstm = ParamSet(5, 4, gates=4)
    with pytest.raises(ValueError, match="vanilla RNN"):
        fast.loss_and_grads(lstm, x, y, hprev, lstm.zeros_like())
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fast.loss_and_grads(p, np.array([0, 4, 1]), np.array([0, 1, 2]), hprev, grads)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fast.loss_and_grads(p, np.array([0, 1, 1]), np.array([0, -1, 2]), hprev, grads)
    with pytest.raises(ValueError, match="one length"):
        fast.loss_and_grads(p, x, y[:-1], hprev, grads)
    with pytest.raises(ValueError, match="hprev"):
        fast.loss_and_grads(p, x, y, hprev[:-1], grads)
    with pytest.raises(ValueError, match="layout and dtype"):
        fast.loss_and_grads(p, x, y, hprev, grads.astype(np.float32))
    with pytest.raises(TypeError, match="integers"):
        fast.loss_and_grads(p, x.astype(float), y, hprev, grads)


# --- clipping + AdaGrad, and the finiteness check -------------------------------------------------


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_adagrad_is_bit_identical_to_optim(dtype):
    rng = np.random.default_rng(11)
    n = 26180 + 3  # the m=100, K=80 size plus an odd tail
    theta = (rng.standard_normal(n) * 0.1).astype(dtype)
    mem = (rng.random(n) * rng.choice([0.0, 1e-9, 1.0, 100.0], n)).astype(dtype)
    g = (rng.standard_normal(n) * rng.choice([1e-6, 1.0, 10.0], n)).astype(dtype)  # many beyond +-5
    g[:4] = [5.0, -5.0, 0.0, -0.0]
    t1, m1, g1 = theta.copy(), mem.copy(), g.copy()
    t2, m2, g2 = theta.copy(), mem.copy(), g.copy()
    for eta in (0.1, 0.05):
        optim.clip_(g1)
        optim.adagrad_(t1, g1, m1, eta)
        engine.clip_adagrad_(t2, g2, m2, eta)
        np.testing.assert_array_equal(g2, g1)
        np.testing.assert_array_equal(m2, m1)
        np.testing.assert_array_equal(t2, t1)
        g1[...] = g2[...] = g * 0.5


@needs_numba
def test_clip_adagrad_keeps_nan_and_checks_arguments():
    theta, mem, g = np.zeros(3), np.zeros(3), np.array([np.nan, 7.0, -np.inf])
    engine.clip_adagrad_(theta, g, mem, 0.1)
    assert np.isnan(g[0]) and g[1] == 5.0 and g[2] == -5.0 and np.isnan(theta[0])
    with pytest.raises(ValueError, match="one dtype"):
        engine.clip_adagrad_(theta, g.astype(np.float32), mem, 0.1)
    with pytest.raises(ValueError, match="one shape"):
        engine.clip_adagrad_(theta, g[:2], mem, 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        engine.clip_adagrad_(np.zeros(6)[::2], g, mem, 0.1)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("limit", [5.0, 0.0])
def test_clip_adam_is_bit_identical_to_optim(dtype, limit):
    rng = np.random.default_rng(12)
    n = 4 * 256 * (80 + 256 + 1) + 80 * 257 + 3  # an LSTM's m=256, K=80 size plus an odd tail
    theta = (rng.standard_normal(n) * 0.1).astype(dtype)
    g = (rng.standard_normal(n) * rng.choice([1e-6, 1.0, 10.0], n)).astype(dtype)  # many beyond +-5
    g[:4] = [5.0, -5.0, 0.0, -0.0]
    slots1 = [np.zeros(n, dtype), np.zeros(n, dtype)]
    slots2 = [np.zeros(n, dtype), np.zeros(n, dtype)]
    t1, g1, t2, g2, tmp = theta.copy(), g.copy(), theta.copy(), g.copy(), np.empty(n, dtype)
    for t, eta in ((1, 0.003), (2, 0.003), (3, 0.001)):  # the moments and bias corrections move
        if limit:
            optim.clip_(g1, limit)
        optim.adam(t1, g1, slots1, eta, t, tmp)
        engine.clip_adam_(t2, g2, slots2, eta, t, limit)
        for ours, numpys in zip((g2, *slots2, t2), (g1, *slots1, t1)):
            np.testing.assert_array_equal(ours, numpys)
        g1[...] = g2[...] = g * 0.5


@needs_numba
@pytest.mark.parametrize("clip,clip_norm", [(5.0, 0.0), (5.0, 0.5), (0.0, 0.0), (0.0, 0.5)])
def test_numba_engine_adam_step_is_the_numpy_engines(clip, clip_norm):
    """The gated cells' step on the numba engine (fused clip + Adam, numpy's norm clipping) against numpy's."""
    from helpers.train.config import TrainConfig

    cfg = TrainConfig(
        cell="lstm", m=6, optimizer="adam", eta=0.01, clip=clip, clip_norm=clip_norm, engine="numba"
    )
    ours, numpys = engine.NumbaEngine(cfg, 5, np.float32), engine.NumpyEngine(cfg, 5, np.float32)
    rng = np.random.default_rng(3)
    n = 4 * 6 * (5 + 6 + 1) + 5 * 7
    theta, g = rng.standard_normal(n).astype(np.float32), (rng.standard_normal(n) * 4).astype(np.float32)
    runs = [(theta.copy(), g.copy(), [np.zeros(n, np.float32), np.zeros(n, np.float32)]) for _ in range(2)]
    for t in (1, 2):
        for eng, (th, gr, slots) in zip((ours, numpys), runs):
            eng.step(th, gr, slots, t, np.empty(n, np.float32))
        for a, b in zip((runs[0][0], runs[0][1], *runs[0][2]), (runs[1][0], runs[1][1], *runs[1][2])):
            np.testing.assert_array_equal(a, b)
        assert not clip or np.abs(runs[0][1]).max() <= clip
        for _, gr, _ in runs:
            gr[...] = g


@needs_numba
def test_clip_adam_keeps_nan_and_checks_arguments():
    theta, g, slots = np.zeros(3), np.array([np.nan, 7.0, -np.inf]), (np.zeros(3), np.zeros(3))
    engine.clip_adam_(theta, g, slots, 0.01, 1)
    assert np.isnan(g[0]) and g[1] == 5.0 and g[2] == -5.0 and np.isnan(theta[0]) and theta[1] < 0 < theta[2]
    with pytest.raises(ValueError, match="one dtype"):
        engine.clip_adam_(theta, g.astype(np.float32), slots, 0.01, 1)
    with pytest.raises(ValueError, match="one shape"):
        engine.clip_adam_(theta, g[:2], slots, 0.01, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        engine.clip_adam_(np.zeros(6)[::2], g, slots, 0.01, 1)


@needs_numba
def test_all_finite():
    a = np.zeros(1001)
    assert fast.all_finite(a)
    for bad in (np.nan, np.inf, -np.inf):
        a[-1] = bad
        assert not fast.all_finite(a)
    assert not fast.all_finite(np.array([3e38, np.nan], np.float32))
    assert fast.all_finite(np.array([[3e38, -3e38]], np.float32))


# --- whole training updates, as the trainer runs them ---------------------------------------------


def train_both(m, K, n_updates, dtype, eta, seed):
    """Yield (numpy state, fast state) after each of n_updates consecutive updates on random text.

    Each update is loss + BPTT, clip, AdaGrad, with hprev carried over, as in helpers.train;
    a state is (loss, hlast, params, clipped grads, mem).
    """
    rng = np.random.default_rng(seed)
    T = 25
    data = rng.integers(0, K, T * n_updates + 1)
    p_np = init_params(m, K, 0.01, rng, dtype=dtype)
    p_np.b[...] = rng.standard_normal(m) * 0.01
    p_fast = p_np.copy()
    g_np, g_fast, mem_np, mem_fast = (p_np.zeros_like() for _ in range(4))
    ws_np, ws_fast = rnn.Workspace(m, K, T, dtype), fast.Workspace(m, K, T, dtype)
    h_np = h_fast = np.zeros(m, dtype)
    for e in range(0, T * n_updates, T):
        x, y = data[e : e + T], data[e + 1 : e + T + 1]
        loss_np, h_np = rnn.loss_and_grads(p_np, x, y, h_np, g_np, ws_np)
        optim.clip_(g_np.flat)
        optim.adagrad_(p_np.flat, g_np.flat, mem_np.flat, eta)
        loss_fast, h_fast = fast.loss_and_grads(p_fast, x, y, h_fast, g_fast, ws_fast)
        assert fast.all_finite(g_fast.flat)
        engine.clip_adagrad_(p_fast.flat, g_fast.flat, mem_fast.flat, eta)
        yield (loss_np, h_np, p_np, g_np, mem_np), (loss_fast, h_fast, p_fast, g_fast, mem_fast)


@needs_numba
@pytest.mark.parametrize("m,K,n_updates", [(100, 80, 4), (13, 7, 12)])
def test_consecutive_updates_match_numpy_training_float64(m, K, n_updates):
    """Rounding differences grow from update to update (AdaGrad's first steps amplify a
    difference in a gradient entry that is rounding noise up to eta / sqrt(eps) = 1e3 times, and
    training feeds it back), so this follows only a few updates."""
    for (l1, h1, p1, g1, m1), (l2, h2, p2, g2, m2) in train_both(m, K, n_updates, np.float64, 0.1, seed=21):
        assert l2 == pytest.approx(l1, rel=1e-11)
        assert norm_rel(h2, h1) < 1e-10
        assert norm_rel(g2.flat, g1.flat) < 1e-10  # the clipped gradients
        assert norm_rel(m2.flat, m1.flat) < 1e-10
        assert norm_rel(p2.flat, p1.flat) < 1e-11
        assert np.abs(p2.flat - p1.flat).max() < 1e-10


@needs_numba
def test_consecutive_updates_float32_track_numpy_float32():
    for (l1, _h1, p1, _, _), (l2, h2, p2, _, _) in train_both(100, 80, 6, np.float32, 0.05, seed=2):
        assert h2.dtype == np.float32 and p2.flat.dtype == np.float32
        assert l2 == pytest.approx(l1, rel=1e-5)
        assert norm_rel(p2.flat, p1.flat) < 1e-4


# --- the sampler ----------------------------------------------------------------------------------


def sampling_params(m=100, K=80, seed=0, sig=0.05):
    """Random weights and biases whose recurrence is not chaotic (W's spectral radius ~ 0.5)."""
    rng = np.random.default_rng(seed)
    p = random_params(m, K, rng, sig=sig)
    p.c[...] = rng.standard_normal(K)  # a varied output distribution
    return p, np.tanh(rng.standard_normal(m))


@needs_numba
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_matches_the_numpy_sampler_given_the_same_rng(temperature):
    p, h0 = sampling_params()
    idx_ref, h_ref = sample.sample_indices(p, h0, 3, 2000, np.random.default_rng(5), temperature=temperature)
    idx, h = fast.sample_indices(p, h0, 3, 2000, np.random.default_rng(5), temperature=temperature)
    assert idx.dtype == np.int64 and idx.shape == (2000,)
    np.testing.assert_array_equal(idx, idx_ref)
    assert_close(h, h_ref, rtol=1e-12)
    assert len(np.unique(idx)) > 40  # a real test: many different characters


@needs_numba
def test_sampler_kernel_with_given_uniforms():
    from helpers.model import fast_kernels

    p, h0 = sampling_params(m=13, K=7, seed=1, sig=0.2)
    u = np.random.default_rng(9).random(500)
    u[:3] = [0.0, np.nextafter(1.0, 0.0), 0.5]  # the extremes stay in range
    out = np.empty(500, np.int64)
    fast_kernels.sample(p.flat, p.K, h0, 2, u, 1.0, out)

    class Replay:  # hands sample the same uniforms
        def random(self, n):
            assert n == len(u)
            return u

    idx_ref, _ = sample.sample_indices(p, h0, 2, 500, Replay())
    np.testing.assert_array_equal(out, idx_ref)
    assert out.min() >= 0 and out.max() < 7


@needs_numba
def test_sampler_float32_and_options():
    p, h0 = sampling_params()
    p32 = p.astype(np.float32)
    idx, h = fast.sample_indices(p32, h0, 0, 300, np.random.default_rng(1))
    assert h.dtype == np.float32 and idx.min() >= 0 and idx.max() < 80
    idx64, _ = fast.sample_indices(p, h0, 0, 300, np.random.default_rng(1))
    assert np.mean(idx == idx64) > 0.9  # float32 rounding rarely moves a draw across a boundary
    # top_p < 1 is the numpy sampler's own code, with the same draws
    a, _ = fast.sample_indices(p, h0, 0, 100, np.random.default_rng(2), top_p=0.9)
    b, _ = sample.sample_indices(p, h0, 0, 100, np.random.default_rng(2), top_p=0.9)
    np.testing.assert_array_equal(a, b)
    assert fast.sample_indices(p, h0, 0, 0, np.random.default_rng(0))[0].shape == (0,)
    with pytest.raises(ValueError, match="x0"):
        fast.sample_indices(p, h0, 80, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature"):
        fast.sample_indices(p, h0, 0, 5, np.random.default_rng(0), temperature=0)


def test_sampler_hands_the_lstm_to_the_numpy_sampler():
    """Other cells go to sample.sample_indices, with or without numba."""
    rng = np.random.default_rng(3)
    p = init_params(6, 5, 0.3, rng, gates=4)
    h0 = np.zeros(12)  # [h, s]
    a, ha = fast.sample_indices(p, h0, 1, 50, np.random.default_rng(4), cell="lstm")
    b, hb = sample.sample_indices(p, h0, 1, 50, np.random.default_rng(4), cell="lstm")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)


# --- without numba --------------------------------------------------------------------------------


def test_every_function_raises_the_reason_when_numba_is_missing(monkeypatch):
    monkeypatch.setattr(fast, "AVAILABLE", False)
    monkeypatch.setattr(fast, "REASON", "numba is not installed (test)")
    p, x, y, hprev = case(5, 4, 3, seed=0)
    calls = [
        lambda: fast.loss_and_grads(p, x, y, hprev, p.zeros_like()),
        lambda: engine.clip_adagrad_(p.flat, p.flat.copy(), p.flat.copy(), 0.1),
        lambda: fast.all_finite(p.flat),
        lambda: fast.sample_indices(p, hprev, 0, 5, np.random.default_rng(0)),
        lambda: fast.warmup(),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match=r"numba is not installed \(test\)"):
            call()


def test_import_without_numba_in_a_subprocess():
    """With numba unimportable, helpers.model.fast still imports, says why, and raises that reason."""
    code = """
import sys
sys.modules["numba"] = None  # makes `import numba` raise ImportError
import numpy as np
from helpers.model import fast
from helpers.model.params import ParamSet
assert fast.AVAILABLE is False and fast.numba is None
assert "numba" in fast.REASON and "pip install" in fast.REASON, fast.REASON
p = ParamSet(3, 4)
try:
    fast.loss_and_grads(p, [0, 1], [1, 2], np.zeros(3), p.zeros_like())
except RuntimeError as exc:
    assert str(exc) == fast.REASON
else:
    raise AssertionError("no RuntimeError")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.skipif(not fast.AVAILABLE, reason="numba is not installed")
def test_synthesis_and_training_samples_with_the_numba_engine_draw_the_same_text(tmp_path):
    from helpers.runs import steps

    from conftest import quiet

    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 30, encoding="utf-8")
    kw = dict(m=12, seq_length=8, n_updates=200, sample_every=100, sample_until=200, sample_length=60)
    quiet(steps.train, str(text), str(tmp_path / "a"), seed=3, **kw)
    quiet(steps.train, str(text), str(tmp_path / "b"), seed=3, engine="numba", **kw)
    a = json.loads((tmp_path / "a" / "samples.json").read_text())
    b = json.loads((tmp_path / "b" / "samples.json").read_text())
    assert [s["step"] for s in a] == [s["step"] for s in b] == [0, 100, 200]
    assert a[0]["text"] == b[0]["text"]  # same parameters before any update: the same draws
    ck = str(tmp_path / "a" / "best.npz")
    for seed in (0, 1):
        assert (
            steps.synthesize(ck, 300, seed, engine="numba")["text"]
            == steps.synthesize(ck, 300, seed, engine="numpy")["text"]
        )
    with pytest.raises(ValueError, match="engine must be numpy or numba"):
        steps.synthesize(ck, 10, engine="gpu")
