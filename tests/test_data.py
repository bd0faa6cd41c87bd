"""helpers.data: the vocabulary and encoding, loading the training text and document collections (with
their error messages), and the n-gram entropies of a text."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.common.paths import ROOT, resolve
from helpers.data import text as data
from helpers.data.collection import END_CHAR, STDLIB_SOURCE, load_collection, stdlib_documents

# --- vocabulary and encoding -------------------------------------------------------------


def test_vocab_is_sorted_distinct_characters():
    assert data.build_vocab("banana") == ["a", "b", "n"]
    assert data.build_vocab("ba\nB ") == ["\n", " ", "B", "a", "b"]  # by code point
    text = "Harry said: \u00e9t\u00e9 \U0001f600\x00!"
    chars = data.build_vocab(text)
    assert chars == sorted(set(text))
    assert len(chars) == len(set(chars))
    assert all(a < b for a, b in zip(chars, chars[1:]))


def test_default_prime_is_always_in_the_vocabulary():
    assert data.default_prime(["\n", " ", "a"]) == "\n"  # the assignment's line break
    assert data.default_prime([" ", "a", "b"]) == " "
    assert data.default_prime(["a", "b"]) == "a"


def test_known_part_drops_unknown_characters_and_names_them():
    chars = data.build_vocab("abc \n")
    assert data.known_part("a b", chars) == ("a b", [])
    assert data.known_part("Abc🙂a", chars) == ("bca", ["A", "🙂"])
    note = data.unknown_note(["A", "🙂"], chars, "prime")
    assert "'A', '🙂'" in note and "prime" in note and "5 characters" in note
    assert data.unknown_note([], chars, "prime") == ""


def test_training_text_is_found_where_the_checkpoint_says(tmp_path, monkeypatch):
    text = tmp_path / "mine.txt"
    text.write_text("hello\r\nworld", encoding="utf-8")
    corpus = {"name": "mine.txt", "source": str(text), "n_chars": 11, "K": 8}
    assert data.training_text(corpus).text == "hello\nworld"
    assert data.training_text({"source": "pydoc_data", "name": "x"}).source == "pydoc_data"
    text.unlink()
    with pytest.raises(FileNotFoundError, match="'mine.txt', is not at .* any more; pass data_path="):
        data.training_text(corpus)


def test_encode_by_hand():
    chars = data.build_vocab("hello")  # e h l o
    assert chars == ["e", "h", "l", "o"]
    enc = data.encode("hello", chars)
    assert enc.dtype == np.int64 and enc.shape == (5,)
    np.testing.assert_array_equal(enc, [1, 0, 2, 2, 3])
    assert data.decode(enc, chars) == "hello"
    assert data.encode("", chars).shape == (0,)
    assert data.decode([], chars) == ""


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_property_encode_decode_round_trip(text):
    chars = data.build_vocab(text)
    enc = data.encode(text, chars)
    assert len(enc) == len(text)
    assert enc.min() >= 0 and enc.max() < len(chars)
    assert data.decode(enc, chars) == text
    # each index is the character's position in the vocabulary
    assert all(chars[i] == ch for i, ch in zip(enc.tolist(), text))


# any code point but lone surrogates, which no UTF-8 file can hold
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXTS)
def test_property_vocabulary_encode_decode_over_any_code_point(text):
    chars = data.build_vocab(text)
    ids = data.encode(text, chars)
    assert chars == sorted(set(chars)) and len(chars) == len(set(text))
    assert ids.min() >= 0 and ids.max() < len(chars)
    assert data.decode(ids, chars) == text


def test_encode_unknown_characters_are_named():
    chars = data.build_vocab("abc")
    with pytest.raises(ValueError) as err:
        data.encode("abzq!a", chars)
    msg = str(err.value)
    assert "3 character(s)" in msg
    # exactly the unknown characters are named (each as its repr), none of the known ones
    assert set(re.findall(r"'(.)'", msg)) == {"z", "q", "!"}


def test_encode_many_unknown_characters_is_truncated():
    chars = ["a"]
    unknown = "bcdefghijklmnop"  # 15 unknown characters
    with pytest.raises(ValueError, match=r"15 character\(s\)") as err:
        data.encode("a" + unknown, chars)
    assert "..." in str(err.value)
    assert "'b'" in str(err.value)


# --- load_corpus ---------------------------------------------------------------------


def test_pydoc_data_corpus():
    from pydoc_data.topics import topics

    corpus = data.load_corpus("pydoc_data")
    assert corpus.source == "pydoc_data"
    assert corpus.text == "".join(topics[k] for k in sorted(topics))
    assert len(corpus.text) > 10_000
    assert "pydoc_data" in corpus.name


def test_auto_without_book_falls_back_to_pydoc_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "BOOK_PATH", str(tmp_path / "no_such_book.txt"))
    corpus = data.load_corpus("auto")
    assert corpus.source == data.STDLIB_CORPUS
    assert corpus.text == data.stdlib_text()
    # "auto" is also the default
    assert data.load_corpus().source == data.STDLIB_CORPUS


def test_auto_with_book_reads_the_book(tmp_path, monkeypatch):
    book = tmp_path / "book.txt"
    book.write_text("It was a dark and stormy night.\n", encoding="utf-8")
    monkeypatch.setattr(data, "BOOK_PATH", str(book))
    corpus = data.load_corpus("auto")
    assert corpus.text == "It was a dark and stormy night.\n"
    assert corpus.source == str(book) and corpus.name == "book.txt"


def test_load_utf8_file(text_file):
    path = text_file("Gr\u00fc\u00dfe \U0001f600\nline two\n")
    corpus = data.load_corpus(str(path))
    assert corpus.text == "Gr\u00fc\u00dfe \U0001f600\nline two\n"
    assert corpus.name == path.name and corpus.source == str(path)
    # a PathLike works as well as a string
    assert data.load_corpus(path).text == corpus.text


def test_crlf_and_cr_read_with_universal_newlines(text_file):
    raw = b"one\r\ntwo\rthree\nfour\r\n\r\n"
    path = text_file(raw)
    with open(path, encoding="utf-8") as f:  # what Python's own text mode reads
        expected = f.read()
    assert expected == "one\ntwo\nthree\nfour\n\n"
    text = data.load_corpus(str(path)).text
    assert text == expected
    assert "\r" not in data.build_vocab(text)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as err:
        data.load_corpus(str(missing))
    assert str(missing) in str(err.value)
    assert "pydoc_data" in str(err.value)  # names the fix


def test_folder_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError) as err:
        data.load_corpus(str(tmp_path))
    assert str(tmp_path) in str(err.value) and "folder" in str(err.value)


def test_empty_file(text_file):
    path = text_file(b"")
    with pytest.raises(ValueError, match="empty") as err:
        data.load_corpus(str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "raw,offset,byte",
    [
        (b"abc\xffdef", 3, "0xff"),  # an invalid byte
        (b"\xe9t\xe9", 0, "0xe9"),  # latin-1 text
        (b"ok \xc3(", 3, "0xc3"),  # a truncated two-byte sequence
        ("\u00e9\u00e9".encode() + b"\x80", 4, "0x80"),  # a lone continuation byte after valid text
    ],
)
def test_non_utf8_names_the_byte_offset(text_file, raw, offset, byte):
    # the offset the message must name is where Python's decoder first fails
    with pytest.raises(UnicodeDecodeError) as real:
        raw.decode("utf-8")
    assert real.value.start == offset
    path = text_file(raw)
    with pytest.raises(ValueError) as err:
        data.load_corpus(str(path))
    msg = str(err.value)
    assert re.search(rf"byte offset {offset}\b", msg), msg
    assert byte in msg
    assert str(path) in msg and "UTF-8" in msg


def test_non_string_data_path_is_a_type_error():
    with pytest.raises(TypeError, match="data_path"):
        data.load_corpus(42)


def test_relative_paths_are_read_from_the_repository_root():
    assert resolve("data/x.txt") == ROOT / "data" / "x.txt"
    assert resolve("/abs/x.txt").as_posix() == "/abs/x.txt"
    assert (ROOT / "helpers").is_dir()


# --- n-gram entropies -----------------------------------------------------------------------


def test_ngram_entropy_by_hand():
    enc = np.array([0, 1, 0, 1, 0, 1])
    assert data.ngram_entropy(enc, 3, 1) == pytest.approx(math.log(2))
    assert data.ngram_entropy(enc, 3, 2) == pytest.approx(0.0, abs=1e-15)  # each character fixes the next
    text = "abracadabra, said the cat"
    chars = sorted(set(text))
    enc = np.array([chars.index(c) for c in text])
    counts = Counter(text)
    h1 = -sum(n / len(text) * math.log(n / len(text)) for n in counts.values())
    pairs, firsts = Counter(zip(text, text[1:])), Counter(text[:-1])
    h2 = -sum(n / (len(text) - 1) * math.log(n / firsts[a]) for (a, _), n in pairs.items())
    assert data.ngram_entropy(enc, len(chars), 1) == pytest.approx(h1, rel=1e-12)
    assert data.ngram_entropy(enc, len(chars), 2) == pytest.approx(h2, rel=1e-12)
    assert (
        data.ngram_entropy(enc, len(chars), 2) < data.ngram_entropy(enc, len(chars), 1) < math.log(len(chars))
    )
    with pytest.raises(ValueError, match="order"):
        data.ngram_entropy(enc, len(chars), 3)


# --- reading a collection --------------------------------------------------------------------

SPECIAL = ['a "quoted", comma', "two\nlines", "plain 😀"]


def write_format(tmp_path, fmt: str):
    """The collection SPECIAL in one format; returns (path, text_field, expected documents)."""
    path = tmp_path / f"c.{fmt}"
    if fmt == "json":
        path.write_text(
            json.dumps([{"id": i, "text": d} for i, d in enumerate(SPECIAL)], indent=2), encoding="utf-8"
        )
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


@pytest.mark.parametrize(
    "content,name,pattern",
    [
        ("", "e.txt", r"holds no documents\. Put one document per line"),
        ("\n  \n\n", "b.txt", r"holds no documents \(3 empty ones were dropped\)"),
        ("[]", "l.json", "holds no documents"),
        ('[{"text": ""}]', "o.json", r"holds no documents \(1 empty"),
        ('{"tweets": ["a"]}', "d.json", r"JSON dict with the keys tweets, not a list.*save the list itself"),
        ('["a", 3]', "n.json", r"item 1 of .*expected a string or an object holding text, got int '3'"),
        ('[{"text": null}]', "z.json", r"item 0 of .*expected the field 'text' holding text, got NoneType"),
        ("id,body\n1,a\n", "c.csv", r"no column 'text'; its columns are 'id', 'body'\. Pass text_field"),
    ],
)
def test_collection_errors_name_the_problem_and_fix(tmp_path, content, name, pattern):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        load_collection(str(path))


def test_missing_field_names_the_item_and_the_fields_it_has(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"text": "ok"}, {"id": 2, "full_text": "no text field"}]), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"item 1 of .* has no field 'text' \(it has: 'id', 'full_text'\)\. Pass text_field"
    ):
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
    with pytest.raises(
        ValueError, match=rf"not valid {kind}: .* at line {bad_line}, column \d+ .*broken.*Fix that line"
    ):
        load_collection(str(path))


def test_missing_file_says_how_to_use_the_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*empty data_path"):
        load_collection(str(tmp_path / "nope.json"))


def test_stdlib_fallback_is_a_collection_of_short_sentences():
    docs = stdlib_documents()
    c = load_collection("")
    assert c.source == STDLIB_SOURCE and c.documents == docs and len(docs) > 100
    assert all(20 <= len(d) <= 140 and "\n" not in d and END_CHAR not in d for d in docs)
    assert len(set(docs)) == len(docs)
