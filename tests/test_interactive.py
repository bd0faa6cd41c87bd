"""JupyterLab exploration: the widget sampler, its batch fallback, progress, and exact resume."""
from __future__ import annotations

import html
import json

import numpy as np
import pytest

from conftest import quiet
from helpers.train import checkpoint
from helpers.runs import interactive
from helpers.common import progress
from helpers.runs import steps as workflow

KW = dict(m=10, seq_length=6, sample_every=40, sample_until=200, sample_length=20, log_every=5,
          checkpoint_every=50)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat; the dog sat on the log.\n" * 4, encoding="utf-8")  # 192 chars
    return path


@pytest.fixture
def trained(tmp_path, text_file):
    quiet(workflow.train, str(text_file), str(tmp_path / "run"), seed=2, n_updates=120, **KW)
    return tmp_path / "run"


def test_sampler_widget_callbacks_resample(trained):
    s = interactive.Sampler(str(trained / "last.npz"), length=40, seed=1)
    first = s.output.value
    assert "40 characters" in first
    assert interactive.sample_html(workflow.synthesize(str(trained / "last.npz"), 40, 1, "\n", 1.0, 1.0)) == first
    s.seed.value = 2
    assert s.output.value != first
    s.length.value = 10
    assert "10 characters" in s.output.value
    s.checkpoint.options = [*s.checkpoint.options, str(trained / "best.npz")]
    s.checkpoint.value = str(trained / "best.npz")
    best = checkpoint.load(trained / "best.npz")
    assert f"update {best.step:,}" in s.output.value


def test_sampler_shows_errors_instead_of_raising(trained):
    s = interactive.Sampler(str(trained / "last.npz"), length=20)
    s.prime.value = "Z€"  # not in the vocabulary
    shown = html.unescape(s.output.value)
    assert "not in the model's vocabulary" in shown and "'€'" in shown


def test_top_p_tiny_and_cold_temperature_are_greedy(trained):
    greedy = workflow.synthesize(str(trained / "last.npz"), 60, seed=0, top_p=1e-6)["text"]
    for seed in (1, 2):
        assert workflow.synthesize(str(trained / "last.npz"), 60, seed=seed, top_p=1e-6)["text"] == greedy
        assert workflow.synthesize(str(trained / "last.npz"), 60, seed=seed, temperature=1e-4)["text"] == greedy


def test_batch_run_gets_a_static_sample(trained, monkeypatch):
    monkeypatch.setenv("CHARRNN_INTERACTIVE", "0")
    shown = interactive.sampler(str(trained / "last.npz"), length=30)
    assert "Static sample" in shown.data and "30 characters" in shown.data
    monkeypatch.setenv("CHARRNN_INTERACTIVE", "1")
    assert isinstance(interactive.sampler(str(trained / "last.npz"), length=30), interactive.Sampler)


def test_outside_a_kernel_nothing_is_interactive(monkeypatch):
    monkeypatch.delenv("CHARRNN_INTERACTIVE", raising=False)
    assert not progress.in_kernel() and not progress.is_interactive()


def test_sparkline_scales_into_the_box():
    svg = progress.sparkline([5.0, 1.0, 3.0], width=100, height=20)
    pts = [tuple(map(float, p.split(","))) for p in svg.split('points="')[1].split('"')[0].split()]
    assert [x for x, _ in pts] == [0.0, 50.0, 100.0]
    assert pts[0][1] == pytest.approx(2.0) and pts[1][1] == pytest.approx(18.0)  # highest value on top


@pytest.mark.parametrize("stop_at", [50, 77, 100])  # 192 chars / 6 = 31 updates an epoch: resumes cross epochs
def test_resume_continues_exactly(tmp_path, text_file, stop_at):
    full, part = tmp_path / "full", tmp_path / "part"
    quiet(workflow.train, str(text_file), str(full), seed=4, n_updates=160, **KW)
    quiet(workflow.train, str(text_file), str(part), seed=4, n_updates=stop_at, **KW)
    quiet(workflow.train, str(text_file), str(part), seed=999, n_updates=160, init_from=str(part / "last.npz"), **KW)
    a, b = checkpoint.load(full / "last.npz"), checkpoint.load(part / "last.npz")
    assert np.array_equal(a.params.flat, b.params.flat) and np.array_equal(a.mem.flat, b.mem.flat)
    assert np.array_equal(a.hprev, b.hprev) and a.smooth_loss == b.smooth_loss and a.step == b.step == 160
    for key in ("position", "epoch", "epoch_starts", "log", "samples", "rng_state", "best_step"):
        assert a.meta[key] == b.meta[key], key
    assert a.meta["epoch"] >= 5
    ba, bb = checkpoint.load(full / "best.npz"), checkpoint.load(part / "best.npz")
    assert np.array_equal(ba.params.flat, bb.params.flat) and ba.step == bb.step
    assert (full / "train_log.csv").read_text() == (part / "train_log.csv").read_text()
    assert (full / "samples.json").read_text() == (part / "samples.json").read_text()


def test_resume_refuses_another_vocabulary(tmp_path, trained):
    other = tmp_path / "other.txt"
    other.write_text("completely different letters: XYZ 0123456789 " * 5, encoding="utf-8")
    with pytest.raises(ValueError, match="vocabulary .* does not match"):
        quiet(workflow.train, str(other), str(tmp_path / "x"), n_updates=200, init_from=str(trained / "last.npz"), **KW)


def test_resume_refuses_a_best_checkpoint(tmp_path, text_file, trained):
    with pytest.raises(ValueError, match="resume from last.npz"):
        quiet(workflow.train, str(text_file), str(tmp_path / "x"), n_updates=200, init_from=str(trained / "best.npz"), **KW)


def test_synthesized_text_keeps_its_line_breaks_wherever_it_is_shown(trained):
    """Notebook cells lack the report's CSS, so the text block carries its own pre-wrap style."""
    from helpers.report import sections as report

    result = workflow.synthesize(str(trained / "last.npz"), 80, seed=0, prime="the ")
    for shown in (report.passage(result).data, interactive.sample_html(result)):
        block = shown[shown.index('<div class="text"'):]
        assert "white-space: pre-wrap" in block.split(">", 1)[0]
        assert html.escape(result["text"]) in block


def test_a_resumed_run_records_the_seed_it_was_started_with(tmp_path, text_file):
    quiet(workflow.train, str(text_file), str(tmp_path / "r"), seed=7, n_updates=50, **KW)
    quiet(workflow.train, str(text_file), str(tmp_path / "r"), seed=0, n_updates=80,
          init_from=str(tmp_path / "r" / "last.npz"), **KW)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["seed"] == 7
