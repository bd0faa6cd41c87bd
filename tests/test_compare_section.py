"""The comparison's report pieces (helpers.report.compare) from a compare.json, and resuming a
checkpoint written before the state was batched and before last.npz carried the best model."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np

from helpers.report import compare
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


def test_an_old_format_checkpoint_resumes_exactly(tmp_path):
    """hprev (m,) and no best arrays in last.npz, the best model in best.npz beside it: as written before."""
    kw = dict(m=8, seq_length=5, sample_every=50, sample_until=100, checkpoint_every=50, log_every=10)
    quiet(steps.train, "pydoc_data", str(tmp_path / "full"), seed=2, n_updates=200, **kw)
    quiet(steps.train, "pydoc_data", str(tmp_path / "old"), seed=2, n_updates=100, **kw)
    last = ckpt.load(tmp_path / "old" / "last.npz")
    assert last.hprev.shape == (1, 8)
    last.hprev, last.best = last.hprev[0], None  # the old layout
    ckpt.save(tmp_path / "old" / "last.npz", last)
    with np.load(tmp_path / "old" / "last.npz") as z:
        assert "bestU" not in z.files and z["hprev"].shape == (8,)
    quiet(steps.train, "pydoc_data", str(tmp_path / "old"), seed=2, n_updates=200,
          init_from=str(tmp_path / "old" / "last.npz"), **kw)
    for name in ("last.npz", "best.npz"):
        a, b = ckpt.load(tmp_path / "full" / name), ckpt.load(tmp_path / "old" / name)
        assert a.step == b.step
        np.testing.assert_array_equal(a.params.flat, b.params.flat)
