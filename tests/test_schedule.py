"""The learning-rate schedule (per-epoch decay, warm-up, cosine), the held-out test part and the
per-character figures of metrics.json, and exact resume with every one of these options.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from helpers.runs import steps as workflow
from helpers.train import checkpoint as ckpt
from helpers.train import evaluate
from helpers.train.config import TrainConfig
from helpers.train.schedule import learning_rate
from helpers.train.trainer import Trainer, TrainState, changed_settings

TEXT = ("Mr and Mrs Dursley, of number four, Privet Drive, were proud to say that they were perfectly "
        "normal, thank you very much.\n") * 4  # 4 x 122 = 488 characters


def quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def make_trainer(seed=0, **overrides):
    base = dict(m=5, eta=0.05, seq_length=6, sig=0.1, n_updates=60, sample_every=1000, sample_until=0,
                sample_length=5, log_every=1, checkpoint_every=1000)
    cfg = TrainConfig(**{**base, **overrides})
    chars = sorted(set(TEXT))
    data = np.array([chars.index(ch) for ch in TEXT])
    return Trainer(cfg, data, chars, TrainState.fresh(cfg, len(chars), np.random.default_rng(seed)))


# --- the schedule ----------------------------------------------------------------------------

def test_defaults_give_eta_itself():
    cfg = TrainConfig(eta=0.1)
    assert all(learning_rate(cfg, t, e) is cfg.eta for t, e in ((1, 1), (500, 3), (10 ** 6, 40)))


def test_schedule_by_hand():
    decay = TrainConfig(eta=0.2, lr_decay=0.5)
    assert [learning_rate(decay, 7, e) for e in (1, 2, 4)] == pytest.approx([0.2, 0.1, 0.025])
    warm = TrainConfig(eta=0.2, warmup=4)
    assert [learning_rate(warm, t, 1) for t in (1, 2, 4, 9)] == pytest.approx([0.05, 0.1, 0.2, 0.2])
    cos = TrainConfig(eta=0.2, lr_schedule="cosine", n_updates=100)
    assert learning_rate(cos, 1, 1) == pytest.approx(0.2)
    assert learning_rate(cos, 51, 1) == pytest.approx(0.1)
    assert learning_rate(cos, 100, 1) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.99)))
    both = TrainConfig(eta=0.2, lr_schedule="cosine", n_updates=100, warmup=10, lr_decay=0.9)
    assert learning_rate(both, 5, 2) == pytest.approx(0.2 * 0.9 * 0.5 * 0.5 * (1 + math.cos(math.pi * 0.04)))


def test_the_trainer_steps_with_the_scheduled_eta_across_epochs():
    t = make_trainer(lr_decay=0.5, optimizer="adagrad")  # (488 - 1) // 6 = 81 updates per epoch with T = 6
    seen, real = [], t.engine.step
    t.engine.step = lambda theta, g, slots, step, tmp, eta=None: seen.append((t.state.epoch, eta)) or real(
        theta, g, slots, step, tmp, eta)
    for _ in range(90):
        t.update()
    assert {e for e, _ in seen} == {1, 2}
    assert all(eta == (0.05 if e == 1 else 0.025) for e, eta in seen)


# --- the test part ---------------------------------------------------------------------------

@pytest.mark.parametrize("val,test", [(0.0, 0.1), (0.1, 0.1), (0.2, 0.05)])
def test_split_is_train_then_test_then_validation(val, test):
    t = make_trainer(val_fraction=val, test_fraction=test)
    N = len(TEXT)
    n_val, n_test = round(val * N), round(test * N)
    assert len(t.val_data) == n_val and len(t.test_data) == n_test
    np.testing.assert_array_equal(np.concatenate([t.train_data, t.test_data, t.val_data]), t.data)
    assert t.L == len(t.train_data)  # the one stream reads the training part only


def test_test_loss_is_evaluated_once_with_the_best_model(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    calls, real = [], Trainer.test
    monkeypatch.setattr(Trainer, "test", lambda self, params=None: calls.append(self.state.step) or real(self, params))
    kw = dict(m=5, seq_length=6, n_updates=40, sample_every=1000, sample_until=0, checkpoint_every=10, cell="gru",
              val_fraction=0.1, test_fraction=0.1, eval_every=10, optimizer="adam", eta=0.02)
    with quiet():
        run = workflow.train(str(path), str(tmp_path / "r"), **kw)
    assert calls == [40]  # not at the checkpoints, never during training
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    best = ckpt.load(tmp_path / "r" / "best.npz")
    t = make_trainer(**{k: v for k, v in kw.items() if k != "n_updates"})
    expected = evaluate.loss_per_char("gru", best.params, t.test_data)
    assert m["test_loss_per_char"] == pytest.approx(expected, rel=1e-12)
    assert m["test_bits_per_char"] == pytest.approx(expected / math.log(2))
    assert m["test_perplexity"] == pytest.approx(math.exp(expected))
    assert m["best_val_perplexity"] == pytest.approx(math.exp(m["best_val_loss_per_char"]))
    assert m["test_chars"] == len(t.test_data) == 49 and run["test_loss_per_char"] == m["test_loss_per_char"]
    assert best.meta["test_loss_per_char"] == m["test_loss_per_char"]
    assert best.meta["best_val_loss_per_char"] == m["best_val_loss_per_char"]


def test_without_a_test_part_the_test_fields_are_null(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    with quiet():
        workflow.train(str(path), str(tmp_path / "r"), m=4, seq_length=6, n_updates=5, sample_every=1000,
                       sample_until=0)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["test_loss_per_char"] is None and m["test_bits_per_char"] is None and m["test_chars"] == 0


# --- exact resume with every new option -----------------------------------------------------

OPTIONS = [dict(lr_decay=0.7), dict(warmup=15), dict(test_fraction=0.1, val_fraction=0.1, eval_every=9),
           dict(cell="gru", n_layers=2, dropout=0.2, lr_decay=0.8, warmup=5, test_fraction=0.05, val_fraction=0.1,
                eval_every=7, batch_size=2)]


@pytest.mark.parametrize("options", OPTIONS)
def test_resume_is_exact_with_the_new_options(tmp_path, options):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    kw = dict(m=5, seq_length=6, sample_every=13, sample_until=60, sample_length=6, checkpoint_every=1000,
              optimizer="adam", eta=0.01, log_every=4, **options)
    n = 90 if options.get("batch_size", 1) == 1 else 45  # more than one epoch either way
    with quiet():
        workflow.train(str(path), str(tmp_path / "a"), seed=2, n_updates=n, **kw)
        workflow.train(str(path), str(tmp_path / "b"), seed=2, n_updates=31, **kw)
        workflow.train(str(path), str(tmp_path / "b"), seed=2, n_updates=n, init_from=str(tmp_path / "b" / "last.npz"),
                       **kw)
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    assert a.meta["epoch"] >= 2
    for name in ("params", "mem", "mem2", "best"):
        np.testing.assert_array_equal(getattr(a, name).flat, getattr(b, name).flat, err_msg=name)
    assert a.smooth_loss == b.smooth_loss and a.meta["log"] == b.meta["log"] and a.meta["samples"] == b.meta["samples"]
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    for key in ("best_val_loss_per_char", "test_loss_per_char", "val_loss_per_char"):
        assert ma[key] == mb[key], key


def test_resume_on_a_cosine_schedule_is_exact_at_the_trainer_level(tmp_path):
    kw = dict(lr_schedule="cosine", warmup=6, optimizer="adam", eta=0.02, n_updates=50)
    whole = make_trainer(**kw)
    part = make_trainer(**kw)
    with quiet():
        whole.run(50, progress=False)
        part.run(23, progress=False)
    ckpt.save(tmp_path / "last.npz", part.checkpoint("last", {"config": part.cfg.as_dict()}))
    state = TrainState.resume(ckpt.load(tmp_path / "last.npz"), part.cfg, part.chars)
    resumed = Trainer(part.cfg, part.data, part.chars, state)
    with quiet():
        resumed.run(50, progress=False)
    np.testing.assert_array_equal(resumed.state.params.flat, whole.state.params.flat)
    assert resumed.state.smooth_loss == whole.state.smooth_loss


def test_resume_refuses_another_schedule_and_a_cosine_of_another_length():
    saved = TrainConfig(lr_decay=0.9, lr_schedule="cosine", n_updates=100).as_dict()
    assert changed_settings(saved, TrainConfig(lr_decay=0.9, lr_schedule="cosine", n_updates=200)) == {"n_updates": 100}
    assert changed_settings(saved, TrainConfig(lr_decay=0.8, lr_schedule="cosine", n_updates=100)) == {"lr_decay": 0.9}
    const = TrainConfig(warmup=5, n_updates=100).as_dict()
    assert changed_settings(const, TrainConfig(warmup=5, n_updates=300)) == {}  # n_updates may grow
    assert changed_settings(const, TrainConfig(warmup=6, n_updates=100)) == {"warmup": 5}
    assert changed_settings({"m": 100}, TrainConfig()) == {}  # an older checkpoint: new settings at defaults


@pytest.mark.parametrize("kwargs,name", [
    ({"lr_decay": 0}, "lr_decay"), ({"lr_decay": 1.5}, "lr_decay"), ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"warmup": -1}, "warmup"), ({"warmup": 2.5}, "warmup"), ({"test_fraction": -0.1}, "test_fraction"),
    ({"test_fraction": 0.5}, "test_fraction"), ({"test_fraction": 0.3, "val_fraction": 0.3}, "test_fraction")])
def test_bad_schedule_and_test_values_are_refused_by_name(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        TrainConfig(**kwargs)


def test_a_test_part_that_rounds_to_nothing_is_refused():
    with pytest.raises(ValueError, match="test_fraction 0.001 leaves 0"):
        make_trainer(test_fraction=0.001)
