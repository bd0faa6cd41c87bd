"""The environment and the Makefile: numba's on-disk cache truncated, emptied or from another numba
version; a .venv installed from another pyproject.toml; outputs of an earlier run left beside a
report run that failed (each repaired automatically or named in a clear message); and `make best`,
whose recipe must reach 02_train. (`make sweep`: test_sweep.py.)"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.common.paths import ROOT
from helpers.jobs import pipeline
from helpers.jobs.notebooks import NotebookError, notebook_parameters
from helpers.model import fast
from helpers.train.config import TrainConfig

from conftest import PANGRAMS

KERNELS = """
import numpy as np
from helpers.model import fast
k = fast.kernels()
print("results", k.all_finite(np.zeros(3)), k.all_finite(np.array([np.inf])),
      k.indices_ok(np.array([0, 1]), np.array([1, 0]), 2), k.param_views(np.arange(10.0), 1, 2)[2][1, 0])
"""


def run_kernels(cache: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", KERNELS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "results True False True 4.0" in done.stdout
    return done.stdout


@pytest.mark.skipif(not fast.AVAILABLE, reason="numba is not installed")
def test_a_broken_numba_cache_is_rebuilt_with_a_note(tmp_path):
    cache = tmp_path / "numba-cache"
    assert "note" not in run_kernels(cache)  # compiled, and cached
    index = {
        name: next(cache.rglob(f"fast_kernels.{name}-*.nbi"))
        for name in ("all_finite", "indices_ok", "param_views")
    }
    index["all_finite"].write_bytes(index["all_finite"].read_bytes()[:30])  # truncated: a full disk, a kill
    for data in cache.rglob("fast_kernels.indices_ok-*.nbc"):
        data.write_bytes(b"")  # an empty data file
    with open(index["param_views"], "wb") as f:  # another numba version's index: numba itself ignores it
        pickle.dump("0.1.0", f)
        f.write(b"not for this version")
    printed = run_kernels(cache)
    assert re.search(
        r"note: numba's cache of all_finite is unreadable \(UnpicklingError: .*\); compiling it again",
        printed,
    )
    assert re.search(
        r"note: numba's cache of indices_ok is unreadable \(EOFError: .*\); compiling it again", printed
    )
    assert "param_views" not in printed
    assert "note" not in run_kernels(cache)  # rewritten: the next process loads it quietly
    with open(index["param_views"], "rb") as f:
        assert pickle.load(f) == fast.numba.__version__


def make_n(folder: Path) -> str:
    """What `make venv` would run in ``folder`` (a copy of the Makefile and pyproject.toml)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "venv", f"PYTHON={sys.executable}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_the_environment_is_reinstalled_when_pyproject_toml_changes_and_only_then(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()  # an environment stamped the old way (by timestamp)
    planned = make_n(tmp_path)
    assert "pip install --quiet -e '.[dev,fast]'" in planned  # reinstalled once
    stamp = re.search(r"^touch (\.venv/\.installed-[0-9a-f]{16})$", planned, re.M).group(1)
    (tmp_path / stamp).touch()
    assert "pip install" not in make_n(tmp_path)
    old = time.time() - 3600
    os.utime(tmp_path / stamp, (old, old))
    (tmp_path / "pyproject.toml").touch()  # newer, same contents (a checkout, an editor saving unchanged)
    assert "pip install" not in make_n(tmp_path)
    with open(tmp_path / "pyproject.toml", "a") as f:
        f.write("\n# a dependency changed\n")
    os.utime(
        tmp_path / "pyproject.toml", (old - 60, old - 60)
    )  # changed, but older than the stamp (cp -p, a backup)
    assert "pip install --quiet -e '.[dev,fast]'" in make_n(tmp_path)


def test_a_failed_report_run_names_the_outputs_an_earlier_run_left(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    earlier = time.time() - 600
    for name in (
        "notebooks/02_train.ipynb",
        "notebooks/04_best_model.ipynb",
        "notebooks/05_report.ipynb",
        "report.html",
    ):
        (tmp_path / name).write_text("{}")
        os.utime(tmp_path / name, (earlier, earlier))

    def run_notebook(name, executed, parameters, log_output=False):
        Path(executed).write_text("{}")
        if name == "03_synthesis":
            raise NotebookError(name, "ValueError: checkpoint is unreadable", executed)

    monkeypatch.setattr(pipeline, "run_notebook", run_notebook)
    with pytest.raises(NotebookError) as err:
        pipeline.run(tmp_path, {"data_path": "pydoc_data"}, pdf=False, log=lambda *_: None)
    text = str(err.value)
    assert text.startswith("03_synthesis stopped with ValueError: checkpoint is unreadable")
    assert (
        f"Left in {tmp_path} from an earlier run, not this one: notebooks/04_best_model.ipynb, "
        "notebooks/05_report.ipynb, report.html."
    ) in text
    assert "02_train" not in text.split("\n", 1)[1]  # run again this time: not stale


# --- make best: the documented recipe (README, "The quality target") --------------------------------


def recipe() -> dict:
    """BEST_RECIPE of the Makefile as {name: value text}."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    line = re.search(r"^BEST_RECIPE \?= (.*)$", text, re.M).group(1)
    words = shlex.split(line)
    assert words[0::3] == ["-p"] * (len(words) // 3) and len(words) % 3 == 0, words
    return dict(zip(words[1::3], words[2::3]))


def test_the_recipe_is_a_valid_training_configuration():
    params = recipe()
    assert set(params) <= set(notebook_parameters("02_train"))
    cfg = TrainConfig.from_kwargs(**params)  # coerces the texts and checks every range
    assert cfg.val_fraction == 0.05 and cfg.test_fraction > 0  # the target's split; a test loss to report
    assert cfg.cell != "rnn" or cfg.n_layers > 1


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_best_trains_the_recipe_with_02_train(tmp_path, monkeypatch):
    """What `make best` runs (make -n), run here as papermill's command line would run it, but shortened
    by ARGS (as a user may shorten it) to 1 update on a small text: run.json's configuration is the
    recipe, so every setting of BEST_RECIPE reached the training; metrics.json holds a validation and a
    test loss."""
    import papermill
    from papermill.cli import _resolve_type

    text = tmp_path / "text.txt"
    text.write_text(PANGRAMS * 4, encoding="utf-8")  # 4,128 characters: 90% of them hold 32 streams of 50 + 1
    out = tmp_path / "best"
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }  # under make test
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "best",
            f"BEST_OUT={out}",
            f"ARGS=-p n_updates 1 -p data_path {text}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines() if "papermill" in line]
    assert len(commands) == 1, done.stdout
    program, notebook, executed, *options = commands[0]
    assert program == ".venv/bin/papermill"
    assert (notebook, executed) == ("notebooks/02_train.ipynb", f"{out}/02_train.ipynb")
    assert options[0::3] == ["-p"] * (len(options) // 3) and len(options) % 3 == 0, options
    parameters = {}
    for name, value in zip(
        options[1::3], options[2::3]
    ):  # as papermill's command line reads them: the last wins
        parameters[name] = _resolve_type(value)
    out.mkdir()
    monkeypatch.chdir(ROOT)  # where make runs it
    papermill.execute_notebook(
        notebook,
        executed,
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        request_save_on_cell_execute=False,
    )
    run = json.loads((out / "run.json").read_text())
    assert run["config"] == TrainConfig.from_kwargs(**{**recipe(), "n_updates": 1}).as_dict()
    assert run["corpus"]["source"] == str(text) and run["steps_done"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_val_loss_per_char"] is not None and metrics["test_loss_per_char"] is not None
