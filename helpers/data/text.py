"""The training text: loading it, its vocabulary, and encoding characters as integers.

The vocabulary is ``sorted(set(text))``; a character's index in it is its integer code.
When the book is absent, a corpus that every Python install ships (the documentation
topics in :mod:`pydoc_data`) stands in, so the project always runs end to end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np

from ..common.paths import resolve

BOOK_PATH = "data/goblet_book.txt"
"""Where a user puts their own copy of the book (never committed)."""
STDLIB_CORPUS = "pydoc_data"
"""``data_path`` value that selects the standard-library documentation corpus."""
AUTO = "auto"
"""``data_path`` value: the book when it is present, else the standard-library corpus."""


@dataclass(frozen=True)
class Corpus:
    """A loaded training text.

    Attributes
    ----------
    text : str
        The whole text.
    name : str
        What the report calls it (a file name, or the standard-library corpus).
    source : str
        The resolved path, or ``"pydoc_data"``.
    """

    text: str
    name: str
    source: str


def stdlib_text() -> str:
    """The Python documentation topics that ship with every CPython (about 465,000 characters)."""
    return "".join(topics[key] for key in sorted(topics))


def load_corpus(data_path: str = AUTO) -> Corpus:
    """Load the training text named by ``data_path``.

    Parameters
    ----------
    data_path : str
        ``"auto"`` (the book at ``data/goblet_book.txt`` if present, else the standard-library
        corpus), ``"pydoc_data"``, or a path to a UTF-8 text file (relative to the repo root).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ValueError
        With a message that names the problem and the fix.
    """
    if not isinstance(data_path, (str, os.PathLike)):
        raise TypeError(f"data_path must be a path string, got {type(data_path).__name__}: {data_path!r}")
    if str(data_path) == STDLIB_CORPUS or (str(data_path) == AUTO and not resolve(BOOK_PATH).is_file()):
        return Corpus(
            stdlib_text(), "Python documentation topics (pydoc_data, standard library)", STDLIB_CORPUS
        )
    path = resolve(BOOK_PATH if str(data_path) == AUTO else data_path)
    text = read_text_file(path)
    return Corpus(text, path.name, str(path))


def training_text(corpus: dict) -> Corpus:
    """The text a model was trained on, from what its checkpoint records (``meta["corpus"]``).

    Looks at the recorded path, then at ``data/<name>`` (the same text in another checkout, when it
    has the recorded length). Raises FileNotFoundError naming the text and the way out when neither is there.
    """
    source, name = str(corpus.get("source", "")), str(corpus.get("name", "?"))
    if source == STDLIB_CORPUS:
        return load_corpus(STDLIB_CORPUS)
    for path in (resolve(source) if source else None, resolve("data") / Path(name).name):
        if path is not None and path.is_file():
            text = read_text_file(path)
            if path == resolve(source) or len(text) == corpus.get("n_chars"):
                return Corpus(text, path.name, str(path))
    raise FileNotFoundError(
        f"the text this model was trained on, {name!r}, is not at {source or 'the recorded path'} any more; "
        f"pass data_path='path/to/{Path(name).name}' (or another text) to use it here."
    )


def read_text_file(path) -> str:
    """Read a UTF-8 text file with universal newlines (CRLF and CR become LF).

    Raises errors that say what is wrong and how to fix it.
    """
    if not path.exists():
        raise FileNotFoundError(
            f"data_path {str(path)!r} does not exist. Put your text there (for the report, your own copy "
            f"of the book at {BOOK_PATH}), or pass data_path='{AUTO}' or '{STDLIB_CORPUS}' to use the "
            "corpus that ships with Python."
        )
    if path.is_dir():
        raise IsADirectoryError(
            f"data_path {str(path)!r} is a folder; pass the path of a text file inside it."
        )
    check_memory(path, path.stat().st_size)
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"data_path {str(path)!r} is empty; the model needs a text to learn from.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"data_path {str(path)!r} is not UTF-8 text: byte 0x{raw[err.start]:02x} at byte offset "
            f"{err.start} cannot be decoded ({err.reason}). Convert the file to UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 in.txt > out.txt`."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() reads text


BYTES_PER_BYTE = 1 + 4 + 4 + 8
"""Peak memory per byte of text while loading: the bytes, the str (up to 4 bytes a character),
its UTF-32 copy while encoding, and the encoded int64 array."""


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux and macOS), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(path, size: int) -> None:
    """Refuse, before reading, a text that would not fit in memory, saying how much it needs."""
    need, have = size * BYTES_PER_BYTE, available_memory()
    if have is not None and need > 0.8 * have:
        raise MemoryError(
            f"data_path {str(path)!r} has {human_bytes(size)} of text; loading and encoding it needs about "
            f"{human_bytes(need)} of memory but {human_bytes(have)} is available. Train on a part of it "
            "(e.g. `head -c 200M in.txt > part.txt`) or on a machine with more memory."
        )


def human_bytes(n: float) -> str:
    """A byte count for people: 512 bytes, 3.4 KiB, 120.0 MiB, 18.2 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def build_vocab(text: str) -> list[str]:
    """The vocabulary: the distinct characters of ``text`` in sorted order (K = its length)."""
    return sorted(set(text))


def default_prime(chars: list[str]) -> str:
    """The priming text when none is given: a line break (the assignment's), or, for a text without
    one, a space, or else the vocabulary's first character: always a character the model knows."""
    return next((ch for ch in ("\n", " ") if ch in chars), chars[0])


def known_part(text: str, chars: list[str]) -> tuple[str, list[str]]:
    """``text`` without the characters outside the vocabulary ``chars``, and those characters (sorted)."""
    vocab = set(chars)
    missing = sorted(set(text) - vocab)
    return ("".join(ch for ch in text if ch in vocab) if missing else text), missing


def unknown_note(missing: list[str], chars: list[str], what: str) -> str:
    """The one line that says which characters of ``what`` were left out, or "" when none were."""
    if not missing:
        return ""
    shown = ", ".join(repr(ch) for ch in missing[:10]) + (" ..." if len(missing) > 10 else "")
    return (
        f"left out of the {what}: {shown} ({'is' if len(missing) == 1 else 'are'} not among the "
        f"{len(chars)} characters the model was trained on)"
    )


def encode(text: str, chars: list[str]) -> np.ndarray:
    """Encode ``text`` as an int array of vocabulary indices, shape (len(text),).

    Vectorized over code points, so a book takes milliseconds. Raises ``ValueError`` naming the
    characters that are not in the vocabulary.
    """
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    vocab = np.array([ord(ch) for ch in chars], dtype=np.uint32)
    order = np.argsort(vocab, kind="stable")
    pos = np.minimum(np.searchsorted(vocab[order], codes), max(len(vocab) - 1, 0))
    known = vocab[order][pos] == codes if len(vocab) else np.zeros(len(codes), bool)
    if not known.all():
        missing = sorted(set(chr(c) for c in np.unique(codes[~known])))
        shown = ", ".join(repr(ch) for ch in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ValueError(
            f"{len(missing)} character(s) are not in the model's vocabulary of {len(chars)}: {shown}. "
            "Use only characters the model was trained on."
        )
    return order[pos].astype(np.int64)


def decode(indices, chars: list[str]) -> str:
    """Turn a sequence of vocabulary indices back into text."""
    return "".join(chars[int(i)] for i in indices)


def ngram_entropy(data: np.ndarray, K: int, order: int) -> float:
    """Entropy per character (nats) of an encoded text under its own n-gram statistics.

    ``order`` 1: the unigram entropy H(X) = -sum_c p(c) ln p(c), from character frequencies.
    ``order`` 2: the bigram (conditional) entropy H(X_t | X_{t-1}) = -sum_{a,b} p(a, b) ln p(b | a),
    from the frequencies of adjacent pairs. What a model that knows only the previous
    ``order - 1`` characters, and the text's exact statistics, would lose per character.
    """
    data = np.asarray(data)
    if order == 1:
        p = np.bincount(data, minlength=K) / len(data)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    if order == 2:
        pairs = np.bincount(data[:-1] * K + data[1:], minlength=K * K).reshape(K, K)
        joint = pairs / pairs.sum()
        cond = pairs / np.maximum(pairs.sum(axis=1, keepdims=True), 1)
        nz = pairs > 0
        return float(-(joint[nz] * np.log(cond[nz])).sum())
    raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order!r}")
