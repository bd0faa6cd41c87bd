"""Where things live: the repository root and how relative paths are read.

Notebooks run with their working directory in ``notebooks/`` under JupyterLab but in the
repository root under ``papermill`` or ``make``. So that one parameter value means the same
file in both, every relative path a user passes is read relative to the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the folder that holds ``helpers/``)."""


def resolve(path: str | os.PathLike) -> Path:
    """Return ``path`` as an absolute path; a relative one is taken from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else ROOT / p
