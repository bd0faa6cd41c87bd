"""The report's sections (helpers.report), built from result files only: the reference points and the
per-character figures (bits and perplexity wherever a held-out loss is shown), the loss facts, the
comparison's and the documents' sections from their JSON files. The report of a whole run (HTML and
PDF from papermill): test_notebooks.py; the PDF engines: test_pdf.py; the sweep's section: test_sweep.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers.common import files
from helpers.common.units import bits, per_char, perplexity
from helpers.data.collection import END_CHAR
from helpers.data.text import ngram_entropy
from helpers.report import compare_section, documents_section, reference, sections
from helpers.runs import steps

from conftest import quiet

TEXT = "the rain in spain stays mainly in the plain, said the man in the train.\n" * 6


def test_units():
    assert bits(math.log(2)) == pytest.approx(1.0) and perplexity(math.log(80)) == pytest.approx(80)
    assert per_char(None, "test") == {
        "test_loss_per_char": None,
        "test_bits_per_char": None,
        "test_perplexity": None,
    }


def train(tmp_path, name, text=TEXT, **kw):
    path = tmp_path / ("book.txt" if text == TEXT else "other.txt")
    path.write_text(text, encoding="utf-8")
    base = dict(
        m=6,
        seq_length=8,
        n_updates=30,
        sample_every=1000,
        sample_until=0,
        checkpoint_every=1000,
        val_fraction=0.1,
        eval_every=10,
    )
    quiet(steps.train, str(path), str(tmp_path / name), **{**base, **kw})
    return tmp_path / name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """train(), once for each text and settings in the module (the tests that use it only read the runs)."""
    folder, runs = tmp_path_factory.mktemp("reference"), {}

    def get(text=TEXT, **kw):
        key = (text, tuple(sorted(kw.items())))
        if key not in runs:
            runs[key] = train(folder, f"run{len(runs)}", text, **kw)
        return runs[key]

    return get


def test_metrics_hold_the_reference_points_of_the_training_part(trained):
    out = trained(test_fraction=0.1)
    m = json.loads((out / "metrics.json").read_text())
    chars = sorted(set(TEXT))
    n_train = len(TEXT) - round(0.1 * len(TEXT)) * 2
    data = np.array([chars.index(c) for c in TEXT[:n_train]])
    assert m["reference"] == pytest.approx(
        {
            "uniform": math.log(len(chars)),
            "unigram": ngram_entropy(data, len(chars), 1),
            "bigram": ngram_entropy(data, len(chars), 2),
            "train_chars": n_train,
        }
    )


def test_reference_table_places_the_run_between_the_points(trained):
    run = trained(test_fraction=0.1)
    baseline = trained(cell="rnn")
    best = trained(cell="gru", n_layers=2, test_fraction=0.1, optimizer="adam", eta=0.01)
    html = reference.section(run, str(baseline), str(best)).data
    m, mb = (json.loads((d / "metrics.json").read_text()) for d in (run, best))
    for name in (
        "uniform guess",
        "unigram entropy",
        "bigram entropy",
        "the assignment's vanilla RNN: validation",
        "the best recipe: validation",
        "the best recipe: test",
        "this run: validation",
        "this run: test",
    ):
        assert name in html.replace("&#x27;", "'"), name
    assert (
        f"{mb['test_loss_per_char']:.3f}" in html and f"{perplexity(m['best_val_loss_per_char']):.2f}" in html
    )
    assert f"{m['reference']['bigram']:.3f}" in html and "gru, 2 layers of m" in html
    assert html == sections.reference_section(run, str(baseline), str(best)).data


def test_reference_table_without_a_validation_split_shows_the_training_loss(trained):
    run = trained(val_fraction=0.0)
    html = reference.section(run).data
    assert "this run: smooth training loss" in html and "this run: validation" not in html


def test_reference_words_say_what_was_held_out(trained):
    """The sentence under the heading matches the run: held out or not, with or without other networks."""
    plain = trained(val_fraction=0.0)
    held = trained(test_fraction=0.1)
    alone, beside, with_split = (
        reference.section(plain).data,
        reference.section(plain, best_dir=str(held)).data,
        reference.section(held).data,
    )
    assert reference.NOT_HELD_OUT in alone and reference.HELD_OUT not in alone
    assert reference.NOT_HELD_OUT in beside and f"The other networks' {reference.HELD_OUT}" in beside
    assert reference.NOT_HELD_OUT not in with_split and f"The networks' {reference.HELD_OUT}" in with_split
    assert "<sub><i>t</i>−1</sub>" in alone and "x_t" not in alone  # real subscripts, no raw underscores


def test_the_first_smooth_loss_is_called_equal_to_the_uniform_guess_only_when_it_is(tmp_path):
    run = train(tmp_path, "run", val_fraction=0.0, sample_every=10, sample_until=20)
    assert (
        "starts at" in sections.loss_facts(run).data
        and "equal to seq_length · ln K" in sections.loss_facts(run).data
    )
    samples = json.loads((run / "samples.json").read_text())
    samples[0]["smooth_loss"] += 0.5
    (run / "samples.json").write_text(json.dumps(samples))
    assert "close to seq_length · ln K" in sections.loss_facts(run).data


def test_pytorchs_figure_is_shown_for_runs_on_the_book_only(trained, monkeypatch):
    run = trained(val_fraction=0.0)
    corpus = json.loads((run / "run.json").read_text())["corpus"]
    assert reference.OUTSIDE["name"] not in reference.section(run).data
    monkeypatch.setitem(reference.OUTSIDE, "corpus", {k: corpus[k] for k in ("name", "n_chars", "K")})
    html = reference.section(run).data
    assert reference.OUTSIDE["name"] in html and "1.077" in html and "December 2026" in html
    assert f"The other networks' {reference.HELD_OUT}" in html  # this run held nothing out; PyTorch did


def test_reference_table_refuses_a_run_on_another_text(trained):
    run = trained()
    other = trained(text=TEXT.upper())
    with pytest.raises(ValueError, match="not on this run's text"):
        reference.section(run, str(other))


def test_loss_facts_give_bits_perplexity_and_test(trained):
    run = trained(test_fraction=0.1)
    html = sections.loss_facts(run).data
    m = json.loads((run / "metrics.json").read_text())
    assert f"perplexity {perplexity(m['best_val_loss_per_char']):.2f}" in html
    assert f"{m['test_loss_per_char']:.3f} nats" in html and "never used for choosing" in html


# --- the comparison's and the documents' sections ----------------------------------------------


RUN = {
    "name": "rnn-m16",
    "status": "done",
    "chars_seen": 5000,
    "seconds": 2.0,
    "best_val_loss_per_char": 2.5,
    "best_val_bits_per_char": 3.6,
    "chars_per_second": 2500.0,
    "final_val_loss_per_char": 2.6,
    "history": [
        {"step": 10, "chars_seen": 2500, "seconds": 1.0, "val_loss_per_char": 2.8},
        {"step": 20, "chars_seen": 5000, "seconds": 2.0, "val_loss_per_char": 2.5},
    ],
    "sample": "a sample <of> text",
}


def test_compare_section_renders_the_table_figure_and_samples(tmp_path):
    failed = {"name": "lstm<x>", "status": "failed", "error": "ValueError: m must be > 0"}
    (tmp_path / "compare.json").write_text(
        json.dumps(
            {
                "chars_budget": 5000,
                "seq_length": 25,
                "val_fraction": 0.05,
                "data_path": "auto",
                "runs": [RUN, failed],
            }
        )
    )
    body = compare_section.section(tmp_path).data
    assert "<table" in body and "2.500" in body and "3.600" in body and "5,000" in body
    assert "failed: ValueError: m must be &gt; 0" in body and "lstm&lt;x&gt;" in body
    assert "a sample &lt;of&gt; text" in body and "data:image/png;base64," in body


def test_documents_section_reads_only_its_files_and_picks_spread_stages(tmp_path):
    run_file = {
        "end_char": END_CHAR,
        "steps_done": 900,
        "epoch_starts": [0, 400],
        "seconds": 3.0,
        "final_smooth_loss": 12.5,
        "best_smooth_loss": 11.25,
        "best_step": 850,
        "corpus": {
            "name": "mine.csv",
            "source": "/x/mine.csv",
            "n_documents": 12,
            "n_chars": 345,
            "mean_length": 28.75,
            "max_length": 70,
            "K": 40,
        },
        "config": {"m": 16, "eta": 0.05, "sig": 0.01, "seq_length": 20, "max_length": 140},
    }
    samples = [
        {
            "step": 100 * i,
            "smooth_loss": 50.0 - i,
            "documents": [f"<b>doc {i}</b> & co", f"two {i}"],
            "ended": [True, i % 2 == 0],
        }
        for i in range(10)
    ]
    files.write_json(tmp_path / "documents_run.json", run_file)
    files.write_json(tmp_path / "documents_samples.json", samples)
    raw = documents_section.section(tmp_path).data
    assert "<b>doc" not in raw and "&lt;b&gt;doc 0&lt;/b&gt; &amp; co" in raw  # documents are escaped
    heads = [s["step"] for s in samples if f"Update {s['step']:,}, smooth loss" in raw]
    assert heads[0] == 0 and heads[-1] == 900 and 2 < len(heads) <= 4  # first, last and some between
    assert raw.count("<tr>") == 1 + len(samples)  # the table has every stage
    assert "<td>2 of 2</td>" in raw and "<td>1 of 2</td>" in raw
    assert "mine.csv" in raw and "12 documents" in raw and "345 characters" in raw and "11.25" in raw


def test_the_header_names_the_layers_the_dropout_and_a_locked_mask():
    c = {"cell": "gru", "optimizer": "adam", "batch_size": 32, "n_layers": 2, "dropout": 0.2}
    assert sections.model_words({}) == "vanilla RNN, AdaGrad, batch size 1"
    assert sections.model_words(c).endswith("batch size 32, 2 layers, dropout 0.2")
    assert sections.model_words({**c, "n_layers": 1}).endswith("batch size 32, 1 layer, dropout 0.2")
    locked = sections.model_words({**c, "dropout_mask": "locked"})
    assert locked.endswith("dropout 0.2 (the same mask at every step)")


def test_the_training_sentence_says_how_the_run_clipped_and_decayed():
    from helpers.report.sections import clipping_text

    assert clipping_text({"clip": 5.0}) == "gradients clipped to [−5, 5]"
    both = clipping_text({"clip": 0.0, "clip_norm": 1.0, "weight_decay": 0.01})
    assert (
        both
        == "no elementwise clipping, then to an L2 norm of at most 1, decoupled weight decay 0.01 on U, W and V"
    )
