"""One training per folder: a lock file in ``out_dir`` while a run writes its checkpoints there.

``training.lock`` holds the holder's pid, host, start time and command line (JSON). A second
training into the same folder (two papermill runs, JupyterLab and ``make report``) refuses at
start with :class:`FolderInUse`, which names the folder, the other process and the way out. The
lock is released when the run ends, by an error or Ctrl-C too. A process killed outright (SIGKILL,
the OOM killer, a power cut) leaves the file behind; the next run finds its process gone, takes
the lock over with a note and deletes the half-written temporary files the dead run left.

Whether the holder still runs: on POSIX it keeps an advisory ``flock`` on the file, which the
operating system drops when the process ends, however it ends; its pid is checked as well (and on
Linux the process's start time, so that a reused pid does not count), for filesystems where
``flock`` is a no-op. A lock taken on another host cannot be checked from here: it is refused, and
the message says which file to delete once that run is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

from . import files
from .paths import resolve

try:
    import fcntl
except ImportError:  # Windows: the pid and the host only
    fcntl = None

LOCK_NAME = "training.lock"
ATTEMPTS = 40
"""Tries to lock, 50 ms apart while the holder is ending, before giving up."""


class FolderInUse(RuntimeError):
    """Another live process trains into the folder; the message names it and the way out."""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """The state letter of process ``pid`` and its start time in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _cmdline(pid: int) -> str:
    """The command line of process ``pid`` (Linux), else empty."""
    with contextlib.suppress(OSError):
        return shlex.join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1])
    return ""


def _record() -> dict:
    """What the lock file says about this process."""
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _cmdline(pid) or shlex.join(sys.argv),
        "parent_command": _cmdline(os.getppid()),
        "proc_start": _proc_start(pid),
    }


def alive(info: dict) -> bool:
    """Whether the process a lock file names may still run (True when that cannot be told)."""
    if info.get("host") != socket.gethostname() or os.name == "nt":
        return True  # another machine (or no safe pid check): assume it runs
    pid = info.get("pid")
    if not isinstance(pid, int):
        return False  # unreadable
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: the pid exists, which is all that can be told
    state, started = stat
    # a zombie has ended (its parent has not collected it yet); a reused pid is another process
    return state not in ("Z", "X") and info.get("proc_start") in (None, started)


def _runs_unlocked(info: dict) -> bool:
    """Whether the holder ``info`` names runs although its file is not flock-ed: flock is not enforced on
    this filesystem, or it is another host's. (This process's own pid there is a lock left by an earlier
    process with the same pid: stale.)"""
    return bool(info) and info.get("pid") != os.getpid() and alive(info)


def describe(info: dict) -> str:
    """The holder in words: pid, host, since when, its command."""
    if not info:
        return "a process that has not written its details yet"
    since = info.get("started", "?")
    with contextlib.suppress(ValueError, TypeError):
        minutes = (datetime.now().astimezone() - datetime.fromisoformat(since)).total_seconds() / 60
        since += f" ({minutes:.0f} min ago)" if minutes >= 1 else " (under a minute ago)"
    command = info.get("command", "")
    if "ipykernel" in command and info.get("parent_command"):
        command = f"a Jupyter kernel of {info['parent_command']}"
    return f"pid {info.get('pid')} on {info.get('host')} since {since} (command: {command or '?'})"


def refusal(folder: Path, info: dict) -> FolderInUse:
    """The error for a second training into ``folder`` while ``info``'s process holds it."""
    text = (
        f"{folder} is in use by another training: {describe(info)}. Two runs writing into one folder would mix "
        "their checkpoints and results. Wait for that run to end (or stop it), or train into another out_dir."
    )
    if info.get("host") not in (None, socket.gethostname()):
        text += f" If that run is over, delete {folder / LOCK_NAME}."
    return FolderInUse(text)


def _read(fd: int) -> dict:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 1 << 16).decode() or "{}")
        return info if isinstance(info, dict) else {}
    return {}


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _lock_fd(path: Path) -> tuple[int, dict]:
    """An open, flock-ed descriptor of ``path`` and what the file said (a dead holder's record, or {})."""
    for _ in range(ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(fd)
            os.close(fd)
            if not info or alive(info):
                raise refusal(path.parent, info) from None
            time.sleep(0.05)  # its holder is ending (a killed process's threads exit one by one)
            continue
        if _same_file(fd, path):  # not a file its holder deleted (released) meanwhile
            info = _read(fd)
            if _runs_unlocked(info):
                os.close(fd)
                raise refusal(path.parent, info)
            return fd, info
        os.close(fd)
    raise FolderInUse(
        f"could not lock {path}: its holder is still ending, or the file keeps changing; try again."
    )


@contextlib.contextmanager
def hold(folder, log=print):
    """Hold ``folder``'s training lock for the duration of the block.

    The folder is created when missing (and removed again when the block leaves it empty).

    Raises
    ------
    FolderInUse
        When a live process holds it; nothing in the folder is touched then.
    """
    folder = resolve(folder)
    created, path = not folder.exists(), folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, previous = _lock_fd(path)
    except BaseException as err:
        _remove_if_empty(folder, created)
        _raise_named(err, path)
    try:
        try:
            _take(fd, folder, previous, log)
        except OSError as err:
            _raise_named(err, path)
        yield path
    finally:
        try:
            if _same_file(fd, path):
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        _remove_if_empty(folder, created)


def _take(fd: int, folder: Path, previous: dict, log) -> None:
    """Write this process's record into the locked file; after a dead holder, say so and tidy up."""
    if previous:
        left = files.stale_temp_files(folder)
        for tmp in left:
            tmp.unlink(missing_ok=True)
        log(
            f"note: took over the lock of {folder} from {describe(previous)}, which is no longer running "
            f"(killed or crashed); the files it completed are kept"
            + (f", the {len(left)} half-written temporary file(s) it left are deleted." if left else ".")
        )
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(_record(), indent=1).encode() + b"\n")
    os.fsync(fd)


def _raise_named(err: BaseException, path: Path):
    """Raise ``err``; a full disk or a folder that cannot be written, naming the lock file and the way out."""
    if isinstance(err, OSError) and err.errno in files.WRITE_ERRNOS:
        raise files.write_error(err, path) from err
    raise err


def _remove_if_empty(folder: Path, created: bool) -> None:
    """Remove ``folder`` when this run created it and left nothing in it (it stopped on bad input)."""
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def holder(folder) -> dict | None:
    """The record of the live process that holds ``folder``'s lock, or None (no lock, or a stale one)."""
    path = resolve(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        info = _read(fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return (
                    info if not info or alive(info) else None
                )  # an ending holder still has the lock a moment
        return info if _runs_unlocked(info) else None
    finally:
        os.close(fd)


def check_free(folder) -> None:
    """Raise :class:`FolderInUse` when a live process trains into ``folder``."""
    info = holder(folder)
    if info is not None:
        raise refusal(resolve(folder), info)


def wait_free(folder, timeout: float, poll: float = 0.2) -> bool:
    """Wait up to ``timeout`` seconds for ``folder``'s lock to be free; returns whether it is."""
    deadline = time.monotonic() + timeout
    while holder(folder) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
