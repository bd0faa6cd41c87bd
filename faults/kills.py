"""Training killed with SIGKILL at a chosen moment, then resumed: the harness behind ``make faults``
(:mod:`faults`) and tests/test_kill.py.

A kill starts a training on the built-in corpus (``data_path`` "pydoc_data", m = 16, a checkpoint
every 20 updates, so that most of the time goes to writing files and many kills land mid-write)
as a plain ``python -c`` call of :func:`helpers.runs.steps.train` or as a papermill run of
notebooks/02_train.ipynb, waits until it holds its out_dir's lock, sleeps the given delay and
kills it with SIGKILL (the trainer and, for papermill, its parent too): no chance to save
anything. Then:

* the pair: ``last.npz`` and ``best.npz`` load and are consistent (:func:`pair_problems`);
* the resume: training into the same folder with ``init_from=last.npz`` (from scratch when the
  kill came before the first checkpoint) takes the dead run's lock over and ends with the same
  weights, AdaGrad state, hidden state, best model, log and samples, bit for bit, as an
  uninterrupted run of the same settings (:func:`reference`, :func:`final_problems`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.common import files, lock
from helpers.common.lock import LOCK_NAME
from helpers.common.paths import ROOT
from helpers.data.text import load_corpus
from helpers.runs import steps
from helpers.train import checkpoint as ckpt
from helpers.train.config import TrainConfig

SETTINGS = {
    "data_path": "pydoc_data",
    "seed": 0,
    "m": 16,
    "seq_length": 25,
    "n_updates": 1500,
    "checkpoint_every": 20,
    "log_every": 10,
    "sample_every": 500,
    "sample_until": 1500,
    "sample_length": 40,
}
TRAIN_CODE = "import json, sys\nfrom helpers.runs import steps\nsteps.train(**json.loads(sys.argv[1]))"


@dataclass
class Reference:
    """An uninterrupted run: its state at every checkpoint and at the end, and how long it took."""

    states: dict = field(default_factory=dict)  # step -> (weights, best_step, best weights), flat arrays
    final: dict = field(default_factory=dict)
    seconds: float = 0.0


def reference(out, settings: dict = SETTINGS) -> Reference:
    """Train ``settings`` uninterrupted into ``out`` in this process, recording every checkpoint."""
    settings = dict(settings)
    data_path, seed = settings.pop("data_path"), settings.pop("seed")
    trainer, meta = steps.start(TrainConfig.from_kwargs(**settings), load_corpus(data_path), seed)
    ref, s = Reference(), trainer.state

    def save():
        steps.write_run_files(trainer, Path(out), meta)
        ref.states[s.step] = (s.params.flat.copy(), s.best_step, s.best_params.flat.copy())

    start = time.perf_counter()
    with quiet():
        trainer.run_saving(trainer.cfg.n_updates, save)
    ref.seconds = time.perf_counter() - start
    ref.final = {
        "params": s.params.flat.copy(),
        "mem": s.mem.flat.copy(),
        "hprev": s.hprev.copy(),
        "best_step": s.best_step,
        "best": s.best_params.flat.copy(),
        "log": files.log_csv(s.log),
        "samples": json.loads(json.dumps(s.samples)),
    }
    return ref


@contextlib.contextmanager
def quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def pair_problems(out, ref: Reference) -> list[str]:
    """What is wrong with ``out``'s last.npz and best.npz as a pair; empty when they are consistent.

    Consistent: ``last.npz`` is the run's state at one of its checkpoints (weights and the best
    model inside it, bit for bit, and ``meta["best_step"]`` that best model's update); ``best.npz``
    belongs to the same run and is either that best model or, when the kill fell between the two
    renames, the best model of an earlier checkpoint; ``best.step <= last.meta["best_step"] <=
    last.step``. No checkpoint at all (a kill before the first one) is consistent too.
    """
    out = Path(out)
    if not (out / "last.npz").is_file():
        return ["best.npz without last.npz"] if (out / "best.npz").is_file() else []
    try:
        last = ckpt.load(out / "last.npz")
        best = ckpt.load(out / "best.npz") if (out / "best.npz").is_file() else None
    except ValueError as err:
        return [str(err)]
    problems, best_step = [], last.meta.get("best_step", -1)
    state = ref.states.get(last.step)
    if last.meta.get("kind") != "last" or last.best is None:
        problems.append("last.npz is not a resumable checkpoint with the best model inside")
    elif state is None:
        problems.append(f"last.npz holds update {last.step}, which is not one of the run's checkpoints")
    elif not np.array_equal(last.params.flat, state[0]):
        problems.append(f"last.npz's weights differ from the run's at update {last.step}")
    elif best_step != state[1] or not np.array_equal(last.best.flat, state[2]):
        problems.append(f"the best model inside last.npz is not the run's best at update {last.step}")
    if best is None:
        return problems  # only a kill between the first checkpoint's two renames leaves last.npz alone
    if best.meta.get("run_id") != last.meta.get("run_id") or best.meta.get("kind") != "best":
        problems.append("best.npz is not the best model of last.npz's run")
    elif not best.step <= best_step <= last.step:
        problems.append(
            f"steps out of order: best.npz {best.step}, best inside last.npz {best_step}, last {last.step}"
        )
    elif best.step == best_step and not np.array_equal(best.params.flat, last.best.flat):
        problems.append("best.npz differs from the best model inside last.npz of the same update")
    elif best.step < best_step and not any(
        k < last.step and b == best.step and np.array_equal(w, best.params.flat)
        for k, (_, b, w) in ref.states.items()
    ):
        problems.append(f"best.npz (update {best.step}) is no earlier checkpoint's best model")
    return problems


def final_problems(out, ref: Reference) -> list[str]:
    """Where ``out``'s final files differ from the uninterrupted run's end state (bit for bit)."""
    out, f = Path(out), ref.final
    last, best = ckpt.load(out / "last.npz"), ckpt.load(out / "best.npz")
    checks = {
        "weights": np.array_equal(last.params.flat, f["params"]),
        "AdaGrad state": np.array_equal(last.mem.flat, f["mem"]),
        "hidden state": np.array_equal(np.ravel(last.hprev), np.ravel(f["hprev"])),
        "best model": best.step == f["best_step"] and np.array_equal(best.params.flat, f["best"]),
        "train_log.csv": (out / "train_log.csv").read_text(encoding="utf-8") == f["log"],
        "samples.json": files.read_json(out / "samples.json") == f["samples"],
    }
    return [name for name, same in checks.items() if not same]


def launch(out: Path, settings: dict, papermill: bool) -> subprocess.Popen:
    """Start a training into ``out``: ``python -c`` calling steps.train, or papermill running 02_train."""
    params = {**settings, "out_dir": str(out)}
    if papermill:
        out.mkdir(parents=True, exist_ok=True)  # for the executed notebook
        cmd = [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / "02_train.ipynb"),
            str(out / "02_train.ipynb"),
            "-k",
            "python3",
            "--cwd",
            str(ROOT),
            "--no-progress-bar",
            "--log-level",
            "ERROR",
            *[a for k, v in params.items() for a in ("-p", k, str(v))],
        ]
    else:
        cmd = [sys.executable, "-c", TRAIN_CODE, json.dumps(params)]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def trainer_pid(out: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    """The pid in ``out``'s lock once the training holds it (the papermill kernel's, for papermill)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((out / LOCK_NAME).read_text())["pid"])
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"the training into {out} did not start: {proc.stderr.read().decode()[-2000:]}"
            )
        time.sleep(0.005)


def training_seconds(out, settings: dict = SETTINGS, papermill: bool = False) -> float:
    """How long a training into ``out``, left alone, holds its lock: the window for random kills."""
    out = Path(out)
    proc = launch(out, settings, papermill)
    try:
        trainer_pid(out, proc)
        start = time.monotonic()
        while (out / LOCK_NAME).exists() and proc.poll() is None:
            time.sleep(0.005)
        return time.monotonic() - start
    finally:
        proc.wait(timeout=300)


def kill(pid: int, proc: subprocess.Popen) -> None:
    """SIGKILL the trainer and the process group we started (papermill and anything else in it)."""
    for target in (lambda: os.kill(pid, signal.SIGKILL), lambda: os.killpg(proc.pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError):
            target()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while lock.alive({"pid": pid, "host": socket.gethostname()}) and time.monotonic() < deadline:
        time.sleep(0.01)  # the papermill kernel is not our child: wait until it has ended


def kill_and_resume(
    out, ref: Reference, delay: float, papermill: bool = False, settings: dict = SETTINGS, while_running=None
) -> dict:
    """Kill a training into ``out`` ``delay`` seconds after it took its lock, check, resume, compare.

    ``while_running(out)``, when given, is called once the training holds the lock (within the
    delay). Returns ``{"killed", "step", "temp_files", "pair", "took_over", "resumed", "final"}``:
    whether the kill came before the run ended, the update last.npz held, how many temporary files
    the kill left, the pair's problems, whether the resume noted the stale lock, and the final
    files' differences from the uninterrupted run (empty: resumed exactly).
    """
    out = Path(out)
    proc = launch(out, settings, papermill)
    try:
        pid = trainer_pid(out, proc)
        started = time.monotonic()
        if while_running is not None:
            while_running(out)
        time.sleep(max(0.0, delay - (time.monotonic() - started)))  # the delay counts from the lock
        killed = proc.poll() is None
        kill(pid, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = {
        "killed": killed,
        "temp_files": len(files.stale_temp_files(out)),
        "pair": pair_problems(out, ref),
    }
    result["step"] = (
        ckpt.load(out / "last.npz").step if (out / "last.npz").is_file() and not result["pair"] else None
    )
    left_lock = (out / LOCK_NAME).is_file()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        steps.train(
            **{**settings, "out_dir": str(out)},
            init_from=str(out / "last.npz") if result["step"] is not None else "",
        )
    result["took_over"] = "took over the lock" in printed.getvalue() if left_lock else None
    result["final"] = final_problems(out, ref)
    return result
