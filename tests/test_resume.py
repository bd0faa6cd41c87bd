"""Exact resume: steps.train(init_from=last.npz) goes on exactly as the uninterrupted run, with every
option (B streams, LSTM and GRU, stacks and dropout, Adam and RMSProp, validation and test parts, the
learning-rate schedule, samples across epochs), after Ctrl-C and with a stale best.npz; and what a
resume refuses (other settings, another text or vocabulary, a best.npz, a checkpoint missing its state).
SIGKILL at random moments: test_kill.py.
"""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from helpers.model import cells, fast
from helpers.runs import steps
from helpers.train import checkpoint as ckpt
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState, changed_settings

from conftest import (
    CAT_MAT,
    DURSLEY,
    HOGWARTS,
    NO_SAMPLES,
    ORWELL,
    PANGRAMS,
    make_trainer,
    quiet,
    train_settings,
)


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def train(path, out, **kw):
    return quiet(steps.train, str(path), str(out), **kw)


# --- the assignment's RNN, one stream --------------------------------------------------------------


def test_resumed_run_equals_uninterrupted_run(tmp_path, text_file):
    """train(init_from=last.npz) goes on exactly as the uninterrupted run (its documented promise)."""
    path = text_file(PANGRAMS)
    common = train_settings(sample_every=60, sample_until=240, checkpoint_every=50)
    steps.train(str(path), str(tmp_path / "full"), seed=3, **{**common, "n_updates": 300})
    steps.train(str(path), str(tmp_path / "first"), seed=3, **{**common, "n_updates": 150})
    steps.train(
        str(path),
        str(tmp_path / "rest"),
        seed=3,
        init_from=str(tmp_path / "first" / "last.npz"),
        **{**common, "n_updates": 300},
    )
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


CAT = dict(
    m=10, seq_length=6, sample_every=40, sample_until=200, sample_length=20, log_every=5, checkpoint_every=50
)
"""On CAT_MAT: 192 characters / 6 = 31 updates an epoch, so resumes cross epochs."""


@pytest.fixture(scope="module")
def cat_module(tmp_path_factory):
    """CAT_MAT in tiny.txt, for the module's shared runs."""
    path = tmp_path_factory.mktemp("cat") / "tiny.txt"
    path.write_text(CAT_MAT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cat_full(cat_module):
    """The uninterrupted run of 160 updates the resumed ones must equal."""
    train(cat_module, cat_module.parent / "full", seed=4, n_updates=160, **CAT)
    return cat_module.parent / "full"


@pytest.mark.parametrize("stop_at", [50, 77, 100])
def test_resume_continues_exactly(tmp_path, cat_text, cat_full, stop_at):
    full, part = cat_full, tmp_path / "part"
    train(cat_text, part, seed=4, n_updates=stop_at, **CAT)
    train(cat_text, part, seed=999, n_updates=160, init_from=str(part / "last.npz"), **CAT)
    a, b = ckpt.load(full / "last.npz"), ckpt.load(part / "last.npz")
    assert np.array_equal(a.params.flat, b.params.flat) and np.array_equal(a.mem.flat, b.mem.flat)
    assert np.array_equal(a.hprev, b.hprev) and a.smooth_loss == b.smooth_loss and a.step == b.step == 160
    for key in ("position", "epoch", "epoch_starts", "log", "samples", "rng_state", "best_step"):
        assert a.meta[key] == b.meta[key], key
    assert a.meta["epoch"] >= 5
    ba, bb = ckpt.load(full / "best.npz"), ckpt.load(part / "best.npz")
    assert np.array_equal(ba.params.flat, bb.params.flat) and ba.step == bb.step
    assert (full / "train_log.csv").read_text() == (part / "train_log.csv").read_text()
    assert (full / "samples.json").read_text() == (part / "samples.json").read_text()


def test_a_resumed_run_records_the_seed_it_was_started_with(tmp_path, cat_text):
    train(cat_text, tmp_path / "r", seed=7, n_updates=50, **CAT)
    train(cat_text, tmp_path / "r", seed=0, n_updates=80, init_from=str(tmp_path / "r" / "last.npz"), **CAT)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["seed"] == 7


def test_a_final_sample_ends_a_short_run_and_resuming_stays_exact(tmp_path, cat_text):
    kw = {**CAT, "sample_every": 40, "sample_until": 200}
    train(cat_text, tmp_path / "full", seed=5, n_updates=100, **kw)
    train(cat_text, tmp_path / "part", seed=5, n_updates=50, **kw)
    part = json.loads((tmp_path / "part" / "samples.json").read_text())
    assert [s["step"] for s in part] == [0, 40, 50] and part[-1]["final"]
    train(cat_text, tmp_path / "part", n_updates=100, init_from=str(tmp_path / "part" / "last.npz"), **kw)
    full = json.loads((tmp_path / "full" / "samples.json").read_text())
    assert [s["step"] for s in full] == [0, 40, 80, 100] and full[-1]["final"]
    assert (tmp_path / "part" / "samples.json").read_text() == (
        tmp_path / "full" / "samples.json"
    ).read_text()
    a, b = ckpt.load(tmp_path / "full" / "last.npz"), ckpt.load(tmp_path / "part" / "last.npz")
    assert np.array_equal(a.params.flat, b.params.flat) and a.meta["rng_state"] == b.meta["rng_state"]


def test_ctrl_c_writes_a_resumable_checkpoint(tmp_path, text_file, monkeypatch):
    path = text_file("abcd efgh, ijkl.\n" * 30, "t.txt")
    kw = dict(
        m=8,
        seq_length=5,
        sample_every=50,
        sample_until=100,
        sample_length=10,
        log_every=5,
        checkpoint_every=20,
    )
    real_update = Trainer.update

    def update_then_ctrl_c(self):
        loss = real_update(self)
        if self.state.step == 37:
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C here
        return loss

    monkeypatch.setattr(Trainer, "update", update_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(path, tmp_path / "a", seed=1, n_updates=100, **kw)
    assert ckpt.load(tmp_path / "a" / "last.npz").step == 37
    monkeypatch.setattr(Trainer, "update", real_update)
    train(path, tmp_path / "a", n_updates=100, init_from=str(tmp_path / "a" / "last.npz"), **kw)
    train(path, tmp_path / "b", seed=1, n_updates=100, **kw)
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    assert np.array_equal(a.params.flat, b.params.flat)


def test_last_npz_alone_resumes_exactly_when_best_npz_is_stale(tmp_path, text_file, monkeypatch):
    """A crash after last.npz and before best.npz cannot split the pair: last.npz carries the best model."""
    path = text_file(PANGRAMS)
    # validation picks the best model, so it lies behind the last step (here 125 of 150)
    common = train_settings(
        sample_every=60, sample_until=240, checkpoint_every=50, eta=1.0, val_fraction=0.2, eval_every=25
    )
    steps.train(str(path), str(tmp_path / "full"), seed=3, **{**common, "n_updates": 300})
    first = tmp_path / "first"
    steps.train(str(path), str(first), seed=3, **{**common, "n_updates": 100})
    stale = (first / "best.npz").read_bytes()
    steps.train(
        str(path), str(first), seed=3, init_from=str(first / "last.npz"), **{**common, "n_updates": 150}
    )
    (first / "best.npz").write_bytes(stale)  # as if the crash came between last.npz and best.npz
    last = ckpt.load(first / "last.npz")
    assert last.best is not None and last.meta["best_step"] < last.step == 150
    assert ckpt.load(first / "best.npz").step < last.meta["best_step"]  # the pair on disk is split
    steps.train(str(path), str(tmp_path / "mid"), seed=3, **{**common, "n_updates": 150})
    steps.train(
        str(path),
        str(tmp_path / "again"),
        seed=3,
        init_from=str(first / "last.npz"),
        **{**common, "n_updates": 150},
    )  # no update: the best model as resumed
    mid, again = ckpt.load(tmp_path / "mid" / "best.npz"), ckpt.load(tmp_path / "again" / "best.npz")
    assert mid.step == again.step
    np.testing.assert_array_equal(mid.params.flat, again.params.flat)
    steps.train(
        str(path),
        str(tmp_path / "rest"),
        seed=3,
        init_from=str(first / "last.npz"),
        **{**common, "n_updates": 300},
    )
    for name in ("best.npz", "last.npz"):
        a, b = ckpt.load(tmp_path / "full" / name), ckpt.load(tmp_path / "rest" / name)
        assert a.step == b.step
        np.testing.assert_array_equal(a.params.flat, b.params.flat)


# --- every option ------------------------------------------------------------------------------------


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
RESUME = dict(
    SMALL,
    cell="lstm",
    batch_size=3,
    optimizer="adam",
    val_fraction=0.2,
    eval_every=10,
    eta=0.02,
    sample_every=15,
    sample_until=90,
)


@pytest.fixture(scope="module")
def lstm_whole(tmp_path_factory):
    """The uninterrupted LSTM run of 70 updates (more than one epoch: L = 498 // 3 = 166 -> 27 per epoch)."""
    path = tmp_path_factory.mktemp("lstm") / "t.txt"
    path.write_text(ORWELL, encoding="utf-8")
    return path.parent / "whole", train(path, path.parent / "whole", seed=4, n_updates=70, **RESUME)


@pytest.mark.parametrize("stop", [30, 33])  # on and off the eval_every grid
def test_resume_is_exact_for_lstm_batches_adam_and_validation(tmp_path, text_file, lstm_whole, stop):
    path = text_file(ORWELL, "t.txt")
    n = 70
    (whole, run_a), part = lstm_whole, tmp_path / "part"
    train(path, part, seed=4, n_updates=stop, **RESUME)
    mid = ckpt.load(part / "last.npz")
    assert mid.step == stop and mid.mem2 is not None
    run_b = train(path, part, seed=4, n_updates=n, init_from=str(part / "last.npz"), **RESUME)

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
    np.testing.assert_array_equal(
        ckpt.load(part / "best.npz").params.flat, ckpt.load(whole / "best.npz").params.flat
    )
    assert run_b["best_step"] == run_a["best_step"]
    ma, mb = read_json(whole / "metrics.json"), read_json(part / "metrics.json")
    for key in ("val_loss_per_char", "best_val_loss_per_char", "chars_seen"):
        assert mb[key] == ma[key], key
    assert mb["chars_seen"] == n * 3 * RESUME["seq_length"]


def test_resume_before_the_first_evaluation_is_exact(tmp_path, text_file):
    """Stopping before eval_every leaves the final model as best.npz, but not in the resumable state."""
    path = text_file(ORWELL, "t.txt")
    cfg = {**SMALL, "val_fraction": 0.2, "eval_every": 30, "eta": 0.3}
    train(path, tmp_path / "whole", seed=2, n_updates=90, **cfg)
    run = train(path, tmp_path / "part", seed=2, n_updates=20, **cfg)
    assert run["best_step"] == 20 and run["best_chosen_by"] == "validation loss"  # the only model evaluated
    train(path, tmp_path / "part", seed=2, n_updates=90, init_from=str(tmp_path / "part" / "last.npz"), **cfg)
    a, b = ckpt.load(tmp_path / "whole" / "best.npz"), ckpt.load(tmp_path / "part" / "best.npz")
    assert a.step == b.step and np.array_equal(a.params.flat, b.params.flat)


OPTIONS = [
    dict(lr_decay=0.7),
    dict(warmup=15),
    dict(test_fraction=0.1, val_fraction=0.1, eval_every=9),
    dict(
        cell="gru",
        n_layers=2,
        dropout=0.2,
        lr_decay=0.8,
        warmup=5,
        test_fraction=0.05,
        val_fraction=0.1,
        eval_every=7,
        batch_size=2,
    ),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_resume_is_exact_with_the_schedule_and_the_test_part(tmp_path, text_file, options):
    path = text_file(DURSLEY, "t.txt")
    kw = dict(
        m=5,
        seq_length=6,
        sample_every=13,
        sample_until=60,
        sample_length=6,
        checkpoint_every=1000,
        optimizer="adam",
        eta=0.01,
        log_every=4,
        **options,
    )
    n = 90 if options.get("batch_size", 1) == 1 else 45  # more than one epoch either way
    train(path, tmp_path / "a", seed=2, n_updates=n, **kw)
    train(path, tmp_path / "b", seed=2, n_updates=31, **kw)
    train(path, tmp_path / "b", seed=2, n_updates=n, init_from=str(tmp_path / "b" / "last.npz"), **kw)
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    assert a.meta["epoch"] >= 2
    for name in ("params", "mem", "mem2", "best"):
        np.testing.assert_array_equal(getattr(a, name).flat, getattr(b, name).flat, err_msg=name)
    assert (
        a.smooth_loss == b.smooth_loss
        and a.meta["log"] == b.meta["log"]
        and a.meta["samples"] == b.meta["samples"]
    )
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    for key in ("best_val_loss_per_char", "test_loss_per_char", "val_loss_per_char"):
        assert ma[key] == mb[key], key


def test_resume_on_a_cosine_schedule_is_exact_at_the_trainer_level(tmp_path):
    kw = dict(
        m=5,
        eta=0.02,
        seq_length=6,
        sig=0.1,
        **NO_SAMPLES,
        lr_schedule="cosine",
        warmup=6,
        optimizer="adam",
        n_updates=50,
    )
    whole = make_trainer(DURSLEY, **kw)
    part = make_trainer(DURSLEY, **kw)
    quiet(whole.run, 50, progress=False)
    quiet(part.run, 23, progress=False)
    ckpt.save(tmp_path / "last.npz", part.checkpoint("last", {"config": part.cfg.as_dict()}))
    state = TrainState.resume(ckpt.load(tmp_path / "last.npz"), part.cfg, part.chars)
    resumed = Trainer(part.cfg, part.data, part.chars, state)
    quiet(resumed.run, 50, progress=False)
    np.testing.assert_array_equal(resumed.state.params.flat, whole.state.params.flat)
    assert resumed.state.smooth_loss == whole.state.smooth_loss


NUMBA = pytest.mark.skipif(not fast.AVAILABLE, reason=fast.REASON or "numba path unavailable")


@pytest.mark.parametrize(
    "cell,engine,n_layers",
    [("rnn", "numpy", 2), ("lstm", "numpy", 2), ("gru", "numpy", 2)]
    + [pytest.param(cell, "numba", 2, marks=NUMBA) for cell in ("lstm", "gru")]
    + [pytest.param("lstm", "numba", 1, marks=NUMBA)],  # on two cores: the crew of fast_crew
)
def test_resume_is_exact_with_layers_and_dropout(tmp_path, text_file, cell, engine, n_layers):
    path = text_file(HOGWARTS, "t.txt")
    kw = dict(
        m=6,
        eta=0.01,
        seq_length=5,
        sig=0.1,
        sample_every=12,
        sample_until=40,
        sample_length=8,
        log_every=3,
        checkpoint_every=1000,
        cell=cell,
        n_layers=n_layers,
        dropout=0.25,
        batch_size=2,
        optimizer="adam",
        val_fraction=0.1,
        eval_every=7,
        engine=engine,
    )
    assert train(path, tmp_path / "a", seed=3, n_updates=40, **kw)["engine"] == engine
    train(path, tmp_path / "b", seed=3, n_updates=17, **kw)
    train(path, tmp_path / "b", seed=3, n_updates=40, init_from=str(tmp_path / "b" / "last.npz"), **kw)
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    for name in ("params", "mem", "mem2", "best"):
        np.testing.assert_array_equal(getattr(a, name).flat, getattr(b, name).flat, err_msg=name)
    np.testing.assert_array_equal(a.hprev, b.hprev)
    assert a.hprev.shape == (2, n_layers * cells.STATE_SIZES[cell] * 6)
    assert a.smooth_loss == b.smooth_loss and a.meta["rng_state"] == b.meta["rng_state"]
    assert a.meta["samples"] == b.meta["samples"]


# --- what a resume refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,other", [("cell", "rnn"), ("batch_size", 2), ("optimizer", "rmsprop"), ("optimizer", "adagrad")]
)
def test_resume_with_another_setting_is_refused(tmp_path, text_file, name, other):
    path = text_file(ORWELL, "t.txt")
    out = tmp_path / "run"
    cfg = dict(SMALL, cell="lstm", batch_size=3, optimizer="adam")
    train(path, out, seed=0, n_updates=10, **cfg)
    with pytest.raises(ValueError, match=name):
        train(path, out, seed=0, n_updates=20, init_from=str(out / "last.npz"), **{**cfg, name: other})


@pytest.mark.parametrize(
    "name,value,other",
    [
        ("seq_length", 5, 7),
        ("eta", 0.05, 0.1),
        ("val_fraction", 0.2, 0.1),
        ("dtype", "float32", "float64"),
        ("eval_every", 10, 20),
    ],
)
def test_resume_refuses_other_settings_and_names_the_one_to_use(tmp_path, text_file, name, value, other):
    path = text_file(ORWELL, "t.txt")
    base = {**SMALL, "val_fraction": 0.2, "eval_every": 10, name: value}
    train(path, tmp_path / "a", seed=1, n_updates=20, **base)
    with pytest.raises(ValueError, match=f"other settings .* resume with {name}={value!r}"):
        train(
            path,
            tmp_path / "a",
            n_updates=40,
            init_from=str(tmp_path / "a" / "last.npz"),
            **{**base, name: other},
        )


def test_resume_with_other_layers_or_dropout_is_refused(tmp_path, text_file):
    path = text_file(HOGWARTS, "t.txt")
    kw = dict(m=6, seq_length=5, sample_every=1000, sample_until=0, checkpoint_every=1000, cell="lstm")
    train(path, tmp_path / "r", n_updates=3, n_layers=2, dropout=0.1, **kw)
    for other in ({"n_layers": 1, "dropout": 0.1}, {"n_layers": 2, "dropout": 0.0}):
        name = "n_layers=2" if other["n_layers"] == 1 else "dropout=0.1"
        with pytest.raises(ValueError, match=name):
            train(
                path, tmp_path / "r", n_updates=6, init_from=str(tmp_path / "r" / "last.npz"), **other, **kw
            )


def test_resume_refuses_another_schedule_and_a_cosine_of_another_length():
    saved = TrainConfig(lr_decay=0.9, lr_schedule="cosine", n_updates=100).as_dict()
    assert changed_settings(saved, TrainConfig(lr_decay=0.9, lr_schedule="cosine", n_updates=200)) == {
        "n_updates": 100
    }
    assert changed_settings(saved, TrainConfig(lr_decay=0.8, lr_schedule="cosine", n_updates=100)) == {
        "lr_decay": 0.9
    }
    const = TrainConfig(warmup=5, n_updates=100).as_dict()
    assert changed_settings(const, TrainConfig(warmup=5, n_updates=300)) == {}  # n_updates may grow
    assert changed_settings(const, TrainConfig(warmup=6, n_updates=100)) == {"warmup": 5}
    assert changed_settings({"m": 100}, TrainConfig()) == {}  # an older checkpoint: new settings at defaults
    locked = TrainConfig(dropout=0.1, dropout_mask="locked")
    assert changed_settings(TrainConfig(dropout=0.1).as_dict(), locked) == {"dropout_mask": "step"}


def test_resume_refuses_another_text_of_the_same_vocabulary(tmp_path):
    path, longer = tmp_path / "t.txt", tmp_path / "longer.txt"
    path.write_text(ORWELL, encoding="utf-8")
    longer.write_text(ORWELL + ORWELL[:50], encoding="utf-8")
    train(path, tmp_path / "a", n_updates=20, **SMALL)
    with pytest.raises(ValueError, match=rf"trained on 't.txt' \({len(ORWELL):,} characters\).*longer.txt"):
        train(longer, tmp_path / "a", n_updates=40, init_from=str(tmp_path / "a" / "last.npz"), **SMALL)


@pytest.fixture(scope="module")
def cat_run(cat_module):
    """A run of 120 updates to resume from (read only)."""
    train(cat_module, cat_module.parent / "run", seed=2, n_updates=120, **CAT)
    return cat_module.parent / "run"


def test_resume_refuses_another_vocabulary(tmp_path, cat_run):
    other = tmp_path / "other.txt"
    other.write_text("completely different letters: XYZ 0123456789 " * 5, encoding="utf-8")
    with pytest.raises(ValueError, match="vocabulary .* does not match"):
        train(other, tmp_path / "x", n_updates=200, init_from=str(cat_run / "last.npz"), **CAT)


def test_resume_refuses_a_best_checkpoint(tmp_path, cat_text, cat_run):
    with pytest.raises(ValueError, match="resume from last.npz"):
        train(cat_text, tmp_path / "x", n_updates=200, init_from=str(cat_run / "best.npz"), **CAT)


def test_a_last_checkpoint_without_its_best_model_or_with_another_state_shape_is_refused(tmp_path):
    kw = dict(m=8, seq_length=5, sample_every=50, checkpoint_every=20)
    train("pydoc_data", tmp_path / "run", seed=2, n_updates=20, **kw)
    last = ckpt.load(tmp_path / "run" / "last.npz")
    for broken in ({"best": None}, {"hprev": last.hprev[0]}):
        ckpt.save(tmp_path / "b.npz", ckpt.Checkpoint(**{**last.__dict__, **broken}))
        with pytest.raises(ValueError, match="no optimizer or random state|recurrent state has shape"):
            train(
                "pydoc_data", tmp_path / "run2", seed=2, n_updates=40, init_from=str(tmp_path / "b.npz"), **kw
            )
