"""The journeys users take, end to end with papermill: their own text through 01-05, with 03 and 04
given nothing but the checkpoint, as a user who trained on their own file would run them.

The texts are the ones users bring and that break tools: UTF-8 beyond ASCII, emoji, CRLF line ends,
no final newline; and a tiny alphabet without a line break (the default prime is a line break).
"""

from __future__ import annotations

import html
import json
import re

import nbformat
import numpy as np
import papermill
import pytest

from helpers.common.paths import ROOT
from helpers.report.render import ReportExporter

WORDS = [
    "Grüße",
    "naïve",
    "café",
    "Ærøskøbing",
    "smörgåsbord",
    "façade",
    "über",
    "“Ça va?”",
    "—",
    "日本語",
    "🐍",
    "🙂",
    "👩‍🔬",
    "ﬁn",
    "Ωmega",
    "crème brûlée",
    "¿qué?",
    "¡sí!",
    "10 %",
    "x²",
]


def own_text(rng: np.random.Generator, lines: int = 500) -> bytes:
    """Lines of words from WORDS, CRLF line ends, no final newline; UTF-8 bytes."""
    out = [
        " ".join(rng.choice(WORDS, size=rng.integers(3, 9))) + rng.choice([".", ",", "!", ""])
        for _ in range(lines)
    ]
    return "\r\n".join(out).encode("utf-8")


def execute(name: str, executed, **parameters) -> nbformat.NotebookNode:
    """Run notebooks/<name>.ipynb with papermill as a user would (from the repository root)."""
    papermill.execute_notebook(
        ROOT / "notebooks" / f"{name}.ipynb",
        executed,
        parameters=parameters,
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
    )
    return nbformat.read(executed, as_version=4)


def plain(markup: str) -> str:
    """The text of some HTML, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def shown(nb) -> str:
    """Everything a notebook's outputs show, as text."""
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts += [
                o.get("text", ""),
                o.get("data", {}).get("text/html", ""),
                o.get("data", {}).get("text/plain", ""),
            ]
    return plain("\n".join(parts))


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """A text of the user's own (non-ASCII, emoji, CRLF, no final newline), trained by 02 with a few settings."""
    folder = tmp_path_factory.mktemp("own")
    text = folder / "my text.txt"
    text.write_bytes(own_text(np.random.default_rng(0)))
    run = folder / "run"
    execute(
        "02_train",
        folder / "02.ipynb",
        data_path=str(text),
        out_dir=str(run),
        m=16,
        n_updates=400,
        sample_every=200,
        sample_length=60,
        checkpoint_every=200,
        log_every=10,
    )
    return folder, text, run


def test_own_text_through_every_notebook_with_only_the_checkpoint(own_run):
    folder, text, run = own_run
    execute(
        "01_gradient_test", folder / "01.ipynb", data_path=str(text), out_dir=str(run), m=8, seq_lengths=[5]
    )
    nb3 = execute("03_synthesis", folder / "03.ipynb", checkpoint=str(run / "last.npz"))
    nb4 = execute("04_best_model", folder / "04.ipynb", checkpoint=str(run / "best.npz"))
    for name in ("synthesis.json", "best_passage.json"):  # written beside the checkpoint
        assert (run / name).is_file(), name
    vocab = set(text.read_text(encoding="utf-8").replace("\r\n", "\n"))
    assert "\r" not in vocab and set(json.loads((run / "synthesis.json").read_text())["text"]) <= vocab
    out3 = shown(nb3)
    assert "unit " in out3 and "my text.txt" in out3  # the hidden units, on the text the model learned
    assert "held out" in shown(nb4) or "trained on too" in shown(nb4)  # the slice loss, on that text
    nb5 = execute("05_report", folder / "05.ipynb", run_dir=str(run))
    body, _ = ReportExporter().from_notebook_node(nb5)
    report = plain(body)
    assert "Training text: my text.txt" in report and "Traceback" not in report
    assert json.loads((run / "best_passage.json").read_text())["text"] in report


def test_a_tiny_alphabet_without_a_line_break(tmp_path):
    """A text of three characters and no line break: the default prime must still be one the model knows."""
    text = tmp_path / "abc.txt"
    text.write_text("abc cab bac " * 200 + "abc", encoding="utf-8")
    run = tmp_path / "run"
    execute(
        "02_train",
        tmp_path / "02.ipynb",
        data_path=str(text),
        out_dir=str(run),
        m=8,
        n_updates=100,
        sample_every=50,
        sample_length=20,
        checkpoint_every=50,
    )
    execute("03_synthesis", tmp_path / "03.ipynb", checkpoint=str(run / "last.npz"), length=50)
    execute("04_best_model", tmp_path / "04.ipynb", checkpoint=str(run / "best.npz"), length=50)
    passage = json.loads((run / "best_passage.json").read_text())
    assert set(passage["text"]) <= set("abc ") and len(passage["text"]) == 50


def test_a_training_says_which_run_it_replaces_before_it_trains(tmp_path, capsys):
    from helpers.runs import steps

    text = tmp_path / "t.txt"
    text.write_text("one two three four five six seven\n" * 40, encoding="utf-8")
    small = dict(m=8, seq_length=8, sample_every=1000, checkpoint_every=20, log_every=5)
    first = steps.train(str(text), str(tmp_path / "run"), n_updates=20, **small)
    (tmp_path / "run" / "report.html").write_text("<html></html>")
    capsys.readouterr()
    steps.train(
        str(text), str(tmp_path / "run"), n_updates=40, init_from=str(tmp_path / "run" / "last.npz"), **small
    )
    assert "replaces" not in capsys.readouterr().out  # resuming the same run replaces nothing
    steps.train(str(text), str(tmp_path / "run"), n_updates=10, **small)
    out = capsys.readouterr().out
    assert out.startswith(
        f"note: {tmp_path / 'run'} holds run {first['run_id']} (40 updates on t.txt) and the report"
    )
    assert "replaces its checkpoints and results" in out and "output/lab" in out


def test_the_training_text_is_found_in_data_when_the_checkpoint_moved_checkouts(tmp_path, monkeypatch):
    from helpers.data import text as data

    monkeypatch.setattr(data, "resolve", lambda p: tmp_path / p)  # this checkout's root is tmp_path
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "book.txt").write_text("abc\r\ndef", encoding="utf-8")
    recorded = {"name": "book.txt", "source": "/another/checkout/data/book.txt", "n_chars": 7}
    assert data.training_text(recorded).text == "abc\ndef"
    with pytest.raises(FileNotFoundError, match="'book.txt', is not at /another/checkout/data/book.txt"):
        data.training_text({**recorded, "n_chars": 8})  # another text of that name is not taken for it
