"""Shared fixtures and small helpers for the test suite.

Everything here is deliberately tiny (m <= 10, K <= 12, short sequences) so the whole suite
stays fast; the one m=100 gradient check lives in test_gradcheck.py.
"""
from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from helpers.model import oracles as reference
from helpers.model.params import NAMES, ParamSet

# No example database and derandomized examples: every run is the same. Hypothesis's remaining
# cache goes to the temp folder rather than a .hypothesis/ folder in the repository.
settings.register_profile("charrnn-tests", database=None, derandomize=True)
settings.load_profile("charrnn-tests")
try:
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "charrnn-tests-hypothesis")
except ImportError:  # older Hypothesis: it keeps its default folder
    pass


def random_params(m: int, K: int, rng: np.random.Generator, sig: float = 0.3, dtype=np.float64) -> ParamSet:
    """Non-trivial parameters: every block (including the biases b, c) drawn from N(0, sig^2)."""
    p = ParamSet(m, K, dtype=dtype)
    p.flat[...] = rng.standard_normal(p.flat.size) * sig
    return p


def random_sequence(K: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random input / target index arrays of length T."""
    return rng.integers(0, K, size=T), rng.integers(0, K, size=T)


def softmax(o: np.ndarray) -> np.ndarray:
    e = np.exp(o - o.max())
    return e / e.sum()


def chi2_upper(dof: int, z: float = 4.0) -> float:
    """Upper quantile of the chi-square distribution (Wilson-Hilferty), z standard deviations out.

    z = 4 corresponds to a one-sided tail probability of about 3e-5, so a correct sampler
    essentially never fails, while a wrong distribution with many draws fails by a wide margin.
    """
    k = float(dof)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3


def chi2_stat(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of ``counts`` against ``probs``, pooling cells with small expectation."""
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    obs = list(counts[big]) + ([counts[~big].sum()] if (~big).any() else [])
    exp = list(expected[big]) + ([expected[~big].sum()] if (~big).any() else [])
    obs, exp = np.asarray(obs, float), np.asarray(exp, float)
    keep = exp > 0
    # a pooled cell with zero expectation but nonzero observations is an outright failure
    if (obs[~keep] > 0).any():
        return math.inf, max(len(obs) - 1, 1)
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    return stat, max(int(keep.sum()) - 1, 1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def text_file(tmp_path):
    """Write ``text`` (str, UTF-8) or ``data`` (bytes) to an absolute path under tmp_path."""

    def write(content, name: str = "corpus.txt"):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
        assert path.is_absolute()
        return path

    return write


__all__ = ["NAMES", "random_params", "random_sequence", "softmax", "chi2_upper", "chi2_stat"]


def oracle(p: ParamSet, x, y, hprev):
    """reference.loss_and_grads on float64 copies of p's arrays."""
    arrs = [np.array(p[n], dtype=np.float64) for n in NAMES]
    return reference.loss_and_grads(*arrs, x, y, np.asarray(hprev, dtype=np.float64))


def assert_close(actual, desired, rtol):
    """Relative agreement, with an absolute floor scaled to the array's magnitude."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.abs(desired).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol, atol=rtol * scale)


def quiet(fn, *args, **kwargs):
    """Call fn with stdout and stderr silenced (training prints progress and notes)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)
