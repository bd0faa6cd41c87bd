"""SIGKILL during training, no chance to save: the checkpoints left form a consistent pair and the
run resumed from them ends bit for bit as an uninterrupted one (a plain ``python -c`` call of the
training step, and a papermill run of 02_train). The harness is :mod:`faults.kills`, whose
``make faults`` runs the same with many more kills."""

from __future__ import annotations

import numpy as np
import pytest

from faults import kills
from helpers.common.lock import FolderInUse
from helpers.runs import steps

SETTINGS = {**kills.SETTINGS, "n_updates": 600, "sample_every": 200, "sample_until": 600}
LONG = {**kills.SETTINGS, "n_updates": 3000, "sample_every": 1000, "sample_until": 3000}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The uninterrupted run, with its state at every checkpoint."""
    return kills.reference(tmp_path_factory.mktemp("reference"), SETTINGS)


def assert_survived(result):
    assert result["pair"] == [], result  # last.npz and best.npz load and form a consistent pair
    assert result["final"] == [], result  # the resumed run ended as the uninterrupted one, bit for bit
    assert result["took_over"] is not False, result  # a lock left behind was taken over, with its note


def test_python_training_killed_at_random_moments_resumes_exactly(ref, tmp_path):
    rng = np.random.default_rng(15)
    results = [
        kills.kill_and_resume(
            tmp_path / f"kill-{i}", ref, rng.uniform(0.1, 1.0) * ref.seconds, settings=SETTINGS
        )
        for i in range(3)
    ]
    for result in results:
        assert_survived(result)
    assert any(r["killed"] and r["took_over"] for r in results), results  # at least one kill mid-run


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    """A longer uninterrupted run, so that a kill 30% into it lands mid-training under papermill too."""
    return kills.reference(tmp_path_factory.mktemp("reference-long"), LONG)


def test_a_papermill_run_refuses_a_second_training_and_resumes_exactly_after_sigkill(long_ref, tmp_path):
    refusals = []

    def second_training(out):
        with pytest.raises(FolderInUse) as err:
            steps.train(**{**LONG, "out_dir": str(out)})
        refusals.append(str(err.value))

    result = kills.kill_and_resume(
        tmp_path / "papermill",
        long_ref,
        0.3 * long_ref.seconds,
        papermill=True,
        settings=LONG,
        while_running=second_training,
    )
    assert f"{tmp_path / 'papermill'} is in use by another training: pid " in refusals[0]
    assert (
        "a Jupyter kernel of" in refusals[0]
        and "papermill" in refusals[0]
        and "02_train.ipynb" in refusals[0]
    )
    assert result["killed"] and result["took_over"], result
    assert_survived(result)


def test_pair_check_catches_a_best_model_of_another_update(ref, tmp_path):
    """The consistency check can fail: best.npz from another update than the best inside last.npz."""
    out = tmp_path / "run"
    kills.reference(out, SETTINGS)
    assert kills.pair_problems(out, ref) == []
    good = steps.ckpt.load(out / "best.npz")
    steps.ckpt.save(
        out / "best.npz",
        steps.ckpt.Checkpoint(params=good.params, chars=good.chars, step=good.step - 1, meta=good.meta),
    )
    assert kills.pair_problems(out, ref) and kills.final_problems(out, ref) == ["best model"]
