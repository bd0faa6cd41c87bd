"""A sweep whose Dask worker, or scheduler, dies mid-point: a real ``dask scheduler`` and ``dask
worker`` on 127.0.0.1 (as in tests/test_sweep.py), the sweep running in a thread beside them, and
SIGKILL for the worker process that runs a chosen point (once its training holds the point's
lock) or for the scheduler. Used by tests/test_sweep_faults.py and ``make faults``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers.common.lock import LOCK_NAME
from helpers.jobs import sweep

BIN = Path(sys.executable).parent
TRAIN = {
    "data_path": "pydoc_data",
    "m": 16,
    "n_updates": 600,
    "seq_length": 25,
    "log_every": 10,
    "sample_every": 300,
    "sample_until": 600,
    "sample_length": 20,
    "checkpoint_every": 100,
}


def _start(cmd, log, cwd) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """End the process group we started (the worker's nanny has a child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def cluster(folder, nthreads: int = 1):
    """A `dask scheduler` and one `dask worker` (a nanny and its worker process) on 127.0.0.1.

    Yields ``(address, {"scheduler": Popen, "worker": Popen})``; both are stopped on exit.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    procs = {}
    try:
        procs["scheduler"] = _start(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(folder / "scheduler.json"),
            ],
            folder / "scheduler.log",
            folder,
        )
        deadline = time.monotonic() + 30
        while not (folder / "scheduler.json").is_file():
            assert procs["scheduler"].poll() is None and time.monotonic() < deadline, (
                folder / "scheduler.log"
            ).read_text()
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        procs["worker"] = _start(
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(nthreads),
                "--no-dashboard",
                "--local-directory",
                str(folder),
            ],
            folder / "worker.log",
            folder,
        )
        yield address, procs
    finally:
        for proc in reversed(list(procs.values())):
            stop(proc)


def parent_pid(pid: int) -> int:
    """The parent of process ``pid`` (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def training_pid(folder: Path, timeout: float, done: threading.Event) -> int | None:
    """The pid of the training that holds ``folder``'s lock, once it does (None if the sweep ended first)."""
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((folder / LOCK_NAME).read_text())["pid"])
        time.sleep(0.005)
    return None


def snapshot(out) -> dict[str, bytes]:
    """The bytes of every point's point.json and run.json."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in Path(out).glob("*/*.json")
        if p.name in ("point.json", "run.json")
    }


def sweep_with_a_death(
    out, grid: dict, address: str, victim: str, kill, base: dict = TRAIN, timeout: float = 120
) -> dict:
    """Run the sweep ``grid`` on ``address`` and call ``kill(training_pid)`` once point ``victim`` trains.

    Returns ``{"rows" or "error", "killed", "done_before", "victim_counted_done", "seconds"}``: the
    sweep's rows (or the exception it raised), whether the kill happened, point.json and run.json
    of the points finished at the moment of the kill, and whether the victim's half-written folder
    counted as finished right after it.
    """
    out, result, finished = Path(out), {}, threading.Event()

    def work():
        try:
            result["rows"] = sweep.run(grid, base, out, scheduler=address, timeout=30, log=lambda *_: None)
        except Exception as err:  # the scheduler went away: the test looks at it
            result["error"] = err
        finally:
            finished.set()

    start = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    pid = training_pid(out / victim, timeout, finished)
    result["killed"] = pid is not None
    if pid is not None:
        result["done_before"] = {k: v for k, v in snapshot(out).items() if not k.startswith(f"{victim}/")}
        kill(pid)
        time.sleep(0.2)
        run = next(r for r in sweep.plan(grid, base, out) if r["name"] == victim)
        result["victim_counted_done"] = sweep.finished(run)
    thread.join(timeout)
    assert not thread.is_alive(), "the sweep did not end"
    result["seconds"] = time.perf_counter() - start
    return result


def kill_worker_of(pid: int) -> None:
    """SIGKILL the Dask worker process whose papermill kernel is ``pid`` (the nanny starts a new one)."""
    os.kill(parent_pid(pid), signal.SIGKILL)
