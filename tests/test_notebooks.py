"""Papermill runs of all five notebooks with tiny parameters, and the report they render."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import uuid

import nbformat
import numpy as np
import papermill
import pytest
from pypdf import PdfReader

from helpers.common.paths import ROOT
from helpers.jobs import notebooks, pipeline
from helpers.report.render import ReportExporter
from helpers.report.sections import after
from helpers.train import checkpoint

from conftest import TINY

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture
def run_dir(report_run):
    return report_run


def test_notebooks_are_committed_clean_and_thin():
    assert set(pipeline.NOTEBOOKS) <= {p.stem for p in NOTEBOOKS}
    assert all(p.stem[:2].isdigit() and p.stem[2] == "_" for p in NOTEBOOKS)  # numbered, run in order
    for path in NOTEBOOKS:
        nb = nbformat.reads(notebooks.stored(path), as_version=4)  # what git holds, whatever the Lab saved
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one parameters cell"
        assert not any("def " in c.source or "lambda" in c.source for c in code), (
            f"{path.name} defines functions"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_type_default_and_help(path):
    params = papermill.inspect_notebook(path)
    assert params, f"{path.name}: papermill found no parameters"
    for name, info in params.items():
        assert info["inferred_type_name"] not in ("None", ""), f"{path.name}: {name} has no type"
        assert info["help"], f"{path.name}: {name} has no comment"


def test_train_notebook_declares_the_documented_parameters():
    declared = set(papermill.inspect_notebook(ROOT / "notebooks" / "02_train.ipynb"))
    assert {
        "data_path",
        "out_dir",
        "seed",
        "m",
        "eta",
        "seq_length",
        "sig",
        "n_updates",
        "sample_every",
        "sample_until",
        "sample_length",
    } <= declared


def test_unknown_pipeline_parameter_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no notebook has the parameter.*n_update\\b"):
        pipeline.plan(tmp_path, {"n_update": 5})


def test_pipeline_writes_every_result_file(run_dir):
    for name in (
        "gradcheck.json",
        "train_log.csv",
        "samples.json",
        "best.npz",
        "last.npz",
        "run.json",
        "synthesis.json",
        "best_passage.json",
        "report.html",
    ):
        assert (run_dir / name).is_file(), name
    for name in pipeline.NOTEBOOKS:
        nb = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name}: {errors}"


def test_gradcheck_json_layout(run_dir):
    g = json.loads((run_dir / "gradcheck.json").read_text())
    assert g["h"] == 1e-4 and g["m"] == TINY["m"]
    assert set(g["errors"]) == {"4", "7"}
    for T in ("4", "7"):
        assert set(g["errors"][T]) == {"U", "W", "V", "b", "c"}
        assert all(0 <= e < 1e-6 for e in g["errors"][T].values())
        # |d_i| <= r (|a_i| + |n_i|) for every i implies ||d|| <= r (||a|| + ||n||): max >= norm figure
        assert all(g["max_errors"][T][n] >= g["errors"][T][n] * (1 - 1e-9) for n in "UWVbc")


def test_training_outputs_follow_the_schedule(run_dir):
    samples = json.loads((run_dir / "samples.json").read_text())
    assert [s["step"] for s in samples] == [0, 200, 400]
    assert all(len(s["text"]) == TINY["sample_length"] for s in samples)
    rows = np.loadtxt(run_dir / "train_log.csv", delimiter=",", skiprows=1)
    assert (run_dir / "train_log.csv").read_text().splitlines()[0] == "step,loss,smooth_loss"
    assert rows[0, 0] == 1 and rows[-1, 0] == TINY["n_updates"]
    last = checkpoint.load(run_dir / "last.npz")
    best = checkpoint.load(run_dir / "best.npz")
    assert last.step == TINY["n_updates"] and best.smooth_loss <= last.smooth_loss
    with np.load(run_dir / "last.npz", allow_pickle=False) as z:
        assert {
            "U",
            "W",
            "V",
            "b",
            "c",
            "mU",
            "mW",
            "mV",
            "mb",
            "mc",
            "hprev",
            "step",
            "smooth_loss",
            "chars",
            "meta",
        } <= set(z.files)


def test_best_passage_comes_from_best_checkpoint(run_dir):
    passage = json.loads((run_dir / "best_passage.json").read_text())
    best = checkpoint.load(run_dir / "best.npz")
    assert passage["step"] == best.step and passage["smooth_loss"] == pytest.approx(best.smooth_loss)
    assert len(passage["text"]) == TINY["length"] and set(passage["text"]) <= set(best.chars)


def test_report_html_holds_the_run_results(run_dir):
    raw = (run_dir / "report.html").read_text(encoding="utf-8")
    # self-contained: nothing fetched from the network, works offline (its one script, the live model, is inline)
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=\"?https?:|\bsrc=\"?https?:", raw)
    assert len(re.findall(r'<script[^>]*type="application/json"', raw)) == 1 and "charrnn-live" in raw
    text = html.unescape(raw)
    run = json.loads((run_dir / "run.json").read_text())
    g = json.loads((run_dir / "gradcheck.json").read_text())
    assert "Table 1" in text and "Figure 2" in text and "data:image/png;base64," in text
    assert f"{g['errors']['7']['W']:.2e}" in text
    for s in json.loads((run_dir / "samples.json").read_text()):
        assert f"{after(s['step']).capitalize()}, smooth loss {s['smooth_loss']:.2f}" in text
        assert s["text"] in text
    assert json.loads((run_dir / "best_passage.json").read_text())["text"] in text
    assert f"{run['best_smooth_loss']:.2f}" in text
    assert "pydoc_data" in text and "not comparable" in text  # says which corpus it used
    assert (
        "def " not in text.split("<body")[1] and "sections." not in text
    )  # no code cells (05 calls sections.)
    assert (run_dir / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_pdf_reads_like_the_report(run_dir):
    """The PDF's own text (pypdf): Table 1 as the report formats it, Figure 2, samples, page numbers."""
    pages = [page.extract_text() for page in PdfReader(run_dir / "report.pdf").pages]
    text = "\n".join(pages)
    n = len(pages)
    assert n >= 2
    for i, page in enumerate(pages, 1):
        assert f"page {i} of {n}" in page  # the bottom margin
    title = "A vanilla character-level RNN trained with AdaGrad"
    assert all(title in page for page in pages[1:])  # the top margin, after the title page
    first = " ".join(pages[0].split())
    g = json.loads((run_dir / "gradcheck.json").read_text())
    # page 1: the title, the run's provenance and Table 1, whole, with its caption
    # (pypdf reads the Markdown cells' text after the outputs' on a page, so order is not checked here)
    assert title in first and "Training text: Python documentation topics" in first
    assert "Table 1. Relative error of the analytic gradient" in first
    for T in ("4", "7"):
        row = " ".join(f"{g['errors'][T][name]:.2e}" for name in "UWVbc")
        assert f"{T} {row}" in first, row  # a row of Table 1: seq_length, then U W V b c
    assert "seq_length U W V b c" in first
    for needle in (
        "1 Testing the gradient implementation",
        "Figure 2. Smooth loss over 600 updates",
        "After 200 updates, smooth loss",
        "4 The best model",
    ):
        assert needle in text, needle
    flat = " ".join(text.split())
    for sample in json.loads((run_dir / "samples.json").read_text()):
        assert " ".join(sample["text"].split()[:3]) in flat  # each sample's first words, as synthesized


def _outputs(run_dir, name):
    nb = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_batch_run_shows_static_sample_not_a_widget(run_dir):
    outputs = _outputs(run_dir, "03_synthesis")
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any("Static sample" in o.get("data", {}).get("text/html", "") for o in outputs)


def test_progress_does_not_flood_the_executed_notebook(run_dir):
    outputs = _outputs(run_dir, "02_train")
    bars = [o for o in outputs if "<progress" in o.get("data", {}).get("text/html", "")]
    assert len(bars) == 1 and f'value="{TINY["n_updates"]}"' in bars[0]["data"]["text/html"]
    streamed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(streamed.splitlines()) < 20  # a line per sample_every updates, not per update
    assert not any("widget-view" in str(o.get("data", {})) for o in outputs)


def test_relative_paths_mean_the_repository_root_from_inside_notebooks():
    """JupyterLab runs a notebook with its working directory in notebooks/; paths still mean the root."""
    rel = f"output/test-cwd-{uuid.uuid4().hex[:8]}"
    try:
        papermill.execute_notebook(
            ROOT / "notebooks" / "01_gradient_test.ipynb",
            None,
            cwd=str(ROOT / "notebooks"),
            parameters={"data_path": "pydoc_data", "out_dir": rel, "m": 4, "seq_lengths": [3]},
            progress_bar=False,
            kernel_name="python3",
        )
        result = json.loads((ROOT / rel / "gradcheck.json").read_text())
        assert result["m"] == 4 and not (ROOT / "notebooks" / rel).exists()
    finally:
        shutil.rmtree(ROOT / rel, ignore_errors=True)


@pytest.mark.parametrize("name", ["out_dir", "run_dir", "checkpoint"])
def test_pipeline_keeps_one_run_folder(tmp_path, name):
    with pytest.raises(ValueError, match=f"{name} follow.* from --out-dir"):
        pipeline.plan(tmp_path, {name: str(tmp_path / "elsewhere")})


def test_figure_2_goes_into_the_run_folder_unless_it_is_the_default_run(tmp_path):
    from helpers.report import sections

    assert sections.figure_file(tmp_path) == tmp_path / "smooth_loss.png"
    assert sections.figure_file("output/run") == ROOT / "figures" / "smooth_loss.png"
    assert sections.figure_file(tmp_path, "elsewhere/f.png") == ROOT / "elsewhere" / "f.png"
    assert "figure_path" not in dict(pipeline.plan(tmp_path, {}))["05_report"]


def test_training_notebook_shows_figure_2_as_an_image(run_dir):
    outputs = _outputs(run_dir, "02_train")
    assert any(o.get("data", {}).get("image/png") for o in outputs)
    assert not any(
        "<Figure size" in o.get("data", {}).get("text/plain", "") and "image/png" not in o.get("data", {})
        for o in outputs
    )


def test_report_states_the_constants_run_json_records(run_dir, tmp_path):
    """Nothing in the report is restated by hand: change a constant in run.json and the text follows."""
    from helpers.report import sections

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    text = sections.training_settings(copy).data
    assert (
        "AdaGrad with eps = 1e-8" in text
        and "[−5, 5]" in text
        and "0.999 · smooth_loss + 0.001 · loss" in text
    )
    run = json.loads((copy / "run.json").read_text())
    run["constants"].update(clip=3.0, smoothing=0.99, optimizer_settings={"eps": 1e-6})
    (copy / "run.json").write_text(json.dumps(run))
    text = sections.training_settings(copy).data
    assert (
        "AdaGrad with eps = 1e-6" in text and "[−3, 3]" in text and "0.99 · smooth_loss + 0.01 · loss" in text
    )


def test_notebooks_are_stored_as_jupyterlab_writes_them():
    """Opening and saving a notebook in JupyterLab changes nothing git stores: nbformat's JSON, current
    minor version, cell ids, the project's kernelspec and language_info, no outputs."""
    for path in NOTEBOOKS:
        text = notebooks.stored(path)
        assert text == notebooks.normalized_text(text, path.stem[:2]), (
            f"{path.name} is not stored as JupyterLab saves it; run: python -m helpers.jobs.notebooks normalize"
        )
    assert notebooks.main(["check"]) == 0


def test_the_check_reads_what_git_stores_and_bites(tmp_path):
    """A notebook committed with its outputs fails the check, whatever the file on disk holds."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    path = repo / "notebooks" / NOTEBOOKS[0].name
    nbformat.write(nb, path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    assert "outputs" in notebooks.stored(path) and notebooks.main(["check", str(path)]) == 1
    path.write_text(notebooks.normalized(path), encoding="utf-8")  # the file is clean, the index is not
    assert notebooks.main(["check", str(path)]) == 1
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    assert notebooks.main(["check", str(path)]) == 0


def test_report_words_are_markdown_and_its_code_is_hidden():
    nb = nbformat.read(ROOT / "notebooks" / "05_report.ipynb", as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in (
        "# A vanilla character-level RNN",
        "## 1 Testing the gradient implementation",
        "## 2 The smooth loss",
        "## 3 Text synthesized during training",
        "## 4 The best model",
        "$$",
    ):
        assert heading in markdown, heading
    code = [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in code)
    assert all(len(c.source.splitlines()) <= 2 for c in code)  # numbers, tables and figures from helpers


def test_report_exporter_is_what_jupyterlab_offers(run_dir):
    """File > Save and Export Notebook As > Report (the nbconvert exporter "report") gives the clean report:
    the executed 05, papermill's injected cell included, without code, prompts or the note to the student."""
    from nbconvert.exporters.base import get_exporter

    assert get_exporter("report") is ReportExporter
    nb = nbformat.read(run_dir / "notebooks" / "05_report.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    body, _ = ReportExporter().from_notebook_node(nb)
    text = html.unescape(body)
    assert "Table 1" in text and "<script src" not in body
    for code in ("sections.", "run_dir:", "figure_path", "This notebook is the report"):
        assert code not in text, code
    assert (run_dir / "report.html").read_text(encoding="utf-8") == body


def test_a_short_run_shows_what_it_learned(tmp_path):
    """A run shorter than sample_every ends with a sample of its final model, and the report says why."""
    out = tmp_path / "short"
    papermill.execute_notebook(
        ROOT / "notebooks" / "02_train.ipynb",
        tmp_path / "02.ipynb",
        cwd=str(ROOT),
        parameters={
            **{k: v for k, v in TINY.items() if k in ("data_path", "m", "seed")},
            "out_dir": str(out),
            "n_updates": 150,
            "sample_every": 1000,
            "sample_length": 30,
        },
        progress_bar=False,
        kernel_name="python3",
    )
    samples = json.loads((out / "samples.json").read_text())
    assert [s["step"] for s in samples] == [0, 150] and samples[-1]["final"]
    shown = html.unescape(
        "".join(
            o.get("data", {}).get("text/html", "")
            for c in nbformat.read(tmp_path / "02.ipynb", as_version=4).cells
            for o in c.get("outputs", [])
        )
    )
    assert "After 150 updates (the end of training)" in shown and "before the next scheduled sample" in shown


def test_errors_raised_on_purpose_show_their_message_not_a_traceback(tmp_path):
    executed = tmp_path / "01.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            ROOT / "notebooks" / "01_gradient_test.ipynb",
            executed,
            cwd=str(ROOT),
            parameters={"data_path": "no/such/book.txt", "out_dir": str(tmp_path)},
            progress_bar=False,
            kernel_name="python3",
        )
    assert err.value.ename == "FileNotFoundError" and "no/such/book.txt" in err.value.evalue
    errors = [
        o
        for c in nbformat.read(executed, as_version=4).cells
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert len(errors) == 1 and len(errors[0].traceback) == 2 and "does not exist" in errors[0].traceback[0]


def test_every_notebook_shows_the_packages_errors_as_one_line_whatever_it_imports():
    """``%load_ext helpers`` opens every notebook; importing the package installs nothing by itself."""
    for path in NOTEBOOKS:
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert first.source.startswith("%load_ext helpers\n"), path.name
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import IPython.core.interactiveshell as s; import helpers.runs.steps, "
            "helpers.report.sections; print(s.InteractiveShell.initialized())",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "False", done.stderr  # no shell was created or touched on import


def test_a_report_on_mixed_runs_says_in_one_line_which_notebooks_to_run_again(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("notebooks"))
    passage = json.loads((copy / "best_passage.json").read_text())
    (copy / "best_passage.json").write_text(json.dumps({**passage, "run_id": "an0ther0run0"}))
    executed = tmp_path / "05.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="re-run notebooks/04_best_model.ipynb"):
        papermill.execute_notebook(
            ROOT / "notebooks" / "05_report.ipynb",
            executed,
            parameters={"run_dir": str(copy)},
            cwd=str(ROOT),
            progress_bar=False,
            kernel_name="python3",
        )
    errors = [
        o
        for c in nbformat.read(executed, as_version=4).cells
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert len(errors) == 1 and len(errors[0].traceback) == 2 and "mixes two runs" in errors[0].traceback[0]


def test_the_post_save_hook_keeps_git_status_clean_and_leaves_real_edits(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / ".gitattributes").write_text((ROOT / ".gitattributes").read_text())
    path = repo / "notebooks" / "01_gradient_test.ipynb"
    path.write_text(notebooks.stored(NOTEBOOKS[0]), encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "config", "filter.notebook.clean", f"{sys.executable} -m helpers.jobs.notebooks clean %f"],
        cwd=repo,
        check=True,
    )
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)

    def status():
        return subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
        ).stdout

    nb = nbformat.read(path, as_version=4)  # the Lab ran it and saved it with its outputs
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs, code.execution_count = [nbformat.v4.new_output("stream", text="hello\n")], 1
    nbformat.write(nb, path)
    assert (
        status() == " M notebooks/01_gradient_test.ipynb\n"
    )  # git trusts the size: a filter alone is not enough
    assert subprocess.run(["git", "diff", "--quiet"], cwd=repo).returncode == 0  # ... though nothing differs
    assert notebooks.after_save(os_path=str(path)) and status() == "" and "hello" in path.read_text()
    nb.cells[0].source += "\n\nA sentence of my own."  # a real edit: left for the user to add
    nbformat.write(nb, path)
    assert not notebooks.after_save(os_path=str(path)) and status() == " M notebooks/01_gradient_test.ipynb\n"
    assert not notebooks.after_save(os_path=str(tmp_path / "elsewhere.ipynb"))
