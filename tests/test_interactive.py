"""JupyterLab exploration (helpers.runs.interactive, explore): the widget sampler and its callbacks, its batch
fallback, progress, and the looks inside a trained model. Exact resume: test_resume.py."""

from __future__ import annotations

import html

import pytest

from helpers.common import progress
from helpers.report.html import activation_colour
from helpers.runs import interactive, steps
from helpers.train import checkpoint

from conftest import CAT_MAT, quiet

KW = dict(
    m=10, seq_length=6, sample_every=40, sample_until=200, sample_length=20, log_every=5, checkpoint_every=50
)


def train(text, out):
    quiet(steps.train, str(text), str(out), seed=2, n_updates=120, **KW)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 120 updates on CAT_MAT (tiny.txt), read only by the tests."""
    folder = tmp_path_factory.mktemp("interactive")
    (folder / "tiny.txt").write_text(CAT_MAT, encoding="utf-8")
    return train(folder / "tiny.txt", folder / "run")


def test_sampler_widget_callbacks_resample(trained):
    s = interactive.Sampler(str(trained / "last.npz"), length=40, seed=1)
    first = s.output.value
    assert "40 characters" in first
    assert (
        interactive.sample_html(steps.synthesize(str(trained / "last.npz"), 40, 1, "\n", 1.0, 1.0)) == first
    )
    s.seed.value = 2
    assert s.output.value != first
    s.length.value = 10
    assert "10 characters" in s.output.value
    s.checkpoint.options = [*s.checkpoint.options, str(trained / "best.npz")]
    s.checkpoint.value = str(trained / "best.npz")
    best = checkpoint.load(trained / "best.npz")
    assert f"after {best.step:,} updates" in s.output.value


def test_sampler_names_unknown_characters_and_shows_errors_instead_of_raising(trained, tmp_path):
    s = interactive.Sampler(str(trained / "last.npz"), length=20)
    s.prime.value = "Z€"  # not in the vocabulary: left out, the sample still comes
    shown = html.unescape(s.output.value)
    assert "left out of the prime: 'Z', '€'" in shown and "20 characters" in shown
    s.checkpoint.options = [*s.checkpoint.options, str(tmp_path / "gone.npz")]
    s.checkpoint.value = str(tmp_path / "gone.npz")
    assert "gone.npz" in html.unescape(s.output.value) and "characters</div>" not in s.output.value


def test_top_p_tiny_and_cold_temperature_are_greedy(trained):
    greedy = steps.synthesize(str(trained / "last.npz"), 60, seed=0, top_p=1e-6)["text"]
    for seed in (1, 2):
        assert steps.synthesize(str(trained / "last.npz"), 60, seed=seed, top_p=1e-6)["text"] == greedy
        assert steps.synthesize(str(trained / "last.npz"), 60, seed=seed, temperature=1e-4)["text"] == greedy


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


def test_synthesized_text_keeps_its_line_breaks_wherever_it_is_shown(trained):
    """Notebook cells lack the report's CSS, so the text block carries its own pre-wrap style."""
    from helpers.report import sections as report

    result = steps.synthesize(str(trained / "last.npz"), 80, seed=0, prime="the ")
    for shown in (report.passage(result).data, interactive.sample_html(result)):
        block = shown[shown.index('<div class="text"') :]
        assert "white-space: pre-wrap" in block.split(">", 1)[0]
        assert html.escape(result["text"]) in block


def test_prime_box_shows_a_line_break_and_reads_it_back(trained):
    assert interactive.show_prime("\n") == "\\n" and interactive.read_prime("\\n") == "\n"
    for prime in ("the cat\n", "a\\b\tc", "\n\n"):
        assert interactive.read_prime(interactive.show_prime(prime)) == prime
    assert interactive.read_prime("") == ""  # the default prime
    s = interactive.Sampler(str(trained / "last.npz"), length=20)
    assert s.prime.value == "\\n"  # the default shown as it is, not an empty-looking box
    s.prime.value = "the\\n"
    assert 'prime "the\\n"' in html.unescape(s.output.value)


def test_sampler_header_names_what_produced_the_sample_and_the_slider_is_linear(trained):
    s = interactive.Sampler(str(trained / "last.npz"), length=20, seed=3)
    s.temperature.value = 0.5
    head = html.unescape(s.output.value.split("</div>")[0])
    assert "temperature 0.50" in head and "top-p 1.00" in head and 'prime "\\n"' in head and "seed 3" in head
    assert type(s.temperature).__name__ == "FloatSlider" and s.temperature.step == 0.05  # no log scale
    assert not s.temperature.continuous_update  # a drag gives one new sample, on release


def test_train_config_passes_the_training_settings_through():
    namespace = {
        "m": 8,
        "eta": 0.5,
        "data_path": "x",
        "out_dir": "y",
        "seed": 3,
        "unrelated": 1,
        "cell": "rnn",
    }
    assert steps.train_config(namespace) == {"m": 8, "eta": 0.5, "cell": "rnn"}


def test_explore_looks_inside_a_trained_model(trained, cat_text):
    from helpers.runs import explore

    ck = str(trained / "last.npz")
    chars, p = explore.next_char_probabilities(ck, "the c")
    assert p.shape == (len(chars),) and abs(p.sum() - 1) < 1e-12
    cold = explore.next_char_probabilities(ck, "the c", temperature=0.5)[1]
    assert cold.max() > p.max() and cold.argmax() == p.argmax()  # sharper, same order
    shown = explore.temperature_samples(ck, [0.5, 1.5], 30, 0, "the ").data
    assert "temperature 0.5" in shown and "temperature 1.5" in shown
    assert explore.hidden_units(ck, str(cat_text), 0, 50).data.count("<b>unit ") >= 2
    loss = html.unescape(explore.slice_loss(ck, str(cat_text), 100).data)
    assert "the last 100 characters of the text" in loss and "smooth loss / seq_length" in loss
    assert "last.npz" in explore.checkpoint_facts(str(trained / "best.npz")).data


def test_looks_inside_default_to_the_text_the_model_was_trained_on(cat_text, tmp_path):
    from helpers.runs import explore

    ck = str(train(cat_text, tmp_path / "run") / "last.npz")  # its own run: the text moves below
    assert explore.hidden_units(ck).data == explore.hidden_units(ck, str(cat_text)).data
    assert "On tiny.txt" in explore.hidden_units(ck).data
    assert "trained on too" in html.unescape(explore.slice_loss(ck, "", 100).data)
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("THE CAT, the cat 🐈\n" * 30, encoding="utf-8")
    shown = html.unescape(
        explore.hidden_units(ck, str(foreign)).data
    )  # characters it never saw: left out, named
    assert "left out of the text 'foreign.txt': ',', 'A', 'C', 'E', 'H', 'T', '🐈'" in shown
    cat_text.rename(tmp_path / "moved.txt")  # the training text is gone: one line, and how to go on
    for look in (explore.hidden_units(ck), explore.slice_loss(ck)):
        assert look.data.count("<p") == 1 and "is not at" in look.data and "pass data_path=" in look.data


def test_hidden_units_are_light_and_honest(trained, monkeypatch):
    """Backgrounds keep dark text readable (lightness >= 78%), and a unit below |r| 0.2 is not said to track."""
    from helpers.runs import explore

    for v in (-1, -0.5, 0, 0.3, 1):
        assert int(activation_colour(v).split(",")[2].strip(" %)")) >= 78
    ck = str(trained / "last.npz")
    assert "</b> tracks" in explore.hidden_units(ck).data
    monkeypatch.setattr(explore, "TRACKS", 1.01)  # no unit can reach it
    shown = explore.hidden_units(ck).data
    assert (
        shown.count("No unit tracks") == 2 and "activations" not in shown and "</b> tracks" not in shown
    )  # no quotes
