"""The one command behind ``make report``: run the notebooks with papermill, then render the report.

    python -m helpers.jobs.pipeline [--out-dir output/run] [-p NAME VALUE ...] [--no-pdf] [--pdf-engine NAME]

Each ``-p NAME VALUE`` goes to every notebook that declares ``NAME`` in its parameters cell
(VALUE is read as JSON when it parses, else as text). The executed notebooks go to
``OUT_DIR/notebooks/``; the report to ``OUT_DIR/report.html`` and ``OUT_DIR/report.pdf``
(printed by :mod:`helpers.report.pdf`: WeasyPrint, or ``--pdf-engine chromium`` / ``PDF_ENGINE=chromium``).
Exit status 2: a notebook or a parameter failed; 3: no PDF, the message says why (the HTML report is
written, unless the engine's name was unknown: that is refused before any notebook runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..common import lock
from ..common.paths import resolve
from ..report.pdf import PdfError, choose_engine, to_pdf
from ..report.render import to_html
from .notebooks import NotebookError, notebook_parameters, run_notebook

NOTEBOOKS = ("01_gradient_test", "02_train", "03_synthesis", "04_best_model", "05_report")


def plan(out_dir, params: dict) -> list[tuple[str, dict]]:
    """The notebooks to run, in order, each with the parameters it declares.

    Raises ValueError for a parameter that no notebook declares.
    """
    out = resolve(out_dir)
    wired = sorted(set(params) & {"out_dir", "run_dir", "checkpoint"})
    if wired:
        raise ValueError(
            f"{', '.join(wired)} follow(s) from --out-dir (checkpoints and results of one run stay "
            "together); pass --out-dir instead."
        )
    wiring = {"out_dir": str(out), "run_dir": str(out)}
    declared = {name: notebook_parameters(name) for name in NOTEBOOKS}
    known = set().union(*declared.values())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"no notebook has the parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    steps = []
    for name in NOTEBOOKS:
        given = {**wiring, **params}
        if name == "03_synthesis":
            given["checkpoint"] = str(out / "last.npz")
        if name == "04_best_model":
            given["checkpoint"] = str(out / "best.npz")
        steps.append((name, {k: v for k, v in given.items() if k in declared[name]}))
    return steps


def run(
    out_dir="output/run",
    params: dict | None = None,
    pdf: bool = True,
    log=print,
    log_output: bool = False,
    pdf_engine: str | None = None,
) -> dict[str, Path]:
    """Execute the notebooks into ``out_dir`` and render ``report.html`` (and ``report.pdf``).

    ``log_output`` streams the notebooks' printed output (training progress) to the log.
    ``pdf_engine`` goes to :func:`helpers.report.pdf.to_pdf` (None: ``$PDF_ENGINE``, else WeasyPrint);
    a PDF that cannot be made raises :class:`helpers.report.pdf.PdfError` after the HTML is written.
    A notebook that fails raises :class:`NotebookError`, which also names the outputs an earlier run
    left (the later executed notebooks, the report); another training in ``out_dir`` raises
    :class:`helpers.common.lock.FolderInUse` before any notebook runs.
    """
    if pdf:
        pdf_engine = choose_engine(pdf_engine)  # an unknown name fails now, not after training
    out = resolve(out_dir)
    lock.check_free(out)  # another training writes there: refused before any notebook runs (02 checks again)
    executed = out / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for name, values in plan(out, params or {}):
        start = time.perf_counter()
        log(f"[{name}] " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        try:
            run_notebook(name, executed / f"{name}.ipynb", values, log_output=log_output)
        except NotebookError as err:
            raise NotebookError(err.name, err.error, err.executed, stale_note(out, name, started)) from None
        log(f"[{name}] done in {time.perf_counter() - start:.1f} s")
    files = {"html": to_html(executed / "05_report.ipynb", out / "report.html")}
    log(f"report: {files['html']}")
    if pdf:
        files["pdf"] = to_pdf(files["html"], out / "report.pdf", engine=pdf_engine)
        log(f"report: {files['pdf']}")
    return files


def stale_note(out: Path, failed: str, started: float) -> str:
    """After notebook ``failed`` stopped: which outputs in ``out`` are an earlier run's (older than ``started``)."""
    later = NOTEBOOKS[NOTEBOOKS.index(failed) + 1 :]
    paths = [out / "notebooks" / f"{name}.ipynb" for name in later] + [
        out / "report.html",
        out / "report.pdf",
    ]
    stale = [str(p.relative_to(out)) for p in paths if p.is_file() and p.stat().st_mtime < started]
    if not stale:
        return ""
    return (
        f"Left in {out} from an earlier run, not this one: {', '.join(stale)}. Run the report again once the "
        "error is fixed, and they are replaced."
    )


class _CellOutputOnly(logging.Filter):
    """Pass the notebooks' printed lines (training progress); drop papermill's bookkeeping."""

    NOISE = (
        "Executing Cell",
        "Ending Cell",
        "<IPython.core.display",
        "Input Notebook",
        "Output Notebook",
        "Working directory",
        "Executing notebook with kernel",
        "Executing:",
        "Black is not installed",
        "<Figure size",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().strip()
        record.msg, record.args = message, ()
        return bool(message) and not message.startswith(self.NOISE)


def parse_value(text: str):
    """A command-line value: JSON when it parses (numbers, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.jobs.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out-dir", default="output/run", help="run folder (default: output/run)")
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, e.g. -p n_updates 100000 (repeatable)",
    )
    parser.add_argument("--no-pdf", action="store_true", help="render HTML only")
    parser.add_argument(
        "--pdf-engine",
        default=None,
        metavar="NAME",
        help="weasyprint or chromium (default: $PDF_ENGINE, else weasyprint)",
    )
    args = parser.parse_args(argv)
    params = {name: parse_value(value) for name, value in args.param}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("traitlets", "papermill.translators"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_CellOutputOnly())
    try:
        run(args.out_dir, params, pdf=not args.no_pdf, log_output=True, pdf_engine=args.pdf_engine)
    except (ValueError, FileNotFoundError, NotebookError, lock.FolderInUse) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PdfError as err:
        print(f"error: no PDF: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
