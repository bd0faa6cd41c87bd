"""Short documents (the bonus exercise): training across documents (helpers.train.document_trainer),
synthesis that stops at the end character, the run step's files, the report section from a run and
notebook 07. Reading collections: test_data.py."""

from __future__ import annotations

import html
import json
import math
import re

import nbformat
import numpy as np
import papermill
import pytest

from helpers.common.paths import ROOT
from helpers.data.collection import END_CHAR, STDLIB_SOURCE
from helpers.data.text import build_vocab, decode
from helpers.model import oracles, sample
from helpers.model.params import NAMES
from helpers.report import sections as report
from helpers.runs import documents
from helpers.train import checkpoint as ckpt
from helpers.train.config import TrainConfig
from helpers.train.document_trainer import DocumentState, DocumentTrainer

from conftest import quiet, random_params

# a doc shorter than a chunk, one of exactly seq_length (5), one just longer, one outside the BMP
DOCS = [
    "tweet one is here",
    "hi",
    "abcd",
    "abcde",
    "x",
    "🐍 snakes & ladders",
    "last one, longer than a chunk or two",
]
T = 5


class SpyTrainer(DocumentTrainer):
    """Records every chunk with the hidden state and parameters the update starts from."""

    def __init__(self, *args, **kwargs):
        self.seen = []
        super().__init__(*args, **kwargs)

    def next_chunk(self):
        x, y = super().next_chunk()
        s = self.state
        self.seen.append(
            {
                "x": x[0].copy(),
                "y": y[0].copy(),
                "h": s.hprev[0].copy(),
                "params": s.params.copy(),
                "epoch": s.epoch,
            }
        )
        return x, y


def make_document_trainer(docs=DOCS, seed=0, cls=SpyTrainer, **overrides) -> DocumentTrainer:
    cfg = TrainConfig(
        **{
            **dict(
                m=8,
                eta=0.1,
                seq_length=T,
                sig=0.3,
                n_updates=100,
                sample_every=1000,
                sample_until=0,
                sample_length=10,
                log_every=1,
                checkpoint_every=1000,
            ),
            **overrides,
        }
    )
    chars = build_vocab("".join(docs) + END_CHAR)
    return cls(
        cfg, docs, chars, DocumentState.fresh(cfg, len(chars), np.random.default_rng(seed)), n_samples=2
    )


def run(trainer, n):
    trainer.run(n, out=lambda line: None, progress=False)
    return trainer


PER_EPOCH = sum(math.ceil((len(d) + 1) / T) for d in DOCS)  # chunks cover END d (inputs) and d END (targets)


def documents_in_order(trainer) -> list[str]:
    """The documents trained on, in order, rebuilt from the recorded chunks."""
    out, current = [], ""
    for c in trainer.seen:
        current += decode(c["x"], trainer.chars)
        if c["y"][-1] == trainer.end:
            out.append(current.removeprefix(END_CHAR))
            current = ""
    return out


# --- the collection ------------------------------------------------------------------------


def test_end_character_in_the_collection_is_refused(tmp_path):
    path = tmp_path / "etx.txt"
    path.write_text(f"fine\nnot{END_CHAR}fine\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"document 2 of 2 contains the end-of-text character U\+0003.*Remove"
    ):
        quiet(documents.train, str(path), str(tmp_path / "out"), n_updates=2)
    assert not (tmp_path / "out").exists()


# --- training ------------------------------------------------------------------------------------


def test_no_chunk_crosses_a_document_boundary():
    tr = run(make_document_trainer(), 3 * PER_EPOCH)
    end = tr.end
    for c in tr.seen:
        assert 1 <= len(c["x"]) <= T and len(c["y"]) == len(c["x"])
        assert end not in c["x"][1:] and end not in c["y"][:-1]  # END only opens or closes a document
        assert len(c["x"]) == T or c["y"][-1] == end  # only a document's last chunk is short
    trained = documents_in_order(tr)
    assert len(trained) == 3 * len(DOCS)
    for k in range(3):  # each epoch: every document exactly once
        assert sorted(trained[k * len(DOCS) : (k + 1) * len(DOCS)]) == sorted(DOCS)
    assert tr.state.epoch_starts == [0, PER_EPOCH, 2 * PER_EPOCH]
    for which in ("last", "best"):  # the checkpoint marks the end character
        assert tr.checkpoint(which, {}).meta["end_char"] == END_CHAR == tr.chars[tr.end]


def test_hidden_state_resets_at_each_document_start_and_carries_within_it():
    tr = run(make_document_trainer(), 2 * PER_EPOCH)
    starts = 0
    for prev, c in zip([None] + tr.seen[:-1], tr.seen):
        if c["x"][0] == tr.end:  # a document starts: h_0 = 0
            starts += 1
            assert not c["h"].any()
        else:  # within a document: the state the previous chunk ended in
            expected = sample.warm_up(prev["params"], prev["h"], prev["x"])
            np.testing.assert_allclose(c["h"], expected, rtol=1e-12, atol=1e-14)
            assert np.abs(c["h"]).max() > 1e-3
    assert starts == 2 * len(DOCS)


def test_updates_are_the_book_runs_adagrad_clipping_and_smooth_loss():
    """Reference BPTT, hand clipping and AdaGrad over the recorded chunks reproduce the run."""
    n, eta = 40, 0.1
    tr = make_document_trainer(eta=eta, sig=0.8)
    p0 = tr.state.params.copy()
    run(tr, n)
    p = {k: p0[k].copy() for k in NAMES}
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    h, losses = None, []
    for c in tr.seen:
        h = np.zeros(8) if c["x"][0] == tr.end else h
        loss, g, h = oracles.loss_and_grads(*(p[k] for k in NAMES), c["x"], c["y"], h)
        losses.append(loss)
        for k in NAMES:
            gk = np.clip(g[k], -5, 5)
            mem[k] += gk * gk
            p[k] -= eta * gk / np.sqrt(mem[k] + 1e-8)
    for k in NAMES:
        np.testing.assert_allclose(tr.state.params[k], p[k], rtol=1e-9, atol=1e-12)
    smooth = losses[0]
    for i, (step, loss, logged) in enumerate(tr.state.log):
        assert step == i + 1 and loss == pytest.approx(losses[i], rel=1e-10)
        smooth = losses[0] if i == 0 else 0.999 * smooth + 0.001 * loss
        assert logged == pytest.approx(smooth, rel=1e-12)


def test_document_order_is_shuffled_per_epoch_with_the_seed_only():
    def orders(seed, global_seed):
        np.random.seed(global_seed)  # numpy's global state must not matter
        trained = documents_in_order(run(make_document_trainer(seed=seed), 3 * PER_EPOCH))
        return [trained[k * len(DOCS) : (k + 1) * len(DOCS)] for k in range(3)]

    a = orders(seed=1, global_seed=0)
    assert a == orders(seed=1, global_seed=99)
    assert a != orders(seed=2, global_seed=0)
    assert a[0] != a[1] and a[1] != a[2]  # a new order every epoch


# --- synthesis -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunk,temperature,top_p", [(32, 1.0, 1.0), (3, 1.0, 1.0), (4, 0.7, 0.9), (1, 1.5, 1.0)]
)
def test_a_document_is_sample_indices_cut_at_the_end_character(chunk, temperature, top_p):
    p, end, L = random_params(8, 6, np.random.default_rng(5), sig=0.6), 2, 12
    outcomes = set()
    for seed in range(40):
        full, _ = sample.sample_indices(
            p, np.zeros(8), end, L, np.random.default_rng(seed), temperature, top_p
        )
        cut = int(np.argmax(full == end)) if (full == end).any() else L
        got, ended = sample.sample_document(p, end, L, np.random.default_rng(seed), temperature, top_p, chunk)
        assert got.tolist() == full[:cut].tolist() and ended == (cut < L)
        outcomes.add(ended)
    assert outcomes == {True, False}  # both ways of stopping were exercised


def test_documents_stop_at_max_length_or_at_once():
    p, end = random_params(8, 5, np.random.default_rng(1), sig=0.5), 0
    chars = ["\x03", "a", "b", "c", "d"]
    p.c[end] = -60.0  # the end character is (almost) never drawn
    docs, ended = sample.sample_documents(p, chars, end, 7, 23, np.random.default_rng(0))
    assert len(docs) == 7 and all(len(d) == 23 for d in docs) and not any(ended)
    assert len(set(docs)) > 1 and all(set(d) <= set("abcd") for d in docs)
    p.c[end] = 60.0  # the end character comes first
    docs, ended = sample.sample_documents(p, chars, end, 4, 23, np.random.default_rng(0))
    assert docs == [""] * 4 and all(ended)


def test_n_documents_at_once_are_n_single_draws_from_one_rng():
    p, chars = random_params(8, 5, np.random.default_rng(2), sig=0.6), ["\x03", "a", "b", "c", "d"]
    docs, ended = sample.sample_documents(p, chars, 0, 6, 30, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    one_by_one = [sample.sample_document(p, 0, 30, rng) for _ in range(6)]
    assert docs == [decode(idx, chars) for idx, _ in one_by_one] and ended == [e for _, e in one_by_one]


# --- the run step, its files and the report section -----------------------------------------


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    data = folder / "tweets.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS), encoding="utf-8")
    kw = dict(n_samples=3, max_length=30, m=8, seq_length=6, n_updates=60, sample_every=20, log_every=5)
    result = quiet(documents.train, str(data), str(folder / "out"), text_field="text", seed=4, **kw)
    again = quiet(documents.train, str(data), str(folder / "again"), text_field="text", seed=4, **kw)
    return folder / "out", result, again


def test_train_writes_the_result_files(doc_run):
    out, result, _ = doc_run
    assert result == json.loads((out / "documents_run.json").read_text(encoding="utf-8"))
    assert (
        result["corpus"]["n_documents"] == len(DOCS) and result["corpus"]["K"] == len(set("".join(DOCS))) + 1
    )
    assert result["config"]["max_length"] == 30 and result["config"]["n_samples"] == 3
    assert result["steps_done"] == 60 and result["seconds"] > 0 and result["end_char"] == END_CHAR
    assert result["best_smooth_loss"] <= result["final_smooth_loss"]
    samples = json.loads((out / "documents_samples.json").read_text(encoding="utf-8"))
    assert [s["step"] for s in samples] == [0, 20, 40, 60]
    for s in samples:
        assert len(s["documents"]) == 3 and len(s["ended"]) == 3
        for doc, ended in zip(s["documents"], s["ended"]):
            assert END_CHAR not in doc and (len(doc) < 30 if ended else len(doc) == 30)
    assert (out / "train_log.csv").read_text().splitlines()[0] == "step,loss,smooth_loss"
    for name in ("last.npz", "best.npz"):
        ck = ckpt.load(out / name)
        assert (
            ck.meta["end_char"] == END_CHAR
            and END_CHAR in ck.chars
            and len(ck.chars) == result["corpus"]["K"]
        )


def test_train_is_reproducible_with_the_seed(doc_run):
    out, _, again = doc_run
    assert (
        again["final_smooth_loss"]
        == json.loads((out / "documents_run.json").read_text())["final_smooth_loss"]
    )
    same = [json.loads((f / "documents_samples.json").read_text()) for f in (out, out.parent / "again")]
    assert same[0] == same[1]


def test_generate_from_a_documents_checkpoint_only(doc_run, tmp_path):
    out = doc_run[0]
    result = documents.generate(str(out / "best.npz"), n=4, max_length=15, seed=1)
    assert len(result.documents) == 4 and all(len(d) <= 15 and END_CHAR not in d for d in result.documents)
    assert result.documents == documents.generate(str(out / "best.npz"), n=4, max_length=15, seed=1).documents
    assert html.escape(result.documents[0]) in result._repr_html_()
    book = ckpt.load(out / "best.npz")
    book.meta = {}
    ckpt.save(tmp_path / "book.npz", book)
    with pytest.raises(ValueError, match="not trained on documents.*03_synthesis"):
        documents.generate(str(tmp_path / "book.npz"))


def test_section_shows_every_stage_from_the_run(doc_run):
    out, result, _ = doc_run
    text = html.unescape(documents.section(out).data)
    samples = json.loads((out / "documents_samples.json").read_text(encoding="utf-8"))
    for s in samples:  # four stages: all shown
        assert f"Update {s['step']:,}, smooth loss {s['smooth_loss']:.2f}" in text
        assert all(re.search(rf'<div class="text"[^>]*>{re.escape(d)}</div>', text) for d in s["documents"])
    assert "tweets.jsonl" in text and f"{len(DOCS)} documents" in text and "U+0003" in text
    assert f"{result['final_smooth_loss']:.2f}" in text and "ships with Python" not in text


def test_notebook_declares_its_parameters():
    declared = papermill.inspect_notebook(ROOT / "notebooks" / "07_documents.ipynb")
    assert set(declared) == {
        "data_path",
        "text_field",
        "out_dir",
        "seed",
        "m",
        "eta",
        "seq_length",
        "sig",
        "n_updates",
        "sample_every",
        "n_samples",
        "max_length",
        "temperature",
    }
    assert (
        declared["out_dir"]["default"] == '"output/documents"' and declared["max_length"]["default"] == "140"
    )


def test_notebook_runs_on_the_fallback_and_the_report_shows_it(tmp_path):
    out = tmp_path / "documents"
    papermill.execute_notebook(
        ROOT / "notebooks" / "07_documents.ipynb",
        tmp_path / "07.ipynb",
        parameters={
            "data_path": "",
            "out_dir": str(out),
            "m": 8,
            "seq_length": 10,
            "n_updates": 40,
            "sample_every": 20,
            "n_samples": 2,
            "max_length": 40,
        },
        cwd=str(ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    for name in ("documents_run.json", "documents_samples.json", "train_log.csv", "last.npz", "best.npz"):
        assert (out / name).is_file(), name
    nb = nbformat.read(tmp_path / "07.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "data_path is empty" in "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert json.loads((out / "documents_run.json").read_text())["corpus"]["source"] == STDLIB_SOURCE
    section = html.unescape(report.optional_section("documents", str(out)).data)
    assert section.startswith("<h2>Learning from short documents</h2>") and "ships with Python" in section
    for s in json.loads((out / "documents_samples.json").read_text()):
        assert f"Update {s['step']:,}, smooth loss {s['smooth_loss']:.2f}" in section
        assert all(d in section for d in s["documents"])


@pytest.mark.parametrize("setting", [{"cell": "lstm"}, {"batch_size": 2}, {"val_fraction": 0.1}])
def test_unsupported_training_options_are_refused(tmp_path, setting):
    name = next(iter(setting))
    with pytest.raises(
        ValueError, match=f"supports the vanilla RNN, one stream and no validation split.*{name}="
    ):
        quiet(documents.train, "", str(tmp_path / "run"), n_updates=5, **setting)
