"""Checkpoints (helpers.train.checkpoint): round trips of every cell and stack, the file format and its
version, atomic writes of result files (helpers.common.files) and broken-file errors."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.common import files
from helpers.data.text import build_vocab
from helpers.model import cells
from helpers.model.params import NAMES, ParamSet, init_params
from helpers.runs import steps
from helpers.train import checkpoint as ckpt

from conftest import quiet, random_model, random_params

VOCAB = ["\x00", "\n", " ", "a", "z", "\u00e9", "\u4e2d", "\U0001f600"]  # NUL and a non-BMP emoji


def make_checkpoint(dtype=np.float64, with_mem=True, chars=VOCAB, seed=0):
    rng = np.random.default_rng(seed)
    K = len(chars)
    params = random_params(4, K, rng, dtype=dtype)
    mem = None
    if with_mem:
        mem = params.zeros_like()
        mem.flat[...] = np.abs(rng.standard_normal(mem.flat.size))
    return ckpt.Checkpoint(
        params=params,
        chars=list(chars),
        step=1234,
        smooth_loss=42.125,
        hprev=np.tanh(rng.standard_normal(4)).astype(dtype),
        mem=mem,
        meta={"run_id": "abc", "note": "caf\u00e9 \U0001f600", "config": {"m": 4}, "rng": 2**70},
    )


def assert_same(a: ckpt.Checkpoint, b: ckpt.Checkpoint):
    assert b.chars == a.chars
    assert b.params.flat.dtype == a.params.flat.dtype
    np.testing.assert_array_equal(b.params.flat, a.params.flat)
    for name in NAMES:
        np.testing.assert_array_equal(b.params[name], a.params[name])
    if a.mem is None:
        assert b.mem is None
    else:
        np.testing.assert_array_equal(b.mem.flat, a.mem.flat)
    np.testing.assert_array_equal(b.hprev, a.hprev)
    assert b.step == a.step and isinstance(b.step, int)
    assert b.smooth_loss == a.smooth_loss or (math.isnan(a.smooth_loss) and math.isnan(b.smooth_loss))
    assert b.meta == a.meta


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip(tmp_path, dtype):
    ck = make_checkpoint(dtype)
    path = tmp_path / "ck.npz"
    returned = ckpt.save(str(path), ck)
    assert returned == path
    loaded = ckpt.load(str(path))
    assert_same(ck, loaded)
    assert loaded.chars[0] == "\x00" and loaded.chars[-1] == "\U0001f600"
    assert (loaded.params.m, loaded.params.K) == (4, len(VOCAB))


def test_round_trip_weights_only_and_defaults(tmp_path):
    ck = make_checkpoint(with_mem=False)
    ck.hprev = None
    ck.smooth_loss = float("nan")
    ck.meta = {}
    path = tmp_path / "w.npz"
    ckpt.save(path, ck)
    loaded = ckpt.load(path)
    assert loaded.mem is None
    np.testing.assert_array_equal(loaded.hprev, np.zeros(4))
    assert math.isnan(loaded.smooth_loss)
    assert loaded.meta == {}


# any code point but lone surrogates, which no UTF-8 file can hold
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    TEXTS,
    st.integers(1, 9),
    st.integers(0, 10**6),
    st.sampled_from(["float64", "float32"]),
    st.floats(0, 1e3, allow_nan=False),
)
def test_property_round_trip_of_random_texts_and_models(tmp_path, text, m, step, dtype, smooth):
    chars = build_vocab(text)
    rng = np.random.default_rng(step)
    p = init_params(m, len(chars), 0.5, rng, dtype=np.dtype(dtype))
    mem = ParamSet(m, len(chars), dtype=np.dtype(dtype), flat=rng.random(p.flat.size).astype(dtype))
    meta = {"note": text[:20], "rng_state": rng.bit_generator.state}
    ck = ckpt.Checkpoint(
        params=p,
        chars=chars,
        step=step,
        smooth_loss=smooth,
        hprev=rng.standard_normal(m).astype(dtype),
        mem=mem,
        meta=meta,
    )
    path = ckpt.save(tmp_path / "ck.npz", ck)
    back = ckpt.load(path)
    assert back.chars == chars and back.step == step and back.smooth_loss == smooth and back.meta == meta
    assert back.params.flat.dtype == np.dtype(dtype)
    assert np.array_equal(back.params.flat, p.flat) and np.array_equal(back.mem.flat, mem.flat)
    assert np.array_equal(back.hprev, ck.hprev)


def test_checkpoint_of_a_stack_round_trips_with_plain_names(tmp_path):
    p = random_model("gru", 2)
    ck = ckpt.Checkpoint(
        params=p,
        chars=list("abcdefg"),
        mem=p.zeros_like(),
        mem2=p.copy(),
        best=p.copy(),
        hprev=np.zeros((2, 2 * p.m)),
    )
    path = ckpt.save(tmp_path / "c.npz", ck)
    with np.load(path, allow_pickle=False) as z:
        assert {"U2", "W2", "b2", "mU2", "vW2", "bestb2"} <= set(z.files)
    back = ckpt.load(path)
    assert back.params.layers == 2 and back.mem2.layers == 2 and cells.of(back.params) == "gru"
    np.testing.assert_array_equal(back.params.flat, p.flat)
    np.testing.assert_array_equal(back.best.flat, p.flat)


def test_a_one_layer_checkpoint_has_exactly_the_old_arrays(tmp_path):
    p = random_model("rnn", 1)
    path = ckpt.save(tmp_path / "c.npz", ckpt.Checkpoint(params=p, chars=list("abcdefg"), mem=p.zeros_like()))
    with np.load(path, allow_pickle=False) as z:
        arrays = set(z.files)
    assert arrays == {
        *NAMES,
        *("m" + n for n in NAMES),
        "hprev",
        "step",
        "smooth_loss",
        "chars",
        "char_codes",
        "meta",
    }


def test_vocab_with_trailing_nul_characters(tmp_path):
    """numpy string arrays drop trailing NULs; the char codes must keep them exact."""
    chars = ["\x00", "\x01", "b"]
    assert np.array(chars, dtype=str)[0] == ""  # the numpy behaviour that makes char_codes necessary
    ck = make_checkpoint(chars=chars)
    ckpt.save(tmp_path / "n.npz", ck)
    assert ckpt.load(tmp_path / "n.npz").chars == chars


def test_file_is_plain_npz_without_pickles(tmp_path):
    ck = make_checkpoint()
    path = ckpt.save(tmp_path / "ck.npz", ck)
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
        expected = (
            set(NAMES)
            | {"m" + n for n in NAMES}
            | {"hprev", "step", "smooth_loss", "chars", "char_codes", "meta"}
        )
        assert expected <= files, expected - files
        for name in NAMES:
            np.testing.assert_array_equal(z[name], ck.params[name])
            np.testing.assert_array_equal(z["m" + name], ck.mem[name])
        assert z["char_codes"].tolist() == [ord(c) for c in VOCAB]
        assert int(z["step"]) == 1234
        assert float(z["smooth_loss"]) == 42.125
        assert json.loads(str(z["meta"])) == {
            **ck.meta,
            "format": ckpt.FORMAT,
        }  # the format travels in the meta
        assert all(z[k].dtype != object for k in z.files)


def test_checkpoints_carry_their_format_and_an_unknown_one_is_refused_by_name(tmp_path):
    quiet(
        steps.train,
        "pydoc_data",
        str(tmp_path / "run"),
        seed=2,
        n_updates=20,
        m=8,
        seq_length=5,
        sample_every=50,
        checkpoint_every=20,
    )
    with np.load(tmp_path / "run" / "last.npz") as z:
        assert json.loads(str(z["meta"]))["format"] == ckpt.FORMAT == 1
    with np.load(tmp_path / "run" / "last.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = np.array(json.dumps({**json.loads(str(data["meta"])), "format": 2}))
    np.savez(tmp_path / "new.npz", **data)
    with pytest.raises(
        ValueError, match=r"new.npz' is in checkpoint format 2, but this version reads format 1"
    ):
        ckpt.load(tmp_path / "new.npz")


def test_save_creates_parent_folders_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "ck.npz"
    ckpt.save(path, make_checkpoint())
    assert path.is_file()
    assert os.listdir(path.parent) == ["ck.npz"]


def test_atomic_write_keeps_previous_file_when_savez_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    good = make_checkpoint(seed=1)
    ckpt.save(path, good)
    good_bytes = path.read_bytes()
    seen_tmp = []

    def failing_savez(f, **arrays):
        # the temporary file exists beside the target, and we write half a file into it
        name = getattr(f, "name", f)
        seen_tmp.append(str(name))
        assert os.path.exists(name) and os.path.dirname(str(name)) == str(tmp_path)
        f.write(good_bytes[: len(good_bytes) // 2])
        f.flush()
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(ckpt.np, "savez", failing_savez)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save(path, make_checkpoint(seed=2))
    monkeypatch.undo()

    assert seen_tmp, "np.savez was not called"
    assert path.read_bytes() == good_bytes
    assert_same(good, ckpt.load(path))
    assert sorted(os.listdir(tmp_path)) == ["last.npz"], "a temporary file was left behind"


def test_atomic_write_text_interrupted(tmp_path, monkeypatch):
    """Even a KeyboardInterrupt mid-write leaves the old file and no temporary file."""
    path = tmp_path / "run.json"
    files.write_json(path, {"old": True})

    real_write_text = type(path).write_text

    def interrupted(self, *args, **kwargs):
        real_write_text(self, '{"new": tr', encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(type(path), "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_json(path, {"new": True})
    monkeypatch.undo()
    assert files.read_json(path) == {"old": True}
    assert os.listdir(tmp_path) == ["run.json"]


def test_atomic_write_gives_a_file_like_a_plain_write(tmp_path):
    """Result files should get the permissions any ordinary write gets (umask-based), not 0600.

    tempfile.mkstemp creates its file with mode 0600; renaming it over the target makes every
    result file (run.json, samples.json, *.npz) unreadable to other users / containers.
    """
    plain = tmp_path / "plain.json"
    plain.write_text("{}\n", encoding="utf-8")
    atomic = tmp_path / "atomic.json"
    files.write_json(atomic, {})
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_json_round_trip_keeps_characters(tmp_path):
    obj = {"text": "na\u00efve \U0001f600 \x00", "n": [1, 2.5, None]}
    path = tmp_path / "x.json"
    files.write_json(path, obj)
    assert files.read_json(str(path)) == obj
    assert "\U0001f600" in path.read_text(encoding="utf-8")  # kept as is, not \\ud83d escapes


def test_read_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        files.read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        files.read_json(bad)
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5, 0.9, 0.99])
def test_truncated_file_is_a_value_error_naming_the_file(tmp_path, keep):
    path = ckpt.save(tmp_path / "good.npz", make_checkpoint())
    raw = path.read_bytes()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError) as err:
        ckpt.load(str(broken))
    assert str(broken) in str(err.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        ckpt.load(tmp_path / "nothing.npz")
    assert str(tmp_path / "nothing.npz") in str(err.value)


def test_load_rejects_foreign_and_inconsistent_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="lacks") as err:
        ckpt.load(foreign)
    assert str(foreign) in str(err.value)

    ck = make_checkpoint()
    arrays = {n: ck.params[n] for n in NAMES}
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, **{**arrays, "V": np.zeros((2, 2))}, chars=np.array(VOCAB))
    with pytest.raises(ValueError, match="inconsistent"):
        ckpt.load(bad_shape)

    wrong_vocab = tmp_path / "vocab.npz"
    np.savez(wrong_vocab, **arrays, chars=np.array(["a", "b"]), char_codes=np.array([97, 98]))
    with pytest.raises(ValueError, match="2 characters"):
        ckpt.load(wrong_vocab)


def test_pickled_object_arrays_are_not_loaded(tmp_path):
    ck = make_checkpoint()
    path = tmp_path / "pickle.npz"
    arrays = {n: ck.params[n] for n in NAMES}
    np.savez(path, **arrays, chars=np.array(VOCAB), meta=np.array({"evil": 1}, dtype=object))
    with pytest.raises(ValueError) as err:
        ckpt.load(path)
    assert str(path) in str(err.value)
