"""The report's numbers, tables and figures, each built from one run folder's result files only.

The report's words live in ``notebooks/05_report.ipynb`` as Markdown cells a student can edit
(the method, the equations, the discussion). What a run decides comes from here: tables,
figures, synthesized texts, and the few sentences that carry a run's numbers. Each function
reads result files (nothing typed in, no setting restated) and returns HTML to display.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
from IPython.display import HTML

from ..common.files import read_json, read_log
from ..common.paths import resolve
from ..common.units import bits, perplexity
from . import compare_section, documents_section, latex, reference, sweep_section
from .figures import save_figure, smooth_loss_figure
from .html import caption, image, layers, sample, table, text_block

CELL_NAMES = {"rnn": "vanilla RNN", "lstm": "character-level LSTM", "gru": "character-level GRU"}
OPTIMIZER_NAMES = {"adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam"}
SETTING_NAMES = {"eps": "eps", "rho": "decay", "beta1": "beta1", "beta2": "beta2"}
MODEL_NOTES = {
    "lstm": r"""This run trained a long short-term memory network, not the vanilla RNN of the equations above
(gates $i$, $f$, $g$, $o$ stacked in $U$, $W$ and $b$; $\sigma$ the logistic function):

$$
\begin{aligned}
{[z_i, z_f, z_g, z_o]} &= W h_{t-1} + U x_t + b \\
s_t &= \sigma(z_f)\, s_{t-1} + \sigma(z_i) \tanh(z_g) \\
h_t &= \sigma(z_o) \tanh(s_t) \\
o_t &= V h_t + c
\end{aligned}
$$""",
    "gru": r"""This run trained a gated recurrent unit network (the GRU of PyTorch: reset gate $r$, update gate
$z$, candidate $n$), not the vanilla RNN of the equations above:

$$
\begin{aligned}
{[a_r, a_z, a_n]} &= U x_t + b, & {[w_r, w_z, w_n]} &= W h_{t-1} \\
r &= \sigma(a_r + w_r), & z &= \sigma(a_z + w_z) \\
n &= \tanh(a_n + r\, w_n), & h_t &= (1 - z)\, n + z\, h_{t-1} \\
& & o_t &= V h_t + c
\end{aligned}
$$""",
}
"""What the report adds when a run's cell is not the vanilla RNN that 05's Markdown describes: Markdown
with LaTeX, drawn as the notebooks' Markdown is (:func:`.latex.markdown`)."""


def after(step: int) -> str:
    """The one way a step is named: the state after ``step`` updates ("before training" for 0)."""
    return "before training" if step == 0 else f"after {step:,} update{'s' if step != 1 else ''}"


WRITTEN_BY = {
    "gradcheck": "01_gradient_test",
    "run": "02_train",
    "samples": "02_train",
    "best_passage": "04_best_model",
    "live_model": "04_best_model",
}
"""The result files the report reads, and the notebook that writes each."""


def load_results(run_dir) -> dict:
    """All of the run's result files, checked to belong to one run and one text.

    Raises FileNotFoundError for a missing file and ValueError when files of different runs or texts
    are mixed in ``run_dir``, in one message that names every notebook to run again, in order.
    """
    run_dir = resolve(run_dir)
    missing = [name for name in WRITTEN_BY if not (run_dir / f"{name}.json").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} has no {', '.join(f'{n}.json' for n in missing)}; "
            f"{_run_again(sorted({WRITTEN_BY[n] for n in missing}), run_dir)}"
        )
    res = {name: read_json(run_dir / f"{name}.json") for name in WRITTEN_BY}
    run_id, stale = res["run"]["run_id"], {}
    if res["gradcheck"]["corpus"] != res["run"]["corpus"]:
        stale["01_gradient_test"] = f"gradcheck.json was computed on another text than run {run_id}"
    of_another = [n for n in ("best_passage", "live_model") if res[n].get("run_id") != run_id]
    if of_another:
        stale["04_best_model"] = (
            " and ".join(f"{n}.json comes from run {res[n].get('run_id')}" for n in of_another)
            + f", not {run_id}"
        )
    if stale:
        raise ValueError(
            f"{run_dir} mixes two runs: {'; '.join(stale.values())}; {_run_again(sorted(stale), run_dir)}"
        )
    return res


def _run_again(names: list[str], run_dir) -> str:
    """ "re-run notebooks/01_gradient_test.ipynb, then this one", with 04's checkpoint named."""
    how = {"01_gradient_test": " with the run's data_path", "04_best_model": f" on {run_dir}/best.npz"}
    return (
        "re-run " + ", then ".join(f"notebooks/{n}.ipynb{how.get(n, '')}" for n in names) + ", then this one."
    )


def model_words(c: dict) -> str:
    """The model in words from run.json's config: "GRU, Adam, batch size 32, 2 layers, dropout 0.2"."""
    cell, optimizer = c.get("cell", "rnn"), c.get("optimizer", "adagrad")
    model = f"{CELL_NAMES[cell]}, {OPTIMIZER_NAMES[optimizer]}, batch size {c.get('batch_size', 1)}"
    if c.get("n_layers", 1) > 1 or c.get("dropout", 0):
        locked = " (the same mask at every step)" if c.get("dropout_mask") == "locked" else ""
        model += f", {layers(c.get('n_layers', 1))}, dropout {c.get('dropout', 0):g}{locked}"
    return model


def header(run_dir) -> HTML:
    """The run's provenance under the report's title: the text, the run, the model and its speed.

    Checks first that the run folder's files belong together (:func:`load_results`). When the run's
    cell is not the vanilla RNN, says so with its equations; when the book was missing, says which
    text stood in.
    """
    run = load_results(run_dir)["run"]
    corpus = run["corpus"]
    fallback = corpus["source"] == "pydoc_data"
    note = (
        " The book was not found at <code>data/goblet_book.txt</code>, so this run used the "
        "documentation text that ships with Python instead; its numbers are not comparable with the "
        "book's."
        if fallback
        else ""
    )
    c = run["config"]
    cell, model = c.get("cell", "rnn"), model_words(c)
    speed = f", {run['updates_per_second']:,.0f} updates/s" if run.get("updates_per_second") else ""
    cell_note = latex.markdown(MODEL_NOTES[cell]) if cell in MODEL_NOTES else ""
    return HTML(
        f'<p class="meta">Training text: <b>{html.escape(corpus["name"])}</b>, {corpus["n_chars"]:,} characters, '
        f"K = {corpus['K']} distinct. Run <code>{run['run_id']}</code>, seed {run['seed']}: {model}, "
        f"{run['steps_done']:,} updates, {c['dtype']} arithmetic on the {run.get('engine', 'numpy')} engine"
        f"{speed}.{note}</p>{cell_note}"
    )


def gradient_settings(run_dir) -> HTML:
    """The gradient test's numbers: network size, initialisation, h, arithmetic and norm."""
    g = read_json(resolve(run_dir) / "gradcheck.json")
    cell = {"lstm": "an LSTM", "gru": "a GRU"}.get(g.get("cell"), "the vanilla RNN")
    if g.get("n_layers", 1) > 1:
        cell += f" of {g['n_layers']} layers"
    return HTML(
        f"<p>The test ran on {cell} with m = {g['m']} hidden units and K = {g['corpus']['K']} characters, "
        f"initialised with sig = {g['sig']:g} (seed {g.get('seed', 0)}), with h = {g['h']:g}, "
        f"{g['dtype']} arithmetic and the {g['norm']} norm of each whole parameter.</p>"
    )


def gradient_tables(run_dir) -> HTML:
    """Table 1 (relative errors, norm-based), a sentence that reads it, and Table 1b (elementwise maxima)."""
    g = read_json(resolve(run_dir) / "gradcheck.json")
    lengths = sorted(g["errors"], key=int)
    names = list(g["errors"][lengths[0]])  # U W V b c, then U2 W2 b2 ... of stacked layers
    rows = [[T] + [f"{g['errors'][T][n]:.2e}" for n in names] for T in lengths]
    rows_max = [[T] + [f"{g['max_errors'][T][n]:.1e}" for n in names] for T in lengths]
    worst_T, worst_name, worst = max(
        ((T, n, v) for T, row in g["errors"].items() for n, v in row.items()), key=lambda item: item[2]
    )
    verdict = (
        f"<p>The largest relative error is {worst:.1e} (parameter {worst_name}, seq_length {worst_T}): "
        + (
            "well below 1e-6, so the analytic gradients are correct.</p>"
            if worst < 1e-7
            else "below 1e-6, so the analytic gradients agree with the numerical ones.</p>"
            if worst < 1e-6
            else "<b>above 1e-6, which points to a bug in the gradients.</b></p>"
        )
    )
    caption_max = (
        "Table 1b. The largest elementwise relative error per parameter. It is larger than the "
        "norm-based figure because entries whose gradient is nearly zero are dominated by the "
        "rounding error of the difference quotient."
    )
    return HTML(
        table(
            ["seq_length", *names],
            rows,
            f"Table 1. Relative error of the analytic gradient per parameter (m = {g['m']}, h = {g['h']:g}).",
        )
        + verdict
        + table(["seq_length", *names], rows_max, caption_max)
    )


def gradient_section(run_dir) -> HTML:
    """:func:`gradient_settings` and :func:`gradient_tables` together (the report's section 1 numbers)."""
    return HTML(gradient_settings(run_dir).data + gradient_tables(run_dir).data)


def training_settings(run_dir) -> HTML:
    """The run's training settings as one sentence: sizes, optimizer and its constants, clipping, length."""
    run = read_json(resolve(run_dir) / "run.json")
    c, k = run["config"], run["constants"]
    epochs = len(run["epoch_starts"])
    batch = f", {c['batch_size']} parallel streams" if c.get("batch_size", 1) > 1 else ""
    return HTML(
        f"<p>This run used m = {c['m']}, seq_length = {c['seq_length']}, eta = {c['eta']:g} and sig = {c['sig']:g}"
        f"{batch}, {optimizer_text(k['optimizer'], k['optimizer_settings'])}, {clipping_text(k)} and a "
        f"smooth loss of {k['smoothing']:g} · smooth_loss + "
        f"{round(1 - k['smoothing'], 12):g} · loss, for {run['steps_done']:,} updates in {epochs} "
        f"epoch{'s' if epochs != 1 else ''} of the text (the last one may be partial).</p>"
    )


DEFAULT_RUN, DEFAULT_FIGURE = "output/run", "figures/smooth_loss.png"
"""``make report``'s run folder, and where its Figure 2 is saved as PNG."""


def figure_file(run_dir, figure_path: str = "") -> Path:
    """Where Figure 2 of ``run_dir`` is saved: ``figure_path``, or when empty ``figures/smooth_loss.png``
    for the default run folder and ``smooth_loss.png`` inside any other."""
    if figure_path:
        return resolve(figure_path)
    return (
        resolve(DEFAULT_FIGURE)
        if resolve(run_dir) == resolve(DEFAULT_RUN)
        else resolve(run_dir) / "smooth_loss.png"
    )


def loss_figure(run_dir, figure_path: str = "") -> HTML:
    """Figure 2 (drawn from train_log.csv and saved as PNG at :func:`figure_file`) with its caption."""
    run = read_json(resolve(run_dir) / "run.json")
    figure_path = save_figure(smooth_loss_figure(run_dir), figure_file(run_dir, figure_path))
    return HTML(
        image(Path(figure_path).read_bytes(), "Figure 2: smooth loss")
        + caption(
            f"Figure 2. Smooth loss over {run['steps_done']:,} updates; dotted lines mark the start "
            "of each epoch."
        )
    )


def loss_facts(run_dir) -> HTML:
    """The smooth loss's milestones: its start beside seq_length · ln K, 10,000 and 100,000 updates,
    its lowest value, per character, and the validation loss when the run held text out."""
    run = read_json(resolve(run_dir) / "run.json")
    c, K = run["config"], run["corpus"]["K"]
    samples = {s["step"]: s["smooth_loss"] for s in read_json(resolve(run_dir) / "samples.json")}
    facts = []
    if 0 in samples:
        uniform = c["seq_length"] * math.log(K)
        near = "equal to" if f"{samples[0]:.2f}" == f"{uniform:.2f}" else "close to"
        facts.append(
            f"starts at {samples[0]:.2f}, {near} seq_length · ln K = {uniform:.2f}, the loss of a uniform guess"
        )
    facts += [f"is {v:.2f} {after(k)}" for k, v in sorted(samples.items()) if k in (10_000, 100_000)]
    if run.get("best_val_loss_per_char") is None:  # the best model is the one with the lowest smooth loss
        lowest, lowest_step, logged = run["best_smooth_loss"], run["best_step"], ""
    else:  # the best model was chosen by validation loss: the lowest smooth loss comes from the log
        log = read_log(resolve(run_dir) / "train_log.csv")
        low = int(np.argmin(log["smooth_loss"]))
        lowest, lowest_step, logged = float(log["smooth_loss"][low]), int(log["step"][low]), " logged"
    facts.append(f"reaches its lowest{logged} value, {lowest:.2f}, {after(lowest_step)}")
    text = (
        "<p>The smooth loss " + ", ".join(facts[:-1]) + (" and " if len(facts) > 1 else "") + facts[-1] + ". "
    )
    per_char = lowest / c["seq_length"]
    text += f"Per character, that is {per_char:.3f} nats ({bits(per_char):.3f} bits)"
    if run.get("best_val_loss_per_char") is not None:
        val = run["best_val_loss_per_char"]
        text += (
            f". The best model is chosen by the loss on the held-out last {c['val_fraction']:.0%} of the text: "
            f"{val:.3f} nats ({bits(val):.3f} bits, perplexity {perplexity(val):.2f}) per character, "
            f"{after(run['best_step'])}"
        )
    if run.get("test_loss_per_char") is not None:
        test = run["test_loss_per_char"]
        text += (
            f". On the test part, the {c['test_fraction']:.0%} of the text before it, never used for choosing, "
            f"the best model loses {test:.3f} nats ({bits(test):.3f} bits, perplexity {perplexity(test):.2f})"
        )
    return HTML(text + ".</p>")


def epoch_table(run_dir) -> HTML:
    """Table: the smooth loss at the end of each epoch and the lowest within it, from train_log.csv."""
    run = read_json(resolve(run_dir) / "run.json")
    log = read_log(resolve(run_dir) / "train_log.csv")
    starts = list(run["epoch_starts"]) + [run["steps_done"]]
    rows = []
    for i, (first, last) in enumerate(zip(starts[:-1], starts[1:]), start=1):
        inside = (log["step"] > first) & (log["step"] <= last)
        if not inside.any():
            continue
        losses = log["smooth_loss"][inside]
        rows.append([f"{i}", f"{first + 1:,} to {last:,}", f"{losses[-1]:.2f}", f"{losses.min():.2f}"])
    return HTML(
        table(
            ["epoch", "updates", "smooth loss at its end", "lowest in it"],
            rows,
            "The smooth loss per epoch (from the rows of train_log.csv; an epoch is one pass over the "
            "text, the last one may be partial).",
        )
    )


def reference_section(run_dir, baseline_dir: str = "", best_dir: str = "") -> HTML:
    """The reference points for a loss per character (see :mod:`helpers.report.reference`)."""
    return reference.section(run_dir, baseline_dir, best_dir)


def samples_section(run_dir) -> HTML:
    """The texts synthesized during training, each headed by when it was drawn and the smooth loss then.

    Says why when the schedule drew nothing after the first update (``sample_every`` beyond the run's
    length); a sample marked ``final`` was drawn at the end of such a short run.
    """
    run = read_json(resolve(run_dir) / "run.json")
    samples = read_json(resolve(run_dir) / "samples.json")
    c = run["config"]
    n = len(samples[0]["text"]) if samples else 0
    scheduled = [s for s in samples if not s.get("final")]
    intro = (
        f"<p>Every {c['sample_every']:,} updates up to update {c['sample_until']:,} the network synthesized {n} "
        f"characters from the hidden state of that moment and the next update's first input character; "
        f"the first text was drawn before any update."
    )
    if any(s.get("final") for s in samples):
        intro += (
            f" The run ended {after(run['steps_done'])}, before the next scheduled sample, so the last text "
            "was drawn from the final model."
        )
    elif len(scheduled) == 1 and run["steps_done"] < c["sample_every"]:
        intro += f" The run ended {after(run['steps_done'])}, before the first scheduled sample."
    blocks = "".join(
        sample(
            f"{after(s['step']).capitalize()}{' (the end of training)' if s.get('final') else ''}"
            f", smooth loss {s['smooth_loss']:.2f}",
            s["text"],
        )
        for s in samples
    )
    return HTML(intro + "</p>" + blocks)


def best_section(run_dir) -> HTML:
    """The best model's passage, with when it was saved, its smooth loss and how it was chosen."""
    b = read_json(resolve(run_dir) / "best_passage.json")
    run = read_json(resolve(run_dir) / "run.json")
    chosen = run.get("best_chosen_by", "smooth loss")
    x0 = latex.html("x_0", as_img=True)
    start = (
        f"after warming the state up on the priming text {html.escape(repr(b['prime'][:-1]))}, with {x0} = "
        if len(b["prime"]) > 1
        else f"starting from a zero hidden state and {x0} = "
    )
    final = ""
    if b["step"] != run["steps_done"] and run.get("final_smooth_loss") is not None:
        final = f"; {after(run['steps_done'])}, at the end of training, it was {run['final_smooth_loss']:.4f}"
    return HTML(
        f'<div class="keep"><p>The best model, chosen by the lowest {chosen}, holds the parameters {after(b["step"])} '
        f"(smooth loss {b['smooth_loss']:.4f}{final}). It synthesized the following {len(b['text']):,} characters "
        "(seed "
        f"{b['seed']}, {start}{html.escape(repr(b['prime'][-1]))}).</p>" + text_block(b["text"]) + "</div>"
    )


def passage(result: dict) -> HTML:
    """A synthesized text (as returned by ``steps.synthesize``) with where it came from and how it was drawn."""
    how = (
        f"beam search of width {result['beam_width']}, log-probability {result['log_prob']:.1f} nats"
        if result.get("beam_width", 0) >= 2
        else f"seed {result['seed']}, temperature {result['temperature']:g}, top-p {result['top_p']:g}"
    )
    return HTML(
        f"<p>{len(result['text']):,} characters from <code>{html.escape(result['checkpoint'])}</code> "
        f"({after(result['step'])}, smooth loss {result['smooth_loss']:.2f}; {how}, "
        f"prime {html.escape(repr(result['prime']))}):</p>"
        + (f'<p class="note">Note: {html.escape(result["note"])}.</p>' if result.get("note") else "")
        + text_block(result["text"])
    )


OPTIONAL_SECTIONS = {
    "compare": (compare_section.section, "Comparing models"),
    "documents": (documents_section.section, "Learning from short documents"),
    "sweep": (sweep_section.section, "Parameter sweep"),
}
"""Report sections that appear only when their notebook ran: name -> (``section(dir)``, title)."""


def optional_section(name: str, folder: str):
    """The report section ``name`` built from ``folder``, or nothing when ``folder`` is empty."""
    if not folder:
        return None
    section, title = OPTIONAL_SECTIONS[name]
    return HTML(f"<h2>{html.escape(title)}</h2>" + section(folder).data)


def clipping_text(k: dict) -> str:
    """How the run clipped and decayed, from run.json's constants: "gradients clipped to [−5, 5]"."""
    parts = [
        f"gradients clipped to [−{k['clip']:g}, {k['clip']:g}]" if k["clip"] else "no elementwise clipping"
    ]
    if k.get("clip_norm"):
        parts.append(f"then to an L2 norm of at most {k['clip_norm']:g}")
    if k.get("weight_decay"):
        parts.append(f"decoupled weight decay {k['weight_decay']:g} on U, W and V")
    return ", ".join(parts)


def optimizer_text(name: str, settings: dict) -> str:
    """E.g. "AdaGrad with eps = 1e-8" from the optimizer's name and its recorded settings."""
    parts = [f"{SETTING_NAMES.get(k, k)} = {_number(v)}" for k, v in settings.items()]
    return f"{OPTIMIZER_NAMES[name]} with " + (
        ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    )


def _number(v: float) -> str:
    """A constant as people write it: 0.9, 0.999, 1e-8 (not 1e-08)."""
    text = f"{v:g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")
