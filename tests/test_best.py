"""``make best``: the documented recipe is a valid 02_train run with validation and test parts."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers.jobs.notebooks import notebook_parameters
from helpers.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


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


def test_make_best_runs_02_train_into_output_best():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^best: venv$", text, re.M)
    assert "BEST_OUT ?= output/best" in text and "notebooks/02_train.ipynb $(BEST_OUT)/02_train.ipynb" in text
