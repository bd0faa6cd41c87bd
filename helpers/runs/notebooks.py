"""Running a notebook with papermill: the one call behind the pipeline, the comparison and the sweep."""
from __future__ import annotations

from pathlib import Path

from ..common.paths import ROOT

KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]
"""Kernel options: no kernel chatter on the terminal (errors still land in the executed notebook)."""
NOTEBOOKS = ROOT / "notebooks"


class NotebookError(RuntimeError):
    """A notebook raised an error or could not run; the message names the notebook, the error and
    the executed copy. ``error`` is the short form, e.g. ``"ValueError: m must be > 0"``."""

    def __init__(self, name: str, error: str, executed: Path, note: str = ""):
        super().__init__(f"{name} stopped with {error}\n(the executed notebook with the traceback: {executed})"
                         + (f"\n{note}" if note else ""))
        self.name, self.error, self.executed, self.note = name, error, executed, note


def notebook_parameters(name: str) -> dict[str, str]:
    """The parameters notebook ``name`` declares: ``{name: default as written}``."""
    import papermill

    return {p: info["default"] for p, info in papermill.inspect_notebook(NOTEBOOKS / f"{name}.ipynb").items()}


def run_notebook(name: str, executed, parameters: dict, log_output: bool = False) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` into ``executed``, working directory
    the repository root; raises :class:`NotebookError` when a cell fails."""
    import papermill

    executed = Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", executed, parameters=parameters, cwd=str(ROOT),
                                   progress_bar=False, kernel_name="python3", log_output=log_output,
                                   extra_arguments=KERNEL_QUIET)
    except papermill.PapermillExecutionError as err:
        raise NotebookError(name, f"{err.ename}: {err.evalue}", executed) from None
    return executed
