"""Running a notebook with papermill (the one call behind the pipeline, the comparison and the
sweep), and keeping the committed notebooks in the form JupyterLab saves, outputs cleared.

    python -m helpers.jobs.notebooks normalize [notebooks/*.ipynb]    # rewrite them so
    python -m helpers.jobs.notebooks check [notebooks/*.ipynb]        # exit 1 if git stores one otherwise
    python -m helpers.jobs.notebooks clean < in.ipynb > out.ipynb     # the git filter

JupyterLab marks a notebook as modified the moment it opens when its file differs from what it
would save: another kernelspec name, no ``language_info``, an older nbformat minor, cells without
ids. :func:`normalized` gives exactly what JupyterLab saves (nbformat's JSON, one-space indent)
with the project's kernel (``make venv`` registers it) and :data:`LANGUAGE_INFO`, outputs cleared.

``make venv`` sets it up as git's clean filter for ``notebooks/*.ipynb`` (``.gitattributes``), the
way ``nbstripout --install`` does: a notebook run and saved in the Lab keeps its outputs on disk,
but git stores and diffs its committed form. ``check`` reads what git stores (the index), not the
file on disk. A filter alone leaves ``git status`` saying "modified" once the file's size changed
(git trusts a size change without filtering), so ``make venv`` also installs :func:`after_save` as
the Jupyter server's post-save hook: it refreshes git's index entry when only outputs changed.
"""

from __future__ import annotations

import subprocess
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
        super().__init__(
            f"{name} stopped with {error}\n(the executed notebook: {executed})"
            + (f"\n{note}" if note else "")
        )
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
        papermill.execute_notebook(
            NOTEBOOKS / f"{name}.ipynb",
            executed,
            parameters=parameters,
            cwd=str(ROOT),
            progress_bar=False,
            kernel_name="python3",
            extra_arguments=KERNEL_QUIET,
            **streams,
        )
    except papermill.PapermillExecutionError as err:
        raise NotebookError(name, f"{err.ename}: {err.evalue}", executed) from None
    return executed


KERNELSPEC = {"display_name": "Python 3 (charrnn)", "language": "python", "name": "python3"}
"""The kernel ``make venv`` registers, as JupyterLab records it in a notebook."""
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": "3.11.7",
}
"""``language_info`` as the kernel reports it on the project's machine (Python 3.11.7); on another
Python the Lab shows a notebook as modified on opening, and the filter still stores this."""


def normalized_text(text: str, stem: str = "nb") -> str:
    """A notebook's JSON text as committed: JupyterLab's form, outputs cleared, :data:`KERNELSPEC` and
    :data:`LANGUAGE_INFO`; cells without an id get ``<stem>-<index>``."""
    import nbformat

    nb = nbformat.reads(text, as_version=4)
    nb.nbformat_minor = nbformat.current_nbformat_minor
    nb.metadata.update(kernelspec=dict(KERNELSPEC), language_info=dict(LANGUAGE_INFO))
    ids = set()
    for i, cell in enumerate(nb.cells):
        if not cell.get("id") or cell.id in ids:
            cell.id = f"{stem}-{i:02d}"
        ids.add(cell.id)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def normalized(path) -> str:
    """The text of notebook ``path`` as committed (:func:`normalized_text`)."""
    return normalized_text(Path(path).read_text(encoding="utf-8"), Path(path).stem[:2])


def stored(path) -> str:
    """What git stores for ``path`` (its index entry, after the clean filter), or the file itself
    outside a git checkout or when git does not track it."""
    path = Path(path).resolve()
    done = subprocess.run(["git", "show", f":./{path.name}"], cwd=path.parent, capture_output=True)
    return done.stdout.decode("utf-8") if done.returncode == 0 else path.read_text(encoding="utf-8")


def after_save(model=None, os_path=None, contents_manager=None, **_) -> bool:
    """Jupyter's post-save hook: after a notebook stored through the filter is saved with nothing but
    outputs changed, ``git add`` it (the same content git holds), so ``git status`` stays clean.
    Returns whether it did; a real edit is left for the user to add."""
    path = Path(os_path or "")
    if path.suffix != ".ipynb" or not path.is_file():
        return False

    def git(*args):
        return subprocess.run(["git", *args], cwd=path.parent, capture_output=True)

    attribute = git("check-attr", "filter", "--", path.name).stdout.decode().strip()
    held = git("show", f":./{path.name}")
    if not attribute.endswith(": notebook") or held.returncode != 0:
        return False
    if held.stdout.decode("utf-8") != normalized(path):
        return False
    return git("add", "--", path.name).returncode == 0


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
    if not args or args[0] not in ("normalize", "check", "clean"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if args[0] == "clean":  # git's clean filter: the notebook on stdin, its committed form on stdout
        text = sys.stdin.buffer.read().decode("utf-8")
        sys.stdout.buffer.write(
            normalized_text(text, Path(args[1]).stem[:2] if len(args) > 1 else "nb").encode("utf-8")
        )
        return 0
    paths = args[1:] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if args[0] == "check":
        stale = [str(p) for p in paths if (text := stored(p)) != normalized_text(text, Path(p).stem[:2])]
        for p in stale:
            print(
                f"{p} is not stored in its committed form; run: python -m helpers.jobs.notebooks normalize {p}, "
                "then git add it"
            )
        return 1 if stale else 0
    for p in normalize(paths):
        print(f"normalized {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
