"""The report's sections, each built from one run folder's result files only.

Each ``*_section`` function reads result files (nothing typed in, no setting restated) and
returns HTML that the report notebook displays.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
from IPython.display import HTML

from ..common.files import read_json, read_log
from ..common.paths import resolve
from ..common.units import bits, perplexity
from . import compare, documents, reference, sweep
from .figures import save_figure, smooth_loss_figure
from .html import STYLE, caption, image, sample, table, text_block

CELL_NAMES = {"rnn": "vanilla RNN", "lstm": "character-level LSTM", "gru": "character-level GRU"}
OPTIMIZER_NAMES = {"adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam"}
SETTING_NAMES = {"eps": "eps", "rho": "decay", "beta1": "beta1", "beta2": "beta2"}
_OUT = ("o<sub>t</sub> = V h<sub>t</sub> + c,  p<sub>t</sub> = softmax(o<sub>t</sub>),  "
        "loss = Σ<sub>t</sub> −log p<sub>t</sub>[y<sub>t</sub>].</p>")
INTRO = {
    "rnn": ("<p>A recurrent network with one tanh hidden layer learns to predict the next character of a text "
            "and then writes text of its own, one character at a time. Everything is computed from scratch in "
            "numpy:</p><p class=\"formula\">a<sub>t</sub> = W h<sub>t−1</sub> + U x<sub>t</sub> + b,  "
            "h<sub>t</sub> = tanh(a<sub>t</sub>),  " + _OUT),
    "lstm": ("<p>A long short-term memory network learns to predict the next character of a text and then "
             "writes text of its own, one character at a time. Everything is computed from scratch in numpy "
             "(gates i, f, g, o stacked in U, W and b; σ the logistic function):</p><p class=\"formula\">"
             "[z<sub>i</sub>, z<sub>f</sub>, z<sub>g</sub>, z<sub>o</sub>] = W h<sub>t−1</sub> + U x<sub>t</sub> + b,  "
             "s<sub>t</sub> = σ(z<sub>f</sub>) s<sub>t−1</sub> + σ(z<sub>i</sub>) tanh(z<sub>g</sub>),  "
             "h<sub>t</sub> = σ(z<sub>o</sub>) tanh(s<sub>t</sub>),  " + _OUT),
    "gru": ("<p>A gated recurrent unit network (the GRU of PyTorch: reset gate r, update gate z, candidate n) "
            "learns to predict the next character of a text and then writes text of its own, one character at a "
            "time. Everything is computed from scratch in numpy:</p><p class=\"formula\">"
            "[a<sub>r</sub>, a<sub>z</sub>, a<sub>n</sub>] = U x<sub>t</sub> + b,  [w<sub>r</sub>, w<sub>z</sub>, "
            "w<sub>n</sub>] = W h<sub>t−1</sub>,  r = σ(a<sub>r</sub> + w<sub>r</sub>),  z = σ(a<sub>z</sub> + "
            "w<sub>z</sub>),  n = tanh(a<sub>n</sub> + r w<sub>n</sub>),  h<sub>t</sub> = (1 − z) n + z "
            "h<sub>t−1</sub>,  " + _OUT),
}


def load_results(run_dir) -> dict:
    """All of the run's result files, checked to belong to one run and one text.

    Raises ValueError when files of different runs or corpora are mixed in ``run_dir``.
    """
    run_dir = resolve(run_dir)
    res = {name: read_json(run_dir / f"{name}.json") for name in ("run", "gradcheck", "samples", "best_passage")}
    run_id = res["run"]["run_id"]
    if res["best_passage"].get("run_id") != run_id:
        raise ValueError(f"best_passage.json in {run_dir} comes from run {res['best_passage'].get('run_id')}, "
                         f"but run.json from run {run_id}; re-run notebooks/04_best_model.ipynb on this run's best.npz.")
    if res["gradcheck"]["corpus"] != res["run"]["corpus"]:
        raise ValueError(f"gradcheck.json in {run_dir} was computed on another text than the training run; "
                         "re-run notebooks/01_gradient_test.ipynb with the same data_path.")
    return res


def style() -> HTML:
    """The report's CSS (tables, captions, samples), as an HTML block to display first."""
    return HTML(STYLE)


def header(run_dir) -> HTML:
    """Title block: the corpus, the run identity and the main settings."""
    run = load_results(run_dir)["run"]
    corpus = run["corpus"]
    fallback = corpus["source"] == "pydoc_data"
    note = (" The book was not found at <code>data/goblet_book.txt</code>, so this run used the "
            "documentation text that ships with Python instead; its numbers are not comparable with the "
            "book's." if fallback else "")
    c = run["config"]
    cell, optimizer = c.get("cell", "rnn"), c.get("optimizer", "adagrad")
    model = f'{CELL_NAMES[cell]}, {OPTIMIZER_NAMES[optimizer]}, batch size {c.get("batch_size", 1)}'
    if c.get("n_layers", 1) > 1 or c.get("dropout", 0):
        model += f', {c.get("n_layers", 1)} layers, dropout {c.get("dropout", 0):g}'
    speed = (f', {run["updates_per_second"]:,.0f} updates/s' if run.get("updates_per_second") else "")
    title = f"A {CELL_NAMES[cell] if cell != 'rnn' else 'vanilla character-level RNN'} trained with " \
            f"{OPTIMIZER_NAMES[optimizer]}"
    return HTML(
        f"<h1>{html.escape(title)}</h1>{INTRO[cell]}"
        f'<p class="meta">Training text: <b>{html.escape(corpus["name"])}</b>, {corpus["n_chars"]:,} characters, '
        f'K = {corpus["K"]} distinct. Run <code>{run["run_id"]}</code>, seed {run["seed"]}: {model}, '
        f'{run["steps_done"]:,} updates, {c["dtype"]} arithmetic on the {run.get("engine", "numpy")} engine'
        f'{speed}.{note}</p>')


def gradient_section(run_dir) -> HTML:
    """Table 1: relative errors of the analytic gradients, from gradcheck.json."""
    g = read_json(resolve(run_dir) / "gradcheck.json")
    lengths = sorted(g["errors"], key=int)
    names = list(g["errors"][lengths[0]])  # U W V b c, then U2 W2 b2 ... of stacked layers
    rows = [[T] + [f"{g['errors'][T][n]:.2e}" for n in names] for T in lengths]
    rows_max = [[T] + [f"{g['max_errors'][T][n]:.1e}" for n in names] for T in lengths]
    formula = ('<p class="formula">rel(g<sub>a</sub>, g<sub>n</sub>) = ‖g<sub>a</sub> − g<sub>n</sub>‖ / '
               'max(eps, ‖g<sub>a</sub>‖ + ‖g<sub>n</sub>‖)</p>')
    cell = {"lstm": "an LSTM", "gru": "a GRU"}.get(g.get("cell"), "the vanilla RNN")
    if g.get("n_layers", 1) > 1:
        cell += f", {g['n_layers']} layers"
    text = (f"<p>The analytic gradients of BPTT ({cell}) were compared with centered-difference estimates "
            f"(L(θ+h) − L(θ−h)) / 2h, h = {g['h']:g}, for every entry of every parameter of a network with "
            f"m = {g['m']} hidden units, initialised with sig = {g['sig']:g}. Each test uses the first "
            f"seq_length characters of the text as input (targets shifted by one), h<sub>0</sub> = 0, "
            f"{g['dtype']} arithmetic and no gradient clipping. The relative error uses the {g['norm']} norm "
            f"of each whole parameter (eps = 1e-12):</p>{formula}")
    worst = max(v for row in g["errors"].values() for v in row.values())
    verdict = (f"<p>The largest relative error is {worst:.1e}: "
               + ("well below 1e-6, so the analytic gradients are correct.</p>" if worst < 1e-7 else
                  "below 1e-6, so the analytic gradients agree with the numerical ones.</p>" if worst < 1e-6 else
                  "<b>above 1e-6, which points to a bug in the gradients.</b></p>"))
    caption_max = ("Table 1b. The largest elementwise relative error per parameter. It is larger than the "
                   "norm-based figure because entries whose gradient is nearly zero are dominated by the "
                   "rounding error of the difference quotient.")
    return HTML(text + table(["seq_length", *names], rows,
                             f"Table 1. Relative error of the analytic gradient per parameter (m = {g['m']}, "
                             f"h = {g['h']:g}).") + verdict
                + table(["seq_length", *names], rows_max, caption_max))


def loss_section(run_dir, figure_path) -> HTML:
    """Figure 2 (drawn from train_log.csv, saved at ``figure_path``) with the run's settings and milestones."""
    run = read_json(resolve(run_dir) / "run.json")
    c, K, k = run["config"], run["corpus"]["K"], run_constants(run)
    figure_path = save_figure(smooth_loss_figure(run_dir), figure_path)  # the PNG that is also in figures/
    samples = {s["step"]: s["smooth_loss"] for s in read_json(resolve(run_dir) / "samples.json")}
    epochs = len(run["epoch_starts"])
    text = (f"<p>Training used m = {c['m']}, seq_length = {c['seq_length']}, eta = {c['eta']:g} and "
            f"sig = {c['sig']:g} (the standard deviation of the normal initialisation of U, W and V; b and c "
            f"start at zero), {optimizer_text(k['optimizer'], k['optimizer_settings'])} and gradients clipped to "
            f"[−{k['clip']:g}, {k['clip']:g}], for "
            f"{run['steps_done']:,} updates in {epochs} epoch{'s' if epochs != 1 else ''} (the last one may be "
            f"partial). The hidden state is carried from one sequence to the next and reset to zero at the start "
            f"of each epoch; the smooth loss is {k['smoothing']:g} · smooth_loss + {round(1 - k['smoothing'], 12):g} · loss.</p>")
    facts = []
    if 0 in samples:
        facts.append(f"starts at {samples[0]:.2f}, close to seq_length · ln K = {c['seq_length'] * math.log(K):.2f}, "
                     "the loss of a uniform guess")
    facts += [f"is {v:.2f} after {k:,} updates" for k, v in sorted(samples.items()) if k in (10_000, 100_000)]
    if run.get("best_val_loss_per_char") is None:  # the best model is the one with the lowest smooth loss
        lowest, lowest_step, logged = run["best_smooth_loss"], run["best_step"], ""
    else:  # the best model was chosen by validation loss: the lowest smooth loss comes from the log
        log = read_log(resolve(run_dir) / "train_log.csv")
        low = int(np.argmin(log["smooth_loss"]))
        lowest, lowest_step, logged = float(log["smooth_loss"][low]), int(log["step"][low]), " logged"
    facts.append(f"reaches its lowest{logged} value, {lowest:.2f}, after {lowest_step:,} updates")
    text += "<p>The smooth loss " + ", ".join(facts[:-1]) + (" and " if len(facts) > 1 else "") + facts[-1] + ".</p>"
    per_char = lowest / c["seq_length"]
    text += f"<p>Per character, that is {per_char:.3f} nats ({bits(per_char):.3f} bits)"
    if run.get("best_val_loss_per_char") is not None:
        val = run["best_val_loss_per_char"]
        text += (f". The best model is chosen by the loss on the held-out last {c['val_fraction']:.0%} of the text: "
                 f"{val:.3f} nats ({bits(val):.3f} bits, perplexity {perplexity(val):.2f}) per character, after "
                 f"{run['best_step']:,} updates")
    if run.get("test_loss_per_char") is not None:
        test = run["test_loss_per_char"]
        text += (f". On the test part, the {c['test_fraction']:.0%} of the text before it, never used for choosing, "
                 f"the best model loses {test:.3f} nats ({bits(test):.3f} bits, perplexity {perplexity(test):.2f})")
    text += ".</p>"
    return HTML(text + image(Path(figure_path).read_bytes(), "Figure 2: smooth loss")
                + caption(f"Figure 2. Smooth loss over {run['steps_done']:,} updates; dotted lines mark the start "
                          "of each epoch."))


def reference_section(run_dir, baseline_dir: str = "", best_dir: str = "") -> HTML:
    """The reference points for a loss per character (see :mod:`helpers.report.reference`)."""
    return reference.section(run_dir, baseline_dir, best_dir)


def samples_section(run_dir) -> HTML:
    """The texts synthesized during training, each with its update step and smooth loss."""
    samples = read_json(resolve(run_dir) / "samples.json")
    n = len(samples[0]["text"]) if samples else 0
    intro = (f"<p>Every {samples[1]['step'] - samples[0]['step']:,}th update the network synthesized {n} "
             f"characters, starting from the hidden state of that moment and the update's first input "
             f"character. The first text was drawn before any update.</p>" if len(samples) > 1 else "")
    blocks = "".join(sample(f'Update {s["step"]:,}, smooth loss {s["smooth_loss"]:.2f}', s["text"]) for s in samples)
    return HTML(intro + blocks)


def best_section(run_dir) -> HTML:
    """The best model's passage, with the step and smooth loss at which it was saved."""
    b = read_json(resolve(run_dir) / "best_passage.json")
    run = read_json(resolve(run_dir) / "run.json")
    chosen = run.get("best_chosen_by", "smooth loss")
    start = (f"after warming the state up on the priming text {html.escape(repr(b['prime'][:-1]))}, with x<sub>0</sub> = "
             if len(b["prime"]) > 1 else "starting from a zero hidden state and x<sub>0</sub> = ")
    return HTML(
        f"<p>The best model, chosen by the lowest {chosen}, is the one after {b['step']:,} updates (smooth loss "
        f"{b['smooth_loss']:.4f}). It synthesized the following {len(b['text']):,} characters (seed {b['seed']}, "
        f"{start}{html.escape(repr(b['prime'][-1]))}).</p>"
        + text_block(b["text"]))


def passage(result: dict) -> HTML:
    """A synthesized text (as returned by ``workflow.synthesize``) with where it came from."""
    how = (f"beam search of width {result['beam_width']}, log-probability {result['log_prob']:.1f} nats"
           if result.get("beam_width", 0) >= 2 else
           f"seed {result['seed']}, temperature {result['temperature']:g}, top-p {result['top_p']:g}")
    return HTML(
        f"<p>{len(result['text']):,} characters from <code>{html.escape(result['checkpoint'])}</code> "
        f"(update {result['step']:,}, smooth loss {result['smooth_loss']:.2f}; {how}):</p>"
        + text_block(result["text"]))


OPTIONAL_SECTIONS = {
    "compare": (compare.section, "Comparing models"),
    "documents": (documents.section, "Learning from short documents"),
    "sweep": (sweep.section, "Parameter sweep"),
}
"""Report sections that appear only when their notebook ran: name -> (``section(dir)``, title)."""


def optional_section(name: str, folder: str):
    """The report section ``name`` built from ``folder``, or nothing when ``folder`` is empty."""
    if not folder:
        return None
    section, title = OPTIONAL_SECTIONS[name]
    return HTML(f"<h2>{html.escape(title)}</h2>" + section(folder).data)


def run_constants(run: dict) -> dict:
    """The training constants run.json records (clip limit, smoothing, optimizer settings)."""
    if "constants" not in run:
        raise ValueError("run.json does not record the training constants (it was written by an older version); "
                         "re-run notebooks/02_train.ipynb.")
    return run["constants"]


def optimizer_text(name: str, settings: dict) -> str:
    """E.g. "AdaGrad with eps = 1e-08" from the optimizer's name and its recorded settings."""
    parts = [f"{SETTING_NAMES.get(k, k)} = {v:g}" for k, v in settings.items()]
    return f"{OPTIMIZER_NAMES[name]} with " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
