"""Result files: atomic writes, JSON, and the training log ``train_log.csv``.

The one place that knows these formats: the run steps write them, the report reads them.
Every file is written to a temporary file beside its target, flushed to disk and renamed over
it, so a crash mid-write never leaves a broken file in place of a good one; files that belong
together (a run's checkpoints and results) are written as a group, renamed only once all are
written, so a full disk leaves every one of them as it was.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .paths import resolve

WRITE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO")
    if hasattr(errno, name)
)
"""Errors of the disk or the folder (full, read-only, not permitted, ...), as opposed to a writer's own bug."""
TMP_SUFFIX = ".tmp"
"""Temporary files are ``.<name>.<random>.tmp`` beside their target (see :func:`stale_temp_files`)."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    A full disk or a folder that cannot be written raises the same kind of OSError with a message
    that names ``path`` and the way out (see :func:`write_error`); ``path`` is left as it was.
    """
    with atomic_group() as group:
        yield group.add(path)


class AtomicGroup:
    """The files of one :func:`atomic_group`: ``add(target)`` gives the temporary path to write it to."""

    def __init__(self):
        self.staged: list[tuple[Path, Path]] = []  # (temporary file, target), in the order added
        self.current: Path | None = None  # the target being written: the one an error names

    def add(self, target) -> Path:
        """A new temporary file beside ``target`` (folders created); write ``target``'s contents there."""
        self.current = target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
        self.staged.append((Path(tmp), target))
        return Path(tmp)

    def write_text(self, target, text: str) -> None:
        """Stage ``text`` (UTF-8) for ``target``."""
        self.add(target).write_text(text, encoding="utf-8")

    def write_json(self, target, obj) -> None:
        """Stage ``obj`` as JSON (see :func:`write_json`) for ``target``."""
        self.write_text(target, json_text(obj))

    def commit(self) -> None:
        """Flush every temporary file to disk, then rename each over its target in the order added."""
        for tmp, target in self.staged:
            self.current = target  # named by an error
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain write would
        for tmp, target in self.staged:
            self.current = target
            os.replace(tmp, target)

    def discard(self) -> None:
        """Delete the temporary files that are left (after an error)."""
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_group():
    """Write several files as one: yields an :class:`AtomicGroup`; ``group.add(target)`` gives a
    temporary path beside ``target`` to write to.

    When the block ends without error, every temporary file is flushed to disk, then renamed over
    its target in the order added; on any error (a full disk while writing the third file, Ctrl-C,
    ...) every temporary file is deleted and no target is touched. Only a kill between two renames
    leaves some targets new and the others as they were (each file whole), so add first the file
    that alone is enough to go on from (a run's last.npz).

    Raises
    ------
    OSError
        Of the original kind, naming the file being written and the way out, when the disk is full
        or the folder is read-only or not writable (:data:`WRITE_ERRNOS`).
    """
    group = AtomicGroup()
    try:
        yield group
        group.commit()
    except BaseException as err:
        group.discard()
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS and group.current is not None:
            raise write_error(err, group.current) from err
        raise


def stale_temp_files(folder) -> list[Path]:
    """The temporary files that :func:`atomic_group` leaves in ``folder`` only when its process is killed."""
    folder = Path(folder)
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file()) if folder.is_dir() else []


def write_error(err: OSError, path) -> OSError:
    """``err``, of the same kind, with a message that names ``path`` and the way out."""
    path = Path(path)
    message = (
        f"cannot write {str(path)!r}: {err.strerror or err}. The file there, if any, is left as it was and no "
        f"temporary file remains; free some space or make {str(path.parent)!r} writable (or write somewhere "
        "else), then run again."
    )
    try:
        return type(err)(err.errno, message)
    except TypeError:  # an OSError subclass with another signature
        return OSError(err.errno, message)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(obj) -> str:
    """A result file's JSON text: indented, characters kept as they are."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_json(path, obj) -> None:
    """Write JSON atomically (UTF-8, indented, characters kept as they are)."""
    write_text(path, json_text(obj))


def read_json(path):
    """Read a JSON result file, naming the file when it is missing or broken."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"result file {str(path)!r} does not exist; run the notebook that writes it first."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"result file {str(path)!r} is not valid JSON ({err}); re-run the notebook that writes it."
        ) from None


def log_csv(rows) -> str:
    """train_log.csv's text: a header and one ``step,loss,smooth_loss`` row per logged update."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("step", "loss", "smooth_loss"))
    writer.writerows((step, f"{loss:.6f}", f"{smooth:.6f}") for step, loss, smooth in rows)
    return buf.getvalue()


def read_log(path) -> dict[str, np.ndarray]:
    """train_log.csv as arrays ``step``, ``loss``, ``smooth_loss``."""
    table = np.loadtxt(resolve(path), delimiter=",", skiprows=1, ndmin=2)
    return {"step": table[:, 0].astype(int), "loss": table[:, 1], "smooth_loss": table[:, 2]}
