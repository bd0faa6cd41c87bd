"""steps.train, the training step the notebooks call: its result files (run.json, metrics.json,
train_log.csv, samples.json, best.npz, last.npz) against the same run in memory, the best model by
validation loss, the test part's figures, non-finite losses, and the engine it picks. Exact resume:
test_resume.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os

import numpy as np
import pytest

from helpers.common import files
from helpers.data.text import build_vocab, encode
from helpers.model import oracles
from helpers.runs import steps
from helpers.train import checkpoint as ckpt
from helpers.train import evaluate
from helpers.train.config import TrainConfig
from helpers.train.trainer import NonFiniteLossError, Trainer

from conftest import (
    DURSLEY,
    HOGWARTS,
    ORWELL,
    PANGRAMS,
    expected_epoch_starts,
    make_trainer,
    quiet,
    train_settings,
)

SMALL = dict(
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
"""steps.train on ORWELL: validation, engines."""


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


# --- the result files ------------------------------------------------------------------------------


RESULT_FILES = {"best.npz", "last.npz", "run.json", "samples.json", "train_log.csv"}


def assert_result_files(out):
    names = set(os.listdir(out))
    assert RESULT_FILES <= names, RESULT_FILES - names
    assert not [n for n in names if n.endswith(".tmp")], "temporary files were left behind"


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_train_writes_its_result_files(tmp_path, text_file):
    path = text_file(PANGRAMS)
    out = tmp_path / "out"
    kwargs = dict(
        m="8",
        eta="0.1",
        seq_length=5,
        sig=0.01,
        n_updates=300,
        sample_every=100,
        sample_until=200,
        sample_length=30,
        log_every=50,
        checkpoint_every=100,
    )
    summary = steps.train(str(path), str(out), seed="5", **kwargs)
    assert_result_files(out)
    chars = build_vocab(PANGRAMS)

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run == json.loads(json.dumps(summary))
    for key in (
        "run_id",
        "seed",
        "config",
        "corpus",
        "steps_done",
        "epochs",
        "epoch_starts",
        "final_smooth_loss",
        "best_smooth_loss",
        "best_step",
        "seconds",
        "updates_per_second",
    ):
        assert key in run, key
    assert run["seed"] == 5 and run["steps_done"] == 300
    assert run["config"] == TrainConfig(**kwargs).as_dict()
    assert run["corpus"] == {
        "name": path.name,
        "source": str(path),
        "n_chars": len(PANGRAMS),
        "K": len(chars),
    }
    assert run["best_smooth_loss"] <= run["final_smooth_loss"]
    assert 1 <= run["best_step"] <= 300
    assert run["epoch_starts"] == expected_epoch_starts(len(PANGRAMS), 5, 300)
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
    tr = make_trainer(PANGRAMS, seed=5, **{k: v for k, v in kwargs.items()})
    quiet(tr.run, 300, progress=False)
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


def test_train_same_seed_identical_different_seed_differs(tmp_path, text_file):
    path = text_file(PANGRAMS)
    kwargs = train_settings(n_updates=150, sample_every=50, sample_until=150, checkpoint_every=150)
    results = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        steps.train(str(path), str(tmp_path / name), seed=seed, **kwargs)
        results[name] = (
            ckpt.load(tmp_path / name / "last.npz"),
            (tmp_path / name / "samples.json").read_text(encoding="utf-8"),
            (tmp_path / name / "train_log.csv").read_text(encoding="utf-8"),
        )
    a, b, c = results["a"], results["b"], results["c"]
    np.testing.assert_array_equal(a[0].params.flat, b[0].params.flat)
    assert a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(a[0].params.flat, c[0].params.flat)
    assert a[1] != c[1]


def test_train_rejects_unknown_parameters(tmp_path, text_file):
    path = text_file(PANGRAMS)
    with pytest.raises(TypeError, match="learning_rate"):
        steps.train(str(path), str(tmp_path / "x"), learning_rate=0.1)
    assert not (tmp_path / "x").exists()


def test_train_keeps_the_last_good_checkpoint_on_non_finite_loss(tmp_path, text_file):
    path = text_file(PANGRAMS)
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        with pytest.raises(NonFiniteLossError):
            steps.train(str(path), str(out), seed=0, **train_settings(eta=1e300, checkpoint_every=1))
    last = ckpt.load(out / "last.npz")
    assert last.step >= 1
    assert np.all(np.isfinite(last.params.flat))
    assert json.loads((out / "run.json").read_text())["steps_done"] == last.step
    assert_result_files(out)


def test_run_json_records_the_constants_the_training_used(tmp_path, text_file):
    """run.json carries the clip limit, smoothing and optimizer settings, from the modules that use them."""
    from helpers.train import optim
    from helpers.train.trainer import SMOOTHING

    run = steps.train(
        str(text_file(PANGRAMS)),
        str(tmp_path),
        seed=1,
        **train_settings(n_updates=20, optimizer="adam", eta=0.01),
    )
    assert run["constants"] == {
        "clip": optim.CLIP,
        "clip_norm": 0.0,
        "weight_decay": 0.0,
        "smoothing": SMOOTHING,
        "optimizer": "adam",
        "optimizer_settings": {"beta1": optim.BETA1, "beta2": optim.BETA2, "eps": optim.EPS},
    }
    assert run["seconds"] == json.loads((tmp_path / "metrics.json").read_text())["seconds"]
    assert run["session_updates"] == 20 and run["session_seconds"] <= run["seconds"]


# --- validation: the best model, metrics.json ------------------------------------------------------


@pytest.mark.parametrize("cell,B,opt", [("lstm", 2, "adam"), ("rnn", 1, "adagrad")])
def test_best_model_is_the_lowest_validation_loss_and_metrics(tmp_path, text_file, cell, B, opt):
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    n, every, T = 55, 10, 6
    cfg = {**SMALL, "eta": 0.3 if opt == "adagrad" else 0.05}
    run = quiet(
        steps.train,
        str(path),
        str(out),
        seed=1,
        n_updates=n,
        cell=cell,
        batch_size=B,
        optimizer=opt,
        val_fraction=0.2,
        eval_every=every,
        **cfg,
    )
    last = ckpt.load(out / "last.npz")
    best = ckpt.load(out / "best.npz")
    val_log = last.meta["val_log"]
    evaluated = [row[0] for row in val_log]
    assert evaluated == [
        10,
        20,
        30,
        40,
        50,
    ]  # every eval_every; the final model's figure goes to metrics only
    assert [row[1] for row in val_log] == [s * B * T for s in evaluated]
    losses = [row[3] for row in val_log]
    lowest = min(losses)
    assert run["best_step"] in [s for s, v in zip(evaluated, losses) if v == lowest]
    assert best.step == run["best_step"]

    chars = build_vocab(ORWELL)
    data = encode(ORWELL, chars)
    n_val = round(0.2 * len(ORWELL))
    val = data[len(data) - n_val :]
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
    assert [h["step"] for h in metrics["history"]] == evaluated
    assert [h["chars_seen"] for h in metrics["history"]] == [s * B * T for s in evaluated]
    np.testing.assert_allclose([h["val_loss_per_char"] for h in metrics["history"]], losses, rtol=1e-12)
    assert all(h["seconds"] >= 0 for h in metrics["history"])
    # the seconds of each evaluation are the training's clock then: they grow with the updates, and
    # the last comes before the end of training (the figure metrics.json holds)
    seconds = [h["seconds"] for h in metrics["history"]]
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:])), seconds
    assert seconds[-1] <= metrics["seconds"]
    assert [row[2] for row in val_log] == seconds
    assert run["chars_seen"] == n * B * T


def test_without_split_val_fields_are_null_and_best_is_lowest_smooth_loss(tmp_path, text_file):
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    run = quiet(steps.train, str(path), str(out), seed=0, n_updates=40, cell="lstm", batch_size=2, **SMALL)
    metrics = read_json(out / "metrics.json")
    assert metrics["val_loss_per_char"] is None
    assert metrics["val_bits_per_char"] is None
    assert metrics["best_val_loss_per_char"] is None
    assert metrics["history"] == []
    assert metrics["val_chars"] == 0
    assert metrics["chars_seen"] == 40 * 2 * 6
    assert run["val_loss_per_char"] is None
    assert ckpt.load(out / "last.npz").meta["val_log"] == []


def test_validation_split_that_rounds_to_nothing_is_refused(tmp_path, text_file):
    path = text_file(ORWELL[:40], "t.txt")
    with pytest.raises(ValueError, match="leaves 0 character.*use a larger val_fraction"):
        quiet(steps.train, str(path), str(tmp_path / "a"), n_updates=5, **{**SMALL, "val_fraction": 0.01})


# --- the test part ------------------------------------------------------------------------------------


def test_test_loss_is_evaluated_once_with_the_best_model(tmp_path, text_file, monkeypatch):
    path = text_file(DURSLEY, "t.txt")
    calls, real = [], Trainer.test
    monkeypatch.setattr(
        Trainer, "test", lambda self, params=None: calls.append(self.state.step) or real(self, params)
    )
    kw = dict(
        m=5,
        seq_length=6,
        n_updates=40,
        sample_every=1000,
        sample_until=0,
        checkpoint_every=10,
        cell="gru",
        val_fraction=0.1,
        test_fraction=0.1,
        eval_every=10,
        optimizer="adam",
        eta=0.02,
    )
    run = quiet(steps.train, str(path), str(tmp_path / "r"), **kw)
    assert calls == [40]  # not at the checkpoints, never during training
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    best = ckpt.load(tmp_path / "r" / "best.npz")
    t = make_trainer(DURSLEY, **{k: v for k, v in kw.items() if k != "n_updates"})
    expected = evaluate.loss_per_char("gru", best.params, t.test_data)
    assert m["test_loss_per_char"] == pytest.approx(expected, rel=1e-12)
    assert m["test_bits_per_char"] == pytest.approx(expected / math.log(2))
    assert m["test_perplexity"] == pytest.approx(math.exp(expected))
    assert m["best_val_perplexity"] == pytest.approx(math.exp(m["best_val_loss_per_char"]))
    assert m["test_chars"] == len(t.test_data) == 49 and run["test_loss_per_char"] == m["test_loss_per_char"]
    assert best.meta["test_loss_per_char"] == m["test_loss_per_char"]
    assert best.meta["best_val_loss_per_char"] == m["best_val_loss_per_char"]


def test_without_a_test_part_the_test_fields_are_null(tmp_path, text_file):
    path = text_file(DURSLEY, "t.txt")
    quiet(
        steps.train,
        str(path),
        str(tmp_path / "r"),
        m=4,
        seq_length=6,
        n_updates=5,
        sample_every=1000,
        sample_until=0,
    )
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["test_loss_per_char"] is None and m["test_bits_per_char"] is None and m["test_chars"] == 0


# --- the engine ---------------------------------------------------------------------------------------


def test_numba_engine_for_a_batched_rnn_falls_back_to_numpy_with_a_note(tmp_path, text_file):
    """(The GRU and the LSTM have a numba path: tests/test_fast_gated.py.)"""
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        run = steps.train(
            str(path), str(out), n_updates=12, cell="rnn", batch_size=2, engine="numba", **SMALL
        )
    assert run["engine"] == "numpy"
    assert read_json(out / "run.json")["engine"] == "numpy"
    note = buf.getvalue()
    assert "numba" in note and "numpy" in note
    # and the run is the numpy run
    ref_out = tmp_path / "ref"
    quiet(
        steps.train, str(path), str(ref_out), n_updates=12, cell="rnn", batch_size=2, engine="numpy", **SMALL
    )
    np.testing.assert_array_equal(
        ckpt.load(out / "last.npz").params.flat, ckpt.load(ref_out / "last.npz").params.flat
    )


def test_numba_engine_for_the_rnn_is_used(tmp_path, text_file):
    from helpers.model import fast

    if not fast.AVAILABLE:
        pytest.skip(fast.REASON or "numba unavailable")
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    run = quiet(steps.train, str(path), str(out), n_updates=12, cell="rnn", engine="numba", **SMALL)
    assert run["engine"] == "numba"
    assert read_json(out / "run.json")["engine"] == "numba"


def test_numba_engine_falls_back_for_a_stack(tmp_path, text_file):
    path = text_file(HOGWARTS, "t.txt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        run = steps.train(
            str(path),
            str(tmp_path / "r"),
            n_updates=3,
            m=4,
            seq_length=5,
            sample_every=1000,
            sample_until=0,
            engine="numba",
            n_layers=2,
        )
    assert run["engine"] == "numpy" and "one-layer" in out.getvalue()


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_validation_in_parallel_streams_equals_one_pass(tmp_path, text_file, cell):
    """The held-out text read in 32 streams (each after 100 unscored characters of the text before it)
    gives the loss of one pass from a zero state, which the per-step oracle computes by hand."""
    path = text_file(ORWELL * 12, "t.txt")
    quiet(steps.train, str(path), str(tmp_path / "run"), n_updates=300, cell=cell, **SMALL)
    p = ckpt.load(tmp_path / "run" / "best.npz").params
    data = np.random.default_rng(0).integers(0, p.K, 2_000) if cell == "lstm" else None
    if data is None:
        chars = ckpt.load(tmp_path / "run" / "best.npz").chars
        data = np.array([chars.index(ch) for ch in (ORWELL * 12)[:2_000]])
    one = evaluate.loss_per_char(cell, p, data, streams=1)
    assert evaluate.loss_per_char(cell, p, data) == pytest.approx(one, rel=1e-6)
    if cell == "rnn":
        by_hand = oracles.loss_and_grads(
            *(np.asarray(p[n], float) for n in "UWVbc"), data[:-1], data[1:], np.zeros(p.m)
        )[0] / (len(data) - 1)
        assert one == pytest.approx(by_hand, rel=1e-12)


def test_a_time_budget_ends_the_run_and_its_last_model_is_evaluated(tmp_path, text_file, capsys):
    path = text_file(ORWELL * 12, "t.txt")
    run = steps.train(
        str(path),
        str(tmp_path / "run"),
        n_updates=10**7,
        lr_schedule="cosine",
        time_budget=0.6,
        val_fraction=0.1,
        eval_every=10**6,
        **{**SMALL, "checkpoint_every": 10**6},
    )
    assert 0 < run["steps_done"] < 10**7 and 0.6 <= run["seconds"] < 5
    out = capsys.readouterr().out
    assert "(or fewer: it stops after time_budget = 0.6 s)" in out  # said before training
    assert f"the time budget of 0.6 s is spent after {run['steps_done']:,} updates" in out
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [run["steps_done"]] and run["best_step"] == run["steps_done"]
