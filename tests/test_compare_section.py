"""The comparison's report pieces (helpers.report.compare_section) from a compare.json, and the
checkpoint format: recorded, and any other refused by name."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from helpers.report import compare_section as compare
from helpers.runs import steps
from helpers.train import checkpoint as ckpt

RUN = {"name": "rnn-m16", "status": "done", "chars_seen": 5000, "seconds": 2.0, "best_val_loss_per_char": 2.5,
       "best_val_bits_per_char": 3.6, "chars_per_second": 2500.0, "final_val_loss_per_char": 2.6,
       "history": [{"step": 10, "chars_seen": 2500, "seconds": 1.0, "val_loss_per_char": 2.8},
                   {"step": 20, "chars_seen": 5000, "seconds": 2.0, "val_loss_per_char": 2.5}],
       "sample": "a sample <of> text"}


def test_compare_section_renders_the_table_figure_and_samples(tmp_path):
    failed = {"name": "lstm<x>", "status": "failed", "error": "ValueError: m must be > 0"}
    (tmp_path / "compare.json").write_text(json.dumps(
        {"chars_budget": 5000, "seq_length": 25, "val_fraction": 0.05, "data_path": "auto", "runs": [RUN, failed]}))
    body = compare.section(tmp_path).data
    assert "<table" in body and "2.500" in body and "3.600" in body and "5,000" in body
    assert "failed: ValueError: m must be &gt; 0" in body and "lstm&lt;x&gt;" in body
    assert "a sample &lt;of&gt; text" in body and "data:image/png;base64," in body


def quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def test_checkpoints_carry_their_format_and_an_unknown_one_is_refused_by_name(tmp_path):
    quiet(steps.train, "pydoc_data", str(tmp_path / "run"), seed=2, n_updates=20, m=8, seq_length=5, sample_every=50,
          checkpoint_every=20)
    with np.load(tmp_path / "run" / "last.npz") as z:
        assert json.loads(str(z["meta"]))["format"] == ckpt.FORMAT == 1
    with np.load(tmp_path / "run" / "last.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = np.array(json.dumps({**json.loads(str(data["meta"])), "format": 2}))
    np.savez(tmp_path / "new.npz", **data)
    with pytest.raises(ValueError, match=r"new.npz' is in checkpoint format 2, but this version reads format 1"):
        ckpt.load(tmp_path / "new.npz")


def test_a_last_checkpoint_without_its_best_model_or_with_another_state_shape_is_refused(tmp_path):
    kw = dict(m=8, seq_length=5, sample_every=50, checkpoint_every=20)
    quiet(steps.train, "pydoc_data", str(tmp_path / "run"), seed=2, n_updates=20, **kw)
    last = ckpt.load(tmp_path / "run" / "last.npz")
    for broken in ({"best": None}, {"hprev": last.hprev[0]}):
        ckpt.save(tmp_path / "b.npz", ckpt.Checkpoint(**{**last.__dict__, **broken}))
        with pytest.raises(ValueError, match="no optimizer or random state|recurrent state has shape"):
            quiet(steps.train, "pydoc_data", str(tmp_path / "run2"), seed=2, n_updates=40,
                  init_from=str(tmp_path / "b.npz"), **kw)
