"""Running a notebook with papermill (the one call behind the pipeline, the comparison and the
sweep), and keeping the committed notebooks in the form JupyterLab saves.

    python -m helpers.runs.notebooks normalize [notebooks/*.ipynb]    # rewrite them so
    python -m helpers.runs.notebooks check [notebooks/*.ipynb]        # exit 1 if one is not so

JupyterLab marks a notebook as modified the moment it opens when its file differs from what it
would save: another kernelspec name, no ``language_info``, an older nbformat minor, cells without
ids. :func:`normalize` writes exactly what JupyterLab would (nbformat's JSON, one-space indent),
outputs cleared, with this environment's kernel (``make venv`` registers it) and Python.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..common.paths import ROOT

KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]
"""Kernel options: no kernel chatter on the terminal (errors still land in the executed notebook)."""
NOTEBOOKS = ROOT / "notebooks"


class NotebookError(RuntimeError):
    """A notebook raised an error or could not run; the message names the notebook, the error and
    the executed copy. ``error`` is the short form, e.g. ``"ValueError: m must be > 0"``."""

    def __init__(self, name: str, error: str, executed: Path, note: str = ""):
        super().__init__(f"{name} stopped with {error}\n(the executed notebook: {executed})"
                         + (f"\n{note}" if note else ""))
        self.name, self.error, self.executed, self.note = name, error, executed, note


def notebook_parameters(name: str) -> dict[str, str]:
    """The parameters notebook ``name`` declares: ``{name: default as written}``."""
    import papermill

    return {p: info["default"] for p, info in papermill.inspect_notebook(NOTEBOOKS / f"{name}.ipynb").items()}


def run_notebook(name: str, executed, parameters: dict, log_output: bool = False) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` into ``executed``, working directory
    the repository root; raises :class:`NotebookError` when a cell fails.

    ``log_output`` copies what the cells print (training progress) to this process's stdout and
    stderr; the tables, figures and code listings they display stay in the executed notebook.
    """
    import papermill

    executed = Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if log_output else {}
    try:
        papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", executed, parameters=parameters, cwd=str(ROOT),
                                   progress_bar=False, kernel_name="python3", extra_arguments=KERNEL_QUIET,
                                   **streams)
    except papermill.PapermillExecutionError as err:
        raise NotebookError(name, f"{err.ename}: {err.evalue}", executed) from None
    return executed


def kernel_metadata() -> dict:
    """The notebook metadata JupyterLab writes once this environment's ``python3`` kernel has started."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
            "language_info": dict(IPythonKernel.language_info)}


def normalized(path) -> str:
    """The text of notebook ``path`` as JupyterLab would save it here, with its outputs cleared."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.nbformat_minor = nbformat.current_nbformat_minor
    nb.metadata.update(kernel_metadata())
    stem = Path(path).stem[:2]
    ids = set()
    for i, cell in enumerate(nb.cells):
        if not cell.get("id") or cell.id in ids:
            cell.id = f"{stem}-{i:02d}"
        ids.add(cell.id)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def normalize(paths) -> list[Path]:
    """Rewrite each notebook in ``paths`` as :func:`normalized`; returns those that changed."""
    changed = []
    for path in map(Path, paths):
        text = normalized(path)
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("normalize", "check"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    paths = args[1:] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if args[0] == "check":
        stale = [str(p) for p in paths if Path(p).read_text(encoding="utf-8") != normalized(p)]
        for p in stale:
            print(f"{p} is not as JupyterLab saves it; run: python -m helpers.runs.notebooks normalize {p}")
        return 1 if stale else 0
    for p in normalize(paths):
        print(f"normalized {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
