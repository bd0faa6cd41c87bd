"""Shared fixtures and small helpers for the test suite.

Everything here is deliberately tiny (m <= 10, K <= 12, short sequences) so the whole suite
stays fast; the one m=100 gradient check lives in test_gradcheck.py.

The suite is laid out by unit, as the package is (helpers/__init__.py):

    test_params, test_rnn, test_cells, test_gradcheck      model: parameters, cells against the oracles
    test_optim, test_config, test_trainer                   train: optimizers, schedule, settings, the loop
    test_train_results, test_resume, test_checkpoint        train: result files, exact resume, the file format
    test_data, test_sampling, test_beam                     data; sampling and beam search
    test_fast, test_fast_gated                              the numba engines: the vanilla RNN, the GRU and LSTM
    test_report, test_pdf, test_math, test_live             report: sections, reference points, PDF, math, live model
    test_interactive, test_documents, test_sweep            runs and jobs: widgets, documents, Dask sweeps
    test_notebooks, test_journeys, test_browser, test_lab_journey   notebooks and what users do with them
    test_bad_input, test_kill, test_lock, test_disk_full, test_sweep_faults   faults and bad input
    test_environment, test_book                             make, the venv, numba's cache; the book's figures
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

from helpers.data.text import build_vocab, encode
from helpers.model import oracles
from helpers.model.params import NAMES, ParamSet
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState

# No example database and derandomized examples: every run is the same. Hypothesis's remaining
# cache goes to the temp folder rather than a .hypothesis/ folder in the repository.
settings.register_profile("charrnn-tests", database=None, derandomize=True)
settings.load_profile("charrnn-tests")
try:
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "charrnn-tests-hypothesis")
except ImportError:  # older Hypothesis: it keeps its default folder
    pass


# --- tiny texts ---------------------------------------------------------------------------------
# Each is the text some tests count on (epoch lengths, split sizes); the comment says what.

PANGRAMS = "the quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs!\n" * 12
"""12 x 86 = 1,032 characters: the text of the one-stream training loop's tests."""

ORWELL = (
    "It was a bright cold day in April, and the clocks were striking thirteen. "
    "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, "
    "slipped quickly through the glass doors of Victory Mansions, though not quickly enough "
    "to prevent a swirl of gritty dust from entering along with him.\n"
) * 2
"""2 x 311 = 622 characters: the streams, the validation split and LSTM runs."""

DURSLEY = (
    "Mr and Mrs Dursley, of number four, Privet Drive, were proud to say that they were perfectly "
    "normal, thank you very much.\n"
) * 4
"""4 x 122 = 488 characters: (488 - 1) // 6 = 81 updates an epoch with seq_length 6 (the schedule, the test part)."""

HOGWARTS = (
    "The boy who lived had never been so glad to see the end of a summer; the castle waited "
    "beyond the lake, and the owls flew over the hills at night.\n"
) * 3
"""Stacked layers and dropout."""

CAT_MAT = "the cat sat on the mat; the dog sat on the log.\n" * 4
"""192 characters: 192 / 6 = 31 updates an epoch with seq_length 6 (the widgets, beam search, resume)."""


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


@pytest.fixture
def cat_text(tmp_path):
    """CAT_MAT in tmp_path/tiny.txt."""
    path = tmp_path / "tiny.txt"
    path.write_text(CAT_MAT, encoding="utf-8")
    return path


# --- quiet calls and a Trainer in memory ----------------------------------------------------------


def quiet(fn, *args, **kwargs):
    """Call fn with stdout and stderr silenced (training prints progress and notes)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


TRAINER = dict(
    m=8,
    eta=0.1,
    seq_length=5,
    sig=0.01,
    n_updates=300,
    sample_every=50,
    sample_until=200,
    sample_length=20,
    log_every=1,
    checkpoint_every=100,
)
"""make_trainer's settings: the assignment's, made small (sig and eta as the assignment's)."""

NO_SAMPLES = dict(sample_every=1000, sample_until=0, sample_length=5, checkpoint_every=1000)
"""Settings for a trainer that only samples before its first update and never checkpoints."""


def make_trainer(text: str = PANGRAMS, seed: int = 0, **overrides) -> Trainer:
    """A fresh Trainer on ``text`` with TRAINER's settings and ``overrides`` (any TrainConfig field)."""
    cfg = TrainConfig(**{**TRAINER, **overrides})
    chars = build_vocab(text)
    state = TrainState.fresh(cfg, len(chars), np.random.default_rng(seed))
    return Trainer(cfg, encode(text, chars), chars, state)


def train_settings(**overrides) -> dict:
    """make_trainer's settings, as keyword arguments of steps.train."""
    return TrainConfig(**{**TRAINER, **overrides}).as_dict()


def expected_epoch_starts(N: int, T: int, n: int) -> list[int]:
    """An epoch holds (N - 1) // T updates; the k-th reset happens before update k * per_epoch + 1."""
    per_epoch = (N - 1) // T
    return [k * per_epoch for k in range(n) if k * per_epoch < n]


# --- models and oracles ---------------------------------------------------------------------------


def random_params(
    m: int,
    K: int,
    rng: np.random.Generator,
    sig: float = 0.3,
    dtype=np.float64,
    gates: int = 1,
    layers: int = 1,
) -> ParamSet:
    """Non-trivial parameters: every block (including the biases b, c) drawn from N(0, sig^2)."""
    p = ParamSet(m, K, dtype=dtype, gates=gates, layers=layers)
    p.flat[...] = rng.standard_normal(p.flat.size) * sig
    return p


def random_model(
    cell: str, layers: int = 1, m: int = 5, K: int = 7, seed: int = 0, sig: float = 0.4
) -> ParamSet:
    """A ``cell`` of ``layers`` layers, every entry (biases too) from N(0, sig^2) drawn with ``seed``."""
    from helpers.model import cells

    return random_params(m, K, np.random.default_rng(seed), sig, gates=cells.get(cell).gates, layers=layers)


def random_sequence(K: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random input / target index arrays of length T."""
    return rng.integers(0, K, size=T), rng.integers(0, K, size=T)


def softmax(o: np.ndarray) -> np.ndarray:
    e = np.exp(o - o.max())
    return e / e.sum()


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step_by_hand(p: ParamSet, h, s, x):
    """One LSTM step from the equations (gate order i, f, g, o), written independently of the package."""
    m = p.m
    z = p.W @ h + p.U[:, x] + p.b
    i, f, g, o = sigmoid(z[:m]), sigmoid(z[m : 2 * m]), np.tanh(z[2 * m : 3 * m]), sigmoid(z[3 * m :])
    s = f * s + i * g
    return o * np.tanh(s), s


def gru_step_by_hand(p: ParamSet, h, x):
    """PyTorch's GRU equations with b_hr = b_hz = b_hn = 0 (gate order r, z, n), written independently."""
    m = p.m
    Wr, Wz, Wn = p.W[:m], p.W[m : 2 * m], p.W[2 * m :]
    r = sigmoid(p.U[:m, x] + p.b[:m] + Wr @ h)
    z = sigmoid(p.U[m : 2 * m, x] + p.b[m : 2 * m] + Wz @ h)
    n = np.tanh(p.U[2 * m :, x] + p.b[2 * m :] + r * (Wn @ h))
    return (1 - z) * n + z * h


def oracle(p: ParamSet, x, y, hprev):
    """oracles.loss_and_grads on float64 copies of p's arrays."""
    arrs = [np.array(p[n], dtype=np.float64) for n in NAMES]
    return oracles.loss_and_grads(*arrs, x, y, np.asarray(hprev, dtype=np.float64))


def oracle_stream(cell: str, p: ParamSet, x, y, state):
    """(loss, grads, final state) of one stream of a one-layer rnn or lstm from its per-step oracle."""
    arrs = tuple(np.array(p[name], float) for name in NAMES)
    m = p.m
    if cell == "lstm":
        loss, g, h, s = oracles.lstm_loss_and_grads(*arrs, x, y, state[:m], state[m:])
        return loss, g, np.concatenate([h, s])
    loss, g, h = oracles.loss_and_grads(*arrs, x, y, state)
    return loss, g, h


def assert_close(actual, desired, rtol):
    """Relative agreement, with an absolute floor scaled to the array's magnitude."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.abs(desired).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol, atol=rtol * scale)


# --- statistics -----------------------------------------------------------------------------------


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


TINY = {
    "data_path": "pydoc_data",
    "m": 16,
    "seq_lengths": [4, 7],
    "n_updates": 600,
    "sample_every": 200,
    "sample_until": 400,
    "sample_length": 50,
    "log_every": 10,
    "checkpoint_every": 300,
    "length": 120,
    "seed": 3,
}
"""Tiny settings for every notebook of ``make report``'s pipeline (the Python docs, a few hundred updates)."""


@pytest.fixture(scope="session")
def report_run(tmp_path_factory):
    """One tiny end-to-end run of ``make report``'s pipeline, shared by the tests of the notebooks, the
    report and its math: the executed notebooks, the HTML, and the PDF printed by WeasyPrint."""
    from helpers.jobs import pipeline

    out = tmp_path_factory.mktemp("report-run")
    pipeline.run(
        out,
        {**TINY, "figure_path": str(out / "figure2.png")},
        pdf=True,
        pdf_engine="weasyprint",
        log=lambda *_: None,
    )
    return out
