"""Vocabulary, encoding and loading the training text (with its error messages)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.data import text as data
from helpers.common.paths import ROOT, resolve


# --- vocabulary and encoding -------------------------------------------------------------


def test_vocab_is_sorted_distinct_characters():
    assert data.build_vocab("banana") == ["a", "b", "n"]
    assert data.build_vocab("ba\nB ") == ["\n", " ", "B", "a", "b"]  # by code point
    text = "Harry said: \u00e9t\u00e9 \U0001F600\x00!"
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
    path = text_file("Gr\u00fc\u00dfe \U0001F600\nline two\n")
    corpus = data.load_corpus(str(path))
    assert corpus.text == "Gr\u00fc\u00dfe \U0001F600\nline two\n"
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
