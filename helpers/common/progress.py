"""Progress display that suits both JupyterLab and papermill, and a check for which one runs us.

In a Jupyter kernel the bar is one HTML output updated in place through a display handle (no
widget, so papermill and nbconvert store one final bar instead of a placeholder or a flood of
lines), with a small live plot of the smooth loss. Elsewhere it is a plain ``tqdm`` bar on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from IPython import get_ipython
from IPython.display import HTML, display
from tqdm import tqdm

BATCH_PARENTS = ("papermill", "nbconvert", "nbclient", "pytest", "helpers.jobs.pipeline", "dask")


def in_kernel() -> bool:
    """Whether we run inside a Jupyter kernel (JupyterLab, papermill, nbconvert, ...)."""
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _parent_command() -> str:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        try:
            return subprocess.run(
                ["ps", "-o", "command=", "-p", str(os.getppid())], capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""


def is_interactive() -> bool:
    """Whether a person is watching a live notebook (JupyterLab, Notebook, VS Code).

    False outside a kernel and in kernels started by papermill, nbconvert, pytest or ``make
    report``. ``CHARRNN_INTERACTIVE=1`` or ``0`` overrides the guess.
    """
    forced = os.environ.get("CHARRNN_INTERACTIVE")
    if forced in ("0", "1"):
        return forced == "1"
    if not in_kernel():
        return False
    parent = _parent_command()
    return not any(name in parent for name in BATCH_PARENTS)


def sparkline(values, width: int = 240, height: int = 40) -> str:
    """An inline SVG polyline of ``values`` (at most ``width`` points), for the live loss plot."""
    values = list(values)
    if len(values) < 2:
        return ""
    step = max(1, len(values) // width)
    vals = values[::step]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    pts = " ".join(
        f"{i * width / (len(vals) - 1):.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
        for i, v in enumerate(vals)
    )
    return (
        f'<svg width="{width}" height="{height}" style="vertical-align:middle;margin-left:12px">'
        f'<polyline fill="none" stroke="#1f4e79" stroke-width="1.2" points="{pts}"/></svg>'
    )


class Progress:
    """A progress bar: ``update(done, postfix, history)``, then ``close()``.

    ``history`` is a sequence of values (or a function returning one, called only on redraw)
    drawn as a small line plot beside the bar in a notebook.

    Parameters
    ----------
    total : int
        Count at which the work is done.
    desc : str
        What is counted.
    initial : int
        Count already done (a resumed run).
    min_interval : float
        Seconds between redraws.
    """

    def __init__(self, total: int, desc: str, initial: int = 0, min_interval: float = 0.5):
        self.total, self.desc, self.min_interval = total, desc, min_interval
        self.start, self.initial, self.last_draw, self.done, self.postfix = (
            time.perf_counter(),
            initial,
            0.0,
            initial,
            "",
        )
        self.handle, self.bar = None, None
        if in_kernel():
            self.handle = display(HTML(self._html([])), display_id=True)
        else:
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                file=sys.stderr,
                mininterval=min_interval,
                disable=None,
            )  # None: no bar when stderr is not a terminal (logs, CI)

    def _html(self, history) -> str:
        history = history() if callable(history) else history
        elapsed = time.perf_counter() - self.start
        meter = tqdm.format_meter(
            self.done,
            self.total,
            elapsed,
            prefix=self.desc,
            initial=self.initial,
            ncols=0,
            postfix=self.postfix or None,
        )
        return (
            f'<div style="font-family:monospace;font-size:12px"><progress value="{self.done}" max="{self.total}" '
            f'style="width:240px;vertical-align:middle"></progress> {meter}{sparkline(history)}</div>'
        )

    def update(self, done: int, postfix: str = "", history=(), force: bool = False) -> None:
        """Set the count to ``done``; redraw at most every ``min_interval`` seconds (or when ``force``)."""
        self.postfix = postfix
        if self.bar is not None:
            self.bar.update(done - self.done)
            self.bar.set_postfix_str(postfix, refresh=False)
            self.done = done
            return
        self.done = done
        now = time.perf_counter()
        if force or now - self.last_draw >= self.min_interval or done >= self.total:
            self.handle.update(HTML(self._html(history)))
            self.last_draw = now

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message)

    def close(self, history=()) -> None:
        """Draw the final state and release the bar."""
        if self.bar is not None:
            self.bar.close()
        else:
            self.update(self.done, self.postfix, history, force=True)
