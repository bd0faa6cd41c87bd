"""Reference points and per-character figures: n-gram entropies of the text by hand, the reference
table of the report (from result files only), and bits and perplexity wherever a held-out loss is shown.
"""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from conftest import quiet
from helpers.common.units import bits, per_char, perplexity
from helpers.data.text import ngram_entropy
from helpers.report import reference, sections
from helpers.runs import steps as workflow

TEXT = "the rain in spain stays mainly in the plain, said the man in the train.\n" * 6


def test_ngram_entropy_by_hand():
    data = np.array([0, 1, 0, 1, 0, 1])
    assert ngram_entropy(data, 3, 1) == pytest.approx(math.log(2))
    assert ngram_entropy(data, 3, 2) == pytest.approx(0.0, abs=1e-15)  # each character fixes the next
    text = "abracadabra, said the cat"
    chars = sorted(set(text))
    enc = np.array([chars.index(c) for c in text])
    counts = Counter(text)
    h1 = -sum(n / len(text) * math.log(n / len(text)) for n in counts.values())
    pairs, firsts = Counter(zip(text, text[1:])), Counter(text[:-1])
    h2 = -sum(n / (len(text) - 1) * math.log(n / firsts[a]) for (a, _), n in pairs.items())
    assert ngram_entropy(enc, len(chars), 1) == pytest.approx(h1, rel=1e-12)
    assert ngram_entropy(enc, len(chars), 2) == pytest.approx(h2, rel=1e-12)
    assert ngram_entropy(enc, len(chars), 2) < ngram_entropy(enc, len(chars), 1) < math.log(len(chars))
    with pytest.raises(ValueError, match="order"):
        ngram_entropy(enc, len(chars), 3)


def test_units():
    assert bits(math.log(2)) == pytest.approx(1.0) and perplexity(math.log(80)) == pytest.approx(80)
    assert per_char(None, "test") == {"test_loss_per_char": None, "test_bits_per_char": None, "test_perplexity": None}


def train(tmp_path, name, text=TEXT, **kw):
    path = tmp_path / ("book.txt" if text == TEXT else "other.txt")
    path.write_text(text, encoding="utf-8")
    base = dict(m=6, seq_length=8, n_updates=30, sample_every=1000, sample_until=0, checkpoint_every=1000,
                val_fraction=0.1, eval_every=10)
    quiet(workflow.train, str(path), str(tmp_path / name), **{**base, **kw})
    return tmp_path / name


def test_metrics_hold_the_reference_points_of_the_training_part(tmp_path):
    out = train(tmp_path, "run", test_fraction=0.1)
    m = json.loads((out / "metrics.json").read_text())
    chars = sorted(set(TEXT))
    n_train = len(TEXT) - round(0.1 * len(TEXT)) * 2
    data = np.array([chars.index(c) for c in TEXT[:n_train]])
    assert m["reference"] == pytest.approx({"uniform": math.log(len(chars)), "unigram": ngram_entropy(data, len(chars), 1),
                                            "bigram": ngram_entropy(data, len(chars), 2), "train_chars": n_train})


def test_reference_table_places_the_run_between_the_points(tmp_path):
    run = train(tmp_path, "run", test_fraction=0.1)
    baseline = train(tmp_path, "base", cell="rnn")
    best = train(tmp_path, "best", cell="gru", n_layers=2, test_fraction=0.1, optimizer="adam", eta=0.01)
    html = reference.section(run, str(baseline), str(best)).data
    m, mb = (json.loads((d / "metrics.json").read_text()) for d in (run, best))
    for name in ("uniform guess", "unigram entropy", "bigram entropy", "the assignment's vanilla RNN: validation",
                 "the best recipe: validation", "the best recipe: test", "this run: validation", "this run: test"):
        assert name in html.replace("&#x27;", "'"), name
    assert f"{mb['test_loss_per_char']:.3f}" in html and f"{perplexity(m['best_val_loss_per_char']):.2f}" in html
    assert f"{m['reference']['bigram']:.3f}" in html and "gru, 2 layer(s)" in html
    assert html == sections.reference_section(run, str(baseline), str(best)).data


def test_reference_table_without_a_validation_split_shows_the_training_loss(tmp_path):
    run = train(tmp_path, "run", val_fraction=0.0)
    html = reference.section(run).data
    assert "this run: smooth training loss" in html and "this run: validation" not in html


def test_reference_words_say_what_was_held_out(tmp_path):
    """The sentence under the heading matches the run: held out or not, with or without other networks."""
    plain = train(tmp_path, "plain", val_fraction=0.0)
    held = train(tmp_path, "held", test_fraction=0.1)
    alone, beside, with_split = (reference.section(plain).data, reference.section(plain, best_dir=str(held)).data,
                                 reference.section(held).data)
    assert reference.NOT_HELD_OUT in alone and reference.HELD_OUT not in alone
    assert reference.NOT_HELD_OUT in beside and f"The other networks' {reference.HELD_OUT}" in beside
    assert reference.NOT_HELD_OUT not in with_split and f"The networks' {reference.HELD_OUT}" in with_split
    assert "<sub><i>t</i>−1</sub>" in alone and "x_t" not in alone  # real subscripts, no raw underscores


def test_the_first_smooth_loss_is_called_equal_to_the_uniform_guess_only_when_it_is(tmp_path):
    run = train(tmp_path, "run", val_fraction=0.0, sample_every=10, sample_until=20)
    assert "starts at" in sections.loss_facts(run).data and "equal to seq_length · ln K" in sections.loss_facts(run).data
    samples = json.loads((run / "samples.json").read_text())
    samples[0]["smooth_loss"] += 0.5
    (run / "samples.json").write_text(json.dumps(samples))
    assert "close to seq_length · ln K" in sections.loss_facts(run).data


def test_reference_table_refuses_a_run_on_another_text(tmp_path):
    run = train(tmp_path, "run")
    other = train(tmp_path, "other", text=TEXT.upper())
    with pytest.raises(ValueError, match="not on this run's text"):
        reference.section(run, str(other))


def test_loss_facts_give_bits_perplexity_and_test(tmp_path):
    run = train(tmp_path, "run", test_fraction=0.1)
    html = sections.loss_facts(run).data
    m = json.loads((run / "metrics.json").read_text())
    assert f"perplexity {perplexity(m['best_val_loss_per_char']):.2f}" in html
    assert f"{m['test_loss_per_char']:.3f} nats" in html and "never used for choosing" in html
