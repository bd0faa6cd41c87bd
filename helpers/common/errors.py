"""Errors in a notebook: the message for the ones this package raises on purpose, not a traceback.

A bad parameter, a missing file, a diverging loss or the stop button raise an exception whose
message already names the problem and the fix; in a notebook the 40-line traceback under it only
buries that message. :func:`install` (``%load_ext helpers``, the first line of every notebook)
makes IPython show such an error as one line, ``ValueError: m must be > 0, got 0``.

"On purpose" means: a ValueError, TypeError, OSError (missing files), FloatingPointError,
KeyError, RuntimeError or MemoryError raised by a line of this package (the innermost frame of
the traceback is in ``helpers/``), and any KeyboardInterrupt (the stop button). Everything else, a
bug in this package's arithmetic or an error inside numpy or in a notebook's own code, keeps its
full traceback, and ``%tb`` shows the full traceback of the last error either way. The cell still
fails (papermill and ``make report`` stop on it, with the same error name and message).
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
"""The ``helpers/`` folder: an error raised by a line in it is one of ours."""
OURS = (
    ValueError,
    TypeError,
    OSError,
    FloatingPointError,
    KeyError,
    RuntimeError,
    MemoryError,
    KeyboardInterrupt,
)
"""The exception types this package raises with a message meant for the reader."""


def raised_on_purpose(etype, tb) -> bool:
    """Whether an exception is one this package raised with a message for the reader (see above)."""
    if issubclass(etype, KeyboardInterrupt):
        return True
    if not issubclass(etype, OURS) or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def short_traceback(etype, value) -> list[str]:
    """The lines a notebook shows for an error raised on purpose: its type and message, and a hint."""
    message = str(value).strip("'\"") if etype is KeyError else str(value)
    return [
        f"\x1b[0;31m{etype.__name__}\x1b[0m: {message or 'interrupted'}",
        "\x1b[2m(raised on purpose by helpers/; %tb shows the full traceback)\x1b[0m",
    ]


def _show(shell, etype, value, tb, tb_offset=None):
    """IPython's custom exception handler: the short form for ours, the usual traceback for the rest."""
    if not raised_on_purpose(etype, tb):
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb and %debug
        if sys.version_info >= (3, 12):
            sys.last_exc = value
        stb = short_traceback(etype, value)
    if not SHOWS_RETURNED_TRACEBACK:
        shell._showtraceback(etype, value, stb)  # the error output papermill and JupyterLab show
        return None
    return stb


def _shows_returned_traceback() -> bool:
    """Whether IPython shows the traceback a custom handler returns (IPython 8), or leaves it to the
    handler (IPython 9 only validates it)."""
    try:
        import IPython
    except ImportError:
        return True
    return IPython.version_info[0] < 9


SHOWS_RETURNED_TRACEBACK = _shows_returned_traceback()


def install(shell) -> bool:
    """Show errors raised on purpose as their message in the IPython kernel ``shell``; False for a
    terminal IPython, which keeps its tracebacks."""
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    shell.set_custom_exc(OURS, _show)
    return True
