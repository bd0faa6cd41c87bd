"""The training loop (Trainer / TrainState) and workflow.train's result files."""
from __future__ import annotations

import csv
import inspect
import json
import math
import os

import numpy as np
import pytest

from helpers.train import checkpoint as ckpt
from helpers.model import oracles as reference
from helpers.model import sample as synth
from helpers.common import files
from helpers.runs import steps as workflow
from helpers.train import trainer as train_mod
from helpers.train.config import TrainConfig
from helpers.data.text import build_vocab, encode
from helpers.model.params import NAMES, init_params
from helpers.train.trainer import NonFiniteLossError, Trainer, TrainState

LONG_TEXT = "the quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs!\n" * 12


def run_quiet(trainer: Trainer, n_updates: int) -> float:
    """Trainer.run without console output (no progress bar where run() offers one)."""
    kwargs = {"out": lambda line: None}
    if "progress" in inspect.signature(trainer.run).parameters:
        kwargs["progress"] = False
    return trainer.run(n_updates, **kwargs)


def small_cfg(**overrides) -> TrainConfig:
    base = dict(m=8, eta=0.1, seq_length=5, sig=0.01, n_updates=300, sample_every=50, sample_until=200,
                sample_length=20, log_every=1, checkpoint_every=100)
    base.update(overrides)
    return TrainConfig(**base)


def make_trainer(text=LONG_TEXT, seed=0, **overrides) -> Trainer:
    cfg = small_cfg(**overrides)
    chars = build_vocab(text)
    state = TrainState.fresh(cfg, len(chars), np.random.default_rng(seed))
    return Trainer(cfg, encode(text, chars), chars, state)


def expected_epoch_starts(N: int, T: int, n: int) -> list[int]:
    """An epoch holds (N - 1) // T updates; the k-th reset happens before update k * per_epoch + 1."""
    per_epoch = (N - 1) // T
    return [k * per_epoch for k in range(n) if k * per_epoch < n]


# --- the loop against an independent re-implementation ----------------------------------


@pytest.mark.parametrize("N,starts", [
    (46, [0, 4, 8, 12, 16, 20]),  # 45 // 10 = 4 updates per epoch
    (48, [0, 4, 8, 12, 16, 20]),
    (50, [0, 4, 8, 12, 16, 20]),  # N = 5 T: a 5th chunk would need 51 characters
    (51, [0, 5, 10, 15, 20]),  # 50 // 10 = 5: the 5th chunk ends exactly at the text's end
    (59, [0, 5, 10, 15, 20]),
])
def test_trainer_equals_hand_written_loop_with_clipping_and_epoch_resets(N, starts):
    """Reference BPTT + hand clipping + hand AdaGrad over consecutive chunks, with resets."""
    text = ("aaaaaaaabc" * 6)[:N]  # long runs of 'a' make big gradients, so clipping is exercised
    T, n, eta = 10, 23, 0.1
    tr = make_trainer(text, seed=3, seq_length=T, eta=eta, sig=0.5, n_updates=n, sample_every=1000,
                      sample_until=0, sample_length=3)
    data = tr.data
    assert len(data) == N
    p = {name: tr.state.params[name].copy() for name in NAMES}
    mem = {name: np.zeros_like(p[name]) for name in NAMES}
    h, e, losses, clipped = np.zeros(8), 0, [], 0
    for _ in range(n):
        if e + T + 1 > N:  # too few characters left: new epoch
            e, h = 0, np.zeros(8)
        x, y = data[e:e + T], data[e + 1:e + T + 1]
        loss, g, hlast = reference.loss_and_grads(*(p[k] for k in NAMES), x, y, h)
        for k in NAMES:
            clipped += int((np.abs(g[k]) > 5).sum())
            gk = np.minimum(np.maximum(g[k], -5.0), 5.0)
            mem[k] += gk * gk
            p[k] -= eta * gk / np.sqrt(mem[k] + 1e-8)
        h, e = hlast, e + T
        losses.append(loss)
    assert clipped > 0, "the scenario must exercise clipping"

    run_quiet(tr, n)
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
    run_quiet(tr, 1)
    K = len(tr.chars)
    first = tr.state.log[0]
    assert first[0] == 1
    assert first[1] == pytest.approx(5 * math.log(K), rel=1e-3)
    assert first[2] == first[1]


def test_smooth_loss_bookkeeping():
    tr = make_trainer(n_updates=300, log_every=1)
    run_quiet(tr, 300)
    log = tr.state.log
    assert [row[0] for row in log] == list(range(1, 301))
    smooth = None
    for step, loss, logged in log:
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
    run_quiet(tr, 120)
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
    ref_loss = reference.loss_and_grads(*(params_before[k] for k in NAMES), tr.data[0:5], tr.data[1:6],
                                        np.zeros(8))[0]
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
        run_quiet(tr, 200)
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
    run_quiet(t64, 20)
    run_quiet(t32, 20)
    np.testing.assert_allclose([r[1] for r in t32.state.log], [r[1] for r in t64.state.log], rtol=1e-4)
    np.testing.assert_allclose(t32.state.params.flat, t64.state.params.flat, rtol=1e-3, atol=1e-4)


# --- samples -----------------------------------------------------------------------------


def test_samples_schedule_and_contents(monkeypatch):
    calls = []
    real = synth.sample_indices

    def spy(p, h0, x0, n, rng, *args, **kwargs):
        calls.append((p.flat.copy(), np.array(h0, copy=True), int(x0), n))
        return real(p, h0, x0, n, rng, *args, **kwargs)

    monkeypatch.setattr(synth, "sample_indices", spy)  # the engine takes the sampler when it is made
    seed, T = 4, 5
    tr = make_trainer(seed=seed, seq_length=T, n_updates=200, sample_every=40, sample_until=130, sample_length=17)
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
    run_quiet(tr, 10)
    s = tr.state
    s.params.c[0] = np.nan
    before = (s.params.flat.copy(), s.mem.flat.copy(), s.step, s.smooth_loss, len(s.log), s.position)
    with pytest.raises(NonFiniteLossError) as err:
        tr.update()
    assert isinstance(err.value, FloatingPointError)
    assert "update 11" in str(err.value)
    np.testing.assert_array_equal(s.params.flat, before[0])  # nan stays where it was; no step taken
    np.testing.assert_array_equal(s.mem.flat, before[1])
    assert (s.step, s.smooth_loss, len(s.log), s.position) == before[2:]


def test_huge_eta_raises():
    tr = make_trainer(eta=1e300, n_updates=100)
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError):
            run_quiet(tr, 100)
    assert 1 <= tr.state.step < 100


def test_workflow_keeps_last_good_checkpoint_on_non_finite_loss(tmp_path, text_file):
    path = text_file(LONG_TEXT)
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError):
            workflow.train(str(path), str(out), seed=0, **small_config_kwargs(eta=1e300, checkpoint_every=1))
    last = ckpt.load(out / "last.npz")
    assert last.step >= 1
    assert np.all(np.isfinite(last.params.flat))
    assert json.loads((out / "run.json").read_text())["steps_done"] == last.step
    assert_result_files(out)


# --- workflow.train ------------------------------------------------------------------------


RESULT_FILES = {"best.npz", "last.npz", "run.json", "samples.json", "train_log.csv"}


def assert_result_files(out):
    names = set(os.listdir(out))
    assert RESULT_FILES <= names, RESULT_FILES - names
    assert not [n for n in names if n.endswith(".tmp")], "temporary files were left behind"


def small_config_kwargs(**overrides):
    return small_cfg(**overrides).as_dict()


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_workflow_train_writes_results(tmp_path, text_file):
    path = text_file(LONG_TEXT)
    out = tmp_path / "out"
    kwargs = dict(m="8", eta="0.1", seq_length=5, sig=0.01, n_updates=300, sample_every=100, sample_until=200,
                  sample_length=30, log_every=50, checkpoint_every=100)
    summary = workflow.train(str(path), str(out), seed="5", **kwargs)
    assert_result_files(out)
    chars = build_vocab(LONG_TEXT)

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run == json.loads(json.dumps(summary))
    for key in ("run_id", "seed", "config", "corpus", "steps_done", "epochs", "epoch_starts",
                "final_smooth_loss", "best_smooth_loss", "best_step", "seconds", "updates_per_second"):
        assert key in run, key
    assert run["seed"] == 5 and run["steps_done"] == 300
    assert run["config"] == TrainConfig(**kwargs).as_dict()
    assert run["corpus"] == {"name": path.name, "source": str(path), "n_chars": len(LONG_TEXT), "K": len(chars)}
    assert run["best_smooth_loss"] <= run["final_smooth_loss"]
    assert 1 <= run["best_step"] <= 300
    assert run["epoch_starts"] == expected_epoch_starts(len(LONG_TEXT), 5, 300)
    assert run["epochs"] == len(run["epoch_starts"])

    rows = read_csv(out / "train_log.csv")
    assert rows[0] == ["step", "loss", "smooth_loss"]
    assert [int(r[0]) for r in rows[1:]] == [1, 50, 100, 150, 200, 250, 300]
    assert float(rows[1][1]) == pytest.approx(5 * math.log(len(chars)), rel=1e-3)
    assert float(rows[1][2]) == float(rows[1][1])
    assert float(rows[-1][2]) == pytest.approx(run["final_smooth_loss"], abs=1e-6)
    log = files.read_log(out / "train_log.csv")
    assert log["step"].tolist() == [1, 50, 100, 150, 200, 250, 300]

    samples = json.loads((out / "samples.json").read_text(encoding="utf-8"))
    assert [s["step"] for s in samples] == [0, 100, 200]
    for s in samples:
        assert set(s) == {"step", "smooth_loss", "text"}
        assert len(s["text"]) == 30 and set(s["text"]) <= set(chars)

    last, best = ckpt.load(out / "last.npz"), ckpt.load(out / "best.npz")
    assert last.chars == chars == best.chars
    assert last.step == 300 and last.smooth_loss == pytest.approx(run["final_smooth_loss"], rel=1e-15)
    assert best.step == run["best_step"] and best.smooth_loss == run["best_smooth_loss"]
    assert last.meta["kind"] == "last" and best.meta["kind"] == "best"
    assert last.meta["run_id"] == run["run_id"] == best.meta["run_id"]
    assert last.mem is not None and np.all(last.mem.flat >= 0)

    # the saved state is that of the same run done in memory
    tr = make_trainer(LONG_TEXT, seed=5, **{k: v for k, v in kwargs.items()})
    run_quiet(tr, 300)
    np.testing.assert_array_equal(last.params.flat, tr.state.params.flat)
    np.testing.assert_array_equal(last.mem.flat, tr.state.mem.flat)
    np.testing.assert_array_equal(last.hprev, tr.state.hprev)
    np.testing.assert_array_equal(best.params.flat, tr.state.best_params.flat)
    assert samples == json.loads(json.dumps(tr.state.samples))
    assert last.meta["position"] == tr.state.position and last.meta["epoch"] == tr.state.epoch
    # the random state saved in last.npz continues exactly where the run's generator is
    resumed = np.random.default_rng()
    resumed.bit_generator.state = last.meta["rng_state"]
    np.testing.assert_array_equal(resumed.random(5), tr.state.rng.random(5))


def test_workflow_train_same_seed_identical_different_seed_differs(tmp_path, text_file):
    path = text_file(LONG_TEXT)
    kwargs = small_config_kwargs(n_updates=150, sample_every=50, sample_until=150, checkpoint_every=150)
    results = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        workflow.train(str(path), str(tmp_path / name), seed=seed, **kwargs)
        results[name] = (ckpt.load(tmp_path / name / "last.npz"),
                         (tmp_path / name / "samples.json").read_text(encoding="utf-8"),
                         (tmp_path / name / "train_log.csv").read_text(encoding="utf-8"))
    a, b, c = results["a"], results["b"], results["c"]
    np.testing.assert_array_equal(a[0].params.flat, b[0].params.flat)
    assert a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(a[0].params.flat, c[0].params.flat)
    assert a[1] != c[1]


def test_workflow_train_rejects_unknown_parameters(tmp_path, text_file):
    path = text_file(LONG_TEXT)
    with pytest.raises(TypeError, match="learning_rate"):
        workflow.train(str(path), str(tmp_path / "x"), learning_rate=0.1)
    assert not (tmp_path / "x").exists()


def test_workflow_train_resumed_run_equals_uninterrupted_run(tmp_path, text_file):
    """train(init_from=last.npz) goes on exactly as the uninterrupted run (its documented promise)."""
    if "init_from" not in inspect.signature(workflow.train).parameters:
        pytest.skip("this version of workflow.train cannot resume")
    path = text_file(LONG_TEXT)
    common = small_config_kwargs(sample_every=60, sample_until=240, checkpoint_every=50)
    workflow.train(str(path), str(tmp_path / "full"), seed=3, **{**common, "n_updates": 300})
    workflow.train(str(path), str(tmp_path / "first"), seed=3, **{**common, "n_updates": 150})
    workflow.train(str(path), str(tmp_path / "rest"), seed=3, init_from=str(tmp_path / "first" / "last.npz"),
                   **{**common, "n_updates": 300})
    full, rest = tmp_path / "full", tmp_path / "rest"
    a, b = ckpt.load(full / "last.npz"), ckpt.load(rest / "last.npz")
    assert b.step == 300
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    np.testing.assert_array_equal(a.mem.flat, b.mem.flat)
    np.testing.assert_array_equal(a.hprev, b.hprev)
    assert (full / "train_log.csv").read_text() == (rest / "train_log.csv").read_text()
    assert json.loads((full / "samples.json").read_text()) == json.loads((rest / "samples.json").read_text())
    best_a, best_b = ckpt.load(full / "best.npz"), ckpt.load(rest / "best.npz")
    assert best_a.step == best_b.step
    np.testing.assert_array_equal(best_a.params.flat, best_b.params.flat)
    run_a, run_b = (json.loads((d / "run.json").read_text()) for d in (full, rest))
    for key in ("steps_done", "epochs", "epoch_starts", "final_smooth_loss", "best_smooth_loss", "best_step"):
        assert run_a[key] == run_b[key], key


def test_last_npz_alone_resumes_exactly_when_best_npz_is_stale(tmp_path, text_file, monkeypatch):
    """A crash after last.npz and before best.npz cannot split the pair: last.npz carries the best model."""
    path = text_file(LONG_TEXT)
    # validation picks the best model, so it lies behind the last step (here 125 of 150)
    common = small_config_kwargs(sample_every=60, sample_until=240, checkpoint_every=50, eta=1.0, val_fraction=0.2,
                                 eval_every=25)
    workflow.train(str(path), str(tmp_path / "full"), seed=3, **{**common, "n_updates": 300})
    first = tmp_path / "first"
    workflow.train(str(path), str(first), seed=3, **{**common, "n_updates": 100})
    stale = (first / "best.npz").read_bytes()
    workflow.train(str(path), str(first), seed=3, init_from=str(first / "last.npz"), **{**common, "n_updates": 150})
    (first / "best.npz").write_bytes(stale)  # as if the crash came between last.npz and best.npz
    last = ckpt.load(first / "last.npz")
    assert last.best is not None and last.meta["best_step"] < last.step == 150
    assert ckpt.load(first / "best.npz").step < last.meta["best_step"]  # the pair on disk is split
    workflow.train(str(path), str(tmp_path / "mid"), seed=3, **{**common, "n_updates": 150})
    workflow.train(str(path), str(tmp_path / "again"), seed=3, init_from=str(first / "last.npz"),
                   **{**common, "n_updates": 150})  # no update: the best model as resumed
    mid, again = ckpt.load(tmp_path / "mid" / "best.npz"), ckpt.load(tmp_path / "again" / "best.npz")
    assert mid.step == again.step
    np.testing.assert_array_equal(mid.params.flat, again.params.flat)
    workflow.train(str(path), str(tmp_path / "rest"), seed=3, init_from=str(first / "last.npz"),
                   **{**common, "n_updates": 300})
    for name in ("best.npz", "last.npz"):
        a, b = ckpt.load(tmp_path / "full" / name), ckpt.load(tmp_path / "rest" / name)
        assert a.step == b.step
        np.testing.assert_array_equal(a.params.flat, b.params.flat)


def test_run_json_records_the_constants_the_training_used(tmp_path, text_file):
    """run.json carries the clip limit, smoothing and optimizer settings, from the modules that use them."""
    from helpers.train import optim
    from helpers.train.trainer import SMOOTHING

    run = workflow.train(str(text_file(LONG_TEXT)), str(tmp_path), seed=1,
                         **small_config_kwargs(n_updates=20, optimizer="adam", eta=0.01))
    assert run["constants"] == {"clip": optim.CLIP, "smoothing": SMOOTHING, "optimizer": "adam",
                                "optimizer_settings": {"beta1": optim.BETA1, "beta2": optim.BETA2, "eps": optim.EPS}}
    assert run["seconds"] == json.loads((tmp_path / "metrics.json").read_text())["seconds"]
    assert run["session_updates"] == 20 and run["session_seconds"] <= run["seconds"]
