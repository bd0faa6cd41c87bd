"""TrainConfig: defaults, coercion of strings (papermill) and rejection of bad values, the cells,
optimizers, streams, validation and test parts, layers, dropout and the learning-rate schedule included."""

from __future__ import annotations

import dataclasses
import re

import pytest

from helpers.train.config import TrainConfig, coerce


def test_defaults_are_the_assignments():
    cfg = TrainConfig()
    assert (cfg.m, cfg.eta, cfg.seq_length, cfg.sig) == (100, 0.1, 25, 0.01)
    assert cfg.dtype == "float64"
    assert cfg.as_dict()["m"] == 100 and set(cfg.as_dict()) == {f.name for f in dataclasses.fields(cfg)}


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("m", "100", 100),
        ("m", " 42 ", 42),
        ("n_updates", "300_000", 300_000),
        ("n_updates", "1e3", 1000),
        ("m", 7.0, 7),
        ("seq_length", "25.0", 25),
        ("eta", "0.05", 0.05),
        ("eta", 1, 1.0),
        ("sig", "1e-2", 0.01),
        ("sample_length", "0", 0),
        ("n_updates", 1, 1),
        ("dtype", "float32", "float32"),
    ],
)
def test_coercion(field, value, expected):
    cfg = TrainConfig(**{field: value})
    got = getattr(cfg, field)
    assert got == expected
    assert type(got) is type(expected)


def test_numpy_scalars_are_accepted():
    np = pytest.importorskip("numpy")
    cfg = TrainConfig(m=np.int64(12), eta=np.float32(0.5))
    assert cfg.m == 12 and type(cfg.m) is int
    assert cfg.eta == 0.5 and type(cfg.eta) is float


@pytest.mark.parametrize(
    "kwargs,exc,names",
    [
        ({"m": 0}, ValueError, "m"),
        ({"m": -3}, ValueError, "m"),
        ({"eta": -1}, ValueError, "eta"),
        ({"eta": 0}, ValueError, "eta"),
        ({"sig": "0"}, ValueError, "sig"),
        ({"seq_length": "abc"}, TypeError, "seq_length"),
        ({"m": 2.5}, TypeError, "m"),
        ({"m": "2.5"}, TypeError, "m"),
        ({"m": True}, TypeError, "m"),
        ({"m": None}, TypeError, "m"),
        ({"m": [1]}, TypeError, "m"),
        ({"eta": "nan"}, ValueError, "eta"),
        ({"eta": float("inf")}, ValueError, "eta"),
        ({"n_updates": -1}, ValueError, "n_updates"),
        ({"n_updates": 0}, ValueError, "n_updates must be > 0"),
        ({"sample_every": 0}, ValueError, "sample_every"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": 64}, TypeError, "dtype"),
    ],
)
def test_bad_values_are_rejected_with_the_name(kwargs, exc, names):
    with pytest.raises(exc) as err:
        TrainConfig(**kwargs)
    assert names in str(err.value)


@pytest.mark.parametrize("value", ["inf", "nan", float("inf")])
def test_non_finite_int_parameter_is_rejected_with_the_name(value):
    """An int field given inf/nan must fail like any other bad value (ValueError/TypeError naming m)."""
    with pytest.raises((TypeError, ValueError)) as err:
        TrainConfig(m=value)
    assert re.search(r"\bm\b", str(err.value)), str(err.value)


def test_large_integers_are_kept_exactly():
    """Coercing an int must not round it through float (2**53 + 1 is not a float)."""
    big = 2**53 + 1
    assert coerce("n_updates", big, "int") == big
    assert TrainConfig(n_updates=big).n_updates == big
    assert TrainConfig(n_updates=str(big)).n_updates == big


def test_from_kwargs_rejects_unknown_names():
    assert TrainConfig.from_kwargs(m="8", eta=0.2).m == 8
    with pytest.raises(TypeError) as err:
        TrainConfig.from_kwargs(m=8, hidden=3, lr=0.1)
    msg = str(err.value)
    assert "hidden" in msg and "lr" in msg
    assert "seq_length" in msg  # lists the known parameters


def test_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.m = 5


# --- the settings beyond the assignment -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"cell": "transformer"}, "cell"),
        ({"cell": "LSTM"}, "cell"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"engine": "cuda"}, "engine"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"val_fraction": 0.5}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -2}, "batch_size"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_bad_new_settings_are_rejected_with_the_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)
    with pytest.raises(ValueError, match=name):
        TrainConfig.from_kwargs(**kwargs)


def test_good_new_settings_are_accepted_and_coerced():
    cfg = TrainConfig(cell="lstm", optimizer="adam", engine="numba", val_fraction="0.1", batch_size="4")
    assert (cfg.cell, cfg.optimizer, cfg.engine, cfg.val_fraction, cfg.batch_size) == (
        "lstm",
        "adam",
        "numba",
        0.1,
        4,
    )


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_layers": 0}, "n_layers"),
        ({"n_layers": 1.5}, "n_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout_mask": "time"}, "dropout_mask"),
    ],
)
def test_bad_layers_and_dropout_are_refused_by_name(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"lr_decay": 0}, "lr_decay"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 2.5}, "warmup"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"test_fraction": 0.5}, "test_fraction"),
        ({"test_fraction": 0.3, "val_fraction": 0.3}, "test_fraction"),
    ],
)
def test_bad_schedule_and_test_values_are_refused_by_name(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        TrainConfig(**kwargs)
