"""Short documents (the bonus exercise): reading collections, training across documents,
synthesis that stops at the end character, the report section and notebook 07."""
from __future__ import annotations

import csv
import html
import io
import json
import math
import re

import nbformat
import numpy as np
import papermill
import pytest

from conftest import random_params
from conftest import quiet
from helpers.common import files
from helpers.train import checkpoint as ckpt
from helpers.runs import documents
from helpers.model import oracles as reference
from helpers.report import sections as report
from helpers.model import sample as synth
from helpers.data.collection import STDLIB_SOURCE, load_collection, stdlib_documents
from helpers.train.config import TrainConfig
from helpers.data.text import build_vocab, decode
from helpers.train.document_trainer import DocumentState, DocumentTrainer
from helpers.data.collection import END_CHAR
from helpers.model.params import NAMES
from helpers.common.paths import ROOT

# a doc shorter than a chunk, one of exactly seq_length (5), one just longer, one outside the BMP
DOCS = ["tweet one is here", "hi", "abcd", "abcde", "x", "🐍 snakes & ladders", "last one, longer than a chunk or two"]
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
            {"x": x[0].copy(), "y": y[0].copy(), "h": s.hprev[0].copy(), "params": s.params.copy(), "epoch": s.epoch})
        return x, y


def make_trainer(docs=DOCS, seed=0, cls=SpyTrainer, **overrides) -> DocumentTrainer:
    cfg = TrainConfig(**{**dict(m=8, eta=0.1, seq_length=T, sig=0.3, n_updates=100, sample_every=1000,
                                sample_until=0, sample_length=10, log_every=1, checkpoint_every=1000), **overrides})
    chars = build_vocab("".join(docs) + END_CHAR)
    return cls(cfg, docs, chars, DocumentState.fresh(cfg, len(chars), np.random.default_rng(seed)), n_samples=2)


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


# --- reading a collection --------------------------------------------------------------------

SPECIAL = ['a "quoted", comma', "two\nlines", "plain 😀"]


def write_format(tmp_path, fmt: str):
    """The collection SPECIAL in one format; returns (path, text_field, expected documents)."""
    path = tmp_path / f"c.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps([{"id": i, "text": d} for i, d in enumerate(SPECIAL)], indent=2), encoding="utf-8")
        return path, "text", SPECIAL
    if fmt == "js":  # Twitter's archive: a JavaScript assignment of nested objects
        body = json.dumps([{"tweet": {"full_text": d}} for d in SPECIAL])
        path.write_text("window.YTD.tweets.part0 = " + body, encoding="utf-8")
        return path, "tweet.full_text", SPECIAL
    if fmt == "jsonl":  # strings and objects mixed, a blank line
        lines = [json.dumps(SPECIAL[0]), "", json.dumps({"body": SPECIAL[1]}), json.dumps(SPECIAL[2])]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path, "body", SPECIAL
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
        writer.writerow(["id", "body"])
        writer.writerows([i, d] for i, d in enumerate(SPECIAL))
        path.write_bytes(("\ufeff" + buf.getvalue()).encode("utf-8"))  # with a BOM, as spreadsheets write
        return path, "body", SPECIAL
    docs = [d.replace("\n", " ") for d in SPECIAL]
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path, "ignored", docs


@pytest.mark.parametrize("fmt", ["json", "js", "jsonl", "csv", "tsv", "txt"])
def test_each_format_gives_the_documents(tmp_path, fmt):
    path, field, expected = write_format(tmp_path, fmt)
    c = load_collection(str(path), field)
    assert c.documents == expected and c.dropped == 0 and c.name == path.name
    assert c.info()["n_documents"] == len(expected) and c.info()["n_chars"] == sum(map(len, expected))


def test_json_list_of_strings_and_dropped_blanks(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(["one", "  ", "two", ""]), encoding="utf-8")
    c = load_collection(str(path))
    assert c.documents == ["one", "two"] and c.dropped == 2


@pytest.mark.parametrize("content,name,pattern", [
    ("", "e.txt", r"holds no documents\. Put one document per line"),
    ("\n  \n\n", "b.txt", r"holds no documents \(3 empty ones were dropped\)"),
    ("[]", "l.json", "holds no documents"),
    ('[{"text": ""}]', "o.json", r"holds no documents \(1 empty"),
    ('{"tweets": ["a"]}', "d.json", r"JSON dict with the keys tweets, not a list.*save the list itself"),
    ('["a", 3]', "n.json", r"item 1 of .*expected a string or an object holding text, got int '3'"),
    ('[{"text": null}]', "z.json", r"item 0 of .*expected the field 'text' holding text, got NoneType"),
    ("id,body\n1,a\n", "c.csv", r"no column 'text'; its columns are 'id', 'body'\. Pass text_field"),
])
def test_collection_errors_name_the_problem_and_fix(tmp_path, content, name, pattern):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        load_collection(str(path))


def test_missing_field_names_the_item_and_the_fields_it_has(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"text": "ok"}, {"id": 2, "full_text": "no text field"}]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"item 1 of .* has no field 'text' \(it has: 'id', 'full_text'\)\. Pass text_field"):
        load_collection(str(path))
    with pytest.raises(ValueError, match=r"has no field 'tweet'"):
        load_collection(str(path), "tweet.full_text")


@pytest.mark.parametrize("fmt,bad_line", [("json", 4), ("json", 2), ("jsonl", 3), ("jsonl", 1)])
def test_bad_json_reports_its_line(tmp_path, fmt, bad_line):
    if fmt == "json":
        lines = ["[", '  {"text": "a"},', '  {"text": "b"},', '  {"text": "c"}', "]"]
        lines[bad_line - 1] = '  {"text": "broken" "x"},'
    else:
        lines = [json.dumps({"text": w}) for w in "abcd"]
        lines[bad_line - 1] = '{"text": "broken'
    path = tmp_path / f"bad.{fmt}"
    path.write_text("\n".join(lines), encoding="utf-8")
    kind = "JSON Lines" if fmt == "jsonl" else "JSON"
    with pytest.raises(ValueError, match=rf"not valid {kind}: .* at line {bad_line}, column \d+ .*broken.*Fix that line"):
        load_collection(str(path))


def test_missing_file_says_how_to_use_the_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*empty data_path"):
        load_collection(str(tmp_path / "nope.json"))


def test_end_character_in_the_collection_is_refused(tmp_path):
    path = tmp_path / "etx.txt"
    path.write_text(f"fine\nnot{END_CHAR}fine\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"document 2 of 2 contains the end-of-text character U\+0003.*Remove"):
        quiet(documents.train, str(path), str(tmp_path / "out"), n_updates=2)
    assert not (tmp_path / "out").exists()


def test_stdlib_fallback_is_a_collection_of_short_sentences():
    docs = stdlib_documents()
    c = load_collection("")
    assert c.source == STDLIB_SOURCE and c.documents == docs and len(docs) > 100
    assert all(20 <= len(d) <= 140 and "\n" not in d and END_CHAR not in d for d in docs)
    assert len(set(docs)) == len(docs)


# --- training ------------------------------------------------------------------------------------

def test_no_chunk_crosses_a_document_boundary():
    tr = run(make_trainer(), 3 * PER_EPOCH)
    end = tr.end
    for c in tr.seen:
        assert 1 <= len(c["x"]) <= T and len(c["y"]) == len(c["x"])
        assert end not in c["x"][1:] and end not in c["y"][:-1]  # END only opens or closes a document
        assert len(c["x"]) == T or c["y"][-1] == end  # only a document's last chunk is short
    trained = documents_in_order(tr)
    assert len(trained) == 3 * len(DOCS)
    for k in range(3):  # each epoch: every document exactly once
        assert sorted(trained[k * len(DOCS):(k + 1) * len(DOCS)]) == sorted(DOCS)
    assert tr.state.epoch_starts == [0, PER_EPOCH, 2 * PER_EPOCH]
    for which in ("last", "best"):  # the checkpoint marks the end character
        assert tr.checkpoint(which, {}).meta["end_char"] == END_CHAR == tr.chars[tr.end]


def test_hidden_state_resets_at_each_document_start_and_carries_within_it():
    tr = run(make_trainer(), 2 * PER_EPOCH)
    starts = 0
    for prev, c in zip([None] + tr.seen[:-1], tr.seen):
        if c["x"][0] == tr.end:  # a document starts: h_0 = 0
            starts += 1
            assert not c["h"].any()
        else:  # within a document: the state the previous chunk ended in
            expected = synth.warm_up(prev["params"], prev["h"], prev["x"])
            np.testing.assert_allclose(c["h"], expected, rtol=1e-12, atol=1e-14)
            assert np.abs(c["h"]).max() > 1e-3
    assert starts == 2 * len(DOCS)


def test_updates_are_the_book_runs_adagrad_clipping_and_smooth_loss():
    """Reference BPTT, hand clipping and AdaGrad over the recorded chunks reproduce the run."""
    n, eta = 40, 0.1
    tr = make_trainer(eta=eta, sig=0.8)
    p0 = tr.state.params.copy()
    run(tr, n)
    p = {k: p0[k].copy() for k in NAMES}
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    h, losses = None, []
    for c in tr.seen:
        h = np.zeros(8) if c["x"][0] == tr.end else h
        loss, g, h = reference.loss_and_grads(*(p[k] for k in NAMES), c["x"], c["y"], h)
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
        trained = documents_in_order(run(make_trainer(seed=seed), 3 * PER_EPOCH))
        return [trained[k * len(DOCS):(k + 1) * len(DOCS)] for k in range(3)]

    a = orders(seed=1, global_seed=0)
    assert a == orders(seed=1, global_seed=99)
    assert a != orders(seed=2, global_seed=0)
    assert a[0] != a[1] and a[1] != a[2]  # a new order every epoch


# --- synthesis -----------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk,temperature,top_p", [(32, 1.0, 1.0), (3, 1.0, 1.0), (4, 0.7, 0.9), (1, 1.5, 1.0)])
def test_a_document_is_sample_indices_cut_at_the_end_character(chunk, temperature, top_p):
    p, end, L = random_params(8, 6, np.random.default_rng(5), sig=0.6), 2, 12
    outcomes = set()
    for seed in range(40):
        full, _ = synth.sample_indices(p, np.zeros(8), end, L, np.random.default_rng(seed), temperature, top_p)
        cut = int(np.argmax(full == end)) if (full == end).any() else L
        got, ended = synth.sample_document(p, end, L, np.random.default_rng(seed), temperature, top_p, chunk)
        assert got.tolist() == full[:cut].tolist() and ended == (cut < L)
        outcomes.add(ended)
    assert outcomes == {True, False}  # both ways of stopping were exercised


def test_documents_stop_at_max_length_or_at_once():
    p, end = random_params(8, 5, np.random.default_rng(1), sig=0.5), 0
    chars = ["\x03", "a", "b", "c", "d"]
    p.c[end] = -60.0  # the end character is (almost) never drawn
    docs, ended = synth.sample_documents(p, chars, end, 7, 23, np.random.default_rng(0))
    assert len(docs) == 7 and all(len(d) == 23 for d in docs) and not any(ended)
    assert len(set(docs)) > 1 and all(set(d) <= set("abcd") for d in docs)
    p.c[end] = 60.0  # the end character comes first
    docs, ended = synth.sample_documents(p, chars, end, 4, 23, np.random.default_rng(0))
    assert docs == [""] * 4 and all(ended)


def test_n_documents_at_once_are_n_single_draws_from_one_rng():
    p, chars = random_params(8, 5, np.random.default_rng(2), sig=0.6), ["\x03", "a", "b", "c", "d"]
    docs, ended = synth.sample_documents(p, chars, 0, 6, 30, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    one_by_one = [synth.sample_document(p, 0, 30, rng) for _ in range(6)]
    assert docs == [decode(idx, chars) for idx, _ in one_by_one] and ended == [e for _, e in one_by_one]


# --- the workflow step, its files and the report section -----------------------------------------

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
    assert result["corpus"]["n_documents"] == len(DOCS) and result["corpus"]["K"] == len(set("".join(DOCS))) + 1
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
        assert ck.meta["end_char"] == END_CHAR and END_CHAR in ck.chars and len(ck.chars) == result["corpus"]["K"]


def test_train_is_reproducible_with_the_seed(doc_run):
    out, _, again = doc_run
    assert again["final_smooth_loss"] == json.loads((out / "documents_run.json").read_text())["final_smooth_loss"]
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


def test_section_reads_only_its_files_and_picks_spread_stages(tmp_path):
    run_file = {"end_char": END_CHAR, "steps_done": 900, "epoch_starts": [0, 400], "seconds": 3.0,
                "final_smooth_loss": 12.5, "best_smooth_loss": 11.25, "best_step": 850,
                "corpus": {"name": "mine.csv", "source": "/x/mine.csv", "n_documents": 12, "n_chars": 345,
                           "mean_length": 28.75, "max_length": 70, "K": 40},
                "config": {"m": 16, "eta": 0.05, "sig": 0.01, "seq_length": 20, "max_length": 140}}
    samples = [{"step": 100 * i, "smooth_loss": 50.0 - i, "documents": [f"<b>doc {i}</b> & co", f"two {i}"],
                "ended": [True, i % 2 == 0]} for i in range(10)]
    files.write_json(tmp_path / "documents_run.json", run_file)
    files.write_json(tmp_path / "documents_samples.json", samples)
    raw = documents.section(tmp_path).data
    assert "<b>doc" not in raw and "&lt;b&gt;doc 0&lt;/b&gt; &amp; co" in raw  # documents are escaped
    heads = [s["step"] for s in samples if f"Update {s['step']:,}, smooth loss" in raw]
    assert heads[0] == 0 and heads[-1] == 900 and 2 < len(heads) <= 4  # first, last and some between
    assert raw.count("<tr>") == 1 + len(samples)  # the table has every stage
    assert "<td>2 of 2</td>" in raw and "<td>1 of 2</td>" in raw
    assert "mine.csv" in raw and "12 documents" in raw and "345 characters" in raw and "11.25" in raw


def test_notebook_declares_its_parameters():
    declared = papermill.inspect_notebook(ROOT / "notebooks" / "07_documents.ipynb")
    assert set(declared) == {"data_path", "text_field", "out_dir", "seed", "m", "eta", "seq_length", "sig",
                             "n_updates", "sample_every", "n_samples", "max_length", "temperature"}
    assert declared["out_dir"]["default"] == '"output/documents"' and declared["max_length"]["default"] == "140"


def test_notebook_runs_on_the_fallback_and_the_report_shows_it(tmp_path):
    out = tmp_path / "documents"
    papermill.execute_notebook(ROOT / "notebooks" / "07_documents.ipynb", tmp_path / "07.ipynb",
                               parameters={"data_path": "", "out_dir": str(out), "m": 8, "seq_length": 10,
                                           "n_updates": 40, "sample_every": 20, "n_samples": 2, "max_length": 40},
                               cwd=str(ROOT), kernel_name="python3", progress_bar=False)
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
    with pytest.raises(ValueError, match=f"supports the vanilla RNN, one stream and no validation split.*{name}="):
        quiet(documents.train, "", str(tmp_path / "run"), n_updates=5, **setting)
