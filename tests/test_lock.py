"""Two trainings into one out_dir: the second refuses at start; a lock left by a killed process is
taken over with a note; the lock goes away when training ends, by an error or Ctrl-C too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.common import lock
from helpers.common.lock import LOCK_NAME, FolderInUse
from helpers.common.paths import ROOT
from helpers.jobs import pipeline
from helpers.runs import documents, steps

TINY = {
    "m": 8,
    "n_updates": 60,
    "seq_length": 10,
    "sample_every": 30,
    "sample_until": 60,
    "sample_length": 10,
    "log_every": 10,
    "checkpoint_every": 30,
}


def snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def holding(folder, wait: float = 30) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until it is killed."""
    code = (
        f"import time\nfrom helpers.common import lock\nwith lock.hold({str(folder)!r}):\n    time.sleep(600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + wait
    while lock.holder(folder) is None:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the other process did not take the lock"
        time.sleep(0.05)
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def trained(tmp_path, capsys):
    out = tmp_path / "run"
    steps.train("pydoc_data", str(out), **TINY)
    capsys.readouterr()
    return out


def test_a_second_training_refuses_and_names_the_folder_the_process_and_the_fix(trained):
    before = snapshot(trained)
    other = holding(trained)
    try:
        with pytest.raises(FolderInUse) as err:
            steps.train("pydoc_data", str(trained), **TINY)
        text = str(err.value)
        assert str(trained) in text and f"pid {other.pid} on " in text and "(under a minute ago)" in text
        assert "helpers.common import lock" in text  # its command
        assert "another out_dir" in text and "Wait for that run to end" in text
        assert snapshot(trained) == before | {
            LOCK_NAME: (trained / LOCK_NAME).read_bytes()
        }  # nothing touched
        with pytest.raises(FolderInUse, match="in use by another training"):
            documents.train("", str(trained), **TINY)
        with pytest.raises(FolderInUse, match="in use by another training"):
            pipeline.run(trained, {"data_path": "pydoc_data"}, pdf=False, log=lambda *_: None)
        assert not (trained / "notebooks").exists()  # refused before any notebook ran
    finally:
        kill(other)


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_note(trained, capsys):
    other = holding(trained)
    (trained / ".last.npz.abc123.tmp").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves
    kill(other)
    assert (trained / LOCK_NAME).is_file() and json.loads((trained / LOCK_NAME).read_text())[
        "pid"
    ] == other.pid
    assert lock.holder(trained) is None  # stale
    steps.train("pydoc_data", str(trained), **TINY)
    printed = capsys.readouterr().out
    assert (
        f"took over the lock of {trained} from pid {other.pid} on " in printed
        and "no longer running" in printed
    )
    assert "the 1 half-written temporary file(s) it left are deleted" in printed
    assert not (trained / LOCK_NAME).exists() and not list(trained.glob(".*.tmp"))


def test_a_reused_pid_is_not_taken_for_the_holder(trained, capsys):
    if lock._proc_start(os.getppid()) is None:
        pytest.skip("no /proc: process start times are unknown here")
    record = {
        "pid": os.getppid(),
        "host": lock.socket.gethostname(),
        "started": "2020-01-01T00:00:00+00:00",
        "command": "python -c train",
        "proc_start": lock._proc_start(os.getppid()) + 1,
    }
    (trained / LOCK_NAME).write_text(
        json.dumps(record)
    )  # a live pid, but another process than the one that locked
    steps.train("pydoc_data", str(trained), **TINY)
    assert "no longer running" in capsys.readouterr().out


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(trained):
    record = {
        "pid": 1,
        "host": "elsewhere.example",
        "started": "2020-01-01T00:00:00+00:00",
        "command": "papermill",
    }
    (trained / LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(
        FolderInUse, match=f"pid 1 on elsewhere.example since 2020.* delete {trained / LOCK_NAME}"
    ):
        steps.train("pydoc_data", str(trained), **TINY)
    (trained / LOCK_NAME).unlink()  # as the message says
    steps.train("pydoc_data", str(trained), **TINY)


def test_the_lock_is_released_on_an_error_and_on_ctrl_c(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    steps.train("pydoc_data", str(tmp_path / "first"), **TINY)
    (tmp_path / "other.txt").write_text("abcdefghij" * 50)
    with pytest.raises(ValueError, match="vocabulary"):  # resuming on another text: refused inside the lock
        steps.train(
            str(tmp_path / "other.txt"), str(out), init_from=str(tmp_path / "first" / "last.npz"), **TINY
        )
    assert not out.exists()  # created for the lock, left empty: removed again

    def ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps.Trainer, "update", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        steps.train("pydoc_data", str(out), **TINY)
    assert (out / "last.npz").is_file() and not (out / LOCK_NAME).exists()
    with lock.hold(out):  # free again
        assert lock.holder(out) is not None  # and held now, by this process


def test_wait_free_waits_for_the_holder_to_end(tmp_path):
    other = holding(tmp_path)
    assert not lock.wait_free(tmp_path, timeout=0.3)
    kill(other)
    assert lock.wait_free(tmp_path, timeout=5)


def test_a_killed_holder_not_yet_reaped_counts_as_ended(tmp_path, capsys):
    other = holding(tmp_path)
    other.send_signal(signal.SIGKILL)  # no wait(): it stays a zombie until collected
    deadline = time.monotonic() + 10
    while lock._proc_stat(other.pid) and lock._proc_stat(other.pid)[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert lock.holder(tmp_path) is None
        with lock.hold(tmp_path):
            pass
        assert f"from pid {other.pid} on " in capsys.readouterr().out
    finally:
        other.wait(timeout=10)
