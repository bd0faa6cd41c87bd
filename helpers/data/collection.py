"""A collection of short documents (tweets, headlines, ...) read from one file.

The format follows the file's extension:

``.json``
    A list of strings, or of objects whose ``text_field`` holds the text, as the public tweet
    archives are. A dotted field (``tweet.full_text``) reaches into nested objects, and
    Twitter's own archive file ``tweets.js`` (``window.YTD.tweets.part0 = [...]``) is read too.
``.jsonl``, ``.ndjson``
    JSON Lines: one string or object per line.
``.csv``, ``.tsv``
    A table with a header row; ``text_field`` names the column.
anything else
    Plain text, one document per line.

Documents are kept as written (newlines inside a JSON or CSV document included); empty and
whitespace-only ones are dropped. Every error names the problem and the fix. With an empty
``data_path`` a collection that ships with every Python stands in: the sentences of at most 140
characters in the documentation topics of :mod:`pydoc_data`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pydoc_data.topics import topics

import numpy as np

from ..common.paths import resolve
from .text import encode, read_text_file

STDLIB_SOURCE = "pydoc_data:sentences"
"""``Collection.source`` of the standard-library stand-in."""
JSON_LINES = (".jsonl", ".ndjson")
TABLES = {".csv": ",", ".tsv": "\t"}
END_CHAR = "\x03"
"""The end-of-text character (ASCII ETX) that closes every document for the model; stored in the
vocabulary and in checkpoints' ``meta["end_char"]``."""


@dataclass(frozen=True)
class Collection:
    """Loaded documents and where they came from.

    Attributes
    ----------
    documents : list of str
    name : str
        What the report calls the collection.
    source : str
        The resolved path, or ``STDLIB_SOURCE``.
    dropped : int
        Empty documents that were left out.
    """

    documents: list
    name: str
    source: str
    dropped: int = 0

    def info(self) -> dict:
        """What result files record about the collection."""
        lengths = [len(d) for d in self.documents]
        return {
            "name": self.name,
            "source": self.source,
            "n_documents": len(lengths),
            "n_chars": sum(lengths),
            "mean_length": sum(lengths) / len(lengths),
            "max_length": max(lengths),
            "dropped": self.dropped,
        }


def stdlib_documents(max_length: int = 140) -> list[str]:
    """Sentences of at most ``max_length`` characters from the documentation topics Python ships.

    Only prose paragraphs are used (indented code and headline underlines are skipped); each
    sentence appears once, in topic order. About 900 sentences on CPython 3.11.
    """
    found: dict[str, None] = {}
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            if para[:1] in ("", " ", "*", "=", "-"):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(para.split())):
                if 20 <= len(sentence) <= max_length and sentence.endswith((".", "!", "?")):
                    found.setdefault(sentence)
    return list(found)


def load_collection(data_path: str = "", text_field: str = "text") -> Collection:
    """Read the documents in ``data_path`` (see the module docstring for the formats).

    Parameters
    ----------
    data_path : str
        A file (relative paths are read from the repository root); empty for the
        standard-library stand-in.
    text_field : str
        The JSON field or CSV column that holds the text (ignored for plain text and for JSON
        strings).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ValueError
        With a message that names the problem and the fix.
    """
    if not isinstance(data_path, str) or not isinstance(text_field, str):
        raise TypeError(f"data_path and text_field must be strings, got {data_path!r} and {text_field!r}")
    if not data_path:
        return Collection(
            stdlib_documents(),
            "sentences of the Python documentation (pydoc_data, standard library)",
            STDLIB_SOURCE,
        )
    path = resolve(data_path)
    if not path.exists():
        raise FileNotFoundError(
            f"data_path {str(path)!r} does not exist. Pass the path of your collection (JSON, "
            "JSON Lines, CSV, or text with one document per line), or an empty data_path to "
            "use the sentences of the documentation that ships with Python."
        )
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(_empty(path, 0))
    text = read_text_file(path).removeprefix("\ufeff")  # missing, folder, memory, UTF-8: data.py's checks
    suffix = path.suffix.lower()
    if suffix in (".json", ".js"):
        items = _json_items(text, path, suffix == ".js")
    elif suffix in JSON_LINES:
        items = _json_lines(text, path)
    elif suffix in TABLES:
        items = _table(text, path, TABLES[suffix], text_field)
    else:
        items = [(line, f"line {i}") for i, line in enumerate(text.removesuffix("\n").split("\n"), start=1)]
    raw = [_text_of(item, where, text_field, path) for item, where in items]
    documents = [d for d in raw if d.strip()]
    if not documents:
        raise ValueError(_empty(path, len(raw)))
    return Collection(documents, path.name, str(path), dropped=len(raw) - len(documents))


def _empty(path, n_dropped: int) -> str:
    dropped = f" ({n_dropped} empty ones were dropped)" if n_dropped else ""
    return (
        f"data_path {str(path)!r} holds no documents{dropped}. Put one document per line (.txt), a JSON list of "
        "strings or objects (.json), one JSON value per line (.jsonl), or a CSV table with a header (.csv), "
        "and check text_field."
    )


def _json_error(
    err: json.JSONDecodeError, path, kind: str = "JSON", line_no: int | None = None
) -> ValueError:
    line_no = line_no or err.lineno
    line = err.doc.split("\n")[err.lineno - 1].strip()
    shown = line[:60] + (" ..." if len(line) > 60 else "")
    return ValueError(
        f"data_path {str(path)!r} is not valid {kind}: {err.msg} at line {line_no}, column {err.colno} "
        f"({shown!r}). Fix that line; a file with one JSON value per line should be named .jsonl."
    )


def _json_items(text: str, path, archive: bool) -> list:
    """(item, where) pairs of a JSON list; ``archive`` strips Twitter's ``window.YTD... =`` prefix."""
    if archive and text.lstrip().startswith("window."):
        text = " " * text.index("=") + text[text.index("=") + 1 :]  # same line and column numbers
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(err, path) from None
    if not isinstance(value, list):
        keys = f" with the keys {', '.join(list(value)[:8])}" if isinstance(value, dict) else ""
        raise ValueError(
            f"data_path {str(path)!r} holds a JSON {type(value).__name__}{keys}, not a list. The "
            'collection must be a list of strings or of objects, e.g. [{"text": "..."}, ...]; '
            "save the list itself to the file."
        )
    return [(item, f"item {i}") for i, item in enumerate(value)]


def _json_lines(text: str, path) -> list:
    items = []
    for i, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                items.append((json.loads(line), f"line {i}"))
            except json.JSONDecodeError as err:
                raise _json_error(err, path, "JSON Lines", line_no=i) from None
    return items


def _table(text: str, path, delimiter: str, column: str) -> list:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = reader.fieldnames or []
        if column not in header:
            raise ValueError(
                f"data_path {str(path)!r} has no column {column!r}; its columns are "
                f"{', '.join(map(repr, header[:12])) or 'none'}. Pass text_field with the column that "
                "holds the text."
            )
        return [(row[column] or "", f"line {reader.line_num}") for row in reader]
    except csv.Error as err:
        raise ValueError(
            f"data_path {str(path)!r} is not a valid table at line {reader.line_num}: {err}. Fix the "
            "quoting there, or save the collection as JSON Lines (.jsonl)."
        ) from None


def _text_of(item, where: str, field: str, path) -> str:
    """The text of one item: the item itself when it is a string, else its (dotted) ``field``."""
    value, walked = item, []
    if isinstance(item, dict):
        for key in field.split("."):
            if not isinstance(value, dict) or key not in value:
                keys = (
                    ", ".join(map(repr, list(value)[:12]))
                    if isinstance(value, dict)
                    else type(value).__name__
                )
                raise ValueError(
                    f"{where} of {str(path)!r} has no field {'.'.join(walked + [key])!r} (it has: "
                    f"{keys}). Pass text_field with the field that holds the text (a dotted path such "
                    "as 'tweet.full_text' for nested objects)."
                )
            value = value[key]
            walked.append(key)
    if not isinstance(value, str):
        what = f"the field {field!r}" if walked else "a string or an object"
        raise ValueError(
            f"{where} of {str(path)!r}: expected {what} holding text, got {type(value).__name__} "
            f"{str(value)[:40]!r}. Remove that entry or fix it."
        )
    return value


def check_end_char(documents: list[str], end_char: str = END_CHAR) -> None:
    """Raise ValueError naming the first document that contains ``end_char``."""
    for i, doc in enumerate(documents):
        if end_char in doc:
            raise ValueError(
                f"document {i + 1} of {len(documents)} contains the end-of-text character "
                f"U+{ord(end_char):04X}, which marks the end of every document for the model: "
                f"{doc[:50]!r}. Remove that character from the collection."
            )


def encode_documents(
    documents: list[str], chars: list[str], end_char: str = END_CHAR, pad: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``END d_0 END d_1 ... END d_n-1 END`` (plus ``pad`` unused END characters).

    Returns
    -------
    data : int array
    starts : int array (n+1,)
        ``data[starts[i]]`` is the END before document i and ``data[starts[i+1]]`` the END after it.
    """
    text = end_char + end_char.join(documents) + end_char * (1 + pad)
    return encode(text, chars), np.cumsum([0] + [len(d) + 1 for d in documents])
