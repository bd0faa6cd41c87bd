"""A full disk or a read-only folder while training writes its checkpoints and results: a clear
error naming the file, training stops, the files of the last checkpoint stay byte for byte, no
temporary file remains. Simulated by patching the writes, and for real on a small tmpfs when this
process may mount one (root on Linux)."""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.common import files
from helpers.common.lock import LOCK_NAME
from helpers.runs import steps
from helpers.train import checkpoint as ckpt

SETTINGS = {
    "m": 8,
    "n_updates": 200,
    "seq_length": 10,
    "checkpoint_every": 50,
    "log_every": 10,
    "sample_every": 100,
    "sample_until": 200,
    "sample_length": 10,
}


def snapshot(folder) -> dict[str, bytes]:
    """The bytes of every file in ``folder`` but the lock (held during training, gone after)."""
    return {
        p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture
def snapshots(monkeypatch):
    """The bytes of out_dir's files after each write of the run's files that succeeded."""
    taken = []
    real = steps.write_run_files

    def spy(trainer, out, *args, **kwargs):
        summary = real(trainer, out, *args, **kwargs)
        taken.append(snapshot(out))
        return summary

    monkeypatch.setattr(steps, "write_run_files", spy)
    return taken


def inject(monkeypatch, name: str, code: int, nth: int) -> None:
    """From the ``nth`` write of ``name`` on, write half of it and fail with ``code`` (a disk full mid-file)."""
    count = [0]
    real_savez, real_write_text = np.savez, Path.write_text

    def failing(tmp) -> bool:
        if Path(tmp).name.startswith(f".{name}."):
            count[0] += 1
            return count[0] >= nth
        return False

    def savez(f, *args, **kwargs):
        if not failing(f.name):
            return real_savez(f, *args, **kwargs)
        buf = io.BytesIO()
        real_savez(buf, *args, **kwargs)
        f.write(buf.getvalue()[: buf.tell() // 2])
        raise OSError(code, os.strerror(code))

    def write_text(path, text, *args, **kwargs):
        if not failing(path):
            return real_write_text(path, text, *args, **kwargs)
        real_write_text(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(np, "savez", savez)
    monkeypatch.setattr(Path, "write_text", write_text)


def assert_stopped_intact(err, out, name, code, snapshots):
    """The error names the file and the updates; out_dir is the last good checkpoint's, byte for byte."""
    assert err.value.errno == code
    text = str(err.value)
    assert f"cannot write {str(out / name)!r}: {os.strerror(code)}" in text
    assert "training stopped at update 100" in text and f"{out / 'last.npz'} holds update 50" in text
    assert "free some space" in text and "resume from it (init_from)" in text
    assert (
        len(snapshots) == 1 and snapshot(out) == snapshots[0]
    )  # every file as the checkpoint at update 50 left it
    assert not files.stale_temp_files(out) and not (out / LOCK_NAME).exists()
    assert ckpt.load(out / "last.npz").step == 50


@pytest.mark.parametrize("name", ["last.npz", "best.npz", "train_log.csv", "run.json"])
def test_disk_full_while_writing_a_file_of_a_checkpoint(tmp_path, monkeypatch, snapshots, capsys, name):
    out = tmp_path / "run"
    inject(monkeypatch, name, errno.ENOSPC, nth=2)  # the checkpoint at update 100
    with pytest.raises(OSError) as err:
        steps.train("pydoc_data", str(out), **SETTINGS)
    assert_stopped_intact(err, out, name, errno.ENOSPC, snapshots)


def test_a_folder_that_turns_read_only(tmp_path, monkeypatch, snapshots, capsys):
    out = tmp_path / "run"
    real = files.tempfile.mkstemp
    calls = [0]

    def mkstemp(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 6:  # the first checkpoint's six files went through
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    with pytest.raises(OSError) as err:
        steps.train("pydoc_data", str(out), **SETTINGS)
    assert_stopped_intact(err, out, "last.npz", errno.EROFS, snapshots)


def permissions_apply(folder: Path) -> bool:
    """Whether a folder without write permission refuses this process (not so for root)."""
    probe = folder / "probe"
    probe.mkdir(mode=0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    return False


def test_a_folder_without_write_permission(tmp_path, capsys):
    if not permissions_apply(tmp_path):
        pytest.skip("file permissions do not bind this process (root)")
    out = tmp_path / "run"
    steps.train("pydoc_data", str(out), **SETTINGS)
    before = snapshot(out)
    out.chmod(0o555)
    try:
        with pytest.raises(
            PermissionError, match=re.escape(f"cannot write {str(out / LOCK_NAME)!r}: Permission denied")
        ):
            steps.train("pydoc_data", str(out), **SETTINGS)
    finally:
        out.chmod(0o755)
    assert snapshot(out) == before


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 320 KB tmpfs, mounted for the test (root on Linux only)."""
    mount = shutil.which("mount")
    if sys.platform != "linux" or os.geteuid() != 0 or not mount:
        pytest.skip("mounting a tmpfs needs root on Linux")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_disk_stops_training_and_keeps_the_last_checkpoint(
    small_tmpfs, tmp_path, snapshots, capsys
):
    out = small_tmpfs / "run"
    settings = {**SETTINGS, "n_updates": 100_000, "log_every": 1}  # the log grows until the disk is full
    with pytest.raises(OSError) as err:
        steps.train("pydoc_data", str(out), **settings)
    assert err.value.errno == errno.ENOSPC and "No space left on device" in str(err.value)
    assert f"cannot write '{out}/" in str(err.value) and "training stopped at update" in str(err.value)
    assert len(snapshots) >= 2 and snapshot(out) == snapshots[-1], len(snapshots)
    assert not files.stale_temp_files(out) and not (out / LOCK_NAME).exists()
    last = ckpt.load(out / "last.npz")
    assert f"{out / 'last.npz'} holds update {last.step:,}" in str(err.value)
    # once there is room (here: another folder), the run goes on from it
    summary = steps.train(
        "pydoc_data",
        str(tmp_path / "more"),
        init_from=str(out / "last.npz"),
        **{**settings, "n_updates": last.step + 50},
    )
    assert summary["steps_done"] == last.step + 50 and summary["run_id"] == last.meta["run_id"]


def test_a_group_of_files_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    paths = [tmp_path / name for name in ("a.json", "b.json", "c.json")]
    for p in paths:
        files.write_json(p, {"old": p.name})
    inject(monkeypatch, "b.json", errno.ENOSPC, nth=1)
    with pytest.raises(OSError, match=re.escape(f"cannot write {str(paths[1])!r}: No space left on device")):
        with files.atomic_group() as group:
            for p in paths:
                group.write_json(p, {"new": p.name})
    assert [files.read_json(p) for p in paths] == [{"old": p.name} for p in paths]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json", "c.json"]
    monkeypatch.undo()
    with files.atomic_group() as group:
        for p in paths:
            group.write_json(p, {"new": p.name})
    assert [files.read_json(p) for p in paths] == [{"new": p.name} for p in paths]
