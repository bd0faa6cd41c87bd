"""The seed report's reference figures, checked on the book when it is present.

The book is read from data/goblet_book.txt, else from ../shared/data/goblet_book.txt; without
either these tests are skipped (the rest of the suite runs on texts it makes itself).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.common.paths import ROOT
from helpers.data.text import build_vocab, encode, load_corpus
from helpers.model import gradcheck
from helpers.model.params import init_params
from helpers.runs import steps

from conftest import quiet

CANDIDATES = [ROOT / "data" / "goblet_book.txt", ROOT.parent / "shared" / "data" / "goblet_book.txt"]
BOOK = next((p for p in CANDIDATES if p.is_file()), None)
pytestmark = pytest.mark.skipif(BOOK is None, reason="the book is not available")


@pytest.fixture(scope="module")
def book():
    corpus = load_corpus(str(BOOK))
    chars = build_vocab(corpus.text)
    return corpus, chars, encode(corpus.text, chars)


def test_book_size_and_vocabulary(book):
    corpus, chars, _ = book
    assert len(corpus.text) == 1_107_542 and len(chars) == 80


def test_initial_loss_is_uniform_guessing(book):
    _, chars, data = book
    p = init_params(100, 80, 0.01, np.random.default_rng(0))
    from helpers.model import rnn

    loss = rnn.forward(p, data[:25], data[1:26], np.zeros(100))[0]
    assert loss == pytest.approx(25 * math.log(80), abs=0.05)  # 109.55


def test_gradient_errors_match_table_1(book):
    _, chars, data = book
    p = init_params(100, 80, 0.01, np.random.default_rng(0))
    errors = gradcheck.check(p, data[:25], data[1:26], h=1e-4)
    assert all(e["norm"] < 1e-7 for e in errors.values()), errors  # Table 1: 1e-8 .. 1e-10
    assert errors["c"]["norm"] < errors["W"]["norm"]  # as in Table 1, W is the least and c the most exact


def test_ten_thousand_updates_reach_the_seed_loss(tmp_path):
    """The mean smooth loss of seeds 0, 1 and 2 after 10,000 updates (about 11 s on two cores).

    Training is chaotic: the last bit of one matrix product (BLAS kernel, CPU, engine) sends a run
    down another path, so one seed's 10k figure is a draw, not a constant. Measured with
    ``python -m benchmarks.spread`` (AMD EPYC, numpy 2.4.6, OpenBLAS 0.3.31 SkylakeX kernels):
    over seeds 0-29 the figure ranges 50.62 to 58.67 (mean 55.09, sd 2.24); seed 0 alone gives
    54.81 to 57.17 over BLAS kernels (SkylakeX, Haswell, SandyBridge, Prescott), float32 and the
    numba engine, and 57.00 on a second machine (the seed report: 54.26). The mean of three seeds
    has sd 1.23 and ranges 51.29 to 58.35 over all triples of the 30 seeds; 50.5 .. 59.5 is the
    seeds' mean +- 3.6 sd, with about one loss unit of margin past the extremes, and still fails a
    trainer that stays at 25 ln 80 = 109.55 or never gets below 60.
    """
    losses = []
    for seed in (0, 1, 2):
        run = quiet(
            steps.train,
            str(BOOK),
            str(tmp_path / str(seed)),
            seed=seed,
            n_updates=10_000,
            sample_every=10_000,
            sample_until=10_000,
            checkpoint_every=10_000,
        )
        losses.append(run["final_smooth_loss"])
    assert 50.5 < np.mean(losses) < 59.5, losses  # here 55.80, 53.38, 55.21: mean 54.79
