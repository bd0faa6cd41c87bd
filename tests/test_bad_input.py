"""Everything a user can hand the project gets an early error naming the problem and the fix,
and no fault loses work. (Ctrl-C and exact resume: test_resume.py.)"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from helpers.common import files
from helpers.data import text as data
from helpers.report import sections as report
from helpers.runs import live, steps
from helpers.train import checkpoint
from helpers.train.config import TrainConfig

from conftest import quiet

KW = dict(
    m=8, seq_length=5, sample_every=50, sample_until=100, sample_length=10, log_every=5, checkpoint_every=20
)


LETTERS = "abcd efgh, ijkl.\n" * 30


@pytest.fixture(scope="module")
def letters(tmp_path_factory):
    """LETTERS in t.txt, read only by the tests."""
    path = tmp_path_factory.mktemp("bad-input") / "t.txt"
    path.write_text(LETTERS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(letters):
    """One training of 60 updates on letters, for the module."""
    quiet(steps.train, str(letters), str(letters.parent / "run"), n_updates=60, **KW)
    return letters.parent / "run"


@pytest.fixture
def run(tmp_path, trained):
    """A copy of that training's folder in tmp_path/run, the test's to change."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# --- data_path -------------------------------------------------------------------------------


def test_text_shorter_than_a_sequence(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abcde", encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"5 characters: too few for 1 stream\(s\) of at least seq_length \+ 1 = 6.*smaller seq_length",
    ):
        quiet(steps.train, str(short), str(tmp_path / "o"), n_updates=3, **KW)
    with pytest.raises(ValueError, match="fewer than the longest seq_length"):
        steps.gradient_test(str(short), str(tmp_path / "o"), [10], m=4)


def test_huge_file_is_refused_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    big.write_text("x" * 1000, encoding="utf-8")
    monkeypatch.setattr(data, "available_memory", lambda: 10_000)
    with pytest.raises(
        MemoryError, match=r"1,000 bytes of text; .* needs about 16.6 KiB of memory but 9.8 KiB is available"
    ):
        data.load_corpus(str(big))


def test_non_bmp_text_trains_and_samples(tmp_path):
    path = tmp_path / "emoji.txt"
    path.write_text("I 🐍 code 😀 and 𝄞 music. " * 20, encoding="utf-8")
    quiet(steps.train, str(path), str(tmp_path / "o"), n_updates=30, **KW)
    ck = checkpoint.load(tmp_path / "o" / "last.npz")
    assert {"🐍", "😀", "𝄞"} <= set(ck.chars)
    text = steps.synthesize(str(tmp_path / "o" / "last.npz"), 50, prime="🐍")["text"]
    assert set(text) <= set(ck.chars)


def test_a_prime_with_unknown_characters_leaves_them_out_and_says_so(run):
    known = steps.synthesize(str(run / "last.npz"), 30, prime="abc")
    mixed = steps.synthesize(str(run / "last.npz"), 30, prime="aQb🐍c")
    assert mixed["text"] == known["text"] and mixed["prime"] == "abc" and known["note"] == ""
    assert "left out of the prime: 'Q', '🐍'" in mixed["note"]
    alien = steps.synthesize(str(run / "last.npz"), 30, prime="QQ")  # nothing left: the default prime
    assert alien["prime"] == "\n" and "instead" in alien["note"]
    assert alien["text"] == steps.synthesize(str(run / "last.npz"), 30)["text"]


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("m", 0, "m must be > 0"),
        ("eta", -0.1, "eta must be > 0"),
        ("seq_length", 0, "seq_length must be > 0"),
        ("sample_every", 0, "sample_every must be > 0"),
        ("n_updates", 0, "n_updates must be > 0"),
        ("m", "abc", "m must be a number, got the text 'abc'"),
        ("m", 2.5, "m must be a whole number"),
        ("eta", "nan", "eta must be a finite number"),
        ("dtype", "float16", "dtype must be one of float64, float32"),
        ("m", True, "must be a number, got the boolean"),
    ],
)
def test_bad_training_parameters(name, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TrainConfig.from_kwargs(**{name: value})


def test_strings_from_papermill_r_are_coerced():
    cfg = TrainConfig.from_kwargs(m="50", eta="0.05", n_updates="1e5", dtype="float32")
    assert (cfg.m, cfg.eta, cfg.n_updates, cfg.dtype) == (50, 0.05, 100000, "float32")


def test_unknown_parameter_names_are_listed(letters, tmp_path):
    with pytest.raises(
        TypeError, match="unknown training parameter.*learning_rate.*the parameters are .*eta"
    ):
        steps.train(str(letters), str(tmp_path), learning_rate=0.1)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"temperature": -1}, "temperature must be > 0"),
        ({"length": -1}, "length must be a whole number >= 0"),
        ({"prime": 5}, "prime must be a text"),
    ],
)
def test_bad_sampling_options(run, kwargs, message):
    with pytest.raises(ValueError, match=message):
        steps.synthesize(str(run / "last.npz"), **{"length": 10, **kwargs})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"seq_lengths": []}, "non-empty list"),
        ({"seq_lengths": [0]}, "seq_lengths must be > 0"),
        ({"h": 0}, "h must be > 0"),
        ({"m": -3}, "m must be > 0"),
    ],
)
def test_bad_gradient_test_parameters(letters, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        steps.gradient_test(str(letters), str(tmp_path), **{"seq_lengths": [3], **kwargs})


# --- checkpoints ---------------------------------------------------------------------------


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; train first"):
        steps.synthesize(str(tmp_path / "nope.npz"))


def test_truncated_checkpoint(run, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes((run / "last.npz").read_bytes()[:3000])
    with pytest.raises(ValueError, match="unreadable or truncated"):
        checkpoint.load(broken)


def test_corrupted_checkpoint(run, tmp_path):
    blob = bytearray((run / "last.npz").read_bytes())
    blob[200:260] = b"\xff" * 60
    broken = tmp_path / "corrupt.npz"
    broken.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt.npz"):
        checkpoint.load(broken)


def test_checkpoint_with_wrong_shapes(run, tmp_path):
    with np.load(run / "last.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    K = len(arrays["chars"])
    arrays["V"] = arrays["V"][:, :-1]
    bad = tmp_path / "shapes.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=rf"parameter V has shape \({K}, 7\), expected \({K}, 8\)"):
        checkpoint.load(bad)


def test_checkpoint_with_pickled_object_is_refused(run, tmp_path):
    with np.load(run / "last.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array([{"evil": 1}], dtype=object)
    bad = tmp_path / "pickled.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="pickled.npz"):
        checkpoint.load(bad)


# --- training faults -----------------------------------------------------------------------


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(run, letters, monkeypatch):
    good = (run / "last.npz").read_bytes()
    from helpers.model import rnn

    real = rnn.forward  # the vanilla RNN's one-stream forward pass, which training calls
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, ws = real(*args, **kwargs)
        return (float("nan"), ws) if calls["n"] > 30 else (loss, ws)

    monkeypatch.setattr(rnn, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"non-finite loss.*last checkpoint was kept.*Lower eta"):
        quiet(steps.train, str(letters), str(run), n_updates=200, init_from=str(run / "last.npz"), **KW)
    last = checkpoint.load(run / "last.npz")
    assert last.step == 80 and np.isfinite(last.params.flat).all()  # checkpoint at 80 < first NaN at 91
    assert (run / "last.npz").read_bytes() != good


def test_a_crash_while_writing_keeps_the_old_file(run, monkeypatch):
    before = (run / "run.json").read_bytes()

    def crash(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", crash)
    with pytest.raises(OSError, match="disk full"):
        files.write_json(run / "run.json", {"x": 1})
    assert (run / "run.json").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


# --- output --------------------------------------------------------------------------------


def test_report_refuses_results_of_two_runs(run, letters, tmp_path):
    quiet(steps.gradient_test, str(letters), str(run), [3], m=4)
    quiet(steps.synthesize, str(run / "best.npz"), 20, out_path=str(run / "best_passage.json"))
    quiet(live.write, str(run / "best.npz"), str(run / "live_model.json"))
    report.load_results(run)  # one run: fine
    quiet(steps.train, str(letters), str(run), n_updates=40, **KW)  # a second run into the same folder
    with pytest.raises(
        ValueError,
        match="best_passage.json comes from run .*; re-run notebooks/04_best_model.ipynb on "
        ".*best.npz, then this one",
    ):
        report.load_results(run)
    (run / "best_passage.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no best_passage.json; re-run notebooks/04_best_model"):
        report.load_results(run)


def test_report_refuses_a_gradient_test_on_another_text(run, tmp_path, letters):
    other = tmp_path / "other.txt"
    other.write_text("zyxw vuts " * 10, encoding="utf-8")
    quiet(steps.gradient_test, str(other), str(run), [3], m=4)
    quiet(steps.synthesize, str(run / "best.npz"), 20, out_path=str(run / "best_passage.json"))
    quiet(live.write, str(run / "best.npz"), str(run / "live_model.json"))
    with pytest.raises(
        ValueError, match="gradcheck.json .* another text .*; re-run notebooks/01_gradient_test.ipynb"
    ):
        report.load_results(run)
    quiet(steps.train, str(other), str(run), n_updates=40, **KW)  # 02 on the other text: 04 is stale now
    quiet(steps.gradient_test, str(letters), str(run), [3], m=4)  # and 01 on the first text
    with pytest.raises(
        ValueError, match="re-run notebooks/01_gradient_test.ipynb .*, then notebooks/04_best_model"
    ):
        report.load_results(run)


def test_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="other.npz"):
        checkpoint.load(path)
